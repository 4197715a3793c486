"""The trials table of a tune job: ``trial`` events, ``trials.json`` and the final result.

One :class:`TrialsTable` lives in the runner process (locally the process that trains, on Ray the
Tune driver): it is the only writer of the job's events, and after every change it rewrites
:data:`~jupyter_yolo.contract.tune.TRIALS_FILE` atomically, so a reader never sees half a table.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from ..contract.files import write_json_atomic
from ..contract.tasks import headline, higher_is_better
from ..contract.tune import (
    TRIAL_EVENT,
    TRIALS_FILE,
    TrialEvent,
    TrialRecord,
    TrialStatus,
    TuneResult,
)
from .journal import Journal, number


def best_trial(trials: list[TrialRecord], metric: str) -> TrialRecord | None:
    """The trial with the best headline metric (fitness breaks ties and stands in when absent).

    Only trials that trained to their end or were pruned count: a failed or stopped trial's
    numbers are not comparable.
    """
    higher = higher_is_better(metric)
    candidates = [
        t
        for t in trials
        if t["status"] in ("succeeded", "pruned")
        and (t["metrics"].get(metric) is not None or t["fitness"] is not None)
    ]
    if not candidates:
        return None

    def key(trial: TrialRecord) -> tuple[float, float]:
        value = trial["metrics"].get(metric)
        fitness = trial["fitness"] if trial["fitness"] is not None else float("-inf")
        if value is None:
            return (float("-inf"), fitness)
        return (value if higher else -value, fitness)

    return max(candidates, key=key)


class TrialsTable:
    """Every trial of one tune job; emits a ``trial`` event and rewrites the file per change."""

    def __init__(
        self,
        journal: Journal,
        job_dir: Path,
        *,
        task: str,
        space: dict[str, list[float]],
        base_request: dict[str, Any],
        executor: str,
        iterations: int,
    ) -> None:
        self.journal = journal
        self.iterations = iterations
        self.path = job_dir / TRIALS_FILE
        self.metric = headline(task)
        self.space = space
        self.base_request = base_request
        self.executor = executor
        self.trials: dict[int, TrialRecord] = {}
        self._lock = threading.Lock()

    def _emit(self, event: TrialEvent) -> None:
        self.journal.emit(TRIAL_EVENT, **event)
        write_json_atomic(self.path, self.result())

    def start(self, trial: int, params: dict[str, float], epochs: int) -> None:
        """A trial started with ``params``."""
        clean = {k: float(v) for k, v in params.items()}
        with self._lock:
            self.trials[trial] = {
                "trial": trial,
                "status": "running",
                "params": clean,
                "epochs_done": 0,
                "metrics": {},
                "fitness": None,
                "history": [],
                "error": None,
            }
            self._emit(
                {
                    "trial": trial,
                    "status": "running",
                    "params": clean,
                    "epochs": epochs,
                    "iterations": self.iterations,
                }
            )

    def epoch(
        self, trial: int, epoch: int, epochs: int, metrics: dict[str, Any], fitness: Any
    ) -> None:
        """Trial ``trial`` completed ``epoch`` (1-based) with ``metrics`` (ultralytics' keys)."""
        value = number(metrics.get(self.metric))
        shown: dict[str, float | None] = {self.metric: value}
        with self._lock:
            record = self.trials[trial]
            record["epochs_done"] = epoch
            record["metrics"] = shown
            record["fitness"] = number(fitness)
            record["history"] = [*record["history"][: max(epoch - 1, 0)], value]
            self._emit(
                {
                    "trial": trial,
                    "status": "running",
                    "epoch": epoch,
                    "epochs": epochs,
                    "metrics": shown,
                    "fitness": record["fitness"],
                }
            )

    def final(self, trial: int, metrics: dict[str, Any], fitness: Any) -> None:
        """The trial's final numbers (its best weights validated); its ``end`` event shows them."""
        with self._lock:
            record = self.trials[trial]
            record["metrics"] = {self.metric: number(metrics.get(self.metric))}
            record["fitness"] = number(fitness)

    def end(self, trial: int, status: TrialStatus, error: str | None = None) -> None:
        """Trial ``trial`` ended ``status`` (its last epoch's numbers are its final ones)."""
        with self._lock:
            record = self.trials[trial]
            if record["status"] != "running":
                return  # already ended (a late report)
            record["status"] = status
            record["error"] = error
            event: TrialEvent = {
                "trial": trial,
                "status": status,
                "epoch": record["epochs_done"],
                "metrics": record["metrics"],
                "fitness": record["fitness"],
            }
            if error:
                event["error"] = error
            self._emit(event)

    def running(self) -> list[int]:
        """The trials that have not ended."""
        with self._lock:
            return [t for t, r in self.trials.items() if r["status"] == "running"]

    def result(self) -> TuneResult:
        """The table as a :class:`TuneResult` (``best_request``: the base with the best params)."""
        trials = [self.trials[k] for k in sorted(self.trials)]
        best = best_trial(trials, self.metric)
        best_request: dict[str, Any] | None = None
        if best is not None:
            best_request = {**self.base_request, **best["params"]}
            best_request.pop("kind", None)
            best_request = {"kind": "train", **best_request}
        return {
            "metric": self.metric,
            "space": self.space,
            "trials": trials,
            "best": best,
            "best_request": best_request,
            "executor": self.executor,
        }
