"""The local executor: the runner as a process of this machine, in a session of its own.

A job outlives the server (its own session); the server follows it by pid and start time,
stops it with the stop file and SIGUSR1, then SIGTERM and SIGKILL of its session.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from pathlib import Path

from ..contract.files import LOG_FILE
from ..workspace import open_private, private_folder
from .process import process_start_time, runner_environment, session_members, signal_session


class LocalExecutor:
    """Starts runner processes and escalates their stops."""

    def __init__(
        self,
        python: str,
        *,
        stop_grace_period: float,
        kill_grace_period: float,
        log: logging.Logger,
    ) -> None:
        self.python = python
        self.stop_grace_period = stop_grace_period
        self.kill_grace_period = kill_grace_period
        self.log = log

    def spawn(self, folder: Path) -> tuple[subprocess.Popen[bytes], int | None]:
        """Start ``python -m jupyter_yolo.runner JOB_DIR``; the process and its start time."""
        (folder / "stop").unlink(missing_ok=True)
        private_folder(folder)
        with open_private(folder / LOG_FILE) as log_file:
            child = subprocess.Popen(
                [self.python, "-m", "jupyter_yolo.runner", str(folder)],
                cwd=folder,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
                env=runner_environment(os.environ),
            )
        return child, process_start_time(child.pid)

    def escalate(self, pid: int | None, asked: float) -> None:
        """SIGTERM the runner's session after the grace period, SIGKILL after the kill grace."""
        waited = time.monotonic() - asked
        if not pid:
            return
        if waited > self.stop_grace_period + self.kill_grace_period:
            signal_session(pid, signal.SIGKILL)
        elif waited > self.stop_grace_period:
            signal_session(pid, signal.SIGTERM)

    def kill_leftovers(self, job_id: str, pid: int | None) -> None:
        """SIGKILL what is left of an ended runner's session (its forked workers)."""
        if not pid:
            return
        leftovers = session_members(pid)
        if leftovers:
            self.log.warning(
                "jupyter_yolo: killing %d leftover process(es) of job %s", len(leftovers), job_id
            )
            signal_session(pid, signal.SIGKILL)
