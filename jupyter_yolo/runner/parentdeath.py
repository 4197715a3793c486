"""A process that dies with its parent: the DDP ranks of a runner killed with ``kill -9``.

``torch.distributed.run`` starts every rank with ``start_new_session=True``, so the server's
session-based cleanup (``signal_session``, ``kill_leftovers``) reaches the runner and
``torchrun`` but never the ranks. Were ``torchrun`` killed -9 (the OOM killer, the server's
escalation), its ranks would keep training and writing into the job folder after the job is
marked interrupted, and a resume would start a second training in the same folder.

:func:`die_with_parent` asks Linux for ``SIGKILL`` when the parent dies
(``prctl(PR_SET_PDEATHSIG)``), then checks the parent is still the one it was: a parent that
died before the call (the rank spends seconds importing torch first) left the process
reparented, and it kills itself at once. With ``launcher`` (the runner's pid, which
:data:`RUNNER_PID_ENV` carries to the ranks) the parent's own parent must be that runner too:
a ``torchrun`` orphaned by a runner killed -9 is on its way out (the server's cleanup of the
runner's session ends it, and its ranks with it), so a rank starting under it leaves at once.
Elsewhere than Linux nothing is armed and :func:`die_with_parent` returns False.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1
"""``prctl`` option (``linux/prctl.h``): the signal a process gets when its parent dies."""
RUNNER_PID_ENV = "JUPYTER_YOLO_RUNNER_PID"
"""The runner's pid, set in its environment before a DDP launch: the ranks' grandparent."""


def set_parent_death_signal(sig: int = signal.SIGKILL) -> bool:
    """Have the kernel send ``sig`` to this process when its parent exits (Linux only)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def parent_of(pid: int) -> int | None:
    """The parent pid of ``pid`` from ``/proc`` (None when it is gone or unreadable)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read().decode("ascii", "replace")
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()  # after "pid (comm)": state, ppid, ...
    if len(fields) < 2 or fields[0] in {"Z", "X"}:  # a zombie has no life left to parent
        return None
    with contextlib.suppress(ValueError):
        return int(fields[1])
    return None


def die_with_parent(launcher: int | None = None) -> bool:
    """Arm ``SIGKILL`` on the parent's death and die now if it is already gone (see the module).

    Returns whether the signal is armed (False off Linux). ``launcher``: the pid the parent's
    own parent must be (the runner that started ``torchrun``).
    """
    parent = os.getppid()
    if not set_parent_death_signal():
        return False
    gone = parent == 1 or os.getppid() != parent  # reparented: the parent died already
    if not gone and launcher is not None:
        gone = parent_of(parent) != launcher
    if gone:
        os.kill(os.getpid(), signal.SIGKILL)
    return True


def launcher_pid() -> int | None:
    """The runner's pid from :data:`RUNNER_PID_ENV` (None when unset or not a number)."""
    with contextlib.suppress(ValueError):
        return int(os.environ.get(RUNNER_PID_ENV, ""))
    return None
