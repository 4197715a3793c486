"""The four job kinds on top of ultralytics: train and val here, predict and export beside.

Each ``run_*`` function returns the result summary (a JSON-able dict) or raises. ultralytics is
imported inside the functions, after :func:`jupyter_yolo.runner.offline.prepare` has run.
Every run writes into ``JOB_DIR/run`` (``project=JOB_DIR, name="run", exist_ok=True``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..contract.tasks import headline
from . import speed
from .callbacks import TrainingReporter, metric_fields, save_interrupted_checkpoint, task_metrics
from .common import (
    JobContext,
    JobInputError,
    apply_worker_plan,
    check_data,
    load_model,
    resolve_model,
    stop_checker,
)
from .ddp import device_count, run_ddp_train
from .export import run_export
from .journal import number
from .predict import run_predict
from .results import ResultsCollector
from .stop import StopRequested
from .tune import run_tune

__all__ = ["TASKS", "JobContext", "JobInputError", "run_export", "run_predict"]

# Arguments a resumed training may change (ultralytics ignores the others, with a warning).
RESUME_OVERRIDES = (
    "imgsz",
    "batch",
    "device",
    "workers",
    "cache",
    "patience",
    "save_period",
    "val",
    "plots",
    "close_mosaic",
    "time",
)


# -- train ---------------------------------------------------------------------------------------
def _checkpoint_epochs(path: Path) -> tuple[int, int] | None:
    """(last completed epoch, total epochs) of a training checkpoint, or None if unreadable."""
    from ultralytics.utils import patches

    torch_load: Callable[..., Any] = patches.torch_load
    try:
        ckpt = torch_load(path, map_location="cpu")
    except Exception:
        return None
    if not isinstance(ckpt, dict):
        return None
    args = ckpt.get("train_args") or {}
    epoch = ckpt.get("epoch", -1)
    epochs = args.get("epochs", 0) if isinstance(args, dict) else 0
    has_optimizer = ckpt.get("optimizer") is not None
    return (int(epoch) if has_optimizer else -1), int(epochs or 0)


def run_train(ctx: JobContext) -> dict[str, Any]:
    """Train (or resume) a model; returns the summary with the final metrics."""
    params = dict(ctx.spec.params)
    last = ctx.run_dir / "weights" / "last.pt"
    model_arg = params.pop("model", None)
    data = check_data(params.get("data"))
    params["data"] = data
    plan = speed.plan_for_job(params, ctx.cpus)
    speed.apply_to_args(plan, params)
    apply_worker_plan(ctx, params)
    speed.note_capped_workers(plan, params.get("workers"))
    ctx.journal.emit("log", message=speed.summary_line(plan), level="info", speed=plan)
    for line in speed.describe_plan(plan):
        print(line, flush=True)  # the reasons, in the job's log
    params.pop("resume", None)
    params.update(ctx.output_args(), save=True)

    resume_from: Path | None = None
    if ctx.spec.resume:
        state = _checkpoint_epochs(last) if last.exists() else None
        if state is None:
            ctx.journal.warning(
                "resume_restart",
                "there is no readable run/weights/last.pt to resume from; training restarts from "
                "the original model.",
            )
        elif state[0] < 0:
            ctx.journal.warning(
                "resume_restart",
                "the stopped run had not completed an epoch; training restarts from the original "
                "model at epoch 1.",
            )
        elif state[1] and state[0] + 1 >= state[1]:
            ctx.journal.log("all epochs had completed before the interruption; validating last.pt")
            return _finish_completed(ctx, last, data, params)
        else:
            resume_from = last
            ctx.journal.log(f"resuming from run/weights/last.pt at epoch {state[0] + 2}")

    if resume_from is not None:
        model = load_model(str(resume_from))
        train_args = {k: params[k] for k in RESUME_OVERRIDES if k in params}
        train_args.update(resume=str(resume_from), data=data)
    else:
        model = load_model(resolve_model(ctx, model_arg))
        train_args = params

    def epoch_done(epoch: int) -> None:
        ctx.status.epochs_done = epoch
        ctx.status.save()

    reporter = TrainingReporter(
        ctx.journal, ctx.stop, ctx.job_dir, on_epoch_done=epoch_done, task=ctx.spec.task
    )
    reporter.attach(model)
    speed.attach_to_model(plan, train_args, model)
    collector = ResultsCollector(ctx)
    if device_count(train_args.get("device")) > 1:  # ultralytics' DDP launch: see runner/ddp.py
        return run_ddp_train(ctx, model, train_args, reporter, collector)
    collector.attach(model)
    try:
        model.train(**train_args)
    except StopRequested:
        _after_stop(ctx, model, reporter)
        raise
    trainer: Any = model.trainer
    collector.write(Path(trainer.best) if Path(trainer.best).exists() else None, model)
    final = _validator_metrics(trainer) or reporter.final_metrics or {}
    ctx.status.epochs_done = reporter.epochs_done
    return {
        "kind": "train",
        "task": ctx.spec.task,
        "epochs": int(trainer.epochs),
        "epochs_done": reporter.epochs_done,
        "metrics": {**metric_fields(final), "fitness": number(final.get("fitness"))},
        "task_metrics": task_metrics(final, ctx.spec.task),
        "headline": headline(ctx.spec.task),
        "best": ctx.rel(trainer.best) if Path(trainer.best).exists() else None,
        "last": ctx.rel(trainer.last) if Path(trainer.last).exists() else None,
        "save_dir": ctx.rel(trainer.save_dir),
        "speed": plan,
    }


def _validator_metrics(trainer: Any) -> dict[str, Any] | None:
    metrics = getattr(getattr(trainer, "validator", None), "metrics", None)
    results = getattr(metrics, "results_dict", None)
    return dict(results) if isinstance(results, dict) else None


def _after_stop(ctx: JobContext, model: Any, reporter: TrainingReporter) -> None:
    """After a stop inside training: make last.pt resumable and record how far it got."""
    trainer = getattr(model, "trainer", None)
    for loader_name in ("train_loader", "test_loader"):
        loader = getattr(trainer, loader_name, None)
        close = getattr(loader, "close", None)
        if close is not None:
            with contextlib.suppress(Exception):  # leftovers are ended with the session anyway
                close()
    if trainer is None:
        return
    if reporter.in_epoch:
        completed = int(trainer.epoch) - 1
        path = save_interrupted_checkpoint(trainer, completed)
        if path is not None:
            ctx.journal.artifact(path, "weights", again=True)
            where = (
                f"resume redoes epoch {completed + 2}"
                if completed >= 0
                else "no epoch had completed, so resume restarts training from epoch 1"
            )
            epoch = int(trainer.epoch) + 1
            ctx.journal.log(f"stopped during epoch {epoch}; saved last.pt ({where})")
    ctx.status.epochs_done = reporter.epochs_done
    ctx.partial_result = {
        "kind": "train",
        "epochs": int(getattr(trainer, "epochs", 0) or 0),
        "epochs_done": reporter.epochs_done,
        "last": ctx.rel(trainer.last) if Path(trainer.last).exists() else None,
        "last_epoch": {
            k: v
            for k, v in (reporter.last_epoch_event or {}).items()
            if k not in {"seq", "time", "type"}
        }
        or None,
    }


def _finish_completed(
    ctx: JobContext, last: Path, data: str, params: dict[str, Any]
) -> dict[str, Any]:
    """Resume of a run whose epochs had all completed: validate last.pt and report it."""
    model = load_model(str(last))
    model.add_callback("on_val_batch_end", stop_checker(ctx))
    collector = ResultsCollector(ctx)
    collector.attach(model)
    args = {k: params[k] for k in ("imgsz", "batch", "device", "workers") if k in params}
    metrics = model.val(data=data, **args, **ctx.output_args(), plots=False)
    collector.write(last, model)
    state = _checkpoint_epochs(last)
    epochs = state[1] if state else 0
    ctx.status.epochs_done = epochs
    results = dict(metrics.results_dict)
    return {
        "kind": "train",
        "task": ctx.spec.task,
        "epochs": epochs,
        "epochs_done": epochs,
        "metrics": {**metric_fields(results), "fitness": number(results.get("fitness"))},
        "task_metrics": task_metrics(results, ctx.spec.task),
        "headline": headline(ctx.spec.task),
        "best": ctx.rel(ctx.run_dir / "weights" / "best.pt")
        if (ctx.run_dir / "weights" / "best.pt").exists()
        else None,
        "last": ctx.rel(last),
        "save_dir": ctx.rel(ctx.run_dir),
    }


# -- val -----------------------------------------------------------------------------------------
def run_val(ctx: JobContext) -> dict[str, Any]:
    """Validate a model on a dataset; returns the metrics."""
    params = dict(ctx.spec.params)
    weights = resolve_model(ctx, params.pop("model", None))
    model = load_model(weights)
    params["data"] = check_data(params.get("data"))
    apply_worker_plan(ctx, params)
    params.update(ctx.output_args())
    model.add_callback("on_val_start", stop_checker(ctx))
    model.add_callback("on_val_batch_end", stop_checker(ctx))
    collector = ResultsCollector(ctx)
    collector.attach(model)
    metrics = model.val(**params)
    collector.write(Path(weights), model)
    results = dict(metrics.results_dict)
    names = getattr(metrics, "names", None) or {}
    per_class: dict[str, float | None] = {}
    maps = getattr(metrics, "maps", None)
    if maps is not None and isinstance(names, dict):
        for index, name in names.items():
            if int(index) < len(maps):
                per_class[str(name)] = number(maps[int(index)])
    for plot in sorted(ctx.run_dir.glob("*.png")) + sorted(ctx.run_dir.glob("*.jpg")):
        ctx.journal.artifact(plot, "plot")
    return {
        "kind": "val",
        "task": ctx.spec.task,
        "metrics": {**metric_fields(results), "fitness": number(results.get("fitness"))},
        "task_metrics": task_metrics(results, ctx.spec.task),
        "headline": headline(ctx.spec.task),
        "per_class_mAP50-95": per_class,
        "speed_ms": {k: number(v, 3) for k, v in (getattr(metrics, "speed", None) or {}).items()},
        "save_dir": ctx.rel(ctx.run_dir),
    }


TASKS: dict[str, Callable[[JobContext], dict[str, Any]]] = {
    "train": run_train,
    "val": run_val,
    "predict": run_predict,
    "export": run_export,
    "tune": run_tune,
}
