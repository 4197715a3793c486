"""ultralytics trainer/validator callbacks that turn training into ``batch``/``epoch`` events.

They also poll the stop controller: a request noticed during an epoch (a training batch or a
validation batch) raises :class:`StopRequested` and the epoch counts as not completed; a request
noticed at the end of a completed epoch raises after that epoch's event and checkpoint.
:func:`save_interrupted_checkpoint` then writes a resumable ``last.pt`` for the mid-epoch case.

The reporter pickles (ultralytics' multi-GPU launch carries the callbacks to its DDP ranks): see
:mod:`jupyter_yolo.runner.ddp` for what it becomes in each rank and how a stop is agreed there.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..contract.payloads import BatchFields, BoxMetrics, EpochFields
from ..contract.tasks import DEFAULT_TASK, TASKS, headline
from .journal import Journal, number
from .stop import StopController

METRIC_KEYS: dict[str, str] = {
    key.split("/", 1)[1].split("(", 1)[0]: key for key in TASKS["detect"].metric_keys
}
"""precision, recall, mAP50, mAP50-95 → ultralytics' box metric keys (the detect profile's)."""


def loss_dict(items: Any) -> dict[str, float | None]:
    """``{"box": .., "cls": .., "dfl": ..}`` from ultralytics' loss items (a dict of tensors)."""
    if not isinstance(items, dict):
        return {}
    return {str(k).removesuffix("_loss"): number(v, 5) for k, v in items.items()}


def metric_fields(metrics: dict[str, Any] | None) -> BoxMetrics:
    """precision, recall, mAP50, mAP50-95 (box metrics) from an ultralytics metrics dict."""
    metrics = metrics or {}
    keys = METRIC_KEYS
    return {
        "precision": number(metrics.get(keys["precision"])),
        "recall": number(metrics.get(keys["recall"])),
        "mAP50": number(metrics.get(keys["mAP50"])),
        "mAP50-95": number(metrics.get(keys["mAP50-95"])),
    }


def task_metrics(
    metrics: dict[str, Any] | None, task: str = DEFAULT_TASK
) -> dict[str, float | None]:
    """Every ``metrics/...`` value under ultralytics' own keys; the task's keys always present."""
    metrics = metrics or {}
    wanted = TASKS[task].metric_keys if task in TASKS else ()
    out = {key: number(metrics.get(key)) for key in wanted}
    for key, value in metrics.items():
        if str(key).startswith("metrics/"):
            out[str(key)] = number(value)
    return out


def val_losses(metrics: dict[str, Any] | None) -> dict[str, float | None]:
    """The ``val/..._loss`` entries of an ultralytics metrics dict, keyed like :func:`loss_dict`."""
    out: dict[str, float | None] = {}
    for key, value in (metrics or {}).items():
        if str(key).startswith("val/"):
            out[str(key)[4:].removesuffix("_loss")] = number(value, 5)
    return out


def is_finite_loss(trainer: Any) -> bool:
    """Whether the trainer's last batch loss is finite (True when there is none)."""
    loss = getattr(trainer, "loss", None)
    if loss is None:
        return True
    try:
        import torch

        return bool(torch.isfinite(loss).all())
    except Exception:
        value = number(loss)
        return value is not None


class TrainingReporter:
    """Callbacks for one training run; attach with :meth:`attach`."""

    def __init__(
        self,
        journal: Journal,
        stop: StopController,
        job_dir: Path,
        on_epoch_done: Callable[[int], None] | None = None,
        task: str = DEFAULT_TASK,
    ) -> None:
        self.task = task if task in TASKS else DEFAULT_TASK
        self.journal = journal
        self.stop = stop
        self.job_dir = job_dir
        self.on_epoch_done = on_epoch_done
        self.in_epoch = False
        self.epochs_done = 0
        self.start_epoch = 0
        self.final_metrics: dict[str, Any] | None = None
        self.last_epoch_event: dict[str, Any] | None = None
        self._batch = 0
        self._epoch_t0 = 0.0
        self._nonfinite_warned = False
        self._validated = False
        self._epoch_times: list[float] = []
        self.ddp_rank: int | None = None
        """Set in a DDP rank (0 writes the events); None in the runner process."""

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(journal=None, on_epoch_done=None)  # an open file; the runner's status.json
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        from .ddp import attach_worker

        self.__dict__.update(state)
        attach_worker(self)

    def _check(self, trainer: Any) -> None:
        """Honour a stop request at a point every DDP rank passes in lockstep."""
        if self.ddp_rank is None:
            self.stop.check()
        else:
            from .ddp import collective_stop

            collective_stop(self, trainer)

    def attach(self, model: Any) -> None:
        """Register the callbacks on an ``ultralytics.YOLO`` model."""
        for event in (
            "on_pretrain_routine_start",
            "on_pretrain_routine_end",
            "on_train_start",
            "on_train_epoch_start",
            "on_train_batch_end",
            "on_train_epoch_end",
            "on_val_start",
            "on_val_batch_end",
            "on_val_end",
            "on_model_save",
            "on_fit_epoch_end",
            "on_train_end",
        ):
            model.add_callback(event, getattr(self, event))

    # -- setup ---------------------------------------------------------------------------------
    def on_pretrain_routine_start(self, trainer: Any) -> None:
        """Before the dataset and model are set up (in DDP: rank 0 only, so no stop check)."""
        if self.ddp_rank is None:
            self.stop.check()

    def on_pretrain_routine_end(self, trainer: Any) -> None:
        """After setup: the start epoch is known (resume)."""
        self.start_epoch = int(getattr(trainer, "start_epoch", 0) or 0)
        self.epochs_done = self.start_epoch
        self._check(trainer)

    def on_train_start(self, trainer: Any) -> None:
        """Training loop about to start."""
        self._check(trainer)

    # -- one epoch -------------------------------------------------------------------------------
    def on_train_epoch_start(self, trainer: Any) -> None:
        """An epoch (or a retry of it after OOM or NaN recovery) begins."""
        self._check(trainer)
        self.in_epoch = True
        self._batch = 0
        self._validated = False
        self._nonfinite_warned = False
        self._epoch_t0 = time.time()

    def on_train_batch_end(self, trainer: Any) -> None:
        """One training batch done: emit a ``batch`` event, then honour a stop request."""
        self._batch += 1
        batches = len(trainer.train_loader)
        images_total = len(getattr(trainer.train_loader, "dataset", ()) or ()) or None
        batch_size = int(getattr(trainer, "batch_size", 0) or 0)
        images = self._batch * batch_size
        if images_total:
            images = min(images, images_total)
        elapsed = max(time.time() - self._epoch_t0, 1e-6)
        lr = None
        optimizer = getattr(trainer, "optimizer", None)
        if optimizer is not None and optimizer.param_groups:
            lr = number(optimizer.param_groups[0].get("lr"), 8)
        fields: BatchFields = {
            "epoch": int(trainer.epoch) + 1,
            "batch": self._batch,
            "batches": batches,
            "loss": loss_dict(trainer.tloss),
            "lr": lr,
            "images_per_s": number(images / elapsed, 2),
        }
        self.journal.batch(fields)
        if not self._nonfinite_warned and not is_finite_loss(trainer):
            self._nonfinite_warned = True
            self.journal.warning(
                "non_finite_loss",
                f"non-finite loss (NaN or inf) in epoch {int(trainer.epoch) + 1} "
                f"batch {self._batch}; lower lr0, check the labels, or disable amp if it persists.",
            )
        self._check(trainer)

    def on_train_epoch_end(self, trainer: Any) -> None:
        """Training part of the epoch done; validation comes next."""
        self._check(trainer)

    def on_val_start(self, validator: Any) -> None:
        """Validation starts (during an epoch or the final one with best.pt)."""
        if self.in_epoch:
            if self.ddp_rank is None:  # a DDP stop waits for the epoch's end (module docstring)
                self.stop.check()
            self.journal.emit("phase", phase="validation", epoch=self.epochs_done + 1)

    def on_val_batch_end(self, validator: Any) -> None:
        """A validation batch done: a stop during an epoch's validation stops at once."""
        if self.in_epoch and self.ddp_rank is None:
            self.stop.check()

    def on_val_end(self, validator: Any) -> None:
        """Validation finished."""
        self._validated = True

    def on_model_save(self, trainer: Any) -> None:
        """Checkpoints written at the end of an epoch."""
        for path in (trainer.last, trainer.best):
            self.journal.artifact(Path(path), "weights")

    def on_fit_epoch_end(self, trainer: Any) -> None:
        """An epoch is complete (metrics saved, checkpoint written), or the final validation ran."""
        if not self.in_epoch:  # final_eval() with best.pt calls this once more after the loop
            self.final_metrics = dict(getattr(trainer, "metrics", None) or {})
            return
        self.in_epoch = False
        epoch = int(trainer.epoch) + 1
        epochs = int(trainer.epochs)
        self.epochs_done = epoch
        duration = number(getattr(trainer, "epoch_time", None) or (time.time() - self._epoch_t0), 3)
        if duration:
            self._epoch_times.append(duration)
        mean = sum(self._epoch_times) / len(self._epoch_times) if self._epoch_times else 0.0
        metrics = dict(getattr(trainer, "metrics", None) or {})
        validated = self._validated
        fields: EpochFields = {
            **metric_fields(metrics if validated else None),  # all None before validation
            "epoch": epoch,
            "epochs": epochs,
            "loss": loss_dict(trainer.tloss),
            "val_loss": val_losses(metrics) if validated else None,
            "metrics": task_metrics(metrics if validated else None, self.task),
            "headline": headline(self.task),
            "fitness": number(getattr(trainer, "fitness", None)) if validated else None,
            "lr": number(trainer.optimizer.param_groups[0].get("lr"), 8)
            if getattr(trainer, "optimizer", None) is not None
            else None,
            "epoch_time": duration,
            "eta_s": number(mean * max(epochs - epoch, 0), 1),
        }
        self.last_epoch_event = self.journal.epoch(fields)
        self.journal.artifact(Path(trainer.csv), "results")
        if self.on_epoch_done is not None:
            self.on_epoch_done(epoch)
        if epoch < epochs:  # a stop after the final epoch lets the run finish normally
            self._check(trainer)

    def on_train_end(self, trainer: Any) -> None:
        """The run finished: announce the result files."""
        save_dir = Path(trainer.save_dir)
        for path in (trainer.last, trainer.best):
            self.journal.artifact(Path(path), "weights", again=True)
        self.journal.artifact(Path(trainer.csv), "results", again=True)
        for pattern in ("*.png", "*.jpg"):
            for plot in sorted(save_dir.glob(pattern)):
                self.journal.artifact(plot, "plot")
        if self.ddp_rank == 0:  # the final metrics, for the runner (jupyter_yolo.runner.ddp)
            from .ddp import write_state

            write_state(self)


def save_interrupted_checkpoint(trainer: Any, completed_epoch: int) -> Path | None:
    """Write ``last.pt`` from the trainer's current state as if ``completed_epoch`` just ended.

    ``completed_epoch`` is 0-based (``-1``: none completed). ultralytics resumes at
    ``epoch + 1``, so the interrupted epoch is redone from these weights and the optimizer state;
    results.csv holds only completed epochs, so the history continues with no gap and no
    duplicate. ``best.pt`` and ``epochN.pt`` are left untouched. Returns the path written, or None
    when the trainer was not set up far enough to have weights.
    """
    if getattr(trainer, "ema", None) is None or getattr(trainer, "optimizer", None) is None:
        return None
    wdir = Path(trainer.wdir)
    last = Path(trainer.last)
    tmp_last = wdir / f".last.pt.{os.getpid()}.tmp"
    discard = wdir / f".discard.pt.{os.getpid()}.tmp"
    saved = {name: getattr(trainer, name) for name in ("epoch", "last", "best", "save_period")}
    try:
        trainer.epoch = completed_epoch
        trainer.last = tmp_last
        trainer.best = discard  # save_model() writes best.pt when fitness == best_fitness
        trainer.save_period = -1
        trainer.save_model()
        os.replace(tmp_last, last)
    finally:
        for name, value in saved.items():
            setattr(trainer, name, value)
        for path in (tmp_last, discard):
            path.unlink(missing_ok=True)
    return last
