"""``python -m jupyter_yolo.runner.ray_entry JOB_DIR TOKEN``: a job's entrypoint on a Ray node.

1. The shared-workspace check: the server wrote ``TOKEN`` into the job folder's marker file
   (:data:`~jupyter_yolo.contract.executors.SHARED_MARKER_FILE`) before it submitted the job.
   A node that does not read it back does not see the server's workspace: the entrypoint prints
   :data:`~jupyter_yolo.contract.executors.WORKSPACE_NOT_SHARED` and exits
   :data:`~jupyter_yolo.contract.executors.WORKSPACE_NOT_SHARED_EXIT` at once (the job fails
   fast instead of hanging on files that never appear).
2. The runner, exactly as the local executor starts it: ``python -m jupyter_yolo.runner
   JOB_DIR`` in the job folder, its output appended to the job's log file, in this process's
   group (Ray's stop signals the entrypoint and all its descendants; when Ray's job supervisor
   dies, Ray kills the entrypoint's whole process group, the runner included).
3. A runner that ended ``stopped`` (the stop file) leaves this entrypoint waiting, at most
   :data:`STOP_WAIT_S`, for the stop the server then asks of Ray: Ray records a job it stopped
   as ``STOPPED`` only while its entrypoint still runs (an entrypoint that exits 0 first would
   be ``SUCCEEDED``). On that stop's SIGTERM the entrypoint exits at once; when no stop comes
   (the server is down) it exits with the runner's status after the wait, and the job's truth
   remains the runner's ``status.json``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from ..contract.executors import (
    SHARED_MARKER_FILE,
    WORKSPACE_NOT_SHARED,
    WORKSPACE_NOT_SHARED_EXIT,
)
from ..contract.files import LOG_FILE, STATUS_FILE

STOP_WAIT_S = 60.0
USAGE = "usage: python -m jupyter_yolo.runner.ray_entry JOB_DIR TOKEN"


def marker_matches(job_dir: Path, token: str) -> bool:
    """Whether this node reads the server's marker (with ``token``) in the job folder."""
    try:
        return (job_dir / SHARED_MARKER_FILE).read_text(encoding="utf-8").strip() == token
    except (OSError, UnicodeDecodeError):
        return False


def runner_status(job_dir: Path) -> str | None:
    """The status the runner last wrote in ``status.json`` (None when unreadable)."""
    try:
        status = json.loads((job_dir / STATUS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = status.get("status") if isinstance(status, dict) else None
    return value if isinstance(value, str) else None


def run_runner(job_dir: Path) -> int:
    """Run the runner in the job folder, its output into the job's log; its exit status."""
    flags = os.O_CREAT | os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC
    fd = os.open(job_dir / LOG_FILE, flags, 0o600)
    try:
        child = subprocess.Popen(
            [sys.executable, "-m", "jupyter_yolo.runner", str(job_dir)],
            cwd=job_dir,
            stdin=subprocess.DEVNULL,
            stdout=fd,
            stderr=subprocess.STDOUT,
            close_fds=True,
        )
    finally:
        os.close(fd)
    forward = _forward_to(child)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
        signal.signal(sig, forward)
    return child.wait()


def _forward_to(child: subprocess.Popen[bytes]) -> Callable[[int, FrameType | None], None]:
    def handler(signum: int, _frame: FrameType | None) -> None:
        if child.poll() is None:
            os.kill(child.pid, signum)

    return handler


def wait_for_stop(timeout: float = STOP_WAIT_S) -> None:
    """Wait (bounded) for Ray's stop after a graceful stop of the runner; exit on its SIGTERM."""

    def stopped(_signum: int, _frame: FrameType | None) -> None:
        os._exit(0)

    signal.signal(signal.SIGTERM, stopped)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    """Check the shared workspace, run the runner, and return its exit status."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(USAGE, file=sys.stderr)
        return 2
    job_dir, token = Path(args[0]), args[1]
    if not marker_matches(job_dir, token):
        print(
            f"jupyter-yolo: {WORKSPACE_NOT_SHARED}: {job_dir / SHARED_MARKER_FILE} cannot be read "
            f"on this node (mount the workspace at the same path on every Ray node).",
            flush=True,
        )
        return WORKSPACE_NOT_SHARED_EXIT
    code = run_runner(job_dir)
    if runner_status(job_dir) == "stopped":
        wait_for_stop()
    return code


if __name__ == "__main__":
    sys.exit(main())
