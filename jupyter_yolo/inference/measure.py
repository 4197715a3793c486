"""The measured trial: every candidate backend predicts the same images, timed side by side.

Images: up to 16 of the job's own, topped up with the dataset's validation images (else
generated ones). Each backend first predicts all of them once on the same square letterbox (its
outputs for the comparison, and the warm-up). Then the backends take turns for a few rounds,
in a shuffled order, on the first 4 images: in each turn one untimed prediction warms the
backend up again after the others ran, then each image is timed. The latency is the median over
all timed predictions (end to end: pre-processing, inference, post-processing). A backend more
than 3 times slower than the fastest after the first round is not timed again.

Agreement is judged by the model's task (:mod:`.agreement`, :func:`.tolerance.tolerance_for`):
FP32/FP16 exports that find nothing to compare (a model that detects nothing) are accepted,
being the same network; INT8 needs a verdict on at least 10 compared instances (or 8 images for
classify, semantic and depth). Runner and benchmark processes only.
"""

from __future__ import annotations

import os
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import backends as table
from .agreement import compare
from .backends import Backend
from .cache import WeightsCache
from .export import Calibration, ExportResult, ensure_export
from .loader import (
    dataset_val_images,
    generated_images,
    image_files,
    load_yolo,
    outputs,
    read_images,
)
from .threads import ThreadSettings
from .tolerance import tolerance_for

TRIAL_IMAGES = 4  # timed
AGREEMENT_IMAGES = 16  # compared with PyTorch (the timed ones first)
LOSSY_MIN_BOXES = 10  # INT8 is trusted on at least this many compared instances
LOSSY_MIN_IMAGES = 8  # ... or images, for the tasks compared image by image
WHOLE_IMAGE_TASKS = frozenset({"classify", "semantic", "depth"})
TRIAL_ROUNDS = 3
CONF_FLOOR = 0.005
DROP_FACTOR = 3.0


@dataclass
class Loaded:
    """A backend ready to predict."""

    backend: Backend
    model: Any
    path: Path
    export: ExportResult | None = None


def trial_images(
    source: Path | None, data: Path | None, imgsz: int, limit: int = AGREEMENT_IMAGES
) -> tuple[list[Any], str]:
    """Images for the trial: the job's own, then the dataset's val images, else generated."""
    images: list[Any] = []
    notes = []
    if source is not None:
        images = read_images(image_files(source, limit))
        if images:
            notes.append(f"{len(images)} image(s) of the job's source")
    if len(images) < limit and data is not None:
        more = read_images(dataset_val_images(data, limit - len(images)))
        if more:
            images += more
            notes.append(f"{len(more)} validation image(s) of {data.parent.name}")
    if not images:
        images = generated_images(TRIAL_IMAGES * 2, imgsz)
        notes.append(f"{len(images)} generated image(s)")
    return images, " and ".join(notes)


def _predict_args(imgsz: int, device: str) -> dict[str, Any]:
    return {"imgsz": imgsz, "conf": CONF_FLOOR, "device": device, "verbose": False, "save": False}


def measure(
    loaded: dict[str, Loaded],
    images: list[Any],
    *,
    imgsz: int,
    device: str,
    task: str | None = None,
    rounds: int = TRIAL_ROUNDS,
    timed: int = TRIAL_IMAGES,
    check: Callable[[], None] | None = None,
) -> tuple[dict[str, list[float]], dict[str, list[list[dict[str, Any]]]]]:
    """Latencies and outputs (in ``task``'s form, see :func:`.loader.outputs`) of each backend.

    Per-image latencies (seconds) on the first ``timed`` images; outputs on all of them.
    """
    args = _predict_args(imgsz, device)
    # outputs on the same square letterbox for all: PyTorch otherwise pads only to the stride
    # multiple, and a different border is a different input, not a different backend
    square = {**args, "rect": False}
    found: dict[str, list[list[dict[str, Any]]]] = {}
    for name, item in loaded.items():
        found[name] = [outputs(item.model.predict(image, **square)[0], task) for image in images]
        if check is not None:
            check()
    samples: dict[str, list[float]] = {name: [] for name in loaded}
    names = list(loaded)
    running = set(names)
    for round_index in range(rounds):
        order = list(names)
        random.Random(round_index).shuffle(order)  # no backend always follows the same one
        for name in order:
            if name not in running:
                continue
            model = loaded[name].model
            model.predict(images[0], **args)
            for image in images[:timed]:
                started = time.perf_counter()
                model.predict(image, **args)
                samples[name].append(time.perf_counter() - started)
            if check is not None:
                check()
        if round_index == 0 and len(running) > 1:
            fastest = min(statistics.median(samples[n]) for n in running)
            running = {n for n in running if statistics.median(samples[n]) <= DROP_FACTOR * fastest}
    return samples, found


def judge(
    task: str | None,
    reference: list[list[dict[str, Any]]],
    candidate: list[list[dict[str, Any]]],
    precision: str,
) -> dict[str, Any]:
    """Agreement figures of one backend's outputs with PyTorch's, by ``task``'s measure."""
    needed = 1
    if precision == "int8":
        needed = LOSSY_MIN_IMAGES if task in WHOLE_IMAGE_TASKS else LOSSY_MIN_BOXES
    return compare(
        reference,
        candidate,
        tolerance_for(task, precision),
        floor=CONF_FLOOR,
        min_compared=needed,
    )


def decide(
    latency_ms: dict[str, float], agreement: dict[str, dict[str, Any]]
) -> tuple[str, list[str]]:
    """The fastest backend that agrees with PyTorch, and the list of those that agree."""
    eligible = []
    for name in latency_ms:
        if name == "pytorch":
            eligible.append(name)
            continue
        figures = agreement.get(name) or {}
        verdict = figures.get("agree")
        precise = table.get(name).precision != "int8"
        if verdict is True or (verdict is None and precise):
            eligible.append(name)
    choice = min(eligible, key=lambda n: latency_ms[n])
    return choice, eligible


def load_backend(
    backend: Backend,
    weights: Path,
    cache: WeightsCache,
    *,
    imgsz: int,
    device: str,
    task: str | None,
    calibration: Calibration | None,
    check: Callable[[], None] | None,
    log: Callable[[str], None],
    reference: Any = None,
) -> Loaded:
    """``backend`` ready to predict: the .pt itself, or its export (made when missing)."""
    if not backend.exported:
        return Loaded(
            backend, reference if reference is not None else load_yolo(weights, task), weights
        )
    made = ensure_export(
        cache,
        backend,
        weights,
        imgsz=imgsz,
        device=device,
        calibration=calibration,
        check=check,
        log=log,
    )
    return Loaded(backend, load_yolo(made.path, task), made.path, made)


def run_trial(
    weights: Path,
    cache: WeightsCache,
    *,
    reference: Any = None,
    candidates: list[Backend],
    skipped: dict[str, str],
    imgsz: int,
    device: str,
    task: str | None,
    images: list[Any],
    images_note: str,
    calibration: Calibration | None,
    settings: ThreadSettings,
    env: dict[str, Any],
    rounds: int = TRIAL_ROUNDS,
    check: Callable[[], None] | None = None,
    log: Callable[[str], None] = print,
) -> tuple[dict[str, Any], dict[str, Loaded]]:
    """Export, load, time and compare every candidate; return the record and what was loaded."""
    started = time.monotonic()
    load_before = loadavg()
    skipped = dict(skipped)
    loaded: dict[str, Loaded] = {}
    for backend in candidates:
        try:
            loaded[backend.name] = load_backend(
                backend,
                weights,
                cache,
                imgsz=imgsz,
                device=device,
                task=task,
                calibration=calibration if backend.needs_data else None,
                check=check,
                log=log,
                reference=reference,
            )
        except Exception as exc:  # one candidate failing must not fail the job (stops still do)
            if backend.name == "pytorch":
                raise
            kind = task or "detect"
            skipped[backend.name] = f"could not be prepared for this {kind} model: {exc}"
            log(f"{backend.label} left out of the trial: {exc}")
        if check is not None:
            check()
    log(f"measuring {', '.join(loaded)} on {images_note} at imgsz {imgsz}")
    samples, found = measure(
        loaded, images, imgsz=imgsz, device=device, task=task, rounds=rounds, check=check
    )
    latency_ms = {n: round(statistics.median(s) * 1000, 2) for n, s in samples.items() if s}
    agreement = {
        name: judge(task, found["pytorch"], found[name], loaded[name].backend.precision)
        for name in loaded
        if name != "pytorch"
    }
    choice, eligible = decide(latency_ms, agreement)
    record = {
        "choice": choice,
        "task": task or "detect",
        "measured_at": time.time(),
        "environment": env,
        "latency_ms": latency_ms,
        "samples": {n: len(s) for n, s in samples.items()},
        "agreement": agreement,
        "eligible": eligible,
        "skipped": skipped,
        "exports": {
            name: {"key": item.export.key, "seconds": item.export.meta.get("seconds")}
            for name, item in loaded.items()
            if item.export is not None
        },
        "trial": {
            "images": images_note,
            "rounds": rounds,
            "conf_floor": CONF_FLOOR,
            "seconds": round(time.monotonic() - started, 2),
            "loadavg_before": load_before,
            "loadavg_after": loadavg(),
        },
        "threads": settings.as_dict(),
    }
    return record, loaded


def loadavg() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (a busy machine makes every latency longer)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None
