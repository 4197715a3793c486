"""The append-only JSON-lines event file of a job: one writer (the runner), many readers.

Each line is one JSON object whose first key is ``seq``, strictly increasing from 1. The writer
is the only process that appends while a job runs; the server appends only while no runner is
alive (the ``queued`` status before the spawn, ``interrupted`` after a runner vanished).
"""

from __future__ import annotations

import bisect
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

_SEQ_PREFIX = b'{"seq": '


def _last_complete_seq(path: Path) -> tuple[int, int]:
    """Return (last seq, byte length of the complete lines) of an event file.

    A trailing fragment without a newline (a writer killed mid-line) is not counted.
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return 0, 0
    with path.open("rb") as handle:
        chunk = 4096
        pos = size
        tail = b""
        while pos > 0:
            step = min(chunk, pos)
            pos -= step
            handle.seek(pos)
            tail = handle.read(step) + tail
            end = tail.rfind(b"\n")
            if end == -1:
                continue
            complete = pos + end + 1
            start = tail.rfind(b"\n", 0, end)
            if start == -1 and pos > 0:
                continue
            line = tail[start + 1 : end]
            seq = _seq_or_none(line)
            return (seq if seq is not None else _highest_seq(path, complete)), complete
    return 0, 0


def _seq_of(line: bytes) -> int:
    if line.startswith(_SEQ_PREFIX):
        digits = line[len(_SEQ_PREFIX) :].split(b",", 1)[0].split(b"}", 1)[0]
        return int(digits)
    return int(json.loads(line)["seq"])


def _highest_seq(path: Path, size: int) -> int:
    """The highest seq in the first ``size`` bytes of a damaged file (its last line is no event)."""
    with path.open("rb") as handle:
        seqs = [_seq_or_none(line) for line in handle.read(size).splitlines()]
    return max((seq for seq in seqs if seq is not None), default=0)


def _seq_or_none(line: bytes) -> int | None:
    """The seq of an event line, or None for a line that is no event (a damaged file)."""
    try:
        seq = _seq_of(line)
    except (ValueError, KeyError, TypeError, IndexError, RecursionError):
        return None
    return seq if seq > 0 else None


def _event_or_none(line: bytes) -> dict[str, Any] | None:
    """An event line parsed, or None when it is not a JSON object with a seq (skipped)."""
    if not line.strip():
        return None
    try:
        event = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(event, dict) or not isinstance(event.get("seq"), int):
        return None
    return event


class EventWriter:
    """Appends events to a job's event file, continuing the sequence already there."""

    def __init__(self, path: Path) -> None:
        self.path = path
        last_seq, complete = _last_complete_seq(path)
        if path.exists() and path.stat().st_size != complete:
            with path.open("r+b") as handle:
                handle.truncate(complete)
        self.seq = last_seq
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._handle = os.fdopen(fd, "a", encoding="utf-8")

    def emit(self, event_type: str, **fields: Any) -> dict[str, Any]:
        """Append one event and flush it so readers see it at once; return the event."""
        self.seq += 1
        event: dict[str, Any] = {"seq": self.seq, "time": round(time.time(), 3), "type": event_type}
        event.update(fields)
        self._handle.write(json.dumps(event, allow_nan=False, default=str) + "\n")
        self._handle.flush()
        return event

    def close(self) -> None:
        """Flush to disk and close the file."""
        if not self._handle.closed:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def append_event(path: Path, event_type: str, **fields: Any) -> dict[str, Any]:
    """Append a single event with a short-lived writer (server side, no runner alive)."""
    with EventWriter(path) as writer:
        return writer.emit(event_type, **fields)


class EventIndex:
    """Incremental index of an event file: byte offset of every complete line by seq.

    Refreshing reads only the bytes appended since the last refresh, so polling is cheap.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seqs: list[int] = []
        self._offsets: list[int] = []
        self._indexed_to = 0
        self._inode: int | None = None
        self._lock = threading.Lock()

    @property
    def last_seq(self) -> int:
        """The highest sequence number indexed so far."""
        return self._seqs[-1] if self._seqs else 0

    def refresh(self) -> None:
        """Index lines appended since the last call (safe from several threads)."""
        with self._lock:
            self._refresh()

    def _refresh(self) -> None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return
        if self._inode is not None and (
            stat.st_ino != self._inode or stat.st_size < self._indexed_to
        ):
            self._seqs.clear()
            self._offsets.clear()
            self._indexed_to = 0
        self._inode = stat.st_ino
        if stat.st_size == self._indexed_to:
            return
        with self.path.open("rb") as handle:
            handle.seek(self._indexed_to)
            data = handle.read(stat.st_size - self._indexed_to)
        pos = 0
        while True:
            end = data.find(b"\n", pos)
            if end == -1:
                break
            line = data[pos:end]
            seq = _seq_or_none(line) if line.strip() else None
            if seq is not None and (not self._seqs or seq > self._seqs[-1]):
                self._seqs.append(seq)
                self._offsets.append(self._indexed_to + pos)
            pos = end + 1
        self._indexed_to += pos

    def read_after(self, after: int, limit: int = 1000) -> list[dict[str, Any]]:
        """Return up to ``limit`` events whose seq is greater than ``after``."""
        with self._lock:
            self._refresh()
            return self._read_after(after, limit)

    def _read_after(self, after: int, limit: int) -> list[dict[str, Any]]:
        first = bisect.bisect_right(self._seqs, after)
        if first >= len(self._seqs):
            return []
        last = min(first + limit, len(self._seqs))
        start = self._offsets[first]
        stop = self._offsets[last] if last < len(self._offsets) else self._indexed_to
        with self.path.open("rb") as handle:
            handle.seek(start)
            data = handle.read(stop - start)
        return [event for line in data.splitlines() if (event := _event_or_none(line))]
