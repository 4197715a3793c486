"""Apply :mod:`jupyter_yolo.contract.training_speed` to one training job in the runner.

:func:`plan_for_job` gathers the facts (usable CPUs, memory still free, the training device, the
training images) and makes the plan; :func:`apply_plan` puts it in the training arguments and
the ultralytics trainer:

* ``threads``: torch's intra-op threads. ultralytics' ``select_device`` resets torch to its
  ``NUM_THREADS`` for every CPU training, so for CPU training that count is set in ultralytics'
  modules too (for accelerators it keeps sizing ultralytics' label-scanning thread pools).
* ``interop_threads``: set once, before torch starts any inter-op work.
* ``workers``: ultralytics' trainer sets ``workers=0`` for CPU training when it is created; a
  chosen value is put back by an ``on_pretrain_routine_start`` callback, before the loaders are
  built. A value the request set is passed to ultralytics untouched.
* ``cache``: a training argument.
* ``channels_last``: the model and its EMA copy are converted once the trainer has built them
  (``on_pretrain_routine_end``); the batches follow the weights' memory format in oneDNN.

The plan goes into the job's result (``speed``) and into the log as one line per choice.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..accelerators import host
from ..contract.training_speed import (
    DatasetSize,
    SpeedFacts,
    SpeedPlan,
    choice_value,
    plan_training_speed,
)
from ..safeyaml import YamlRefused, load_yaml
from .offline import explicit_omp_threads, explicit_wait_policy, set_ultralytics_thread_count

#: Image file suffixes ultralytics trains on (its ``IMG_FORMATS``).
IMAGE_SUFFIXES = frozenset(
    {".bmp", ".dng", ".jpeg", ".jpg", ".mpo", ".png", ".tif", ".tiff", ".webp", ".pfm", ".heic"}
)

#: Image headers read to estimate the decoded size of a training set.
SAMPLED_IMAGES = 16

#: Files looked at while counting training images (a pathological folder stops the count).
MAX_FILES_SCANNED = 2_000_000


def memory_free_bytes() -> int | None:
    """Memory this process may still take: MemAvailable, lowered to the cgroup's headroom."""
    info = host.meminfo()
    free = info.get("MemAvailable")
    limit = host.cgroup_memory_limit()
    if limit is not None:
        for folder in host.cgroup_dirs(host.ROOT, "memory"):
            for name in ("memory.current", "memory.usage_in_bytes"):
                with contextlib.suppress(OSError, ValueError):
                    used = int((folder / name).read_text().split()[0])
                    headroom = max(0, limit - used)
                    free = headroom if free is None else min(free, headroom)
                    return free
    return free


def _image_entries(data: str) -> tuple[list[Path], bool] | None:
    """The image folders or list files of ``data`` (train and val) and if it is a class folder.

    ultralytics caches both splits.
    """
    path = Path(data)
    if path.is_dir():
        return [path / "train", path / "val"], True
    if not path.is_file():
        return None
    try:
        content = load_yaml(path.read_bytes())
    except (OSError, YamlRefused):
        return None
    if not isinstance(content, dict):
        return None
    root = Path(str(content.get("path") or path.parent))
    if not root.is_absolute():
        root = (path.parent / root).resolve()
    entries: list[Path] = []
    for split in ("train", "val"):
        value = content.get(split)
        names = value if isinstance(value, list) else [value]
        entries.extend(root / str(name) for name in names if isinstance(name, str))
    return entries, False


class _TooMany(Exception):
    """The scan looked at more than :data:`MAX_FILES_SCANNED` names."""


def _image_files(entries: list[Path]) -> list[Path]:
    """The image files of ``entries`` (raises :class:`_TooMany` past the scan's bound)."""
    found: list[Path] = []
    scanned = 0

    def count() -> None:
        nonlocal scanned
        scanned += 1
        if scanned > MAX_FILES_SCANNED:
            raise _TooMany

    for entry in entries:
        if entry.is_file() and entry.suffix == ".txt":
            with contextlib.suppress(OSError), entry.open(errors="replace") as handle:
                for line in handle:
                    count()
                    if Path(line.strip()).suffix.lower() in IMAGE_SUFFIXES:
                        found.append(entry.parent / line.strip())
            continue
        for folder, dirs, files in os.walk(entry):
            for _ in range(len(dirs) + len(files)):
                count()
            found.extend(
                Path(folder) / name
                for name in files
                if os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES
            )
    return found


def _decoded_bytes(file: Path, imgsz: int, class_folders: bool) -> int | None:
    """What one image takes in ultralytics' RAM cache, from its header (None: unreadable)."""
    from PIL import Image

    try:
        if not stat.S_ISREG(file.stat().st_mode):  # a FIFO would block the read
            return None
        with Image.open(file) as image:
            width, height = image.size
    except Exception:
        return None
    if class_folders:
        return width * height * 3
    long_side = max(width, height, 1)
    return imgsz * max(1, round(imgsz * min(width, height) / long_side)) * 3


def training_set_size(data: str, imgsz: int) -> DatasetSize | None:
    """The images of ``data`` and the RAM one takes when ultralytics caches it.

    Detection-style datasets cache each image resized so its long side is ``imgsz``; class
    folders cache images as decoded. A few image headers give the typical shape. None when the
    images cannot be counted (or there are more names than the scan looks at).
    """
    found = _image_entries(data)
    if found is None:
        return None
    entries, class_folders = found
    try:
        files = _image_files(entries)
    except _TooMany:
        return None
    if not files:
        return None
    step = max(1, len(files) // SAMPLED_IMAGES)
    sizes = [
        size
        for file in files[::step][:SAMPLED_IMAGES]
        if (size := _decoded_bytes(file, imgsz, class_folders)) is not None
    ]
    per_image = max(sizes) if sizes else imgsz * imgsz * 3
    return DatasetSize(images=len(files), bytes_per_image=per_image)


def device_kind(device: Any) -> tuple[str, int]:
    """The training device kind and how many train together, from ultralytics' ``device``."""
    from .common import is_cpu_device
    from .ddp import device_count

    if is_cpu_device(device):
        return "cpu", 0
    text = str(device or "").strip().lower()
    if text == "mps":
        return "mps", 0
    for kind in ("npu", "xpu"):
        if text.startswith(kind):
            return kind, max(1, device_count(device))
    import torch

    kind = "rocm" if getattr(torch.version, "hip", None) else "cuda"
    return kind, max(1, device_count(device))


def plan_for_job(params: Mapping[str, Any], cpus: int) -> SpeedPlan:
    """The speed plan of a training job with these (already checked) training arguments."""
    kind, devices = device_kind(params.get("device"))
    imgsz = params.get("imgsz", 640)
    size = int(max(imgsz)) if isinstance(imgsz, (list, tuple)) else int(imgsz or 640)
    data = params.get("data")
    dataset = training_set_size(data, size) if isinstance(data, str) else None
    facts = SpeedFacts(
        device_kind=kind,
        cpus=cpus,
        memory_free_bytes=memory_free_bytes(),
        devices=devices,
        env_threads=explicit_omp_threads(),
        env_wait_policy=explicit_wait_policy(),
    )
    return plan_training_speed(facts, params, dataset)


def apply_to_args(plan: SpeedPlan, params: dict[str, Any]) -> None:
    """Put the plan's threads into torch and ultralytics and its choices into ``params``."""
    import torch

    threads = int(choice_value(plan, "threads") or 1)
    torch.set_num_threads(threads)
    if plan["device"] in {"cpu", "mps"}:  # select_device resets torch to this count there
        set_ultralytics_thread_count(threads)
    with contextlib.suppress(RuntimeError):  # inter-op work already started: keep torch's pool
        torch.set_num_interop_threads(int(choice_value(plan, "interop_threads") or 1))
    for choice in plan["choices"]:
        if choice["source"] != "chosen":
            continue
        if choice["name"] == "cache" and choice["value"]:
            params["cache"] = choice["value"]
            _quiet_ram_cache_warning()
        elif choice["name"] == "workers":
            params["workers"] = int(choice["value"])


class _RamCacheNote(logging.Filter):
    """Drops ultralytics' warning about a RAM cache that the job chose (its reason says it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "cache='ram' may produce non-deterministic" not in record.getMessage()


def _quiet_ram_cache_warning() -> None:
    from ultralytics.utils import LOGGER

    if not any(isinstance(f, _RamCacheNote) for f in LOGGER.filters):
        LOGGER.addFilter(_RamCacheNote())


def keep_workers(workers: int) -> Callable[[Any], None]:
    """An ``on_pretrain_routine_start`` callback that puts back CPU dataloader workers.

    ultralytics' trainer sets ``workers=0`` for CPU training when it is created; this runs
    after that and before the loaders are built.
    """

    def callback(trainer: Any) -> None:
        trainer.args.workers = workers

    return callback


def to_channels_last(trainer: Any) -> None:
    """An ``on_pretrain_routine_end`` callback: the model and its EMA copy in channels-last."""
    import torch

    trainer.model.to(memory_format=torch.channels_last)
    ema = getattr(getattr(trainer, "ema", None), "ema", None)
    if ema is not None:
        ema.to(memory_format=torch.channels_last)


def attach_to_model(plan: SpeedPlan, params: Mapping[str, Any], model: Any) -> None:
    """The trainer callbacks of the plan: CPU workers kept, channels-last weights.

    When training starts, what was applied is read back from the trainer into
    ``plan["applied"]``.
    """
    workers = params.get("workers")
    if plan["device"] == "cpu" and isinstance(workers, int) and workers > 0:
        model.add_callback("on_pretrain_routine_start", keep_workers(workers))
    if choice_value(plan, "channels_last") is True:
        model.add_callback("on_pretrain_routine_end", to_channels_last)

    def read_back(trainer: Any) -> None:
        plan["applied"] = applied_settings(trainer)

    model.add_callback("on_train_start", read_back)


def applied_settings(trainer: Any) -> dict[str, object]:
    """What the trainer really runs with.

    Torch's threads, its loaders' workers, the cache, the memory format of the first
    convolution and ``OMP_WAIT_POLICY``.
    """
    import torch

    loader = getattr(trainer, "train_loader", None)
    dataset = getattr(loader, "dataset", None)
    conv = next((m.weight for m in trainer.model.modules() if isinstance(m, torch.nn.Conv2d)), None)
    channels_last = (
        bool(conv.is_contiguous(memory_format=torch.channels_last) and conv.shape[1] > 1)
        if conv is not None
        else None
    )
    return {
        "threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "workers": getattr(loader, "num_workers", None),
        "cache": getattr(dataset, "cache", None)
        or ("ram" if getattr(dataset, "cache_ram", False) else False),
        "channels_last": channels_last,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
    }


def note_capped_workers(plan: SpeedPlan, workers: object) -> None:
    """Record in ``plan`` that the /dev/shm check lowered the workers it chose."""
    for choice in plan["choices"]:
        if choice["name"] == "workers" and isinstance(workers, int) and choice["value"] != workers:
            choice["reason"] += f"; lowered to {workers} for the shared memory in /dev/shm"
            choice["value"] = workers


def summary_line(plan: SpeedPlan) -> str:
    """``speed choices: threads 2, workers 0, ... (from 2 usable CPU(s), ...)``."""
    values = ", ".join(f"{c['name']} {c['value']}" for c in plan["choices"])
    return f"speed choices: {values} (from {plan['facts']})"


def describe_plan(plan: SpeedPlan) -> list[str]:
    """One log line per choice: ``speed: threads=2 (chosen: ...)``."""
    return [
        f"speed: {c['name']}={c['value']} ({c['source']}: {c['reason']})" for c in plan["choices"]
    ]
