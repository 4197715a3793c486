"""Which backends a trial or a forced request may use for one model, and why the others not.

The static table (:mod:`.backends`) says what this container offers; here the real imports are
tried (runner and benchmark processes only), the model's task is checked against what each
backend can run (:data:`TASK_REFUSALS`), and INT8 gets its calibration dataset. The environment
a measured choice depends on is described here too.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..accelerators import host
from . import backends as table
from .backends import Backend
from .export import Calibration, ExportError, calibration_for
from .threads import ThreadSettings

VERSIONED = ("torch", "ultralytics", "onnxruntime", "openvino", "nncf", "tensorrt")

#: (task, backend) pairs that cannot run here, with the reason; measured with ultralytics 8.4.190
#: on CPU (export, load and predict of every task on ONNX Runtime and OpenVINO FP32 work).
TASK_REFUSALS: dict[tuple[str, str], str] = {}


class BackendError(RuntimeError):
    """A requested backend cannot run for this job; the message says why and what can."""


def versions() -> dict[str, str | None]:
    """Versions of the packages a measured choice depends on (None: not installed)."""
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
    task: str | None = None,
) -> dict[str, Any]:
    """What a measured choice depends on; a stored choice is reused only when this matches."""
    return {
        "task": task or "detect",
        "imgsz": imgsz,
        "device": device,
        "cpus": settings.cpus,
        "cpu_model": host.cpu_model(),
        "versions": versions(),
        "threads": settings.as_dict(),
        "candidates": sorted(candidates),
        "int8_data": calibration.digest if calibration else None,
    }


def runtime_refusal(backend: Backend, device: str, task: str | None = None) -> str | None:
    """Why ``backend`` cannot run here after all (the imports are real now), for ``task``."""
    known = TASK_REFUSALS.get((task or "detect", backend.name))
    if known is not None:
        return known
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
    if backend.precision == "int8" and importlib.util.find_spec("nncf") is None:
        # Found, not imported: importing nncf takes about a second, and only an export that
        # calibrates needs it (a broken install fails that export, which reports it).
        return "INT8 calibration needs nncf, which is not installed"
    return None


def candidates_for(
    device: str, *, want_int8: bool, task: str | None = None
) -> tuple[list[Backend], dict[str, str]]:
    """The backends to try for a ``task`` model on ``device`` and why the others are left out."""
    import torch

    cuda = torch.cuda.is_available()
    chosen: list[Backend] = []
    skipped: dict[str, str] = {}
    for backend in table.BACKENDS:
        state = table.availability(backend, cuda=cuda, device=device)
        reason = state.reason if not state.available else runtime_refusal(backend, device, task)
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
    workspace. A dataset folder (classify) calibrates on the ``data.yaml`` inside it.
    """
    if data:
        path = _yaml_of(Path(data))
        if not path.is_file():
            return None, f"the calibration dataset {data} does not exist"
    elif checkpoint_data:
        path = _yaml_of(Path(checkpoint_data))
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
        found = calibration_for(path)
    except ExportError as exc:
        return None, str(exc)
    folder = path.parent if Path(data or checkpoint_data or "").is_dir() else None
    return (replace(found, folder=folder) if folder else found), None


def _yaml_of(path: Path) -> Path:
    """``path`` itself, or the ``data.yaml`` of a dataset folder."""
    return path / "data.yaml" if path.is_dir() else path
