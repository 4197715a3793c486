"""A tune job on Ray: Ray Tune runs the trials in parallel with ASHA early stopping.

The runner is the Tune driver (it runs as a Ray job, ``RAY_ADDRESS`` set by Ray). Each trial is
a Ray Tune function trainable in a worker process of the cluster: an ordinary ultralytics
training into ``run/trials/<trial id>`` (the workspace is shared storage) that reports its
headline metric and fitness to Tune after every epoch. The trials never touch the event file:
:class:`TableCallback`, in the driver, turns Tune's trial lifecycle into ``trial`` events, so the
driver is the only writer and seq stays strictly increasing. :class:`StopFileStopper` stops every
trial once the job's stop file appears (or a stop signal reached the runner).

Ray Tune's own loggers are off (``TUNE_DISABLE_AUTO_CALLBACK_LOGGERS``): the trials table is
:data:`~jupyter_yolo.contract.tune.TRIALS_FILE`. The experiment state goes to ``run/ray``.
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path
from typing import Any

from ..contract.tasks import higher_is_better
from ..contract.tune import TrialStatus, TuneResult
from ..jobs.tune_schema import TuneParams
from .common import JobContext
from .stop import StopController, StopRequested
from .tune_table import TrialsTable

EPOCH_KEY = "epoch"
FITNESS_KEY = "fitness"
MIN_TRIAL_CPUS = 0.25


def trial_cpus(available: float, iterations: int) -> tuple[float, int]:
    """(CPUs per trial, trials at once): at least two at once when there are two trials.

    The CPUs free in the cluster are shared evenly by the trials that run at once, in quarters
    of a CPU and at most one each (a tiny training does not use more on a CPU node).
    """
    at_once = max(1, min(iterations, max(2, int(available))))
    share = min(1.0, available / at_once) if available > 0 else MIN_TRIAL_CPUS
    return max(MIN_TRIAL_CPUS, math.floor(share * 4) / 4), at_once


def trial_gpus(device: Any) -> int:
    """GPUs each trial asks Ray for: as many as the base request's ``device`` names."""
    text = str(device if device is not None else "cpu").strip()
    if text in ("", "cpu", "-1", "mps"):
        return 0
    return len(text.split(",")) if text.replace(",", "").isdigit() else 1


def run_trial(config: dict[str, Any]) -> None:
    """Ray Tune function trainable: one trial's training, reported to Tune after each epoch."""
    import ray
    from ray import tune

    from . import offline

    ray_util: Any = ray.util  # partly untyped

    workspace = Path(config["workspace"])
    cpus = max(1, round(float(config["cpus"])))
    offline.prepare(workspace, cpus)
    offline.allow_ray_cluster((ray_util.get_node_ip_address(),))  # a trial runs on a Ray node
    from .common import load_model

    stop = StopController(Path(config["stop_file"]))
    epochs = int(config["args"]["epochs"])
    metric = str(config["metric"])
    trial_dir = Path(config["trials_dir"]) / tune.get_context().get_trial_id()
    model = load_model(config["model"])
    reported: set[int] = set()

    def check(_: Any) -> None:
        stop.check()

    def epoch_end(trainer: Any) -> None:
        epoch = int(trainer.epoch) + 1
        if epoch in reported or epoch > epochs:  # the final validation of best.pt
            return
        reported.add(epoch)
        metrics = dict(getattr(trainer, "metrics", None) or {})
        value = metrics.get(metric)
        fitness = trainer.fitness
        tune.report(
            {
                metric: float(value) if value is not None else 0.0,
                FITNESS_KEY: float(fitness) if fitness is not None else 0.0,
                EPOCH_KEY: epoch,
            }
        )
        stop.check()

    for event in ("on_train_batch_end", "on_val_batch_end"):
        model.add_callback(event, check)
    model.add_callback("on_fit_epoch_end", epoch_end)
    args = {**config["args"], **config["params"]}
    try:
        model.train(**args, project=str(trial_dir.parent), name=trial_dir.name)
    except StopRequested:
        return


def _callback_classes() -> tuple[type[Any], type[Any]]:
    """The Tune callback and stopper classes (defined once ray is importable)."""
    from ray.tune import Callback, Stopper

    class TableCallback(Callback):
        """Tune's trial lifecycle as ``trial`` events (in the driver: the only writer)."""

        def __init__(
            self, table: TrialsTable, stop: StopController, epochs: int, metric: str
        ) -> None:
            self.table = table
            self.stop = stop
            self.epochs = epochs
            self.metric = metric
            self.numbers: dict[str, int] = {}

        def __getstate__(self) -> dict[str, Any]:
            """Tune saves its experiment state with the callbacks: the table stays here."""
            return {k: v for k, v in self.__dict__.items() if k != "table"}

        def number(self, trial: Any) -> int:
            if trial.trial_id not in self.numbers:
                self.numbers[trial.trial_id] = len(self.numbers) + 1
            return self.numbers[trial.trial_id]

        def on_trial_start(
            self, iteration: int, trials: list[Any], trial: Any, **info: Any
        ) -> None:
            params = {k: float(v) for k, v in trial.config["params"].items()}
            self.table.start(self.number(trial), params, self.epochs)

        def on_trial_result(
            self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
        ) -> None:
            epoch = int(result.get(EPOCH_KEY) or 0)
            if epoch > 0:
                metrics = {self.metric: result.get(self.metric)}
                self.table.epoch(
                    self.number(trial), epoch, self.epochs, metrics, result.get(FITNESS_KEY)
                )

        def on_trial_complete(
            self, iteration: int, trials: list[Any], trial: Any, **info: Any
        ) -> None:
            number = self.number(trial)
            done = self.table.trials[number]["epochs_done"] if number in self.table.trials else 0
            status: TrialStatus = "succeeded"
            if done < self.epochs:
                status = "stopped" if self.stop.requested() else "pruned"
            self.table.end(number, status)

        def on_trial_error(
            self, iteration: int, trials: list[Any], trial: Any, **info: Any
        ) -> None:
            error = None
            try:
                found = trial.get_error()
                error = str(found).strip().splitlines()[-1][:500] if found else None
            except Exception:  # the error file may be unreadable: the status says enough
                error = None
            number = self.number(trial)
            if number not in self.table.trials:
                self.table.start(number, dict(trial.config.get("params") or {}), self.epochs)
            self.table.end(number, "failed", error or "the trial failed (see the job's log)")

    class StopFileStopper(Stopper):
        """Stops every trial once the job's stop was requested (the stop file or a signal)."""

        def __init__(self, stop: StopController) -> None:
            self.stop = stop

        def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
            return self.stop.requested()

        def stop_all(self) -> bool:
            return self.stop.requested()

    return TableCallback, StopFileStopper


def run_ray_tune(
    ctx: JobContext, table: TrialsTable, model: str, args: dict[str, Any], search: TuneParams
) -> TuneResult:
    """Run the trials on the Ray cluster this runner is a job of; return the table."""
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    ray_api: Any = ray  # partly untyped
    from . import offline

    offline.allow_ray_cluster()  # the GCS host of RAY_ADDRESS: the runner's guard lets it through
    ray.init(address=os.environ.get("RAY_ADDRESS") or "auto", log_to_driver=False)
    offline.allow_ray_cluster((ray_api.util.get_node_ip_address(),))
    try:
        resources: dict[str, float] = ray_api.available_resources()
        available = float(resources.get("CPU", 0.0))
        cpus, at_once = trial_cpus(available, search["iterations"])
        ctx.journal.log(
            f"Ray Tune: {search['iterations']} trials, up to {at_once} at once, "
            f"{cpus:g} CPU each ({available:g} CPUs free), ASHA early stopping"
        )
        table_callback, stopper = _callback_classes()
        metric = table.metric
        trials_dir = ctx.run_dir / "trials"
        trials_dir.mkdir(parents=True, exist_ok=True)
        config = {
            "params": {k: tune.uniform(low, high) for k, (low, high) in search["space"].items()},
            "args": args,
            "model": model,
            "metric": metric,
            "workspace": str(ctx.spec.workspace),
            "stop_file": str(ctx.stop.stop_file),
            "trials_dir": str(trials_dir),
            "cpus": cpus,
        }
        gpus = float(trial_gpus(args.get("device")))
        trainable = tune.with_resources(run_trial, {"cpu": cpus, "gpu": gpus})
        scheduler = ASHAScheduler(
            time_attr=EPOCH_KEY,
            max_t=search["epochs"],
            grace_period=1,
            reduction_factor=2,
        )
        callback = table_callback(table, ctx.stop, search["epochs"], metric)
        tuner = tune.Tuner(
            trainable,
            param_space=config,
            tune_config=tune.TuneConfig(
                metric=metric,
                mode="max" if higher_is_better(metric) else "min",
                num_samples=search["iterations"],
                max_concurrent_trials=at_once,
                scheduler=scheduler,
            ),
            run_config=tune.RunConfig(
                name="tune",
                storage_path=str(ctx.run_dir / "ray"),
                stop=stopper(ctx.stop),
                callbacks=[callback],
                verbose=0,
            ),
        )
        tuner.fit()
    finally:
        ray.shutdown()
    for number in table.running():  # never reported an end (the driver stopped them)
        table.end(number, "stopped" if ctx.stop.requested() else "failed", None)
    ids = {number: trial_id for trial_id, number in callback.numbers.items()}
    _keep_best_weights(ctx, table, trials_dir, ids)
    result = table.result()
    if ctx.stop.requested():
        ctx.partial_result = dict(result)
        raise StopRequested(ctx.stop.reason)
    if result["best"] is None:
        raise RuntimeError("every trial failed (see the trials table and the job's log)")
    return result


def _keep_best_weights(
    ctx: JobContext, table: TrialsTable, trials_dir: Path, ids: dict[int, str]
) -> None:
    """Copy the best trial's best.pt to run/weights/best.pt; drop every trial's weights."""
    best = table.result()["best"]
    if best is not None and best["trial"] in ids:
        weights = trials_dir / ids[best["trial"]] / "weights" / "best.pt"
        if weights.is_file():
            target = ctx.run_dir / "weights" / "best.pt"
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(".pt.tmp")
            shutil.copyfile(weights, tmp)
            os.replace(tmp, target)
            ctx.journal.artifact(target, "weights", again=True)
    for folder in trials_dir.iterdir() if trials_dir.is_dir() else []:
        shutil.rmtree(folder / "weights", ignore_errors=True)
