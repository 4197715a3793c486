"""Folder-change notification for the asyncio loop: inotify on Linux, polling where it cannot be.

A long-polling request waits on a :class:`Waiter` of a job folder instead of re-reading the
folder's files every quarter second. On Linux one inotify file descriptor per
:class:`FolderWatcher` (made at the first watch, never at import) is read by the event loop
(``loop.add_reader``): no thread per waiter, and no wake-up while nothing changes. A folder is
watched once however many requests wait on it (reference counted); its watch is removed when
the last one leaves.

The folder is watched, not the file: the runner may create ``events.jsonl`` after the wait
started, and ``status.json`` is replaced by atomic renames. Watched: a file written or closed
after writing, a file created or moved in, the folder itself deleted or moved.

Where inotify cannot be used (not Linux, no ``inotify_init1``, ``ENOSYS``, too many open files,
the watch limit ``fs.inotify.max_user_watches`` reached, or the setting says ``poll``) a waiter
falls back to re-checking every :data:`POLL_INTERVAL` seconds, and says why in the log once.
:meth:`FolderWatcher.notify` wakes a folder's waiters from any thread: the server's own status
changes that need no file (a stop asked in the registry) use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import errno
import logging
import os
import struct
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

POLL_INTERVAL = 0.25
"""Seconds between re-checks of a waiter that has no inotify watch (the old behaviour)."""

IN_MODIFY = 0x00000002
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
WATCH_MASK = (
    IN_MODIFY
    | IN_CLOSE_WRITE
    | IN_CREATE
    | IN_MOVED_TO
    | IN_DELETE_SELF
    | IN_MOVE_SELF
    | IN_ONLYDIR
)
_EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len (then the name)
_READ_SIZE = 64 * 1024


class _Inotify:
    """One non-blocking inotify descriptor through ctypes on libc; raises OSError when absent."""

    def __init__(self) -> None:
        if not sys.platform.startswith("linux"):
            raise OSError(errno.ENOSYS, f"inotify exists on Linux only, not on {sys.platform}")
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            self._init1 = libc.inotify_init1
            self._add = libc.inotify_add_watch
            self._rm = libc.inotify_rm_watch
        except (OSError, AttributeError) as exc:
            raise OSError(errno.ENOSYS, f"the C library has no inotify ({exc})") from None
        self._init1.argtypes = [ctypes.c_int]
        self._add.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        self._rm.argtypes = [ctypes.c_int, ctypes.c_int]
        fd = self._init1(os.O_NONBLOCK | os.O_CLOEXEC)  # IN_NONBLOCK | IN_CLOEXEC
        if fd < 0:
            code = ctypes.get_errno()
            raise OSError(code, f"inotify_init1: {os.strerror(code)}")
        self.fd: int = fd

    def add(self, folder: str) -> int:
        """Watch a folder; return its watch descriptor (the same one for the same folder)."""
        wd = self._add(self.fd, os.fsencode(folder), WATCH_MASK)
        if wd < 0:
            code = ctypes.get_errno()
            raise OSError(code, f"inotify_add_watch: {os.strerror(code)}", folder)
        return int(wd)

    def remove(self, wd: int) -> None:
        """Stop watching (a watch the kernel already dropped is no error)."""
        self._rm(self.fd, wd)

    def read(self) -> list[tuple[int, int, str]]:
        """Every pending event as ``(wd, mask, name)``; empty when none is pending.

        ``name`` is the file's name in the watched folder ('' for the folder itself).
        """
        found: list[tuple[int, int, str]] = []
        while True:
            try:
                data = os.read(self.fd, _READ_SIZE)
            except (BlockingIOError, InterruptedError):
                return found
            if not data:
                return found
            pos = 0
            while pos + _EVENT.size <= len(data):
                wd, mask, _cookie, length = _EVENT.unpack_from(data, pos)
                start = pos + _EVENT.size
                name = os.fsdecode(data[start : start + length].split(b"\0", 1)[0])
                found.append((wd, mask, name))
                pos = start + length

    def close(self) -> None:
        """Close the descriptor (its watches go with it)."""
        with contextlib.suppress(OSError):
            os.close(self.fd)


@dataclass
class _Watch:
    """One inotify watch shared by the waiters of one folder."""

    wd: int
    waiters: set[Waiter] = field(default_factory=set)


class Waiter:
    """One request's wait on a folder; use as a context manager (leaving it releases the watch)."""

    def __init__(
        self,
        watcher: FolderWatcher,
        key: str,
        loop: asyncio.AbstractEventLoop,
        names: frozenset[str] | None,
    ) -> None:
        self.key = key
        self.names = names
        """The file names whose changes wake this waiter (None: any file of the folder)."""
        self.wakeups = 0
        """How many times :meth:`wait` returned (for tests and benchmarks)."""
        self._watcher = watcher
        self._loop = loop
        self._event = asyncio.Event()
        self._wd: int | None = None
        self._closed = False

    @property
    def polling(self) -> bool:
        """Whether this waiter re-checks every :data:`POLL_INTERVAL` (it has no inotify watch)."""
        return self._wd is None

    async def wait(self, timeout: float) -> bool:
        """Wait until the folder changes or ``timeout`` seconds pass; return whether it changed.

        A change that happened since the last return counts at once, so a caller that re-reads
        its files after each return never misses one. A polling waiter returns after at most
        :data:`POLL_INTERVAL` seconds (it cannot know, the caller re-checks).
        """
        if self.polling:
            timeout = min(timeout, self._watcher.poll_interval)
        if not self._event.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._event.wait(), max(0.0, timeout))
        changed = self._event.is_set()
        self._event.clear()
        self.wakeups += 1
        return changed

    def _set(self, name: str = "") -> None:
        if not name or self.names is None or name in self.names:
            self._event.set()

    def _wake_threadsafe(self) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            self._loop.call_soon_threadsafe(self._event.set)

    def close(self) -> None:
        """Leave: the folder's watch is removed when no other waiter uses it."""
        if not self._closed:
            self._closed = True
            self._watcher._release(self)

    def __enter__(self) -> Waiter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class FolderWatcher:
    """Wakes the waiters of a folder when something in it changes (see the module docstring).

    ``use_inotify=False`` makes every waiter poll (the ``poll`` setting, and tests of the
    fallback). Waiters are made and left on the event loop; :meth:`notify` works from any thread.
    """

    def __init__(
        self,
        *,
        use_inotify: bool = True,
        log: logging.Logger | None = None,
        poll_interval: float = POLL_INTERVAL,
    ) -> None:
        self.use_inotify = use_inotify
        self.poll_interval = poll_interval
        self.log = log or logging.getLogger(__name__)
        self.reads = 0
        """How many times the loop read the inotify descriptor (for tests and benchmarks)."""
        self._inotify: _Inotify | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._unusable: str | None = None
        self._watches: dict[int, _Watch] = {}
        self._waiters: dict[str, set[Waiter]] = {}
        self._lock = threading.Lock()  # guards _waiters against notify() from other threads
        self._logged: set[str] = set()
        self._closed = False

    @property
    def watched_folders(self) -> int:
        """How many inotify watches are held now."""
        return len(self._watches)

    def waiting(self, folder: Path | str) -> int:
        """How many waiters wait on ``folder`` now (any mode)."""
        with self._lock:
            return len(self._waiters.get(os.fspath(folder), ()))

    @property
    def mode(self) -> str:
        """``inotify`` while it is usable (or not tried yet), else ``poll``."""
        return "inotify" if self.use_inotify and self._unusable is None else "poll"

    def watch(self, folder: Path | str, names: Iterable[str] | None = None) -> Waiter:
        """A waiter on ``folder``; call on the event loop, and close it (``with``) when done.

        ``names``: only changes of these files of the folder wake it (a runner's log written
        line by line need not wake a request that waits for events); the folder itself being
        deleted or moved, and :meth:`notify`, always do.
        """
        loop = asyncio.get_running_loop()
        key = os.fspath(folder)
        waiter = Waiter(self, key, loop, None if names is None else frozenset(names))
        with self._lock:
            self._waiters.setdefault(key, set()).add(waiter)
        inotify = self._descriptor(loop)
        if inotify is None:
            return waiter
        try:
            wd = inotify.add(key)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                self._log_once(
                    "limit",
                    "the inotify watch limit (fs.inotify.max_user_watches) is reached",
                )
            elif exc.errno not in (errno.ENOENT, errno.ENOTDIR):
                self._log_once(f"add-{exc.errno}", f"inotify_add_watch failed ({exc})")
            return waiter  # polling (a folder that is gone: the caller finds out as it reads)
        watch = self._watches.get(wd)
        if watch is None:
            watch = self._watches[wd] = _Watch(wd)
        watch.waiters.add(waiter)
        waiter._wd = wd
        return waiter

    def notify(self, folder: Path | str) -> None:
        """Wake every waiter of ``folder`` now; safe from any thread."""
        with self._lock:
            waiters = list(self._waiters.get(os.fspath(folder), ()))
        for waiter in waiters:
            waiter._wake_threadsafe()

    def close(self) -> None:
        """Close the inotify descriptor and wake every waiter (they poll from then on)."""
        self._closed = True
        self._drop_descriptor()
        self.wake_all()

    def wake_all(self) -> None:
        """Wake every waiter now (after the descriptor was dropped, they poll from then on)."""
        with self._lock:
            waiters = [w for group in self._waiters.values() for w in group]
        for waiter in waiters:
            waiter._wake_threadsafe()

    # ------------------------------------------------------------------ internals

    def _descriptor(self, loop: asyncio.AbstractEventLoop) -> _Inotify | None:
        """The inotify descriptor read by ``loop``, made on first use; None when polling."""
        if not self.use_inotify or self._unusable is not None or self._closed:
            return None
        if self._inotify is not None and self._loop is loop:
            return self._inotify
        self._drop_descriptor()  # a new event loop (a restarted server in the same process)
        try:
            inotify = _Inotify()
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE):  # may pass: try again next time
                self._log_once("init-files", f"inotify cannot be opened ({exc})")
            else:
                self._unusable = str(exc)
                self._log_once("init", f"inotify cannot be used ({exc})")
            return None
        try:
            loop.add_reader(inotify.fd, self._on_readable)
        except (NotImplementedError, RuntimeError) as exc:  # a loop without add_reader
            inotify.close()
            self._unusable = f"the event loop cannot watch a descriptor ({exc})"
            self._log_once("loop", self._unusable)
            return None
        self._inotify, self._loop = inotify, loop
        return inotify

    def _drop_descriptor(self) -> None:
        inotify, loop = self._inotify, self._loop
        self._inotify = self._loop = None
        for watch in self._watches.values():
            for waiter in watch.waiters:
                waiter._wd = None
        self._watches.clear()
        if inotify is None:
            return
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(Exception):
                loop.remove_reader(inotify.fd)
        inotify.close()

    def _on_readable(self) -> None:
        """Read the pending inotify events and wake the waiters of the folders they name."""
        inotify = self._inotify
        if inotify is None:
            return
        self.reads += 1
        try:
            events = inotify.read()
        except OSError as exc:  # never seen; give up on inotify rather than fail at every read
            self._unusable = f"reading inotify failed ({exc})"
            self._log_once("read", self._unusable)
            self._drop_descriptor()
            self.wake_all()
            return
        for wd, mask, name in events:
            if mask & IN_Q_OVERFLOW:  # events were lost: everyone re-checks
                for watch in self._watches.values():
                    for waiter in watch.waiters:
                        waiter._set()
                continue
            found = self._watches.get(wd)
            if found is None:
                continue  # a watch removed meanwhile
            for waiter in found.waiters:
                waiter._set("" if mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF) else name)
            if mask & IN_IGNORED:  # the folder is gone (or unmounted): its waiters poll
                del self._watches[wd]
                for waiter in found.waiters:
                    waiter._wd = None

    def _release(self, waiter: Waiter) -> None:
        with self._lock:
            group = self._waiters.get(waiter.key)
            if group is not None:
                group.discard(waiter)
                if not group:
                    del self._waiters[waiter.key]
        wd, waiter._wd = waiter._wd, None
        if wd is None:
            return
        watch = self._watches.get(wd)
        if watch is None:
            return
        watch.waiters.discard(waiter)
        if not watch.waiters:
            del self._watches[wd]
            if self._inotify is not None:
                self._inotify.remove(wd)

    def _log_once(self, reason: str, what: str) -> None:
        if reason not in self._logged:
            self._logged.add(reason)
            self.log.warning(
                "jupyter_yolo: %s; waiting requests re-check every %.2f s instead",
                what,
                self.poll_interval,
            )
