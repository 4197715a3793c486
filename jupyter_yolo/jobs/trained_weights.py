"""What ``GET /yolo/models`` says of a training job's weights, so pickers can label and rank them.

Each ``trained`` entry names the run (its name, task and dataset), its headline metric (the key,
a label a person reads, the value the final validation of ``best.pt`` measured, and whether
higher is better) and when it ran, so a weights picker can read
``shapes · mAP50-95 0.71 · 2026-12-01 14:02 (job 3f2a…)`` and preselect the best run.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ..contract.tasks import TASKS, headline, higher_is_better, metric_label
from .registry import JobRecord


def trained_entry(record: JobRecord, which: str, task: str) -> dict[str, Any]:
    """The listing fields of ``record``'s ``which`` (``best`` or ``last``) weights."""
    result = record.result if isinstance(record.result, dict) else {}
    key = result.get("headline") if isinstance(result.get("headline"), str) else None
    if key is None and task in TASKS:
        key = headline(task)
    metrics = result.get("task_metrics")
    value = metrics.get(key) if key and isinstance(metrics, dict) else None
    data = record.request.get("data")
    return {
        "model": f"job:{record.id}:{which}",
        "job": record.id,
        "task": task,
        "name": record.name,
        "status": record.status,
        "weights": which,
        "dataset": data if isinstance(data, str) else None,
        "metric": key,
        "metric_label": metric_label(key) if key else None,
        "metric_value": float(value) if isinstance(value, int | float) else None,
        "higher_is_better": higher_is_better(key) if key else True,
        "epochs_done": result.get("epochs_done"),
        "created": _iso(record.created),
        "ended": _iso(record.ended),
    }


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    moment = dt.datetime.fromtimestamp(float(timestamp), tz=dt.timezone.utc)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")
