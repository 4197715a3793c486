"""What a weights file says about itself, read without torch, ultralytics or unpickling.

The one bounded reader of weights metadata, shared by the server (which task a file is for:
:mod:`jupyter_yolo.jobs.weights_task`) and the runner (whether a checkpoint is an RT-DETR:
:func:`jupyter_yolo.runner.common.is_rtdetr`). It imports nothing of either (stdlib, PyYAML and
:mod:`jupyter_yolo.contract` only).

A ``.pt`` file is a zip whose ``*/data.pkl`` is a pickle of ultralytics' checkpoint dict
(``train_args`` with ``task``, and the model object whose class names the architecture). Its
opcodes are walked with :func:`pickletools.genops`, which decodes them and executes nothing: the
first ``'task'`` string followed by a known task name wins, and the classes the pickle names are
collected. The work is bounded: at most :data:`MAX_PICKLE_BYTES` are decompressed and at most
:data:`MAX_OPCODES` opcodes walked. Exported models carry the task in their metadata: ONNX
``metadata_props``, OpenVINO's ``metadata.yaml``, TorchScript's ``extra/config.txt``.

Every reader here answers None for a file it cannot read (damaged zip, bad deflate stream,
truncated file, hostile pickle or JSON); none of them raises.
"""

from __future__ import annotations

import json
import lzma
import pickletools
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .contract.tasks import TASK_NAMES
from .safeyaml import YamlRefused, load_yaml

MAX_PICKLE_BYTES = 8 * 2**20
"""At most this much of a ``data.pkl`` is decompressed (ultralytics' are a few hundred kB)."""
MAX_OPCODES = 2_000_000
"""The pickle walk stops after this many opcodes (a yolov8n checkpoint has about 65 000)."""
MAX_METADATA_BYTES = 2**20
"""An exported model's metadata file (TorchScript config, OpenVINO yaml) larger than this is
not read."""
ONNX_TAIL_BYTES = 2**20
"""ONNX writes ``metadata_props`` (field 14) after the graph: the task is in the file's tail."""
RTDETR_CLASS = "RTDETRDetectionModel"

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
_MODEL_MODULE = "ultralytics.nn"
# What reading a damaged or hostile archive member can raise (zlib/lzma/bz2 streams, truncation).
_ARCHIVE_ERRORS = (
    OSError,
    EOFError,
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
    RuntimeError,
    NotImplementedError,
    ValueError,
    KeyError,
    OverflowError,
    MemoryError,
)

__all__ = [
    "MAX_OPCODES",
    "MAX_PICKLE_BYTES",
    "CheckpointFacts",
    "checkpoint_facts",
    "is_rtdetr_checkpoint",
    "pickle_facts",
    "task_in_file",
    "task_in_pickle",
]


@dataclass
class CheckpointFacts:
    """What a checkpoint's pickle names: its task (None if unknown) and the classes it uses."""

    task: str | None = None
    classes: set[str] = field(default_factory=set)


def pickle_facts(data: bytes, *, max_opcodes: int = MAX_OPCODES) -> CheckpointFacts:
    """The task and class names in a pickle stream, found by decoding opcodes only (nothing runs).

    Strings are followed through the memo (``BINPUT``/``MEMOIZE`` then ``BINGET``), since
    pickle writes a repeated string once. The walk ends at the stream's end, at damage, after
    ``max_opcodes`` opcodes, or once both a task and an ultralytics model class are known.
    """
    facts = CheckpointFacts()
    memo: dict[int, str | None] = {}
    last: str | None = None
    previous: str | None = None  # the string before ``last``: STACK_GLOBAL's module
    want_value = False
    model_seen = False
    try:
        for count, (opcode, arg, _pos) in enumerate(pickletools.genops(data)):
            if count >= max_opcodes or (facts.task is not None and model_seen):
                break
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
            elif name in ("GLOBAL", "INST"):
                module, _, cls = str(arg).partition(" ")
                facts.classes.add(cls)
                model_seen = model_seen or module.startswith(_MODEL_MODULE)
            elif name == "STACK_GLOBAL" and last is not None:
                facts.classes.add(last)
                model_seen = model_seen or (previous or "").startswith(_MODEL_MODULE)
            if value is not None:
                if want_value and facts.task is None and value in TASK_NAMES:
                    facts.task = value
                want_value = value == "task"
                previous = last
            elif name not in ("FRAME", "PROTO"):
                want_value = False
            last = value
    except (ValueError, KeyError, TypeError, IndexError, OverflowError, EOFError):
        pass  # a damaged stream: what was found before the damage stands
    return facts


def task_in_pickle(data: bytes) -> str | None:
    """The task named in a pickle stream (see :func:`pickle_facts`), or None."""
    return pickle_facts(data).task


def _read_member(path: Path, wanted: Any, limit: int) -> bytes | None:
    """The first zip member ``wanted(name)`` accepts, decompressing at most ``limit`` bytes."""
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if not wanted(info.filename):
                    continue
                if info.file_size > limit:
                    return None
                with archive.open(info) as member:
                    data = member.read(limit + 1)  # the declared size may lie
                return data if len(data) <= limit else None
    except _ARCHIVE_ERRORS:
        return None
    return None


def _is_checkpoint_pickle(name: str) -> bool:
    return name.endswith("data.pkl") and name.count("/") == 1


def checkpoint_facts(path: Path) -> CheckpointFacts:
    """The facts of a ``.pt`` checkpoint's ``data.pkl`` (empty when it cannot be read)."""
    data = _read_member(path, _is_checkpoint_pickle, MAX_PICKLE_BYTES)
    return pickle_facts(data) if data is not None else CheckpointFacts()


def is_rtdetr_checkpoint(path: Path) -> bool:
    """Whether a ``.pt`` checkpoint's pickle names ultralytics' RT-DETR model class."""
    return RTDETR_CLASS in checkpoint_facts(path).classes


def _onnx_task(path: Path) -> str | None:
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, 2)
            handle.seek(max(0, size - ONNX_TAIL_BYTES))
            tail = handle.read(ONNX_TAIL_BYTES)
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
        with meta.open("rb") as handle:
            text = handle.read(MAX_METADATA_BYTES + 1)
        if len(text) > MAX_METADATA_BYTES:
            return None
        return _mapping_task(load_yaml(text))
    except (OSError, YamlRefused, RecursionError):
        return None


def _torchscript_task(path: Path) -> str | None:
    data = _read_member(path, lambda name: name.endswith("extra/config.txt"), MAX_METADATA_BYTES)
    if data is None:
        return None
    try:
        return _mapping_task(json.loads(data))
    except (ValueError, RecursionError):  # malformed, or nested past the interpreter's stack
        return None


def task_in_file(path: Path) -> str | None:
    """The task a weights file or exported model folder records, or None; never raises.

    ``.pt`` (the checkpoint's pickle), ``.onnx`` (metadata), ``.torchscript`` (its config) and
    an OpenVINO folder (``metadata.yaml``) are read; anything else is None.
    """
    try:
        if path.is_dir():
            return _openvino_task(path)
        suffix = path.suffix.lower()
        if suffix == ".pt":
            return checkpoint_facts(path).task
        if suffix == ".onnx":
            return _onnx_task(path)
        if suffix == ".torchscript":
            return _torchscript_task(path)
    except Exception:
        return None
    return None
