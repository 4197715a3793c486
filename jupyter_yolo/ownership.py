"""One workspace, one supervising server: an exclusive lock held for the server's lifetime.

Two servers on one workspace would both start queued jobs, finalize each other's runners as
"interrupted" and kill their sessions. The first server takes ``.jupyter-yolo/server.lock`` with
``flock``; a second one only shows the jobs. The kernel drops the lock when the process dies, so
a crashed server never blocks the next start.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from pathlib import Path

LOCK_FILE = "server.lock"


class WorkspaceOwnership:
    """The lock file of a workspace and, when taken, the open descriptor that holds it."""

    def __init__(self, workspace: Path) -> None:
        self.path = workspace / ".jupyter-yolo" / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> str | None:
        """Take the lock; return None when taken, else a sentence naming the owner."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            return (
                f"the workspace lock {self.path} cannot be taken ({exc.strerror}), so this server "
                f"cannot be sure no other one supervises the jobs"
            )
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return f"another jupyter server supervises the jobs of this workspace ({self.owner()})"
        os.fchmod(fd, 0o600)
        facts = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(facts).encode(), 0)
        self._fd = fd
        return None

    def owner(self) -> str:
        """Who holds the lock, as far as its file says."""
        try:
            facts = json.loads(self.path.read_text(encoding="utf-8"))
            since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(facts["since"])))
            return f"pid {int(facts['pid'])} on {str(facts['host'])[:64]}, since {since}"
        except (OSError, ValueError, KeyError, TypeError):
            return f"its lock is {self.path}"

    def release(self) -> None:
        """Drop the lock (at a clean shutdown)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
                os.close(self._fd)
            self._fd = None
