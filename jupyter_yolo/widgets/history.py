"""A training run's curves folded from its events, and min/max decimation for bounded redraws.

No widgets here: :class:`TrainingHistory` is plain data, fed with event pages and read by the
training panel. Every batch point is kept (8 bytes per number); what is sent to the browser is
decimated to a fixed number of points per trace, keeping each bucket's minimum and maximum so
spikes stay visible.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..contract.tasks import DEFAULT_TASK, TASKS

LOSS_KEYS = TASKS[DEFAULT_TASK].loss_keys
"""Detection's losses: the curves a run shows before its first batch says otherwise."""
METRIC_KEYS = ("mAP50", "mAP50-95", "precision", "recall")
"""The box metrics epoch events carried at the top level before they had ``metrics``."""
LEGACY_METRICS = {
    "metrics/precision(B)": "precision",
    "metrics/recall(B)": "recall",
    "metrics/mAP50(B)": "mAP50",
    "metrics/mAP50-95(B)": "mAP50-95",
}
"""ultralytics' box metric keys and the top-level epoch field older events held them in."""


def decimate(x: np.ndarray, y: np.ndarray, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Return at most ``max_points`` points of (x, y) that keep the curve's envelope.

    The points are cut into ``max_points // 2`` buckets; each bucket keeps its minimum and its
    maximum (in x order). The last point is always kept. NaN values stay NaN (a gap).
    """
    n = len(x)
    if n <= max_points or max_points < 4:
        return x, y
    buckets = (max_points - 1) // 2
    edges = np.linspace(0, n, buckets + 1).astype(np.int64)
    width = int(np.max(np.diff(edges)))
    # one row per bucket; short buckets repeat their last index, which changes no min or max
    rows = np.minimum(edges[:-1, None] + np.arange(width)[None, :], edges[1:, None] - 1)
    block = y[rows]
    missing = np.isnan(block)
    low = np.where(missing, np.inf, block).argmin(axis=1)
    high = np.where(missing, -np.inf, block).argmax(axis=1)
    picked = np.take_along_axis(rows, np.stack([low, high], axis=1), axis=1).ravel()
    index = np.unique(np.append(picked, n - 1))
    return x[index], y[index]


class Series:
    """A growing curve of (x, y) floats."""

    def __init__(self) -> None:
        self.x = array("d")
        self.y = array("d")

    def __len__(self) -> int:
        return len(self.x)

    def append(self, x: float, y: float | None) -> None:
        """Add a point; a missing or non-finite y becomes NaN (a gap in the plot)."""
        self.x.append(x)
        self.y.append(float(y) if isinstance(y, int | float) and math.isfinite(y) else math.nan)

    def truncate_from(self, x: float) -> int:
        """Drop the points at ``x`` or later (an epoch done again after a resume); return count."""
        keep = len(self.x)
        while keep and self.x[keep - 1] >= x - 1e-9:
            keep -= 1
        dropped = len(self.x) - keep
        if dropped:
            del self.x[keep:]
            del self.y[keep:]
        return dropped

    def arrays(self, max_points: int) -> tuple[np.ndarray, np.ndarray]:
        """The points as numpy arrays, decimated to ``max_points``."""
        x = np.frombuffer(self.x, dtype=np.float64).copy()
        y = np.frombuffer(self.y, dtype=np.float64).copy()
        return decimate(x, y, max_points)


@dataclass
class TrainingHistory:
    """Everything the training panel shows, folded from a job's events in seq order."""

    last_seq: int = 0
    status: str | None = None
    epochs_hint: int | None = None
    batch_loss: dict[str, Series] = field(default_factory=dict)
    nonzero_losses: set[str] = field(default_factory=set)
    """Loss names some batch event gave a finite value other than 0 (ultralytics 8.4 reports a
    ``sem`` loss of 0 for every -seg model without a semantic head, for example)."""
    batch_steps: Series = field(default_factory=Series)
    epochs: dict[int, dict[str, Any]] = field(default_factory=dict)
    last_batch: dict[str, Any] | None = None
    epoch_batch_times: list[float] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    last_log: str | None = None
    speed: dict[str, Any] | None = None
    """The job's speed choices (the runner's ``log`` event that carries them)."""
    phase: str | None = None
    batch_events: int = 0
    batch_version: int = 0
    epoch_version: int = 0
    info_version: int = 0

    def consume(self, events: list[dict[str, Any]]) -> bool:
        """Fold new events in; events at or below ``last_seq`` are ignored. Return if changed."""
        changed = False
        for event in events:
            seq = int(event.get("seq") or 0)
            if seq <= self.last_seq:
                continue
            self.last_seq = seq
            changed = True
            handler = _HANDLERS.get(str(event.get("type")))
            if handler is not None:
                handler(self, event)
        return changed

    # ------------------------------------------------------------------- event handlers

    def _on_status(self, event: dict[str, Any]) -> None:
        self.status = event.get("status")
        if self.status in ("queued", "running"):
            self.phase = None
        self.info_version += 1

    def _on_batch(self, event: dict[str, Any]) -> None:
        epoch = int(event.get("epoch") or 1)
        batch = int(event.get("batch") or 0)
        batches = max(int(event.get("batches") or 1), 1)
        x = (epoch - 1) + batch / batches
        loss = event.get("loss") or {}
        steps = self.batch_steps
        if len(steps) and steps.x[-1] >= x - 1e-9:  # an epoch done again: replace its points
            steps.truncate_from(x)
            for series in self.batch_loss.values():
                series.truncate_from(x)
        steps.append(x, float(batch))
        if isinstance(loss, dict):
            for key, value in loss.items():
                if str(key) not in self.batch_loss:
                    self.batch_loss[str(key)] = Series()
                if isinstance(value, int | float) and math.isfinite(value) and value != 0:
                    self.nonzero_losses.add(str(key))
        for key, series in self.batch_loss.items():
            series.append(x, loss.get(key) if isinstance(loss, dict) else None)
        if self.last_batch is None or self.last_batch.get("epoch") != epoch or batch <= 1:
            self.epoch_batch_times = []
        self.epoch_batch_times.append(float(event.get("time") or 0.0))
        self.last_batch = event
        self.batch_events += 1
        self.phase = "training"
        self.batch_version += 1
        self.info_version += 1

    def _on_epoch(self, event: dict[str, Any]) -> None:
        self.epochs[int(event.get("epoch") or 0)] = event
        self.phase = None
        self.epoch_version += 1
        self.info_version += 1

    def _on_phase(self, event: dict[str, Any]) -> None:
        self.phase = event.get("phase")
        self.info_version += 1

    def _on_warning(self, event: dict[str, Any]) -> None:
        key = (event.get("code"), event.get("message"))
        if all((w.get("code"), w.get("message")) != key for w in self.warnings):
            self.warnings.append(event)
            self.info_version += 1

    def _on_error(self, event: dict[str, Any]) -> None:
        self.errors.append(event)
        self.info_version += 1

    def _on_log(self, event: dict[str, Any]) -> None:
        self.last_log = event.get("message")
        if isinstance(event.get("speed"), dict):
            self.speed = event["speed"]
        self.info_version += 1

    # ------------------------------------------------------------------- views

    @property
    def batch_points(self) -> int:
        """Number of per-batch points kept (after replacing epochs done again)."""
        return len(self.batch_steps)

    @property
    def loss_keys(self) -> list[str]:
        """Loss names the batch events carried, in the order they first appeared."""
        return list(self.batch_loss)

    @property
    def metric_keys(self) -> list[str]:
        """Metric keys the epoch events carried (ultralytics' own), in order of appearance."""
        keys: dict[str, None] = {}
        for epoch in sorted(self.epochs):
            metrics = self.epochs[epoch].get("metrics")
            if isinstance(metrics, dict):
                keys.update(dict.fromkeys(str(k) for k in metrics))
            else:
                for key, legacy in LEGACY_METRICS.items():
                    if legacy in self.epochs[epoch]:
                        keys[key] = None
        return list(keys)

    @property
    def headline(self) -> str | None:
        """The metric key the latest epoch event names as the one to show first."""
        last = self.last_epoch
        value = last.get("headline") if last else None
        return str(value) if value else None

    def metric_value(self, event: dict[str, Any], key: str) -> float | None:
        """Metric ``key`` of one epoch event (older events: the top-level box metrics)."""
        metrics = event.get("metrics")
        value = metrics.get(key) if isinstance(metrics, dict) else None
        if value is None and key in LEGACY_METRICS:
            value = event.get(LEGACY_METRICS[key])
        return float(value) if isinstance(value, int | float) else None

    def metric_curve(self, key: str) -> tuple[list[int], list[float | None]]:
        """Per-epoch values of the ultralytics metric ``key`` (``metrics/mAP50-95(M)``)."""
        xs = sorted(self.epochs)
        return xs, [self.metric_value(self.epochs[e], key) for e in xs]

    def epoch_curve(self, key: str, group: str | None = None) -> tuple[list[int], list[Any]]:
        """Per-epoch values of ``key`` (``group`` ``"loss"`` or ``"val_loss"`` for losses)."""
        xs: list[int] = []
        ys: list[Any] = []
        for epoch in sorted(self.epochs):
            event = self.epochs[epoch]
            source = event.get(group) if group else event
            value = source.get(key) if isinstance(source, dict) else None
            xs.append(epoch)
            ys.append(value if isinstance(value, int | float) else None)
        return xs, ys

    @property
    def epoch_total(self) -> int | None:
        """The run's number of epochs, when known."""
        for event in (self.last_epoch, self.last_batch):
            if event and event.get("epochs"):
                return int(event["epochs"])
        return self.epochs_hint

    @property
    def last_epoch(self) -> dict[str, Any] | None:
        """The latest epoch event."""
        return self.epochs[max(self.epochs)] if self.epochs else None

    def eta_seconds(self) -> float | None:
        """Seconds left, from epoch durations (or batch pace in the first epoch)."""
        if self.status not in ("running", "stopping") or self.last_batch is None:
            return None
        epochs = self.epoch_total
        batch = self.last_batch
        epoch = int(batch.get("epoch") or 1)
        done = int(batch.get("batch") or 0)
        batches = max(int(batch.get("batches") or 1), 1)
        if epochs is None:
            return None
        times = [e.get("epoch_time") for e in self.epochs.values()]
        durations = [t for t in times if isinstance(t, int | float) and t > 0]
        if durations:
            per_epoch = sum(durations) / len(durations)
            return max(0.0, per_epoch * ((epochs - epoch) + (1 - done / batches)))
        if len(self.epoch_batch_times) >= 2:
            span = self.epoch_batch_times[-1] - self.epoch_batch_times[0]
            per_batch = span / (len(self.epoch_batch_times) - 1)
            return max(0.0, per_batch * ((batches - done) + batches * (epochs - epoch)))
        return None


_HANDLERS = {
    "status": TrainingHistory._on_status,
    "batch": TrainingHistory._on_batch,
    "epoch": TrainingHistory._on_epoch,
    "phase": TrainingHistory._on_phase,
    "warning": TrainingHistory._on_warning,
    "error": TrainingHistory._on_error,
    "log": TrainingHistory._on_log,
}
