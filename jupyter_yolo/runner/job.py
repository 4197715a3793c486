"""The job folder contract: ``job.json`` (written by the server) and ``status.json`` (the runner's).

``status.json`` is the source of truth for a job's terminal status even when the server is gone.
It is rewritten atomically (a temporary file in the same folder, then ``os.replace``).
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..workspace import write_atomic

JOB_FILE = "job.json"
STATUS_FILE = "status.json"
STOP_FILE = "stop"
LOG_FILE = "log.txt"
RUN_DIR = "run"
RUNNER_LOCK = ".runner.lock"
ALREADY_RUNNING_EXIT = 3  # a runner that found another one holding RUNNER_LOCK

KINDS = ("train", "val", "predict", "export")
TERMINAL = ("succeeded", "failed", "stopped")
DEFAULT_LOG_MAX_BYTES = 10 * 2**20


class JobSpecError(ValueError):
    """``job.json`` is missing or malformed."""


@dataclass(frozen=True)
class JobSpec:
    """The parsed ``job.json`` of one job."""

    id: str
    kind: str
    params: dict[str, Any]
    workspace: Path
    resume: bool = False
    log_max_bytes: int = DEFAULT_LOG_MAX_BYTES

    @classmethod
    def load(cls, job_dir: Path) -> JobSpec:
        """Read and check ``job_dir/job.json``."""
        path = job_dir / JOB_FILE
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise JobSpecError(f"{path} does not exist") from exc
        except (OSError, ValueError) as exc:
            raise JobSpecError(f"{path} is not readable JSON: {exc}") from exc
        if not isinstance(raw, dict):
            raise JobSpecError(f"{path} must hold a JSON object")
        kind = raw.get("kind")
        if kind not in KINDS:
            raise JobSpecError(f"job kind must be one of {', '.join(KINDS)}, not {kind!r}")
        params = raw.get("params") or {}
        if not isinstance(params, dict):
            raise JobSpecError("job params must be a JSON object")
        workspace = raw.get("workspace")
        if not isinstance(workspace, str) or not os.path.isabs(workspace):
            raise JobSpecError("job workspace must be an absolute path")
        log_max = raw.get("log_max_bytes", DEFAULT_LOG_MAX_BYTES)
        if not isinstance(log_max, int) or isinstance(log_max, bool) or log_max < 1024:
            log_max = DEFAULT_LOG_MAX_BYTES
        return cls(
            id=str(raw.get("id") or job_dir.name),
            kind=kind,
            params=dict(params),
            workspace=Path(workspace),
            resume=bool(raw.get("resume", False)),
            log_max_bytes=log_max,
        )


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON to ``path``: readers see the old or the new file, never half."""
    write_atomic(path, json.dumps(data, indent=1, allow_nan=False, default=str) + "\n")


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

    def as_dict(self) -> dict[str, Any]:
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
        if status not in TERMINAL:
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
