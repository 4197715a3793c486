"""The body of ``GET /yolo/tasks``: the task profiles with the installed architectures."""

from __future__ import annotations

import importlib.metadata

from .architectures import architectures
from .payloads import StatusSets, TaskTable
from .status import ACTIVE, STATUSES, TERMINAL, UNFINISHED
from .tasks import DEFAULT_TASK, TASKS, metric_label


def ultralytics_version() -> str | None:
    """The installed ultralytics version, from its metadata (the package is not imported)."""
    try:
        return importlib.metadata.version("ultralytics")
    except importlib.metadata.PackageNotFoundError:
        return None


def status_sets() -> StatusSets:
    """The job statuses by meaning, each list in lifecycle order."""
    return {
        "all": list(STATUSES),
        "terminal": [s for s in STATUSES if s in TERMINAL],
        "active": [s for s in STATUSES if s in ACTIVE],
        "unfinished": [s for s in STATUSES if s in UNFINISHED],
    }


def task_table() -> TaskTable:
    """Every task profile and every architecture offered, as served to the front ends."""
    return {
        "tasks": [profile.as_dict() for profile in TASKS.values()],
        "architectures": [arch.as_dict() for arch in architectures()],
        "default": DEFAULT_TASK,
        "ultralytics": ultralytics_version(),
        "metric_labels": {
            key: metric_label(key) for profile in TASKS.values() for key in profile.metric_keys
        },
        "statuses": status_sets(),
    }
