"""The one table of inference backends, and which of them this container can run.

Pure Python: availability is read from what is importable (``importlib.util.find_spec`` locates
a package without importing it) and from whether CUDA is present, so the server can answer a
request without torch. The runner checks again with the real imports (ONNX Runtime providers,
TensorRT) and fails the job with a clear message when a forced backend cannot run after all.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

AUTO = "auto"


@dataclass(frozen=True)
class Backend:
    """One way of running a detection model."""

    name: str
    label: str
    #: ultralytics export ``format`` (None: the .pt itself runs)
    export_format: str | None
    precision: str  # fp32, fp16 or int8
    modules: tuple[str, ...]
    needs_cuda: bool = False
    #: INT8 calibration needs the user's dataset
    needs_data: bool = False
    #: file or folder name of the exported model inside its cache entry
    artifact: str = ""

    @property
    def exported(self) -> bool:
        """Whether this backend runs an export of the .pt (rather than the .pt itself)."""
        return self.export_format is not None


BACKENDS: tuple[Backend, ...] = (
    Backend("pytorch", "PyTorch", None, "fp32", ("torch",)),
    Backend(
        "onnxruntime",
        "ONNX Runtime",
        "onnx",
        "fp32",
        ("onnxruntime", "onnx"),
        artifact="model.onnx",
    ),
    Backend(
        "openvino",
        "OpenVINO FP32",
        "openvino",
        "fp32",
        ("openvino",),
        artifact="model_openvino_model",
    ),
    Backend(
        "openvino-int8",
        "OpenVINO INT8",
        "openvino",
        "int8",
        ("openvino", "nncf"),
        needs_data=True,
        artifact="model_int8_openvino_model",
    ),
    Backend(
        "tensorrt",
        "TensorRT FP16",
        "engine",
        "fp16",
        ("tensorrt",),
        needs_cuda=True,
        artifact="model.engine",
    ),
)
BY_NAME: dict[str, Backend] = {b.name: b for b in BACKENDS}
BACKEND_NAMES: tuple[str, ...] = tuple(BY_NAME)
#: what a request may ask for: ``auto`` (the measured choice) or one backend by name
BACKEND_CHOICES: tuple[str, ...] = (AUTO, *BACKEND_NAMES)

CPU_DEVICES = frozenset({"cpu", "-1", "mps"})


def get(name: str) -> Backend:
    """The backend called ``name`` (KeyError for an unknown name)."""
    return BY_NAME[name]


@functools.cache
def module_available(name: str) -> bool:
    """Whether ``import name`` would find the package (nothing is imported)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def is_cuda_device(device: str | None, cuda: bool) -> bool:
    """Whether a job's ``device`` means a CUDA GPU (an empty device means CUDA when present)."""
    text = (device or "").strip().lower()
    if text in ("", "none"):
        return cuda
    if text in CPU_DEVICES or text.startswith(("mps", "xpu", "npu", "intel")):
        return False
    return cuda


@dataclass(frozen=True)
class Availability:
    """Whether a backend can run here, and why not when it cannot."""

    name: str
    label: str
    available: bool
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON form for the API."""
        return {
            "name": self.name,
            "label": self.label,
            "available": self.available,
            "reason": self.reason,
        }


def availability(
    backend: Backend,
    *,
    cuda: bool,
    device: str | None = None,
    has_module: Any = module_available,
) -> Availability:
    """Whether ``backend`` can run in this container for a job on ``device``."""
    if backend.needs_cuda and not cuda:
        return Availability(
            backend.name,
            backend.label,
            False,
            f"{backend.label} needs a CUDA GPU, and this server has none",
        )
    if backend.needs_cuda and not is_cuda_device(device, cuda):
        return Availability(
            backend.name,
            backend.label,
            False,
            f"{backend.label} runs on a CUDA GPU; this job's device is {device!r}",
        )
    missing = [m for m in backend.modules if not has_module(m)]
    if missing:
        return Availability(
            backend.name,
            backend.label,
            False,
            f"{backend.label} needs the Python package(s) {', '.join(missing)}, which are not "
            f"installed in this container",
        )
    return Availability(backend.name, backend.label, True)


def all_availability(
    *, cuda: bool, device: str | None = None, has_module: Any = module_available
) -> list[Availability]:
    """Every backend of the table with its availability."""
    return [availability(b, cuda=cuda, device=device, has_module=has_module) for b in BACKENDS]


def refusal(name: str, *, cuda: bool, device: str | None = None) -> str | None:
    """Why a request for backend ``name`` must be refused (None: it may run)."""
    if name == AUTO:
        return None
    backend = BY_NAME.get(name)
    if backend is None:
        return f"unknown backend {name!r}; use one of {', '.join(BACKEND_CHOICES)}"
    state = availability(backend, cuda=cuda, device=device)
    if state.available:
        return None
    usable = [a.name for a in all_availability(cuda=cuda, device=device) if a.available]
    return f"{state.reason}. Available here: {', '.join([AUTO, *usable])}."


def backend_of_model(path: str | Path) -> str | None:
    """The backend an already exported model file runs on (None for a .pt or a YAML)."""
    name = Path(path).name.lower().rstrip("/")
    if name.endswith(".onnx"):
        return "onnxruntime"
    if name.endswith("_int8_openvino_model"):
        return "openvino-int8"
    if name.endswith("_openvino_model") or name.endswith(".xml"):
        return "openvino"
    if name.endswith(".engine"):
        return "tensorrt"
    if name.endswith(".torchscript"):
        return "torchscript"
    return None
