"""A job's progress, folded incrementally from its events."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..contract.serving import PROGRESS_EVENT
from ..contract.tasks import higher_is_better
from ..contract.tune import TRIAL_EVENT

METRIC_KEYS = ("precision", "recall", "mAP50", "mAP50-95", "fitness")


@dataclass
class Progress:
    """Where a job is: epoch, batch, speed, ETA and the latest validation metrics."""

    last_seq: int = 0
    status: str | None = None
    epoch: int | None = None
    epochs: int | None = None
    epochs_done: int = 0
    batch: int | None = None
    batches: int | None = None
    images_per_s: float | None = None
    eta_s: float | None = None
    loss: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    task_metrics: dict[str, float] = field(default_factory=dict)
    headline_key: str | None = None
    headline_value: float | None = None
    headline_best: float | None = None
    headline_best_epoch: int | None = None
    warnings: int = 0
    unit: str | None = None
    done: int | None = None
    total: int | None = None
    fps: float | None = None
    reconnects: int = 0
    trials_ended: set[int] = field(default_factory=set)

    def consume(self, events: list[dict[str, Any]]) -> None:
        """Fold events (in seq order) into the progress; a malformed event is skipped."""
        for event in events:
            try:
                self._consume_one(event)
            except (TypeError, ValueError, KeyError):
                continue

    def _consume_one(self, event: dict[str, Any]) -> None:
        self.last_seq = max(self.last_seq, int(event["seq"]))
        kind = event.get("type")
        if kind == "status":
            status = event.get("status")
            self.status = status if isinstance(status, str) else self.status
        elif kind == "batch":
            self.epoch = _count(event.get("epoch"), self.epoch)
            self.epochs = _count(event.get("epochs"), self.epochs)
            self.batch = _count(event.get("batch"), None)
            self.batches = _count(event.get("batches"), None)
            self.images_per_s = _number(event.get("images_per_s"), self.images_per_s)
            self.loss = _numbers(event.get("loss"))
        elif kind == "epoch":
            self.epoch = _count(event.get("epoch"), self.epoch)
            self.epochs = _count(event.get("epochs"), self.epochs)
            self.epochs_done = _count(event.get("epoch"), None) or self.epochs_done
            self.eta_s = _number(event.get("eta_s"), self.eta_s)
            self.batch = self.batches
            self.metrics = _numbers({k: event.get(k) for k in METRIC_KEYS})
            self._headline(event)
        elif kind == PROGRESS_EVENT:
            self._media(event)
        elif kind == "warning":
            self.warnings += 1
        elif kind == TRIAL_EVENT:
            self._trial(event)

    def _trial(self, event: dict[str, Any]) -> None:
        """A tune job's ``trial`` event: progress is trials ended out of its iterations."""
        self.unit = "trials"
        self.total = _count(event.get("iterations"), self.total)
        trial = _count(event.get("trial"), None)
        if trial is not None and event.get("status") not in (None, "running"):
            self.trials_ended.add(trial)
        self.done = len(self.trials_ended)

    def _media(self, event: dict[str, Any]) -> None:
        """A predict job's ``progress`` (images or frames done, total, rate, ETA, reconnects)."""
        unit = event.get("unit")
        self.unit = unit if isinstance(unit, str) else self.unit
        self.done = _count(event.get("done"), self.done)
        self.total = _count(event.get("total"), None)  # None: a live stream
        self.fps = _number(event.get("fps"), None)
        self.eta_s = _number(event.get("eta_s"), None)
        self.reconnects = _count(event.get("reconnects"), None) or self.reconnects

    def _headline(self, event: dict[str, Any]) -> None:
        """The task's headline metric: its latest value and the best so far.

        Best is the highest or the lowest value, as the task profile says
        (:attr:`~jupyter_yolo.contract.tasks.TaskProfile.higher_is_better`).
        """
        self.task_metrics = _numbers(event.get("metrics"))
        key = event.get("headline")
        if not isinstance(key, str):
            return
        self.headline_key = key
        value = self.task_metrics.get(key)
        self.headline_value = value
        better = higher_is_better(key)
        best = self.headline_best
        if value is not None and (best is None or (value > best if better else value < best)):
            self.headline_best = value
            self.headline_best_epoch = _count(event.get("epoch"), None)

    @property
    def fraction(self) -> float | None:
        """Share of the training (or of a folder or video) done, from 0 to 1, when known."""
        if not self.epochs:
            if self.total and self.done is not None:
                return round(min(1.0, self.done / self.total), 4)
            return None
        done = float(self.epochs_done)
        if self.epoch and self.batch and self.batches and self.epoch > self.epochs_done:
            done = (self.epoch - 1) + self.batch / self.batches
        return round(min(1.0, done / self.epochs), 4)

    def summary(self) -> dict[str, Any]:
        """The JSON view used in job descriptions."""
        return {
            "epoch": self.epoch,
            "epochs": self.epochs,
            "epochs_done": self.epochs_done,
            "batch": self.batch,
            "batches": self.batches,
            "fraction": self.fraction,
            "images_per_s": self.images_per_s,
            "eta_s": self.eta_s,
            "loss": self.loss,
            "metrics": self.metrics,
            "task_metrics": self.task_metrics,
            "headline": {
                "key": self.headline_key,
                "value": self.headline_value,
                "best": self.headline_best,
                "best_epoch": self.headline_best_epoch,
            }
            if self.headline_key
            else None,
            "warnings": self.warnings,
            "last_seq": self.last_seq,
            "media": {
                "unit": self.unit,
                "done": self.done,
                "total": self.total,
                "fps": self.fps,
                "eta_s": self.eta_s,
                "reconnects": self.reconnects,
            }
            if self.unit
            else None,
        }


def _count(value: Any, default: int | None) -> int | None:
    """A non-negative integer field of an event, else ``default`` (a damaged event)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return default


def _number(value: Any, default: float | None) -> float | None:
    """A finite number field of an event, else ``default``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return value
    return default


def _numbers(values: Any) -> dict[str, float]:
    """The finite numbers of a mapping such as ``loss``; anything else is left out."""
    if not isinstance(values, dict):
        return {}
    kept = {str(key): _number(value, None) for key, value in values.items()}
    return {key: value for key, value in kept.items() if value is not None}
