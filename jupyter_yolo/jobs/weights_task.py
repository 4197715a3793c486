"""The task a weights file was trained for, read without torch, ultralytics or unpickling.

A ``.pt`` file is a zip whose ``*/data.pkl`` is a pickle of ultralytics' checkpoint dict
(``train_args`` with ``task``, and the model object with a ``task`` attribute). Its opcodes are
walked with :func:`pickletools.genops`, which decodes them and executes nothing, and the first
``'task'`` string followed by a known task name wins. Exported models carry the task in their
metadata: ONNX ``metadata_props``, OpenVINO's ``metadata.yaml``, TorchScript's ``extra/config.txt``.
When nothing can be read, the file name decides (``yolo11n-pose.pt`` → pose).
"""

from __future__ import annotations

import json
import pickletools
import re
import threading
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import yaml

from ..contract.tasks import TASK_NAMES, task_from_name

MAX_PICKLE_BYTES = 64 * 2**20
"""A ``data.pkl`` larger than this is not read (ultralytics' are a few hundred kB)."""
ONNX_TAIL_BYTES = 2**20
"""ONNX writes ``metadata_props`` (field 14) after the graph: the task is in the file's tail."""
CACHE_SIZE = 512
_STRING_OPS = {
    "SHORT_BINUNICODE",
    "BINUNICODE",
    "BINUNICODE8",
    "UNICODE",
    "SHORT_BINSTRING",
    "BINSTRING",
    "STRING",
}
_ONNX_TASK = re.compile(rb"\x0a\x04task\x12([\x01-\x7f])")

_cache: OrderedDict[tuple[str, int, int], str] = OrderedDict()
_cache_lock = threading.Lock()


def task_in_pickle(data: bytes) -> str | None:
    """The task named in a pickle stream, found by decoding opcodes only (nothing runs).

    Strings are followed through the memo (``BINPUT``/``MEMOIZE`` then ``BINGET``), since
    pickle writes a repeated string once. Returns None when no ``'task'`` key is followed by
    one of :data:`TASK_NAMES`, or when the stream is damaged before one is found.
    """
    memo: dict[int, str | None] = {}
    last: str | None = None
    want_value = False
    try:
        for opcode, arg, _pos in pickletools.genops(data):
            name = opcode.name
            value: str | None = None
            if name in _STRING_OPS:
                value = arg.decode("latin-1") if isinstance(arg, bytes) else str(arg)
            elif name in ("BINGET", "LONG_BINGET", "GET"):
                value = memo.get(int(str(arg)))
            elif name == "MEMOIZE":
                memo[len(memo)] = last
                continue
            elif name in ("BINPUT", "LONG_BINPUT", "PUT"):
                memo[int(str(arg))] = last
                continue
            if value is not None:
                if want_value and value in TASK_NAMES:
                    return value
                want_value = value == "task"
            elif name not in ("FRAME", "PROTO"):
                want_value = False
            last = value
    except (ValueError, KeyError, TypeError, IndexError):
        return None
    return None


def _pt_task(path: Path) -> str | None:
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if info.filename.endswith("data.pkl") and info.filename.count("/") == 1:
                    if info.file_size > MAX_PICKLE_BYTES:
                        return None
                    return task_in_pickle(archive.read(info))
    except (OSError, zipfile.BadZipFile, RuntimeError, NotImplementedError):
        return None
    return None


def _onnx_task(path: Path) -> str | None:
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, 2)
            handle.seek(max(0, size - ONNX_TAIL_BYTES))
            tail = handle.read()
    except OSError:
        return None
    for found in _ONNX_TASK.finditer(tail):
        start = found.end()
        value = tail[start : start + found.group(1)[0]].decode("utf-8", "replace")
        if value in TASK_NAMES:
            return value
    return None


def _mapping_task(content: Any) -> str | None:
    task = content.get("task") if isinstance(content, dict) else None
    return task if isinstance(task, str) and task in TASK_NAMES else None


def _openvino_task(folder: Path) -> str | None:
    meta = folder / "metadata.yaml"
    try:
        if meta.stat().st_size > 2**20:
            return None
        return _mapping_task(yaml.safe_load(meta.read_text(encoding="utf-8")))
    except (OSError, ValueError, yaml.YAMLError):
        return None


def _torchscript_task(path: Path) -> str | None:
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if info.filename.endswith("extra/config.txt") and info.file_size < 2**20:
                    return _mapping_task(json.loads(archive.read(info)))
    except (OSError, zipfile.BadZipFile, ValueError, RuntimeError, NotImplementedError):
        return None
    return None


def _read_task(path: Path) -> str | None:
    if path.is_dir():
        return _openvino_task(path)
    suffix = path.suffix.lower()
    if suffix == ".pt":
        return _pt_task(path)
    if suffix == ".onnx":
        return _onnx_task(path)
    if suffix == ".torchscript":
        return _torchscript_task(path)
    return None


def task_of_weights(path: Path) -> str:
    """The task of a weights file or exported model folder; its name decides when unreadable.

    Results are cached by (path, size, mtime), so listing a weights folder reads each file once.
    """
    try:
        stat = path.stat()
    except OSError:
        return task_from_name(path.name)
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    task = _read_task(path) or task_from_name(path.name)
    with _cache_lock:
        _cache[key] = task
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return task
