"""DDP ranks die with their parent: ``prctl(PR_SET_PDEATHSIG)`` through :mod:`parentdeath`.

``torch.distributed.run`` starts its ranks in sessions of their own, which the server's session
cleanup never reaches; a rank must not outlive a ``torchrun`` killed -9. Plain subprocesses
stand in for torchrun and its ranks (the helper is what a rank calls in ``attach_worker``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jupyter_yolo.runner.parentdeath import RUNNER_PID_ENV, parent_of

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux prctl")

PYTHON = sys.executable
CHILD = r"""
import sys, time
from jupyter_yolo.runner.parentdeath import die_with_parent, launcher_pid
if sys.argv[1] == "armed":
    die_with_parent(launcher_pid())
print("ready", flush=True)
time.sleep(600)
"""
PARENT = r"""
import subprocess, sys, time
children = [
    subprocess.Popen([sys.executable, "-c", sys.argv[1], mode], start_new_session=True,
                     stdout=subprocess.PIPE, text=True)
    for mode in ("armed", "plain")
]
for child in children:
    assert child.stdout.readline().strip() == "ready"
print(" ".join(str(child.pid) for child in children), flush=True)
time.sleep(600)
"""


def alive(pid: int) -> bool:
    """Whether ``pid`` exists and is no zombie."""
    return parent_of(pid) is not None


def wait_gone(pid: int, limit: float = 60.0) -> bool:
    """Poll until ``pid`` is gone (a hang guard, not a timing assertion)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_a_rank_dies_when_its_parent_is_killed_9_and_an_unarmed_one_does_not() -> None:
    parent = subprocess.Popen([PYTHON, "-c", PARENT, CHILD], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    armed, plain = (int(pid) for pid in parent.stdout.readline().split())
    try:
        assert alive(armed) and alive(plain)
        parent.kill()  # SIGKILL: no handler, no cleanup of its own
        parent.wait(timeout=60)
        assert wait_gone(armed)
        assert alive(plain)  # what every rank did before: it keeps running, orphaned
    finally:
        for pid in (armed, plain):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_rank_whose_launcher_is_not_its_grandparent_leaves_at_once(tmp_path: Path) -> None:
    """A torchrun orphaned by a runner killed -9: its rank does not start training."""
    env = {**os.environ, RUNNER_PID_ENV: str(os.getpid() + 1_000_000)}  # not the grandparent
    done = subprocess.run(
        [PYTHON, "-c", CHILD, "armed"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == -signal.SIGKILL and "ready" not in done.stdout
    env[RUNNER_PID_ENV] = str(os.getppid())  # this test's parent is the child's grandparent
    done = subprocess.run(
        [PYTHON, "-c", CHILD.replace("time.sleep(600)", ""), "armed"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0 and done.stdout.strip() == "ready"


def test_die_with_parent_arms_the_signal_in_a_live_process() -> None:
    code = "from jupyter_yolo.runner.parentdeath import die_with_parent; print(die_with_parent())"
    done = subprocess.run(
        [PYTHON, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert (done.returncode, done.stdout.strip()) == (0, "True")
