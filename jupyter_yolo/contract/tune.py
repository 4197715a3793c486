"""Hyperparameter tuning jobs (kind ``tune``): the search space, trial events and the result.

A tune request is a training request (``train``: everything a ``train`` job takes) plus what to
search::

    {"kind": "tune", "train": {"model": "yolov8n.yaml", "data": "shapes", "imgsz": 64, ...},
     "space": {"lr0": [0.001, 0.02], "momentum": [0.7, 0.95]},
     "iterations": 4, "epochs": 2}

``epochs`` is per trial. Locally the trials run one at a time with ultralytics' own evolution;
on Ray they run in parallel with Ray Tune and an early-stopping scheduler. The runner reports
each trial with ``trial`` events and ends with a :class:`TuneResult`.
"""

from __future__ import annotations

from typing import Literal, TypedDict

TUNE_KIND = "tune"

TRIAL_EVENT = "trial"
"""Event type of one trial's change: started, an epoch's metric, ended."""

TRIALS_FILE = "trials.json"
"""The job's trials table in its folder (the runner rewrites it atomically after each change)."""

#: What may be searched, with the bounds ultralytics' tuner uses (``Tuner.space``) and that a
#: request's own bounds must lie within: name -> (low, high).
SEARCH_SPACE: dict[str, tuple[float, float]] = {
    "lr0": (1e-5, 1e-1),
    "lrf": (0.01, 1.0),
    "momentum": (0.6, 0.98),
    "weight_decay": (0.0, 0.001),
    "warmup_epochs": (0.0, 5.0),
    "warmup_momentum": (0.0, 0.95),
    "box": (1.0, 20.0),
    "cls": (0.1, 4.0),
    "dfl": (0.4, 12.0),
    "hsv_h": (0.0, 0.1),
    "hsv_s": (0.0, 0.9),
    "hsv_v": (0.0, 0.9),
    "degrees": (0.0, 45.0),
    "translate": (0.0, 0.9),
    "scale": (0.0, 0.95),
    "shear": (0.0, 10.0),
    "flipud": (0.0, 1.0),
    "fliplr": (0.0, 1.0),
    "mosaic": (0.0, 1.0),
    "mixup": (0.0, 1.0),
}

DEFAULT_SPACE: dict[str, tuple[float, float]] = {
    "lr0": (1e-3, 2e-2),
    "momentum": (0.7, 0.95),
    "weight_decay": (0.0, 0.001),
}
"""What a tune request without ``space`` searches."""

MAX_ITERATIONS = 200
MAX_TRIAL_EPOCHS = 1000

TrialStatus = Literal["running", "succeeded", "failed", "stopped", "pruned"]
"""``pruned``: ended early by the early-stopping scheduler (Ray)."""


class TrialEvent(TypedDict, total=False):
    """A ``trial`` event: ``trial`` (1-based) and ``status`` always; the rest as known."""

    trial: int
    status: TrialStatus
    params: dict[str, float]
    epoch: int
    epochs: int
    iterations: int
    """How many trials the tune runs (on every ``running`` event that starts a trial)."""
    metrics: dict[str, float | None]
    """The task's headline metric and fitness after ``epoch`` (or at the end)."""
    fitness: float | None
    error: str


class TrialRecord(TypedDict):
    """One row of the trials table."""

    trial: int
    status: TrialStatus
    params: dict[str, float]
    epochs_done: int
    metrics: dict[str, float | None]
    fitness: float | None
    history: list[float | None]
    """The headline metric after each epoch, for the trial's curve."""
    error: str | None


class TuneResult(TypedDict):
    """The ``result`` of a finished tune job (and the content of :data:`TRIALS_FILE`)."""

    metric: str
    """The headline metric the trials are compared by: the task's headline key
    (:func:`~jupyter_yolo.contract.tasks.headline`, e.g. ``metrics/mAP50-95(B)``); the rows'
    ``metrics`` and ``history`` hold its values."""
    space: dict[str, list[float]]
    trials: list[TrialRecord]
    best: TrialRecord | None
    best_request: dict[str, object] | None
    """A ``train`` request with the best parameters: what "Train with the best" posts."""
    executor: str
