"""The job folder contract: ``job.json`` (written by the server) and ``status.json`` (the runner's).

``status.json`` is the source of truth for a job's terminal status even when the server is gone.
It is rewritten atomically (a temporary file in the same folder, then ``os.replace``).
"""

from __future__ import annotations

import fcntl
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..contract.files import (
    ALREADY_RUNNING_EXIT,
    DEFAULT_LOG_MAX_BYTES,
    JOB_FILE,
    LOG_FILE,
    RUN_DIR,
    RUNNER_LOCK,
    STATUS_FILE,
    STOP_FILE,
    write_json_atomic,
)
from ..contract.jobfile import JobFile, JobFileError
from ..contract.payloads import StatusRecord
from ..contract.status import KINDS, RUNNER_TERMINAL

__all__ = [
    "ALREADY_RUNNING_EXIT",
    "DEFAULT_LOG_MAX_BYTES",
    "JOB_FILE",
    "KINDS",
    "LOG_FILE",
    "RUNNER_LOCK",
    "RUN_DIR",
    "STATUS_FILE",
    "STOP_FILE",
    "JobFile",
    "JobFileError",
    "StatusFile",
    "hold_runner_lock",
    "write_json_atomic",
]


@dataclass
class StatusFile:
    """The runner's own record of its job, kept in ``status.json``."""

    path: Path
    pid: int = field(default_factory=os.getpid)
    started: float = field(default_factory=time.time)
    status: str = "running"
    ended: float | None = None
    exit_reason: str | None = None
    error: str | None = None
    result: dict[str, Any] | None = None
    epochs_done: int = 0

    def as_dict(self) -> StatusRecord:
        """The JSON body of ``status.json``."""
        return {
            "status": self.status,
            "pid": self.pid,
            "started": round(self.started, 3),
            "ended": None if self.ended is None else round(self.ended, 3),
            "exit_reason": self.exit_reason,
            "error": self.error,
            "result": self.result,
            "epochs_done": self.epochs_done,
        }

    def save(self) -> None:
        """Write the record atomically."""
        write_json_atomic(self.path, self.as_dict())

    def finish(
        self,
        status: str,
        *,
        exit_reason: str,
        error: str | None = None,
        result: dict[str, Any] | None = None,
    ) -> None:
        """Record a terminal status and write it."""
        if status not in RUNNER_TERMINAL:
            raise ValueError(f"not a terminal status: {status}")
        self.status = status
        self.ended = time.time()
        self.exit_reason = exit_reason
        self.error = error
        if result is not None:
            self.result = result
        self.save()


def hold_runner_lock(job_dir: Path) -> int | None:
    """Take the job folder's runner lock for the life of this process; None if another has it.

    One runner per job whatever races: a second runner started on the same folder (a double
    start, a second server) finds the lock taken and leaves without touching anything.
    """
    fd = os.open(job_dir / RUNNER_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd
