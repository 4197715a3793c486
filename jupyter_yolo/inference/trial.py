"""``backend="auto"``: a short measured trial on this machine picks the backend to run.

For one weights file of any task, image size and device: every backend that can run the task
here (exported once, from the cache) predicts the same images; their latencies are measured side
by side and their outputs compared with PyTorch's by the task's own measure (:mod:`.measure`,
:mod:`.agreement`). The fastest backend that agrees wins. A backend that cannot run the task is
left out with the reason (:mod:`.candidates`); forcing it is a job error naming the task.

The choice, the latencies, the agreement figures and the environment they were measured in
(the task, device, usable CPUs, CPU model, package versions, image size, thread settings, the
candidates) are stored in the export cache; a later job with the same environment reuses them,
a changed environment measures again. Runner and benchmark processes only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..contract.files import write_json_atomic
from . import backends as table
from .backends import AUTO
from .cache import WeightsCache, read_json
from .candidates import (
    BackendError,
    calibration_source,
    candidates_for,
    environment,
    runtime_refusal,
    torch_device,
)
from .export import Calibration
from .measure import (
    AGREEMENT_IMAGES,
    CONF_FLOOR,
    TRIAL_IMAGES,
    TRIAL_ROUNDS,
    Loaded,
    decide,
    load_backend,
    measure,
    run_trial,
    trial_images,
)
from .reference import Reference
from .threads import ThreadSettings, install, settings_for

__all__ = [
    "AGREEMENT_IMAGES",
    "AGREEMENT_TASKS",
    "CONF_FLOOR",
    "TRIAL_IMAGES",
    "TRIAL_ROUNDS",
    "BackendError",
    "Loaded",
    "Selection",
    "calibration_source",
    "candidates_for",
    "decide",
    "environment",
    "measure",
    "run_trial",
    "select_backend",
    "torch_device",
    "trial_images",
]

#: Tasks whose ``auto`` choice compares outputs by the task's own measure (all of them).
AGREEMENT_TASKS = ("detect", "segment", "classify", "pose", "obb", "semantic", "depth")


@dataclass
class Selection:
    """The backend a job runs on, the model loaded for it, and what to report."""

    name: str
    model: Any
    path: Path
    report: dict[str, Any]
    record: dict[str, Any] | None = None
    loaded: dict[str, Loaded] = field(default_factory=dict)


def _summary(agreement: dict[str, Any]) -> dict[str, Any]:
    """The agreement figures a job result carries (the task's own ones beside the common)."""
    keys = (
        "agree",
        "measure",
        "compared_boxes",
        "median_iou",
        "top1_agreement",
        "keypoint_agreement",
        "mean_pixel_agreement",
        "recall",
        "precision",
        "max_score_delta",
        "threshold",
        "note",
    )
    return {
        name: {k: figures[k] for k in keys if k in figures} | {"agree": figures.get("agree")}
        for name, figures in agreement.items()
    }


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
    cache = WeightsCache.for_weights(workspace, weights)
    reference = Reference(weights, cache)
    facts = reference.facts()
    task = facts["task"]
    size = int(imgsz or facts["imgsz"] or 640)
    dev = torch_device(device)
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

    candidates, skipped = candidates_for(dev, want_int8=calibration is not None, task=task)
    if no_calibration and "openvino-int8" in skipped:
        skipped["openvino-int8"] = f"INT8 skipped: {no_calibration}"
    env = environment(
        imgsz=size,
        device=dev,
        settings=settings,
        candidates=[b.name for b in candidates],
        calibration=calibration,
        task=task,
    )
    choice_file = cache.choice_file(size, dev, task)
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
                reference=reference.model(),
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
        chosen = Loaded(table.get("pytorch"), reference.model(), weights)
    else:
        chosen = load_backend(
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
        "task": task or "detect",
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
    reference: Reference,
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
    reason = state.reason if not state.available else runtime_refusal(backend, device, task)
    if reason is None and backend.needs_data and calibration is None:
        reason = f"{backend.label} calibrates on a dataset, and {no_calibration}"
    if reason is not None:
        kind = task or "detect"
        raise BackendError(f"backend {requested!r} cannot run this {kind} model: {reason}")
    if backend.exported:
        chosen = load_backend(
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
        chosen = Loaded(backend, reference.model(), weights)
    made = chosen.export is not None and chosen.export.exported
    stored = read_json(cache.choice_file(size, device, task)) or {}
    report = {
        "name": backend.name,
        "task": task or "detect",
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
