"""One source of training defaults: the embedded datasets' tuned recipes and the hardware's sizes.

Three places start training runs: the quickstart notebook, the Dashboard's training tab and
``TrainingPanel()``. All of them (and the accelerator report's recommendation) read this module,
so the same dataset on the same machine gets the same request wherever it is started:

- :func:`hardware_defaults` turns what the box has (CPU cores, memory, accelerator memory) into a
  batch, dataloader workers and an image size; the accelerator report's ``recommendation``
  carries them.
- :data:`EMBEDDED_RECIPES` are the settings that train each task's built-in synthetic dataset
  (:data:`EMBEDDED_DATASETS`) from its YAML architecture to a useful metric in a few minutes on
  CPU cores; ultralytics' own defaults (optimizer "auto", nbs 64) stay near chance there.
- :func:`train_defaults` merges both into the training request a form or notebook starts from.

Pure (stdlib only): the server, the kernel's widgets and the notebooks import it alike.
"""

from __future__ import annotations

from typing import Any, TypedDict

from .training_speed import accelerator_workers, cpu_training_workers

GIB = 1 << 30

#: The built-in dataset of each task (the server generates ``shapes`` at first start).
EMBEDDED_DATASETS: dict[str, str] = {
    "detect": "shapes",
    "segment": "shapes-seg",
    "pose": "shapes-pose",
    "obb": "shapes-obb",
    "classify": "shapes-cls",
    "semantic": "shapes-sem",
    "depth": "shapes-depth",
}

_TUNED: dict[str, object] = {"batch": 16, "nbs": 16, "optimizer": "AdamW", "lr0": 0.003}

#: ultralytics training arguments that take each task's YAML architecture from scratch to a useful
#: metric on its embedded dataset in a few minutes on 2 CPU cores (``workers=0, device="cpu"``).
#: ``nbs`` equal to ``batch`` and a fixed AdamW learning rate: ultralytics' defaults accumulate 4
#: of the few batches per optimizer step and their automatic learning rate is low for training
#: from scratch (detect reaches only ~0.16 mAP50 in 40 epochs with them). Figures: last epochs,
#: seeds 0 / 1, measured on 2 CPU cores shared with other work (times are upper bounds).
EMBEDDED_RECIPES: dict[str, dict[str, object]] = {
    # mAP50 > 0.9 in about 2 minutes (> 0.5 from epoch 18, after ~75 s)
    "detect": {"model": "yolov8n.yaml", "epochs": 30, "imgsz": 128, **_TUNED},
    # mask mAP50 0.60-0.75 over epochs 31-40, mAP50-95 0.54 (seed 1, ~165 s idle)
    "segment": {"model": "yolov8n-seg.yaml", "epochs": 40, "imgsz": 128, **_TUNED},
    # pose mAP50 0.89-0.99 / 0.92-0.97 over epochs 23-30, mAP50-95 0.77 / 0.78; ~140 s idle
    "pose": {"model": "yolov8n-pose.yaml", "epochs": 30, "imgsz": 128, **_TUNED},
    # box mAP50 0.68-0.83 / 0.62-0.72 over epochs 23-30 (still rising); ~130 s idle
    "obb": {"model": "yolov8n-obb.yaml", "epochs": 30, "imgsz": 128, **_TUNED},
    # top-1 0.98-0.99 / 0.83-1.0 over epochs 11-15 (chance 0.33); ~90 s. AdamW at 0.003 or SGD
    # at 0.01 stay at chance: lr0 0.001 and no random erasing or RandAugment (which blot out most
    # of a 64 px shape; "" is no policy) learn it in 8-11 epochs.
    "classify": {
        "model": "yolov8n-cls.yaml",
        "epochs": 15,
        "imgsz": 64,
        **_TUNED,
        "lr0": 0.001,
        "erasing": 0.0,
        "auto_augment": "",
    },
    # mIoU 0.48-0.51 / 0.42-0.43 over epochs 36-40 (all-background is 0.20-0.22); ~4-5 min
    "semantic": {"model": "yolo26n-sem.yaml", "epochs": 40, "imgsz": 128, **_TUNED},
    # delta1 0.73-0.84 / 0.73-0.81 over epochs 13-20, abs_rel 0.13 / 0.14; ~190 s idle
    "depth": {"model": "yolo26n-depth.yaml", "epochs": 20, "imgsz": 128, **_TUNED},
}

#: Epochs for a person's own dataset (ultralytics' default; ``patience`` stops a plateau early).
CUSTOM_EPOCHS = 100


class Hardware(TypedDict):
    """What the sizes depend on: the training device kind and the memory of the box.

    ``kind`` is ``cpu``, ``mps``, ``cuda``, ``rocm``, ``xpu`` or ``npu``; ``devices`` how many
    accelerators train together (0 on CPU and MPS); ``device_memory_bytes`` the smallest of
    their memories; ``memory_bytes`` the memory the container may use (None when unknown).
    """

    kind: str
    cpus: int
    memory_bytes: int | None
    devices: int
    device_memory_bytes: int | None
    jetson: bool


class HardwareDefaults(TypedDict):
    """Batch (all devices together), dataloader workers per device and image size."""

    batch: int
    workers: int
    imgsz: int


def hardware_defaults(hw: Hardware) -> HardwareDefaults:
    """The batch, workers and image size that fit ``hw`` (before /dev/shm limits the workers)."""
    cpus = max(1, int(hw["cpus"]))
    memory = hw["memory_bytes"]
    devices = max(1, int(hw["devices"]))
    per_device = hw["device_memory_bytes"] or 0
    if hw["kind"] == "cpu":
        batch, imgsz = 16, 320
        workers = cpu_training_workers(cpus)
        if memory is not None and memory < 8 * GIB:
            batch = 8
    elif hw["kind"] == "mps":
        batch, imgsz, workers = 16, 640, min(4, max(0, cpus // 2))
    else:
        per_batch = 32 if per_device >= 48 * GIB else 16 if per_device >= 5.5 * GIB else 8
        workers = accelerator_workers(cpus, devices)
        if hw["jetson"]:
            per_batch = 16 if per_device >= 30 * GIB else 8
            workers = min(2, workers)
        batch, imgsz = per_batch * devices, 640
    if memory is not None:
        workers = min(workers, max(0, int(memory / GIB) - 2) // devices)
        if memory < 4 * GIB:
            batch = min(batch, 4 * devices)
    return {"batch": batch, "workers": workers, "imgsz": imgsz}


def embedded_task(dataset: str | None) -> str | None:
    """The task whose embedded dataset is named ``dataset``, or None for any other dataset."""
    for task, name in EMBEDDED_DATASETS.items():
        if name == dataset:
            return task
    return None


def train_defaults(dataset: str | None, recommendation: dict[str, Any]) -> dict[str, object]:
    """The training request a form or notebook starts from for ``dataset`` on this hardware.

    ``recommendation`` is the accelerator report's (``device``, ``model``, ``batch``,
    ``workers``, ``imgsz``, ``amp``). An embedded dataset gets its tuned recipe (its batch capped
    by the hardware's); any other dataset the hardware's sizes and :data:`CUSTOM_EPOCHS`. Keys a
    form has no control for (``nbs``, ``erasing`` ...) are part of the request all the same.
    """
    rec_batch = _int(recommendation.get("batch"), 16)
    body: dict[str, object] = {
        "model": str(recommendation.get("model") or "yolov8n.yaml"),
        "data": dataset,
        "epochs": CUSTOM_EPOCHS,
        "imgsz": _int(recommendation.get("imgsz"), 640),
        "batch": rec_batch,
    }
    task = embedded_task(dataset)
    if task is not None:
        body.update(EMBEDDED_RECIPES[task])
        recipe_batch = _int(EMBEDDED_RECIPES[task].get("batch"), 16)
        body["batch"] = min(recipe_batch, rec_batch) if rec_batch > 0 else recipe_batch
    body["device"] = str(recommendation.get("device") or "cpu")
    body["amp"] = bool(recommendation.get("amp"))
    if isinstance(recommendation.get("workers"), int):
        body["workers"] = recommendation["workers"]
    return body


def _int(value: object, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default
