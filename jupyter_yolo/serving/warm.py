"""Loading a warm worker's model: the same backend choice a predict job makes, then a warm-up.

Worker processes only (imports ultralytics once :func:`jupyter_yolo.runner.offline.prepare`
has run). A ``.pt`` goes through :func:`jupyter_yolo.inference.trial.select_backend` with the
workspace's export cache (``auto`` reuses the measured choice, or measures it once); an exported
model (ONNX, OpenVINO folder, TensorRT engine ...) runs as it is, like a predict job runs it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..contract.serving import BackendChoice


class WorkerStartError(Exception):
    """The worker cannot serve this model: a message a person can act on."""


@dataclass
class WarmModel:
    """The loaded model and what the worker's ``ready`` message says about it."""

    model: Any
    task: str
    imgsz: int
    device: str
    backend: BackendChoice
    load_ms: float


def _shown(path: str | Path, workspace: Path) -> str:
    resolved = Path(path).resolve()
    root = workspace.resolve()
    return resolved.relative_to(root).as_posix() if resolved.is_relative_to(root) else str(path)


def load(
    model_path: Path,
    *,
    workspace: Path,
    backend: str,
    imgsz: int | None,
    device: str | None,
    cpus: int,
    task: str | None,
    log: Callable[[str], None],
) -> WarmModel:
    """The model on its backend, warmed up at its image size (one dummy inference)."""
    from ..inference import backends as table
    from ..inference.loader import checkpoint_facts, load_yolo
    from ..inference.threads import install, settings_for
    from ..inference.trial import BackendError, select_backend, torch_device

    started = time.perf_counter()
    if not model_path.exists():
        raise WorkerStartError(f"the model {_shown(model_path, workspace)} does not exist")
    dev = torch_device(device)
    if model_path.suffix != ".pt":  # an exported model: it runs as it is
        settings = install(settings_for(cpus))
        runs_on = table.backend_of_model(model_path) or "pytorch"
        if backend not in (table.AUTO, runs_on):
            raise WorkerStartError(
                f"{_shown(model_path, workspace)} is already a {runs_on} model; backend "
                f"{backend!r} needs the .pt weights it was exported from (or use backend 'auto')"
            )
        model = load_yolo(model_path, task)
        report: dict[str, Any] = {
            "name": runs_on,
            "requested": backend,
            "cached": True,
            "exported": [],
            "latency_ms": {},
            "agreement": {},
            "threads": settings.as_dict(),
            "device": dev,
            "model": _shown(model_path, workspace),
        }
        name = runs_on
        facts_task = task or getattr(model, "task", None)
        size = int(imgsz or 640)
    else:
        try:
            selection = select_backend(
                model_path,
                workspace=workspace,
                requested=backend,
                device=device,
                cpus=cpus,
                imgsz=imgsz or None,
                log=log,
            )
        except BackendError as exc:
            raise WorkerStartError(str(exc)) from exc
        model = selection.model
        name = selection.name
        report = dict(selection.report)
        if report.get("model"):
            report["model"] = _shown(str(report["model"]), workspace)
        facts_task = str(report.get("task") or checkpoint_facts(model)["task"] or "detect")
        size = int(report.get("imgsz") or imgsz or 640)
    chosen_task = str(facts_task or "detect")
    warm_up(model, size, str(report.get("device") or dev))
    size = effective_imgsz(model, size)
    report["imgsz"] = size
    choice: BackendChoice = {"name": name, "requested": backend, "report": report}
    load_ms = (time.perf_counter() - started) * 1000.0
    return WarmModel(model, chosen_task, size, str(report.get("device") or dev), choice, load_ms)


def warm_up(model: Any, imgsz: int, device: str) -> None:
    """One inference on a grey image: the predictor is built, the backend has run once."""
    import numpy as np

    dummy = np.full((imgsz, imgsz, 3), 114, np.uint8)
    model.predict(dummy, imgsz=imgsz, device=device, verbose=False, save=False)


def effective_imgsz(model: Any, asked: int) -> int:
    """The image size the predictor runs at (an export with a fixed shape keeps its own)."""
    predictor = getattr(model, "predictor", None)
    size = getattr(predictor, "imgsz", None)
    if isinstance(size, (list, tuple)) and size:
        return int(max(int(v) for v in size))
    if isinstance(size, int) and size > 0:
        return size
    return asked
