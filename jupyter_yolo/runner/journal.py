"""The runner's side of the event file: thread-safe emits, artifacts, a rate-limited log feed.

Several processes may append to one job's event file at once: the runner, and rank 0 of a
multi-GPU (DDP) training it launched (:mod:`jupyter_yolo.runner.ddp`). Every emit holds an
exclusive ``flock`` on the job folder's :data:`~jupyter_yolo.contract.files.EVENTS_LOCK` (a
file of its own, opened read-write: never the event file, which NFS could not lock through a
read-only descriptor and SMB would then refuse to let the writer append to); a writer that
finds the file grown since its own last append re-reads the last seq (and drops a fragment a
killed writer left), so seq stays strictly increasing and contiguous whatever the number of
writers.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import math
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..contract.files import EVENTS_FILE, EVENTS_LOCK
from ..contract.payloads import BatchFields, EpochFields
from ..contract.serving import PROGRESS_EVENT
from ..jobs.events import EventWriter, _last_complete_seq

ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
LEVEL_PREFIX_RE = re.compile(r"^(WARNING|ERROR)\s*(\u26a0\ufe0f|\u274c)?\s*")


def strip_ansi(text: str) -> str:
    """Remove terminal colour and cursor sequences."""
    return ANSI_RE.sub("", text)


def number(value: Any, digits: int = 6) -> float | None:
    """A JSON-safe float: rounded, or None when missing or not finite (NaN and inf)."""
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(result):
        return None
    return round(result, digits)


class Journal:
    """Appends the runner's events to ``events.jsonl``; safe to call from any thread."""

    def __init__(self, job_dir: Path) -> None:
        self.job_dir = job_dir
        self.path = job_dir / EVENTS_FILE
        self._lock = threading.Lock()
        self._artifacts: set[str] = set()
        # the flock is on a lock file of its own (see the module), never on the event file
        self._lock_fd = os.open(job_dir / EVENTS_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        with self._file_lock():
            self._writer = EventWriter(self.path)
            self._end = self._size()

    def _size(self) -> int:
        return os.stat(self.path).st_size

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def emit(self, event_type: str, **fields: Any) -> dict[str, Any]:
        """Append one event (seq continues the file's sequence, whoever else appends to it)."""
        with self._lock, self._file_lock():
            size = self._size()
            if size != self._end:  # another process appended since our last event
                seq, complete = _last_complete_seq(self.path)
                if complete != size:  # a writer killed mid-line: its fragment is no event
                    os.truncate(self.path, complete)
                self._writer.seq = seq
            event = self._writer.emit(event_type, **fields)
            self._end = self._size()
            return event

    def batch(self, fields: BatchFields) -> dict[str, Any]:
        """Append a ``batch`` event (its fields typed by the contract)."""
        return self.emit("batch", **fields)

    def epoch(self, fields: EpochFields) -> dict[str, Any]:
        """Append an ``epoch`` event (its fields typed by the contract)."""
        return self.emit("epoch", **fields)

    def progress(
        self,
        *,
        unit: str,
        done: int,
        total: int | None,
        fps: float | None,
        eta_s: float | None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Append a ``progress`` event (:class:`~jupyter_yolo.contract.serving.ProgressEvent`)."""
        return self.emit(
            PROGRESS_EVENT, unit=unit, done=done, total=total, fps=fps, eta_s=eta_s, **extra
        )

    def status(self, status: str, **fields: Any) -> None:
        """Append a ``status`` event."""
        self.emit("status", status=status, **fields)

    def log(self, message: str, level: str = "info") -> None:
        """Append a ``log`` event."""
        self.emit("log", level=level, message=strip_ansi(message).strip())

    def warning(self, code: str, message: str) -> None:
        """Append a ``warning`` event a person can act on."""
        self.emit("warning", code=code, message=strip_ansi(message).strip())

    def artifact(self, path: Path, kind: str, *, again: bool = False) -> bool:
        """Announce a result file once (``again``: once more); return whether it was emitted."""
        try:
            rel = path.resolve().relative_to(self.job_dir.resolve()).as_posix()
        except ValueError:
            rel = str(path)
        if not path.exists() or (rel in self._artifacts and not again):
            return False
        self._artifacts.add(rel)
        size = path.stat().st_size if path.is_file() else None
        self.emit("artifact", path=rel, kind=kind, bytes=size)
        return True

    def close(self) -> None:
        """Flush and close the event file."""
        with self._lock:
            self._writer.close()
            if self._lock_fd >= 0:
                os.close(self._lock_fd)
                self._lock_fd = -1


class NullJournal(Journal):
    """A journal that writes nothing: the DDP ranks other than 0 report through rank 0."""

    def __init__(self, job_dir: Path) -> None:  # no file is opened
        self.job_dir = job_dir
        self.path = job_dir / EVENTS_FILE
        self._artifacts = set()

    def emit(self, event_type: str, **fields: Any) -> dict[str, Any]:
        """Drop the event."""
        return {}

    def close(self) -> None:
        """Nothing to close."""


# ultralytics INFO lines worth a ``log`` event; everything at WARNING and above is always sent.
IMPORTANT_INFO = re.compile(
    r"^\s*(Starting training|Resuming training|\d+ epochs completed|Results saved to|"
    r"Validating |Closing dataloader mosaic|Transferred \d+/|Speed: |"
    r"Using \d+ train|.*export success|.*starting export|.*Model summary|"
    r"Early ?Stopping|.*Stopping training)",
    re.IGNORECASE,
)


class EventLogHandler(logging.Handler):
    """Forwards important ultralytics log records as ``log`` events, rate limited.

    A token bucket allows bursts of ``burst`` events and ``rate`` events per second after that;
    records dropped meanwhile are counted and reported with the next event that goes through.
    """

    def __init__(self, journal: Journal, *, burst: int = 20, rate: float = 0.5) -> None:
        super().__init__(level=logging.INFO)
        self.journal = journal
        self.burst = burst
        self.rate = rate
        self._tokens = float(burst)
        self._last = time.monotonic()
        self._dropped = 0
        self._bucket_lock = threading.Lock()

    def _take(self) -> tuple[bool, int]:
        with self._bucket_lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            if self._tokens < 1:
                self._dropped += 1
                return False, 0
            self._tokens -= 1
            dropped, self._dropped = self._dropped, 0
            return True, dropped

    def emit(self, record: logging.LogRecord) -> None:
        """Send the record as a ``log`` event when it is important and the rate allows."""
        try:
            message = LEVEL_PREFIX_RE.sub("", strip_ansi(record.getMessage()).strip())
            if not message:
                return
            if record.levelno < logging.WARNING and not IMPORTANT_INFO.match(message):
                return
            allowed, dropped = self._take()
            if not allowed:
                return
            if len(message) > 2000:
                message = message[:2000] + " ..."
            level = (
                "warning"
                if record.levelno == logging.WARNING
                else ("error" if record.levelno >= logging.ERROR else "info")
            )
            fields: dict[str, Any] = {"level": level, "message": message}
            if dropped:
                fields["suppressed"] = dropped
            self.journal.emit("log", **fields)
        except Exception:  # a log handler must never break the job
            self.handleError(record)
