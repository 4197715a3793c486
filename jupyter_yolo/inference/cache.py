"""The export cache and the stored ``auto`` choice, next to the weights, in the workspace.

Layout (``<sha>`` is the first 16 hex digits of the weights file's SHA-256, so a copy or a
renamed file shares its exports, and a retrained file never uses stale ones)::

    weights/.exports/<sha>/source.json                  the weights paths seen with this content
    weights/.exports/<sha>/onnx-640-fp32-b1/            one export: the model and export.json
        model.onnx
        export.json                                     format, imgsz, precision, args, seconds
    weights/.exports/<sha>/openvino-640-int8-b1-<data>/ INT8: <data> is the calibration set's
        model_int8_openvino_model/                      data.yaml digest
    weights/.exports/<sha>/auto-640-cpu.json            the measured choice for imgsz 640 on cpu
    weights/.exports/<sha>/auto-pose-640-cpu.json       ... of a model of another task
    weights/.exports/digests.json                       the digests of weights files (0600),
                                                        keyed on path, size, mtime, ctime, inode

An export is written into ``.tmp-<key>-...`` beside its final folder and renamed into place when
complete, under an exclusive lock (``.<key>.lock``, ``flock``), so two jobs never export the same
thing twice or see half an export. The choice file is replaced atomically. Pure Python: the
server reads the stored choices for ``GET /yolo/models``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import math
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from stat import S_ISREG
from typing import Any

from ..contract.files import write_atomic, write_json_atomic
from .backends import Backend

EXPORTS_DIR = ".exports"
SOURCE_FILE = "source.json"
EXPORT_FILE = "export.json"
DIGEST_CHARS = 16
LOCK_POLL_S = 0.2
DIGEST_CACHE_FILE = "digests.json"
DIGEST_CACHE_VERSION = 1
DIGEST_CACHE_ENTRIES = 4096
DIGEST_CACHE_MAX_BYTES = 4 * 1024 * 1024
HASH_BLOCK = 1 << 20
WORKSPACE_SEARCH_DEPTH = 6
RACY_NS = 2_000_000_000
_HEX = re.compile(r"[0-9a-f]{16}")


def exports_root(workspace: Path) -> Path:
    """``<workspace>/weights/.exports``."""
    return workspace / "weights" / EXPORTS_DIR


@dataclass(frozen=True)
class FileIdentity:
    """What tells one version of a file from another without reading it.

    A rewrite changes the size, mtime or ctime; a replacement by rename changes the inode; a
    ``touch`` or ``chmod`` changes the ctime (a needless but harmless rehash).
    """

    path: str
    size: int
    mtime_ns: int
    ctime_ns: int
    ino: int
    dev: int

    @classmethod
    def of(cls, path: str, stat: os.stat_result) -> FileIdentity:
        """The identity of ``path`` as ``stat`` saw it."""
        return cls(path, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino, stat.st_dev)


def _record(identity: FileIdentity, digest: str, hashed_at: float) -> dict[str, Any]:
    return {**asdict(identity), "sha256_prefix": digest, "hashed_at": hashed_at}


Entry = tuple[FileIdentity, str, float]
"""A cache entry: the file's identity when it was hashed, its digest, and when it was hashed."""


def _entry(raw: Any) -> Entry | None:
    """A cache file record as an entry, or None when it is malformed."""
    if not isinstance(raw, dict):
        return None
    path, digest, hashed_at = raw.get("path"), raw.get("sha256_prefix"), raw.get("hashed_at")
    numbers = [
        n
        for n in (raw.get(name) for name in ("size", "mtime_ns", "ctime_ns", "ino", "dev"))
        if isinstance(n, int) and not isinstance(n, bool) and n >= 0
    ]
    if (
        len(numbers) != 5
        or not isinstance(path, str)
        or not isinstance(digest, str)
        or not _HEX.fullmatch(digest)
        or not isinstance(hashed_at, (int, float))
        or isinstance(hashed_at, bool)
        or not math.isfinite(hashed_at)
    ):
        return None
    size, mtime_ns, ctime_ns, ino, dev = numbers
    return FileIdentity(path, size, mtime_ns, ctime_ns, ino, dev), digest, float(hashed_at)


class DigestCache:
    """SHA-256 prefixes of weights files, each computed once per version of the file.

    Entries are keyed on the file's absolute path and checked against its identity (size, mtime,
    ctime, inode, device) on every lookup, so a changed or replaced file is hashed again; a file
    modified less than two seconds before it was hashed is not remembered (as git does for
    "racy" index entries: a change within the clock's granularity keeps the mtime). With
    ``file`` the entries persist across server restarts and are shared with the job runners:
    the file is private (0600), replaced atomically, merged under an exclusive ``flock`` (several
    processes add entries), bounded to ``max_entries`` (the most recently hashed are kept), and
    a file that is corrupt, oversize, foreign or a link is ignored and rewritten at the next
    save. Hashing happens outside the entry lock, one file at a time per cache, so a lookup of
    a known file never waits behind the hashing of another. Thread-safe.
    """

    def __init__(self, file: Path | None, max_entries: int = DIGEST_CACHE_ENTRIES) -> None:
        self.file = file
        self.max_entries = max(1, max_entries)
        self._entries: dict[str, Entry] = {}
        self._loaded_from: tuple[int, int, int] | None = None
        self._lock = threading.Lock()
        self._hashing = threading.Lock()
        self.hashed = 0  # files hashed by this instance (for tests and benchmarks)

    def digest(self, path: Path) -> str:
        """The first 16 hex digits of the SHA-256 of ``path`` (a regular file).

        Raises OSError when the file cannot be read or is not a regular file (a FIFO or a device
        would block or never end).
        """
        real = os.path.abspath(path)
        known = self._lookup(real)
        if known is not None:
            return known
        with self._hashing:
            known = self._lookup(real)  # hashed by another thread meanwhile
            if known is not None:
                return known
            digest, identity = _hash_file(real)
            self.hashed += 1
            # a file modified within the timestamp granularity of its hashing could change
            # again without changing its mtime: such "racy" digests are not remembered
            if identity is not None and time.time_ns() - identity.mtime_ns >= RACY_NS:
                self._store(identity, digest)
        return digest

    def _lookup(self, real: str) -> str | None:
        identity = FileIdentity.of(real, os.stat(real))
        with self._lock:
            self._refresh()
            entry = self._entries.get(real)
        return entry[1] if entry is not None and entry[0] == identity else None

    def _store(self, identity: FileIdentity, digest: str) -> None:
        """Keep a new digest in memory and, merged with the others', in the file."""
        with self._lock:
            self._entries[identity.path] = (identity, digest, time.time())
            _trim(self._entries, self.max_entries)
            snapshot = dict(self._entries)
        if self.file is None:
            return
        try:
            merged, signature = self._save(snapshot)
        except OSError:
            return  # a read-only or full workspace: the digest stays known in memory
        with self._lock:
            _merge(self._entries, merged)
            _trim(self._entries, self.max_entries)
            self._loaded_from = signature

    def _signature(self) -> tuple[int, int, int] | None:
        assert self.file is not None
        try:
            stat = os.stat(self.file, follow_symlinks=False)
        except OSError:
            return None
        return stat.st_ino, stat.st_size, stat.st_mtime_ns

    def _refresh(self) -> None:
        """Take in the file's entries when another process (or this one) replaced it."""
        if self.file is None:
            return
        signature = self._signature()
        if signature is None or signature == self._loaded_from:
            return
        _merge(self._entries, self._read_file())
        _trim(self._entries, self.max_entries)
        self._loaded_from = signature

    def _read_file(self) -> dict[str, Entry]:
        """The cache file's valid entries; none for a missing, foreign, oversize or corrupt file."""
        assert self.file is not None
        try:
            fd = os.open(self.file, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return {}
        with os.fdopen(fd, "rb") as handle:
            stat = os.fstat(fd)
            if (
                not S_ISREG(stat.st_mode)
                or stat.st_uid != os.geteuid()
                or stat.st_size > DIGEST_CACHE_MAX_BYTES
            ):
                return {}
            try:
                document = json.loads(handle.read(DIGEST_CACHE_MAX_BYTES + 1))
            except (OSError, ValueError, RecursionError):
                return {}
        if not isinstance(document, dict) or document.get("version") != DIGEST_CACHE_VERSION:
            return {}
        records = document.get("entries")
        entries: dict[str, Entry] = {}
        for raw in records[: 2 * self.max_entries] if isinstance(records, list) else []:
            entry = _entry(raw)
            if entry is not None:
                entries[entry[0].path] = entry
        return entries

    def _save(self, mine: dict[str, Entry]) -> tuple[dict[str, Entry], tuple[int, int, int] | None]:
        """Merge ``mine`` into the file under its lock and replace it (0600); return the merge."""
        assert self.file is not None
        self.file.parent.mkdir(parents=True, exist_ok=True)
        lock = os.open(
            self.file.with_name(self.file.name + ".lock"),
            os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o600,
        )
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            merged = self._read_file()
            _merge(merged, mine)
            _trim(merged, self.max_entries)
            records = [_record(identity, digest, at) for identity, digest, at in merged.values()]
            _write_private(
                self.file,
                json.dumps(
                    {"version": DIGEST_CACHE_VERSION, "entries": records}, separators=(",", ":")
                ),
            )
            return merged, self._signature()
        finally:
            os.close(lock)  # releases the flock


def _merge(into: dict[str, Entry], other: dict[str, Entry]) -> None:
    """Add ``other``'s entries to ``into``; for one path the more recently hashed wins."""
    for real, entry in other.items():
        current = into.get(real)
        if current is None or current[2] <= entry[2]:
            into[real] = entry


def _trim(entries: dict[str, Entry], limit: int) -> None:
    """Keep the ``limit`` most recently hashed entries."""
    if len(entries) > limit:
        newest = sorted(entries.items(), key=lambda item: item[1][2])[-limit:]
        entries.clear()
        entries.update(newest)


def _hash_file(real: str) -> tuple[str, FileIdentity | None]:
    """Hash a regular file; the identity is None when the file changed while it was read.

    One buffer is read into and hashed again and again: reading and hashing release the GIL, and
    no block is allocated or freed while holding it.
    """
    fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb", buffering=0) as handle:
        before = os.fstat(fd)
        if not S_ISREG(before.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", real)
        sha = hashlib.sha256()
        buffer = bytearray(HASH_BLOCK)
        view = memoryview(buffer)
        while count := handle.readinto(buffer):
            sha.update(view[:count])
        after = os.fstat(fd)
    first, last = FileIdentity.of(real, before), FileIdentity.of(real, after)
    return sha.hexdigest()[:DIGEST_CHARS], first if first == last else None


def _write_private(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` through a 0600 temporary sibling (never half-written)."""
    write_atomic(path, text)


_caches: dict[Path, DigestCache] = {}
_near: dict[str, DigestCache] = {}
_memory_cache = DigestCache(None)
_caches_lock = threading.Lock()


def digest_cache(root: Path) -> DigestCache:
    """The process-wide digest cache kept in the exports folder ``root`` (one per folder)."""
    file = root / DIGEST_CACHE_FILE
    with _caches_lock:
        cache = _caches.get(file)
        if cache is None:
            if len(_caches) >= 64:
                _caches.clear()
            cache = _caches[file] = DigestCache(file)
        return cache


def _cache_near(path: Path) -> DigestCache:
    """The digest cache of the workspace ``path`` lies in (found by its ``weights/.exports``).

    Weights live in ``<workspace>/weights/`` and ``<workspace>/jobs/<id>/run/weights/``, so the
    workspace is a few levels up; without an exports folder the digests are kept in memory only.
    A folder's cache, once found, is remembered.
    """
    folder = os.path.dirname(os.path.abspath(path))
    with _caches_lock:
        known = _near.get(folder)
    if known is not None:
        return known
    for parent in list(Path(folder, "x").parents)[:WORKSPACE_SEARCH_DEPTH]:
        root = exports_root(parent)
        if root.is_dir():
            cache = digest_cache(root)
            with _caches_lock:
                if len(_near) >= 1024:
                    _near.clear()
                _near[folder] = cache
            return cache
    return _memory_cache


def weights_digest(path: Path, cache: DigestCache | None = None) -> str:
    """First 16 hex digits of the file's SHA-256, hashed once per version of the file.

    ``cache`` defaults to the persistent cache of the workspace the file lies in.
    """
    return (cache or _cache_near(path)).digest(path)


def text_digest(text: str) -> str:
    """First 8 hex digits of the SHA-256 of ``text``."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]


def export_key(backend: Backend, imgsz: int, data_digest: str | None = None) -> str:
    """The cache entry name of ``backend``'s export at ``imgsz`` (batch 1, static shape)."""
    key = f"{backend.export_format}-{imgsz}-{backend.precision}-b1"
    if backend.needs_data:
        if not data_digest:
            raise ValueError(f"{backend.name} exports are keyed on their calibration data")
        key += f"-{data_digest}"
    return key


def device_key(device: str) -> str:
    """A file-name-safe form of a torch device (``cuda:0`` -> ``cuda0``)."""
    return "".join(c for c in device.lower() if c.isalnum()) or "cpu"


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from ``path``, or None when missing or unreadable."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


class WeightsCache:
    """The exports and choices of one weights file (by content)."""

    def __init__(self, root: Path, digest: str) -> None:
        self.root = root
        self.digest = digest
        self.folder = root / digest

    @classmethod
    def for_weights(cls, workspace: Path, weights: Path) -> WeightsCache:
        """The cache of ``weights`` in ``workspace``; notes the path in ``source.json``."""
        root = exports_root(workspace)
        cache = cls(root, weights_digest(weights, digest_cache(root)))
        cache.note_source(weights)
        return cache

    def note_source(self, weights: Path) -> None:
        """Remember where this content was seen (for people browsing the cache)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        source = self.folder / SOURCE_FILE
        current = read_json(source) or {}
        paths = [p for p in current.get("paths", []) if isinstance(p, str)]
        here = str(weights.resolve())
        if here not in paths:
            with contextlib.suppress(OSError):
                write_json_atomic(
                    source, {"sha256_prefix": self.digest, "paths": [*paths, here][-20:]}
                )

    def entry(self, key: str) -> Path:
        """The folder of one export."""
        return self.folder / key

    def complete(self, key: str) -> dict[str, Any] | None:
        """The ``export.json`` of a complete export, else None."""
        return read_json(self.entry(key) / EXPORT_FILE)

    @contextlib.contextmanager
    def lock(
        self,
        name: str,
        *,
        check: Callable[[], None] | None = None,
        on_wait: Callable[[], None] | None = None,
    ) -> Iterator[None]:
        """Hold the exclusive lock ``name`` (``check`` runs while waiting: it may raise)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f".{name}.lock"
        with path.open("a+") as handle:
            waited = False
            while True:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if not waited and on_wait is not None:
                        on_wait()
                    waited = True
                    if check is not None:
                        check()
                    time.sleep(LOCK_POLL_S)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def scratch(self, key: str) -> Path:
        """A fresh temporary folder for building export ``key`` (call under its lock)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        for stale in self.folder.glob(f".tmp-{key}-*"):
            shutil.rmtree(stale, ignore_errors=True)  # left by a killed export
        return Path(tempfile.mkdtemp(prefix=f".tmp-{key}-", dir=self.folder))

    def publish(self, scratch: Path, key: str, meta: dict[str, Any]) -> Path:
        """Write ``export.json`` into ``scratch`` and rename it to the entry (under the lock)."""
        write_json_atomic(scratch / EXPORT_FILE, meta)
        scratch.chmod(0o755)
        final = self.entry(key)
        if final.exists():  # an incomplete leftover (no export.json): replace it
            shutil.rmtree(final, ignore_errors=True)
        os.rename(scratch, final)
        return final

    def choice_file(self, imgsz: int, device: str, task: str | None = None) -> Path:
        """Where the measured choice for ``imgsz`` on ``device`` is kept.

        The task is part of the name (``auto-segment-640-cpu.json``) except for detection,
        whose choices keep the name they always had (``auto-640-cpu.json``).
        """
        kind = "" if task in (None, "", "detect") else f"{device_key(str(task))}-"
        return self.folder / f"auto-{kind}{imgsz}-{device_key(device)}.json"


def stored_choices(root: Path, digest: str) -> list[dict[str, Any]]:
    """Summaries of the measured choices kept for one weights digest (for model listings)."""
    out: list[dict[str, Any]] = []
    folder = root / digest
    if not folder.is_dir():
        return out
    for path in sorted(folder.glob("auto-*.json")):
        record = read_json(path)
        if not record or not isinstance(record.get("choice"), str):
            continue
        env = record.get("environment") or {}
        out.append(
            {
                "choice": record["choice"],
                "task": env.get("task") or "detect",
                "imgsz": env.get("imgsz"),
                "device": env.get("device"),
                "latency_ms": record.get("latency_ms") or {},
                "measured_at": record.get("measured_at"),
            }
        )
    return out
