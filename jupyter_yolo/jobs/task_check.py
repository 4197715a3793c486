"""Which task a job's model and dataset are for, and a 400 when they do not fit together.

The model's task comes from its architecture (``contract.architectures``), the training job it
names (``job:<id>``: that job's ``job.json``) or its weights file (:mod:`.weights_task`). The
dataset's task is the one stored when it was registered, else told from its contents by the same
rules as uploads (:mod:`jupyter_yolo.datasets.taskdetect`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..contract.architectures import by_name as architectures_by_name
from ..contract.architectures import example
from ..contract.jobfile import JobFile, JobFileError
from ..contract.tasks import TASKS, profile, task_from_name
from ..datasets.reportcache import read_meta
from ..datasets.taskdetect import class_folders, detected, gather_from
from ..errors import InvalidRequest
from .weights_task import task_of_weights

ACCEPTS = {"obb": ("obb", "segment", "detect"), "segment": ("segment", "detect")}
"""Model tasks ultralytics also trains on a dataset of this task (polygons give boxes too)."""


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


def is_classify_root(folder: Path) -> bool:
    """Whether ``folder`` is a classify dataset: ``train/<class>/<image>`` (and val/ or test/)."""
    return class_folders(folder) > 0


def dataset_task(content: dict[str, Any], base: Path) -> DatasetTask:
    """The task a data.yaml (already read; ``base`` is its ``path`` folder) is for.

    A registered dataset's stored task (found at upload, or forced then) wins; any other folder
    is looked at the way uploads are (:mod:`jupyter_yolo.datasets.taskdetect`).
    """
    stored = read_meta(base).get("task") if (base / "meta.json").is_file() else None
    task = stored if isinstance(stored, str) else detected(gather_from(content, base))[0]
    return DatasetTask(task, ACCEPTS.get(task, (task,)))


def check_fit(model: str, task: str, dataset: str, found: DatasetTask) -> None:
    """A 400 naming both tasks when a ``task`` model cannot train or run on the dataset."""
    if task in found.accepts:
        return
    wanted = profile(found.task)
    raise InvalidRequest(
        f"The model {model} is a {task} model but dataset {dataset!r} is a {found.task} dataset "
        f"({wanted.label_format}: {wanted.label_line}). Use a {found.task} model such as "
        f"{example(found.task) or found.task!r}, or a {task} dataset "
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
