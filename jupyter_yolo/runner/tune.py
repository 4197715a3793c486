"""Tune jobs (kind ``tune``): hyperparameter search over a training request.

Locally the trials run one at a time with ultralytics' own evolution: its
:class:`~ultralytics.engine.tuner.Tuner` proposes each trial's parameters (mutating the best
trials so far, from its ``tune_results.ndjson``) and each trial is an ordinary training in this
process with our callbacks (a ``trial`` event per epoch, the stop file honoured between batches).
On Ray (the runner runs as a Ray job) the trials run in parallel under Ray Tune with an ASHA
early-stopping scheduler: :mod:`jupyter_yolo.runner.tune_ray`.

A trial that fails is recorded ``failed`` and the search goes on; a stop ends the current trial
``stopped`` and the job ``stopped`` with the table so far as its result. The best trial's weights
are kept as ``run/weights/best.pt``; the other trials' weights are removed as trials end.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from ..contract.tune import TuneResult
from ..jobs.tune_schema import TUNE_PARAMS_KEY, TuneParams
from .common import JobContext, apply_worker_plan, check_data, load_model, resolve_model
from .journal import strip_ansi
from .stop import StopRequested
from .tune_table import TrialsTable

RAY_EXECUTOR_ENV = "RAY_ADDRESS"
"""Set by Ray in a Ray job's entrypoint environment: the runner is then the driver of Ray Tune.
A local runner's environment is built from an allow-list without it
(:func:`jupyter_yolo.jobs.process.runner_environment`)."""

TRIALS_DIR = "trials"
"""``run/trials/trial<N>``: each trial's training output."""


def executor_here(request: dict[str, Any]) -> str:
    """``ray`` when this runner runs as a Ray job (the request chose Ray), else ``local``."""
    on_ray = bool(os.environ.get(RAY_EXECUTOR_ENV)) and request.get("executor") == "ray"
    return "ray" if on_ray else "local"


def trial_error(exc: BaseException) -> str:
    """A short message for a failed trial."""
    text = strip_ansi(str(exc)).strip().splitlines()
    message = f"{type(exc).__name__}: {text[0] if text else ''}".strip().rstrip(":")
    return message[:500]


def base_train_request(ctx: JobContext) -> dict[str, Any]:
    """The person's training request (as they wrote it) that ``best_request`` extends.

    The tune's placement (``executor``, ``resources``, ``accelerator_type``: at the top level of
    a tune request) goes with it, so "Train with the best" lands on the same kind of node.
    """
    from ..jobs.placement import PLACEMENT_FIELDS

    train = ctx.spec.request.get("train")
    base: dict[str, Any] = dict(train) if isinstance(train, dict) else {}
    for key in PLACEMENT_FIELDS:
        value = ctx.spec.request.get(key)
        if value is not None and key not in base:
            base[key] = value
    return base


def trial_args(ctx: JobContext) -> tuple[str, dict[str, Any], TuneParams]:
    """(model, training arguments shared by every trial, the search) from the job's params."""
    params = dict(ctx.spec.params)
    search: TuneParams = params.pop(TUNE_PARAMS_KEY)
    model = resolve_model(ctx, params.pop("model", None))
    params["data"] = check_data(params.get("data"))
    params.pop("resume", None)
    params.pop("executor", None)
    apply_worker_plan(ctx, params)
    params.update(epochs=search["epochs"], plots=False, val=True, exist_ok=True, save=True)
    return model, params, search


def keep_best(ctx: JobContext, table: TrialsTable, trial_dir: Path, trial: int) -> None:
    """Keep the weights of the best trial so far as run/weights/best.pt; drop the others'."""
    best = table.result()["best"]
    weights = trial_dir / "weights" / "best.pt"
    if best is not None and best["trial"] == trial and weights.is_file():
        target = ctx.run_dir / "weights" / "best.pt"
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".pt.tmp")
        shutil.copyfile(weights, tmp)
        os.replace(tmp, target)
        ctx.journal.artifact(target, "weights", again=True)
    shutil.rmtree(trial_dir / "weights", ignore_errors=True)


def run_tune(ctx: JobContext) -> dict[str, Any]:
    """Run a tune job here (one trial at a time) or, as a Ray job, on Ray Tune."""
    model, args, search = trial_args(ctx)
    executor = executor_here(ctx.spec.request)
    table = TrialsTable(
        ctx.journal,
        ctx.job_dir,
        task=ctx.spec.task,
        space=search["space"],
        base_request=base_train_request(ctx),
        executor=executor,
        iterations=search["iterations"],
    )
    if executor == "ray":
        from .tune_ray import run_ray_tune

        result = run_ray_tune(ctx, table, model, args, search)
    else:
        result = run_local_tune(ctx, table, model, args, search)
    return dict(result)


def _evolution(ctx: JobContext, model: str, args: dict[str, Any], search: TuneParams) -> Any:
    """The Tuner of ultralytics, used for its mutation of the best trials so far (not its loop)."""
    from ultralytics.engine.tuner import Tuner

    tuner_args = {
        **{k: v for k, v in args.items() if k not in ("project", "name", "exist_ok")},
        "model": model,
        "space": {k: (low, high) for k, (low, high) in search["space"].items()},
        "project": str(ctx.run_dir),
        "name": "evolution",
    }
    tuner = Tuner(tuner_args, model=object())  # the model only seeds its own trainer: unused
    Path(tuner.tune_dir).mkdir(parents=True, exist_ok=True)
    return tuner


def run_local_tune(
    ctx: JobContext, table: TrialsTable, model: str, args: dict[str, Any], search: TuneParams
) -> TuneResult:
    """The evolution of ultralytics, one trial at a time in this process."""
    tuner = _evolution(ctx, model, args, search)
    data = str(args["data"])
    epochs = search["epochs"]
    errors: list[str] = []
    for trial in range(1, search["iterations"] + 1):
        ctx.stop.check()
        hyp = {k: float(v) for k, v in tuner._mutate().items()}
        table.start(trial, hyp, epochs)
        trial_dir = ctx.run_dir / TRIALS_DIR / f"trial{trial}"
        try:
            fitness = _train_trial(
                ctx, table, trial, model_ref=model, args={**args, **hyp}, trial_dir=trial_dir
            )
        except StopRequested:
            table.end(trial, "stopped")
            shutil.rmtree(trial_dir / "weights", ignore_errors=True)
            ctx.partial_result = dict(table.result())
            raise
        except Exception as exc:  # a trial that fails is recorded and the search goes on
            errors.append(trial_error(exc))
            table.end(trial, "failed", errors[-1])
            fitness = None
        else:
            table.end(trial, "succeeded")
        failed = fitness is None
        tuner._save_local_result(
            tuner._result_record(
                trial,
                fitness or 0.0,
                hyp,
                {data: {} if failed else {"fitness": fitness}},
                {data: str(trial_dir)},
                [data] if failed else [],
            )
        )
        keep_best(ctx, table, trial_dir, trial)
        ctx.status.epochs_done = trial
        ctx.status.save()
    result = table.result()
    if result["best"] is None:
        raise RuntimeError(f"every trial failed; the first: {errors[0] if errors else 'unknown'}")
    return result


def _train_trial(
    ctx: JobContext,
    table: TrialsTable,
    trial: int,
    *,
    model_ref: str,
    args: dict[str, Any],
    trial_dir: Path,
) -> float | None:
    """Train one trial; returns its final fitness. Raises StopRequested on a stop."""
    model = load_model(model_ref)
    epochs = int(args["epochs"])

    def check(_: Any) -> None:
        ctx.stop.check()

    reported: set[int] = set()

    def epoch_end(trainer: Any) -> None:
        metrics = dict(getattr(trainer, "metrics", None) or {})
        epoch = int(trainer.epoch) + 1
        if epoch in reported or epoch > epochs:  # the final validation of best.pt
            table.final(trial, metrics, trainer.fitness)
            return
        reported.add(epoch)
        table.epoch(trial, epoch, epochs, metrics, trainer.fitness)
        ctx.stop.check()

    for event in ("on_train_batch_end", "on_val_batch_end"):
        model.add_callback(event, check)
    model.add_callback("on_fit_epoch_end", epoch_end)
    model.train(**{**args, "project": str(trial_dir.parent), "name": trial_dir.name})
    fitness = getattr(model.trainer, "fitness", None)
    return None if fitness is None else float(fitness)
