"""Which task a job's model and dataset are for, and a 400 when they do not fit together.

The model's task comes from its architecture (``contract.architectures``), the training job it
names (``job:<id>``: that job's ``job.json``) or its weights file (:mod:`.weights_task`). The
dataset's task is read cheaply from its data.yaml and a few label lines: ``kpt_shape`` → pose,
``masks_dir`` → semantic, ``depth_scale`` or a ``depth/`` folder → depth, class folders →
classify, else the first label lines (5 values: boxes, 9: oriented boxes, more: polygons).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..contract.architectures import by_name as architectures_by_name
from ..contract.jobfile import JobFile, JobFileError
from ..contract.tasks import DEFAULT_TASK, TASKS, profile, task_from_name
from ..errors import InvalidRequest
from .weights_task import task_of_weights

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
MAX_LABEL_FILES = 20
MAX_LABEL_LINES = 200
EXAMPLE_MODEL = {
    "detect": "yolov8n.yaml",
    "segment": "yolov8n-seg.yaml",
    "classify": "yolov8n-cls.yaml",
    "pose": "yolov8n-pose.yaml",
    "obb": "yolov8n-obb.yaml",
    "semantic": "yolo26n-sem.yaml",
    "depth": "yolo26n-depth.yaml",
}


@dataclass(frozen=True)
class DatasetTask:
    """What a dataset was made for (``task``) and every model task that can train on it."""

    task: str
    accepts: tuple[str, ...]


def model_task(reference: str, resolved: str, jobs_folder: Path) -> str:
    """The task of a job's model: ``reference`` as requested, ``resolved`` its runner value."""
    arch = architectures_by_name().get(reference)
    if arch is not None:
        return arch.task
    if reference.startswith("job:"):
        job_id = reference.split(":")[1]
        try:
            return JobFile.load(jobs_folder / job_id).task
        except JobFileError:
            pass
    path = Path(resolved)
    if path.is_absolute() and path.exists():
        return task_of_weights(path)
    return task_from_name(reference)


def is_class_folder(folder: Path) -> bool:
    """Whether ``folder`` is a classify split: sub-folders (one per class) holding images."""
    try:
        classes = [entry for entry in folder.iterdir() if entry.is_dir()]
    except OSError:
        return False
    if not classes or classes[0].name in ("images", "labels"):
        return False
    for entry in classes[:5]:
        try:
            if any(f.suffix.lower() in IMAGE_SUFFIXES for f in entry.iterdir()):
                return True
        except OSError:
            continue
    return False


def is_classify_root(folder: Path) -> bool:
    """Whether ``folder`` is a classify dataset: ``train/<class>/<image>`` (and val/ or test/)."""
    return (folder / "train").is_dir() and is_class_folder(folder / "train")


def dataset_task(content: dict[str, Any], base: Path) -> DatasetTask:
    """The task a data.yaml (already read; ``base`` is its ``path`` folder) is for."""
    if content.get("kpt_shape") is not None:
        return DatasetTask("pose", ("pose",))
    if content.get("masks_dir") is not None:
        return DatasetTask("semantic", ("semantic",))
    if content.get("depth_scale") is not None or (base / "depth").is_dir():
        return DatasetTask("depth", ("depth",))
    train = _first_split_entry(base, content.get("train"))
    if is_classify_root(base) or (train is not None and is_class_folder(train)):
        return DatasetTask("classify", ("classify",))
    widths = _label_widths(train)
    if not widths or widths == {5}:
        return DatasetTask(DEFAULT_TASK, (DEFAULT_TASK,))
    if widths == {9}:
        return DatasetTask("obb", ("obb", "segment", "detect"))
    return DatasetTask("segment", ("segment", "detect"))


def _first_split_entry(base: Path, entries: Any) -> Path | None:
    first = entries[0] if isinstance(entries, list) and entries else entries
    return (base / first) if isinstance(first, str) and first else None


def _label_files(split: Path) -> list[Path]:
    """A few label files of a split (a folder of images, or a .txt list of image paths)."""
    images: list[Path] = []
    if split.is_file() and split.suffix == ".txt":
        try:
            with split.open(encoding="utf-8", errors="replace") as handle:
                for raw in handle:
                    line = raw.strip()
                    if line:
                        images.append(split.parent / line)  # an absolute line stays absolute
                    if len(images) >= MAX_LABEL_FILES:
                        break
        except OSError:
            return []
    elif split.is_dir():
        text = str(split)
        marker = f"{os.sep}images"
        if marker in text:
            head, _, tail = text.rpartition(marker)
            folder = Path(f"{head}{os.sep}labels{tail}")
            try:
                return sorted(folder.rglob("*.txt"))[:MAX_LABEL_FILES] if folder.is_dir() else []
            except OSError:
                return []
    labels = []
    for image in images:
        text = str(image)
        head, sep, tail = text.rpartition(f"{os.sep}images{os.sep}")
        if sep:
            labels.append(Path(f"{head}{os.sep}labels{os.sep}{tail}").with_suffix(".txt"))
    return labels


def _label_widths(split: Path | None) -> set[int]:
    """How many values the first label lines of a split have."""
    if split is None:
        return set()
    widths: set[int] = set()
    lines = 0
    for label in _label_files(split):
        try:
            with label.open(encoding="utf-8", errors="replace") as handle:
                for line in handle:
                    values = line.split()
                    if values:
                        widths.add(len(values))
                        lines += 1
                    if lines >= MAX_LABEL_LINES:
                        return widths
        except OSError:
            continue
    return widths


def check_fit(model: str, task: str, dataset: str, found: DatasetTask) -> None:
    """A 400 naming both tasks when a ``task`` model cannot train or run on the dataset."""
    if task in found.accepts:
        return
    wanted = profile(found.task)
    raise InvalidRequest(
        f"The model {model} is a {task} model but dataset {dataset!r} is a {found.task} dataset "
        f"({wanted.label_format}: {wanted.label_line}). Use a {found.task} model such as "
        f"{EXAMPLE_MODEL.get(found.task, found.task)!r}, or a {task} dataset "
        f"({profile(task).label_line})."
    )


def check_offline(task: str, model: str) -> None:
    """A 400 when ultralytics cannot train ``task`` here (see ``TaskProfile.trains_offline``)."""
    if task in TASKS and not TASKS[task].trains_offline:
        note = TASKS[task].offline_note or "it needs files that are not available offline"
        note = note.rstrip(".")
        raise InvalidRequest(
            f"The model {model} is a {task} model, which cannot train here: {note}."
        )
