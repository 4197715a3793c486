"""File names of a job folder and the one atomic writer every part uses."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

JOB_FILE = "job.json"
"""The server's request for the runner, written once before the runner starts."""
STATUS_FILE = "status.json"
"""The runner's own record of its job: the source of truth for a terminal status."""
EVENTS_FILE = "events.jsonl"
"""Append-only JSON lines, ``seq`` strictly increasing from 1."""
STOP_FILE = "stop"
LOG_FILE = "log.txt"
"""The runner's captured output (stdout and stderr of it and its children), size-capped."""
LOG_OLD_FILE = "log.1.txt"
"""The part of :data:`LOG_FILE` rotated out when it reached its cap (one old part kept)."""
RUN_DIR = "run"
RUNNER_LOCK = ".runner.lock"
EVENTS_LOCK = ".events.lock"
"""The lock file every writer of :data:`EVENTS_FILE` holds (``flock``) while it appends.

A file of its own, opened read-write: on NFS an ``flock`` becomes a byte-range lock that needs
a descriptor open for writing, and on SMB a held lock is mandatory (it would refuse the
writer's own appends through its other descriptor). Not an artifact; never read.
"""
PREDICTIONS_FILE = "predictions.json"
ALREADY_RUNNING_EXIT = 3
"""Exit status of a runner that found another one holding :data:`RUNNER_LOCK`."""
DEFAULT_LOG_MAX_BYTES = 10 * 2**20


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write a file through a temporary sibling and rename it into place (0600, fsynced).

    Readers see the old file or the new one, never half of it; ``mkstemp`` creates the sibling
    owner-only whatever the umask, and the rename keeps that mode.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(raw)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as strict JSON (no NaN) to ``path`` through :func:`write_atomic`."""
    write_atomic(path, json.dumps(data, indent=1, allow_nan=False, default=str) + "\n")
