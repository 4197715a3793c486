"""``backend="auto"``: a short measured trial on this machine picks the backend to run.

For one weights file, image size and device: every backend available here (exported once, from
the cache) predicts the same images; their latencies are measured side by side and their
detections compared with PyTorch's (:mod:`.agreement`). The fastest backend that agrees wins.

Images: up to 16 of the job's own, topped up with the dataset's validation images (else
generated ones). Each backend first predicts all of them once on the same square letterbox (its
detections for the comparison, and the warm-up). Then the backends take turns for a few rounds,
in a shuffled order, on the first 4 images: in each turn one untimed prediction warms the
backend up again after the others ran, then each image is timed. The latency is the median over
all timed predictions (end to end: pre-processing, inference, NMS). A backend more than 3 times
slower than the fastest after the first round is not timed again.

Agreement: FP32/FP16 exports that find nothing to compare (a model that detects nothing) are
accepted, being the same network; INT8 needs a verdict on at least 10 compared boxes.

The choice, the latencies, the agreement figures and the environment they were measured in
(device, usable CPUs, CPU model, package versions, image size, thread settings, the candidates)
are stored in the export cache; a later job with the same environment reuses them, a changed
environment measures again. Runner and benchmark processes only.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..accelerators import host
from ..contract.files import write_json_atomic
from . import backends as table
from .agreement import TOLERANCES, compare
from .backends import AUTO, Backend
from .cache import WeightsCache, read_json
from .export import Calibration, ExportError, ExportResult, calibration_for, ensure_export
from .loader import (
    checkpoint_facts,
    dataset_val_images,
    detections,
    generated_images,
    image_files,
    load_yolo,
    read_images,
)
from .threads import ThreadSettings, install, settings_for

TRIAL_IMAGES = 4  # timed
AGREEMENT_IMAGES = 16  # compared with PyTorch (the timed ones first)
LOSSY_MIN_BOXES = 10  # INT8 is trusted on at least this many compared boxes
TRIAL_ROUNDS = 3
CONF_FLOOR = 0.005
DROP_FACTOR = 3.0
VERSIONED = ("torch", "ultralytics", "onnxruntime", "openvino", "nncf", "tensorrt")


class BackendError(RuntimeError):
    """A requested backend cannot run for this job; the message says why and what can."""


@dataclass
class Loaded:
    """A backend ready to predict."""

    backend: Backend
    model: Any
    path: Path
    export: ExportResult | None = None


@dataclass
class Selection:
    """The backend a job runs on, the model loaded for it, and what to report."""

    name: str
    model: Any
    path: Path
    report: dict[str, Any]
    record: dict[str, Any] | None = None
    loaded: dict[str, Loaded] = field(default_factory=dict)


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in VERSIONED:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def torch_device(device: str | None) -> str:
    """The torch device ultralytics will use for ``device`` (``cpu``, ``cuda:0`` ...)."""
    from ultralytics.utils import torch_utils

    select: Callable[..., Any] = torch_utils.select_device
    return str(select(device or "", verbose=False))


def environment(
    *,
    imgsz: int,
    device: str,
    settings: ThreadSettings,
    candidates: list[str],
    calibration: Calibration | None,
) -> dict[str, Any]:
    """What a measured choice depends on; a stored choice is reused only when this matches."""
    return {
        "imgsz": imgsz,
        "device": device,
        "cpus": settings.cpus,
        "cpu_model": host.cpu_model(),
        "versions": _versions(),
        "threads": settings.as_dict(),
        "candidates": sorted(candidates),
        "int8_data": calibration.digest if calibration else None,
    }


def _runtime_refusal(backend: Backend, device: str) -> str | None:
    """Why ``backend`` cannot run here after all (the imports are real now)."""
    if backend.name == "tensorrt":
        if not device.startswith("cuda"):
            return f"TensorRT runs on a CUDA GPU; this job runs on {device}"
        try:
            import tensorrt  # noqa: F401
        except Exception as exc:  # a broken install raises more than ImportError
            return f"TensorRT cannot be imported: {exc}"
    if backend.name == "onnxruntime":
        try:
            import onnx  # noqa: F401
            import onnxruntime  # noqa: F401
        except Exception as exc:
            return f"ONNX Runtime cannot be imported: {exc}"
    if backend.export_format == "openvino":
        try:
            import openvino  # noqa: F401
        except Exception as exc:
            return f"OpenVINO cannot be imported: {exc}"
    if backend.precision == "int8":
        try:
            importlib.import_module("nncf")
        except Exception as exc:
            return f"INT8 calibration needs nncf, which cannot be imported: {exc}"
    return None


def candidates_for(device: str, *, want_int8: bool) -> tuple[list[Backend], dict[str, str]]:
    """The backends to try for ``device`` and the reasons the others are left out."""
    import torch

    cuda = torch.cuda.is_available()
    chosen: list[Backend] = []
    skipped: dict[str, str] = {}
    for backend in table.BACKENDS:
        state = table.availability(backend, cuda=cuda, device=device)
        reason = state.reason if not state.available else _runtime_refusal(backend, device)
        if reason is None and backend.precision == "int8" and not want_int8:
            reason = "no calibration dataset"
        if reason is None:
            chosen.append(backend)
        else:
            skipped[backend.name] = reason
    return chosen, skipped


def calibration_source(
    data: str | None, checkpoint_data: str | None, workspace: Path
) -> tuple[Calibration | None, str | None]:
    """The INT8 calibration set and, when there is none, why.

    ``data`` given with the job, else the checkpoint's training data when it lies in the
    workspace.
    """
    if data:
        path = Path(data)
        if not path.is_file():
            return None, f"the calibration dataset {data} does not exist"
    elif checkpoint_data:
        path = Path(checkpoint_data)
        if not path.is_absolute() or not path.is_file():
            return None, (
                f"the weights were trained on {checkpoint_data!r}, which is not a data.yaml in "
                "this workspace; give 'data' to calibrate INT8 on a dataset"
            )
        if not path.resolve().is_relative_to(workspace.resolve()):
            return None, (
                f"the weights were trained on {checkpoint_data}, outside this workspace; give "
                "'data' to calibrate INT8 on a dataset"
            )
    else:
        return None, "the weights name no training dataset; give 'data' to calibrate INT8"
    try:
        return calibration_for(path), None
    except ExportError as exc:
        return None, str(exc)


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
    rounds: int = TRIAL_ROUNDS,
    timed: int = TRIAL_IMAGES,
    check: Callable[[], None] | None = None,
) -> tuple[dict[str, list[float]], dict[str, list[list[dict[str, Any]]]]]:
    """Latencies and detections of each loaded backend, side by side.

    Per-image latencies (seconds) on the first ``timed`` images; detections on all of them.
    """
    args = _predict_args(imgsz, device)
    # detections on the same square letterbox for all: PyTorch otherwise pads only to the stride
    # multiple, and a different border is a different input, not a different backend
    square = {**args, "rect": False}
    found: dict[str, list[list[dict[str, Any]]]] = {}
    for name, item in loaded.items():
        found[name] = [detections(item.model.predict(image, **square)[0]) for image in images]
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


def _load(
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
    load_before = _loadavg()
    skipped = dict(skipped)
    loaded: dict[str, Loaded] = {}
    for backend in candidates:
        try:
            loaded[backend.name] = _load(
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
            skipped[backend.name] = f"could not be prepared: {exc}"
            log(f"{backend.label} left out of the trial: {exc}")
        if check is not None:
            check()
    log(f"measuring {', '.join(loaded)} on {images_note} at imgsz {imgsz}")
    samples, found = measure(loaded, images, imgsz=imgsz, device=device, rounds=rounds, check=check)
    latency_ms = {n: round(statistics.median(s) * 1000, 2) for n, s in samples.items() if s}
    agreement = {
        name: compare(
            found["pytorch"],
            found[name],
            TOLERANCES[loaded[name].backend.precision],
            floor=CONF_FLOOR,
            min_compared=LOSSY_MIN_BOXES if loaded[name].backend.precision == "int8" else 1,
        )
        for name in loaded
        if name != "pytorch"
    }
    choice, eligible = decide(latency_ms, agreement)
    record = {
        "choice": choice,
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
            "loadavg_after": _loadavg(),
        },
        "threads": settings.as_dict(),
    }
    return record, loaded


def _loadavg() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (a busy machine makes every latency longer)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def _summary(agreement: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "agree",
        "compared_boxes",
        "recall",
        "precision",
        "max_score_delta",
        "threshold",
        "note",
    )
    return {name: {k: figures.get(k) for k in keys} for name, figures in agreement.items()}


def select_backend(
    weights: Path,
    *,
    workspace: Path,
    requested: str,
    device: str | None,
    cpus: int,
    imgsz: int | None = None,
    source: Path | None = None,
    data: str | None = None,
    check: Callable[[], None] | None = None,
    log: Callable[[str], None] = print,
    rounds: int = TRIAL_ROUNDS,
    remeasure: bool = False,
) -> Selection:
    """The backend a predict job on ``weights`` (a .pt) runs on, loaded and ready.

    ``requested`` is ``auto`` or a backend name. Raises :class:`BackendError` when a forced
    backend cannot run here.
    """
    settings = install(settings_for(cpus))
    reference = load_yolo(weights)
    facts = checkpoint_facts(reference)
    task = facts["task"]
    size = int(imgsz or facts["imgsz"] or 640)
    dev = torch_device(device)
    cache = WeightsCache.for_weights(workspace, weights)
    calibration, no_calibration = calibration_source(data, facts["data"], workspace)
    exported: list[str] = []

    def note_export(item: Loaded) -> None:
        if item.export is not None and item.export.exported:
            exported.append(item.backend.name)

    if requested != AUTO:
        return _forced(
            requested,
            weights,
            reference,
            cache,
            size=size,
            device=dev,
            task=task,
            calibration=calibration,
            no_calibration=no_calibration,
            settings=settings,
            check=check,
            log=log,
        )

    if task not in (None, "detect"):
        log(f"auto measures detection models; this {task} model runs on PyTorch")
        report = {
            "name": "pytorch",
            "label": "PyTorch",
            "requested": AUTO,
            "cached": True,
            "exported": [],
            "latency_ms": {},
            "agreement": {},
            "skipped": {"*": f"auto compares boxes of detection models, not {task}"},
            "threads": settings.as_dict(),
            "imgsz": size,
            "device": dev,
        }
        return Selection("pytorch", reference, weights, report)

    candidates, skipped = candidates_for(dev, want_int8=calibration is not None)
    if no_calibration and "openvino-int8" in skipped:
        skipped["openvino-int8"] = f"INT8 skipped: {no_calibration}"
    env = environment(
        imgsz=size,
        device=dev,
        settings=settings,
        candidates=[b.name for b in candidates],
        calibration=calibration,
    )
    choice_file = cache.choice_file(size, dev)
    loaded: dict[str, Loaded] = {}
    with cache.lock(
        choice_file.stem,
        check=check,
        on_wait=lambda: log("waiting for another job measuring these weights"),
    ):
        stored = None if remeasure else read_json(choice_file)
        usable = (
            stored is not None
            and stored.get("environment") == env
            and stored.get("choice") in {b.name for b in candidates}
        )
        if usable and stored is not None:
            record = stored
            cached = True
            log(
                f"auto: reusing the measured choice {record['choice']} "
                f"({_latencies(record['latency_ms'])})"
            )
        else:
            why = "no stored choice" if stored is None else "the environment changed"
            if remeasure:
                why = "asked to measure again"
            log(f"auto: measuring the backends ({why})")
            images, note = trial_images(source, calibration.data if calibration else None, size)
            record, loaded = run_trial(
                weights,
                cache,
                reference=reference,
                candidates=candidates,
                skipped=skipped,
                imgsz=size,
                device=dev,
                task=task,
                images=images,
                images_note=note,
                calibration=calibration,
                settings=settings,
                env=env,
                rounds=rounds,
                check=check,
                log=log,
            )
            for item in loaded.values():
                note_export(item)
            write_json_atomic(choice_file, record)
            cached = False
            log(f"auto: chose {record['choice']} ({_latencies(record['latency_ms'])})")
    choice = str(record["choice"])
    if choice in loaded:
        chosen = loaded[choice]
    elif choice == "pytorch":
        chosen = Loaded(table.get("pytorch"), reference, weights)
    else:
        chosen = _load(
            table.get(choice),
            weights,
            cache,
            imgsz=size,
            device=dev,
            task=task,
            calibration=calibration,
            check=check,
            log=log,
        )
        note_export(chosen)
    report = {
        "name": choice,
        "label": chosen.backend.label,
        "requested": AUTO,
        "cached": cached and not exported,
        "exported": exported,
        "latency_ms": record.get("latency_ms") or {},
        "agreement": _summary(record.get("agreement") or {}),
        "skipped": record.get("skipped") or {},
        "measured_at": record.get("measured_at"),
        "trial": record.get("trial"),
        "threads": settings.as_dict(),
        "imgsz": size,
        "device": dev,
        "model": str(chosen.path),
    }
    return Selection(choice, chosen.model, chosen.path, report, record, loaded)


def _latencies(latency_ms: dict[str, Any]) -> str:
    return ", ".join(
        f"{name} {value:.1f} ms"
        for name, value in sorted(latency_ms.items(), key=lambda item: float(item[1]))
    )


def _forced(
    requested: str,
    weights: Path,
    reference: Any,
    cache: WeightsCache,
    *,
    size: int,
    device: str,
    task: str | None,
    calibration: Calibration | None,
    no_calibration: str | None,
    settings: ThreadSettings,
    check: Callable[[], None] | None,
    log: Callable[[str], None],
) -> Selection:
    import torch

    backend = table.BY_NAME.get(requested)
    if backend is None:
        raise BackendError(
            f"unknown backend {requested!r}; use one of {', '.join(table.BACKEND_CHOICES)}"
        )
    state = table.availability(backend, cuda=torch.cuda.is_available(), device=device)
    reason = state.reason if not state.available else _runtime_refusal(backend, device)
    if reason is None and backend.needs_data and calibration is None:
        reason = f"{backend.label} calibrates on a dataset, and {no_calibration}"
    if reason is not None:
        raise BackendError(f"backend {requested!r} cannot run: {reason}")
    if backend.exported:
        chosen = _load(
            backend,
            weights,
            cache,
            imgsz=size,
            device=device,
            task=task,
            calibration=calibration if backend.needs_data else None,
            check=check,
            log=log,
        )
    else:
        chosen = Loaded(backend, reference, weights)
    made = chosen.export is not None and chosen.export.exported
    stored = read_json(cache.choice_file(size, device)) or {}
    report = {
        "name": backend.name,
        "label": backend.label,
        "requested": requested,
        "cached": not made,
        "exported": [backend.name] if made else [],
        "latency_ms": stored.get("latency_ms") or {},
        "agreement": _summary(stored.get("agreement") or {}),
        "auto_choice": stored.get("choice"),
        "threads": settings.as_dict(),
        "imgsz": size,
        "device": device,
        "model": str(chosen.path),
    }
    return Selection(backend.name, chosen.model, chosen.path, report)
