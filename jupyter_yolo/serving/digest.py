"""Which weights a warm worker holds: a sha256 of the model, cached by the files' stat.

A weights file (``.pt``, ``.onnx``, ``.engine``, ``.torchscript``) is hashed as it is; an export
folder (``*_openvino_model/``) is hashed over its regular files in name order (name and
content), so two copies of the same model share one worker and a retrained file under the same
name gets a new one. Hashing reads the whole file: callers run :meth:`DigestCache.digest` in a
thread (:meth:`DigestCache.digest_async`), never on the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from pathlib import Path

CHUNK = 1024 * 1024
MAX_ENTRIES = 256

StatKey = tuple[tuple[str, int, int], ...]


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink())
    return [path]


def _stat_key(path: Path) -> StatKey:
    entries = []
    for file in _files(path):
        stat = file.stat()
        entries.append(
            (
                file.relative_to(path).as_posix() if file != path else "",
                stat.st_size,
                stat.st_mtime_ns,
            )
        )
    return tuple(entries)


def _hash(path: Path) -> str:
    digest = hashlib.sha256()
    for file in _files(path):
        if file != path:
            digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        with file.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


class DigestCache:
    """sha256 of model files, recomputed only when a file's size or mtime changes."""

    def __init__(self) -> None:
        self._cache: dict[Path, tuple[StatKey, str]] = {}
        self._lock = threading.Lock()

    def digest(self, path: Path) -> str:
        """The model's sha256 (blocking: reads the file unless its stat is unchanged)."""
        key = _stat_key(path)
        with self._lock:
            cached = self._cache.get(path)
        if cached is not None and cached[0] == key:
            return cached[1]
        value = _hash(path)
        if _stat_key(path) != key:  # changed while read: do not cache a torn read
            return value
        with self._lock:
            if len(self._cache) >= MAX_ENTRIES:
                self._cache.pop(next(iter(self._cache)))
            self._cache[path] = (key, value)
        return value

    async def digest_async(self, path: Path) -> str:
        """:meth:`digest` in a thread, off the event loop."""
        return await asyncio.to_thread(self.digest, path)
