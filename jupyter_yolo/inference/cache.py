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

An export is written into ``.tmp-<key>-...`` beside its final folder and renamed into place when
complete, under an exclusive lock (``.<key>.lock``, ``flock``), so two jobs never export the same
thing twice or see half an export. The choice file is replaced atomically. Pure Python: the
server reads the stored choices for ``GET /yolo/models``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..runner.job import write_json_atomic
from .backends import Backend

EXPORTS_DIR = ".exports"
SOURCE_FILE = "source.json"
EXPORT_FILE = "export.json"
DIGEST_CHARS = 16
LOCK_POLL_S = 0.2

_digests: dict[tuple[str, int, int], str] = {}
_digests_lock = threading.Lock()


def exports_root(workspace: Path) -> Path:
    """``<workspace>/weights/.exports``."""
    return workspace / "weights" / EXPORTS_DIR


def weights_digest(path: Path) -> str:
    """First 16 hex digits of the file's SHA-256 (remembered per path, size and mtime)."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    with _digests_lock:
        known = _digests.get(key)
    if known is not None:
        return known
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    digest = sha.hexdigest()[:DIGEST_CHARS]
    with _digests_lock:
        if len(_digests) > 4096:
            _digests.clear()
        _digests[key] = digest
    return digest


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
        cache = cls(exports_root(workspace), weights_digest(weights))
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
                write_json_atomic(source, {"sha256_prefix": self.digest,
                                           "paths": [*paths, here][-20:]})

    def entry(self, key: str) -> Path:
        """The folder of one export."""
        return self.folder / key

    def complete(self, key: str) -> dict[str, Any] | None:
        """The ``export.json`` of a complete export, else None."""
        return read_json(self.entry(key) / EXPORT_FILE)

    @contextlib.contextmanager
    def lock(
        self, name: str, *, check: Callable[[], None] | None = None,
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

    def choice_file(self, imgsz: int, device: str) -> Path:
        """Where the measured choice for ``imgsz`` on ``device`` is kept."""
        return self.folder / f"auto-{imgsz}-{device_key(device)}.json"


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
        out.append({
            "choice": record["choice"],
            "imgsz": env.get("imgsz"),
            "device": env.get("device"),
            "latency_ms": record.get("latency_ms") or {},
            "measured_at": record.get("measured_at"),
        })
    return out
