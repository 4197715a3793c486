r"""Capture fds 1 and 2 (Python, C code, dataloader workers) into a size-capped ``log.txt``.

The runner's stdout/stderr are redirected with ``os.dup2`` into a pipe; a thread reads the pipe and
appends to ``log.txt``, rotating it to ``log.1.txt`` (one old file kept) when ``max_bytes`` would be
exceeded. Terminal control is tidied on the way: colour sequences are stripped and a progress bar
that redraws itself with ``\r`` keeps only its latest frame (one frame is still written every few
seconds so a long epoch shows progress in the log tail).
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import sys
import threading
import time
from pathlib import Path
from typing import BinaryIO

_ANSI_RE = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")


class RotatingLogFile:
    """Appends bytes to a file and rotates it to ``<stem>.1<suffix>`` past ``max_bytes``."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max(1024, max_bytes)
        self.old_path = path.with_name(f"{path.stem}.1{path.suffix}")
        self._handle: BinaryIO = path.open("ab", buffering=0)
        self._size = self._handle.tell()

    def _rotate(self) -> None:
        self._handle.close()
        os.replace(self.path, self.old_path)
        self._handle = self.path.open("ab", buffering=0)
        self._size = 0

    def write(self, data: bytes) -> None:
        """Append ``data``; a line that would not fit goes to a fresh file after a rotation.

        The current file is filled up to ``max_bytes`` with whole lines first, so the two files
        together always hold at least the last ``max_bytes`` of output.
        """
        while data:
            room = self.max_bytes - self._size
            if len(data) <= room:
                self._append(data)
                return
            cut = data.rfind(b"\n", 0, max(room, 0)) + 1
            if cut == 0:
                if self._size > 0:
                    self._rotate()
                    continue
                cut = room  # one line longer than a whole file: split it
            self._append(data[:cut])
            data = data[cut:]
            self._rotate()

    def _append(self, data: bytes) -> None:
        self._handle.write(data)
        self._size += len(data)

    def close(self) -> None:
        """Close the file."""
        with contextlib.suppress(OSError):
            self._handle.close()


class _LineTidier:
    r"""Turns raw terminal output into log lines (strips ANSI, collapses ``\r`` redraws)."""

    def __init__(self, progress_every: float = 5.0) -> None:
        self.pending = b""
        self.progress_every = progress_every
        self._last_progress = time.monotonic()

    def feed(self, data: bytes) -> bytes:
        out = bytearray()
        self.pending += data
        while True:
            nl = self.pending.find(b"\n")
            cr = self.pending.find(b"\r")
            if nl == -1 and cr == -1:
                break
            if cr != -1 and (nl == -1 or cr < nl):
                if cr + 1 < len(self.pending) and self.pending[cr + 1 : cr + 2] == b"\n":
                    line, self.pending = self.pending[:cr], self.pending[cr + 2 :]
                    out += _ANSI_RE.sub(b"", line) + b"\n"
                    continue
                if cr + 1 == len(self.pending):  # maybe the first half of "\r\n": wait
                    break
                frame, self.pending = self.pending[:cr], self.pending[cr + 1 :]
                self._progress(frame, out)
            else:
                line, self.pending = self.pending[:nl], self.pending[nl + 1 :]
                out += _ANSI_RE.sub(b"", line) + b"\n"
        return bytes(out)

    def _progress(self, frame: bytes, out: bytearray) -> None:
        now = time.monotonic()
        text = _ANSI_RE.sub(b"", frame).rstrip()
        if text and now - self._last_progress >= self.progress_every:
            self._last_progress = now
            out += text + b"\n"

    def flush(self) -> bytes:
        """Return what is pending (a line without its newline yet)."""
        data, self.pending = self.pending, b""
        text = _ANSI_RE.sub(b"", data.replace(b"\r", b"\n"))
        return text if not text or text.endswith(b"\n") else text + b"\n"


class LogCapture:
    """Redirects fds 1 and 2 into a pipe drained by a thread that writes a rotating log file."""

    def __init__(self, path: Path, max_bytes: int, *, idle_flush: float = 1.0) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.idle_flush = idle_flush
        self._saved: tuple[int, int] | None = None
        self._read_fd: int | None = None
        self._thread: threading.Thread | None = None
        self._file: RotatingLogFile | None = None

    def start(self) -> None:
        """Start capturing; Python's ``sys.stdout``/``sys.stderr`` become line buffered."""
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        self._file = RotatingLogFile(self.path, self.max_bytes)
        read_fd, write_fd = os.pipe()
        self._saved = (os.dup(1), os.dup(2))
        os.set_inheritable(self._saved[0], False)
        os.set_inheritable(self._saved[1], False)
        os.dup2(write_fd, 1)
        os.dup2(write_fd, 2)
        os.close(write_fd)
        self._read_fd = read_fd
        for stream in (sys.stdout, sys.stderr):
            reconfigure = getattr(stream, "reconfigure", None)
            if reconfigure is not None:
                with contextlib.suppress(Exception):
                    reconfigure(line_buffering=True, errors="backslashreplace")
        self._thread = threading.Thread(target=self._drain, name="jupyter-yolo-log", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        assert self._read_fd is not None and self._file is not None
        tidier = _LineTidier()
        while True:
            try:
                ready, _, _ = select.select([self._read_fd], [], [], self.idle_flush)
                if not ready:
                    if tidier.pending:  # a partial line has waited long enough: write it
                        self._write(tidier.flush())
                    continue
                data = os.read(self._read_fd, 65536)
            except InterruptedError:
                continue
            except OSError:
                break
            if not data:
                break
            self._write(tidier.feed(data))
        self._write(tidier.flush())
        with contextlib.suppress(OSError):
            os.close(self._read_fd)

    def _write(self, data: bytes) -> None:
        if data and self._file is not None:
            # a full disk must not kill the job; the events still tell the story
            with contextlib.suppress(OSError, ValueError):
                self._file.write(data)

    def stop(self, timeout: float = 5.0) -> None:
        """Restore fds 1 and 2, let the thread drain the pipe, and close the log file."""
        if self._saved is None:
            return
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        out_fd, err_fd = self._saved
        os.dup2(out_fd, 1)
        os.dup2(err_fd, 2)
        os.close(out_fd)
        os.close(err_fd)
        self._saved = None
        if self._thread is not None:
            self._thread.join(timeout)
        if self._file is not None:
            self._file.close()
