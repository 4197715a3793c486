"""A job's progress, folded incrementally from its events."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
    warnings: int = 0

    def consume(self, events: list[dict[str, Any]]) -> None:
        """Fold events (in seq order) into the progress."""
        for event in events:
            self.last_seq = max(self.last_seq, int(event["seq"]))
            kind = event.get("type")
            if kind == "status":
                self.status = event.get("status")
            elif kind == "batch":
                self.epoch = event.get("epoch", self.epoch)
                self.epochs = event.get("epochs", self.epochs)
                self.batch = event.get("batch")
                self.batches = event.get("batches")
                self.images_per_s = event.get("images_per_s", self.images_per_s)
                self.loss = dict(event.get("loss") or {})
            elif kind == "epoch":
                self.epoch = event.get("epoch", self.epoch)
                self.epochs = event.get("epochs", self.epochs)
                self.epochs_done = int(event.get("epoch") or self.epochs_done)
                self.eta_s = event.get("eta_s", self.eta_s)
                self.batch = self.batches
                self.metrics = {k: event[k] for k in METRIC_KEYS if event.get(k) is not None}
            elif kind == "warning":
                self.warnings += 1

    @property
    def fraction(self) -> float | None:
        """Share of the training done, from 0 to 1, when it is known."""
        if not self.epochs:
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
            "warnings": self.warnings,
            "last_seq": self.last_seq,
        }
