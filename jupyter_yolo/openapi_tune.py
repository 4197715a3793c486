"""The OpenAPI schemas of tune jobs: the request (``TuneJobRequest``) and the trials table.

Built from :mod:`.openapi`'s helpers and the contract (:mod:`jupyter_yolo.contract.tune`): the
searchable parameters with their bounds, the limits on trials and epochs, the trial statuses.
:func:`.openapi.job_request_schemas` adds the request and :func:`.openapi.build_spec` the rest.
"""

from __future__ import annotations

from typing import Any, get_args

from .contract.tune import MAX_ITERATIONS, MAX_TRIAL_EPOCHS, SEARCH_SPACE, TrialStatus
from .jobs.placement import PLACEMENT_FIELDS
from .openapi import INTEGER, NUMBER, STRING, _int, _nullable, _object, _ref

NULLABLE_NUMBER = _nullable(NUMBER)


def _bounds(low: float, high: float) -> dict[str, Any]:
    number = {"type": "number", "minimum": low, "maximum": high}
    return {
        "type": "array",
        "items": number,
        "minItems": 2,
        "maxItems": 2,
        "description": f"[low, high] within [{low:g}, {high:g}], low < high",
    }


def tune_request_schema(train: dict[str, Any]) -> dict[str, Any]:
    """``TuneJobRequest`` from the train request's schema (the base request inside ``train``)."""
    base = {
        k: v for k, v in train["properties"].items() if k != "kind" and k not in PLACEMENT_FIELDS
    }
    placement = {k: v for k, v in train["properties"].items() if k in PLACEMENT_FIELDS}
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["kind", "train", "iterations", "epochs"],
        "properties": {
            "kind": {"type": "string", "enum": ["tune"]},
            "name": base.get("name", STRING),
            "train": {
                "type": "object",
                "additionalProperties": False,
                "description": "the training request to tune (validated as a train job); its "
                "'epochs' are those of the full training that best_request starts",
                "required": [k for k in train.get("required", []) if k != "kind"],
                "properties": {"kind": {"type": "string", "enum": ["train"]}, **base},
            },
            "space": {
                "type": "object",
                "description": "what to search: parameter -> [low, high] (default: lr0, "
                "momentum and weight_decay)",
                "minProperties": 1,
                "additionalProperties": False,
                "properties": {k: _bounds(lo, hi) for k, (lo, hi) in SEARCH_SPACE.items()},
            },
            "iterations": {**_int(1, MAX_ITERATIONS), "description": "trials"},
            "epochs": {**_int(1, MAX_TRIAL_EPOCHS), "description": "epochs per trial"},
            **placement,
        },
    }


TRIAL_STATUS = {"type": "string", "enum": list(get_args(TrialStatus))}
METRICS = {"type": "object", "additionalProperties": NULLABLE_NUMBER}

TUNE_SCHEMAS: dict[str, Any] = {
    "TrialRecord": _object(
        ["trial", "status", "params", "epochs_done", "metrics", "fitness", "history", "error"],
        trial=INTEGER,
        status=TRIAL_STATUS,
        params={"type": "object", "additionalProperties": NUMBER},
        epochs_done=INTEGER,
        metrics={**METRICS, "description": "the task's headline metric (ultralytics' key)"},
        fitness=NULLABLE_NUMBER,
        history={
            "type": "array",
            "items": NULLABLE_NUMBER,
            "description": "the headline metric after each epoch",
        },
        error=_nullable(STRING),
    ),
    "TuneResult": _object(
        ["metric", "space", "trials", "best", "best_request", "executor"],
        metric={"type": "string", "description": "the headline metric trials are ranked by"},
        space={"type": "object", "additionalProperties": {"type": "array", "items": NUMBER}},
        trials={"type": "array", "items": _ref("TrialRecord")},
        best=_nullable(_ref("TrialRecord")),
        best_request={
            **_nullable(_ref("TrainJobRequest")),
            "description": "a train request with the best parameters and the full epochs",
        },
        executor=STRING,
    ),
}
