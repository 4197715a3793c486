"""Validation of ``tune`` job requests: a training request plus the search (issue 16).

The base request (``train``) is validated exactly as a ``train`` job (the same
:class:`~jupyter_yolo.jobs.schema.JobValidator` path: paths, model, dataset, device); the search
is checked against the contract's :data:`~jupyter_yolo.contract.tune.SEARCH_SPACE`. The runner
gets the training parameters as a train job gets them, plus ``params["tune"]``
(:class:`TuneParams`): the space, the number of trials and the epochs per trial.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any, TypedDict

from ..contract.tune import (
    DEFAULT_SPACE,
    MAX_ITERATIONS,
    MAX_TRIAL_EPOCHS,
    SEARCH_SPACE,
    TUNE_KIND,
)
from ..errors import InvalidRequest
from ..safeyaml import describe

if TYPE_CHECKING:
    from .schema import JobValidator, ValidatedJob

TUNE_KEYS = ("kind", "name", "train", "space", "iterations", "epochs")
"""The keys a tune request accepts, besides where it runs (``executor``, ``resources``,
``accelerator_type``: :mod:`jupyter_yolo.jobs.placement`, taken out before validation)."""
TUNE_PARAMS_KEY = "tune"
"""Where the search lies in the runner's parameters (``job.json`` ``params``)."""


class TuneParams(TypedDict):
    """``params["tune"]`` of a tune job: what the runner searches."""

    space: dict[str, list[float]]
    iterations: int
    epochs: int


def _count(body: dict[str, Any], key: str, high: int) -> int:
    value = body.get(key)
    if value is None:
        raise InvalidRequest(f"A tune job needs {key!r} (an integer from 1 to {high}).")
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"'{key}' must be an integer from 1 to {high}, got {describe(value)}.")
    if not 1 <= value <= high:
        raise InvalidRequest(f"'{key}' must be from 1 to {high}, got {value}.")
    return value


def _bound(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidRequest(f"'space.{name}' bounds must be numbers, got {describe(value)}.")
    number = float(value)
    if not math.isfinite(number):
        raise InvalidRequest(f"'space.{name}' bounds must be finite numbers.")
    return number


def check_space(space: Any) -> dict[str, list[float]]:
    """The search space of a request: ``{name: [low, high]}`` inside the contract's bounds."""
    if space is None:
        return {name: [low, high] for name, (low, high) in DEFAULT_SPACE.items()}
    if not isinstance(space, dict) or not space:
        raise InvalidRequest(
            "'space' must be an object of parameter: [low, high], e.g. "
            '{"lr0": [0.001, 0.02]}; leave it out to search lr0, momentum and weight_decay.'
        )
    out: dict[str, list[float]] = {}
    for name, bounds in space.items():
        if name not in SEARCH_SPACE:
            raise InvalidRequest(
                f"'space' cannot search {describe(name)}; searchable: "
                f"{', '.join(sorted(SEARCH_SPACE))}."
            )
        if not isinstance(bounds, list) or len(bounds) != 2:
            raise InvalidRequest(
                f"'space.{name}' must be [low, high] (two numbers), got {describe(bounds)}."
            )
        low, high = (_bound(name, b) for b in bounds)
        allowed_low, allowed_high = SEARCH_SPACE[name]
        if not low < high:
            raise InvalidRequest(f"'space.{name}': low ({low}) must be less than high ({high}).")
        if low < allowed_low or high > allowed_high:
            raise InvalidRequest(
                f"'space.{name}' must lie within [{allowed_low}, {allowed_high}], "
                f"got [{low}, {high}]."
            )
        out[name] = [low, high]
    return out


def validate_tune(validator: JobValidator, body: dict[str, Any]) -> ValidatedJob:
    """Validate a ``{"kind": "tune", "train": {...}, ...}`` body (400s that name the key)."""
    unknown = sorted(set(body) - set(TUNE_KEYS))
    if unknown:
        raise InvalidRequest(
            f"Unknown key(s) for a tune job: {', '.join(unknown)}. "
            f"Accepted: {', '.join(k for k in TUNE_KEYS if k != 'kind')} (the training "
            f"parameters go inside 'train')."
        )
    train = body.get("train")
    if not isinstance(train, dict):
        raise InvalidRequest(
            "A tune job needs 'train': the training request to tune (an object such as "
            '{"model": "yolov8n.yaml", "data": "shapes", "imgsz": 64}).'
        )
    if train.get("kind", "train") != "train":
        raise InvalidRequest("'train' must be a training request (its 'kind' can only be train).")
    space = check_space(body.get("space"))
    if set(space) & set(AUTO_IGNORES) and str(train.get("optimizer", "auto")).lower() == "auto":
        train = {**train, "optimizer": TUNE_OPTIMIZER}  # the request keeps it: best_request too
        body = {**body, "train": train}
    iterations = _count(body, "iterations", MAX_ITERATIONS)
    epochs = _count(body, "epochs", MAX_TRIAL_EPOCHS)
    device = train.get("device")
    if isinstance(device, str):  # before the device checks: a missing GPU is not the point
        check_one_device(device)
    try:
        inner = validator.validate({**train, "kind": "train"})
    except InvalidRequest as exc:
        raise InvalidRequest(f"'train': {exc.message}") from None
    check_one_device(inner.params.get("device"))  # the server's default device included
    tune: TuneParams = {"space": space, "iterations": iterations, "epochs": epochs}
    params = {**inner.params, TUNE_PARAMS_KEY: tune}
    from .schema import COMMON

    name = COMMON["name"].validate("name", body["name"]) if "name" in body else inner.name
    return dataclasses.replace(inner, kind=TUNE_KIND, name=name, params=params, request=dict(body))


AUTO_IGNORES = ("lr0", "momentum")
"""What ultralytics' ``optimizer=auto`` ignores: it picks its own learning rate and momentum."""
TUNE_OPTIMIZER = "SGD"
"""The optimizer a tune of ``lr0`` or ``momentum`` trains with when the base request says
``auto`` or nothing: with ``auto`` every trial would train alike whatever its sampled values
(and "Train with the best" would ignore them too). It is written into the request's ``train``,
so the best request carries it."""

ONE_DEVICE = (
    "a tune runs each trial on one device; use device 0, or several trials in parallel on Ray"
)


def check_one_device(device: Any) -> None:
    """Refuse a base request on several GPUs (``"0,1"``): no trial can train that way.

    A local tune runs its trials in the runner, where ultralytics' DDP launch would have to
    pickle the trial callbacks (they hold locks); on Ray, ``tune.report`` cannot be called
    from DDP rank subprocesses. Several GPUs serve a tune as several trials at once on Ray.
    """
    from .schema import device_keys

    if not isinstance(device, str):
        return
    text = device.replace(" ", "").lower().removeprefix("cuda:").strip("[]()")
    if len(device_keys(text)) > 1:
        raise InvalidRequest(f"'train.device' is {device!r}: {ONE_DEVICE}.")


def is_tune(body: dict[str, Any]) -> bool:
    """Whether a request body is a tune request."""
    return body.get("kind") == TUNE_KIND
