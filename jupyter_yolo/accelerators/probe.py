"""The hardware probe: ``python -m jupyter_yolo.accelerators.probe`` prints one JSON object.

It runs in its own process because it imports torch (and optionally torch_npu, OpenVINO, ONNX
Runtime, TensorRT, NVML), which the server never does. Every sub-probe runs in ``try``: one that
raises adds a line to ``errors`` and the rest of the report still comes out. Anything the
libraries print goes to stderr, so stdout carries exactly one JSON object.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import os
import platform
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from .host import read_host

#: Environment variables that decide which devices a library sees; reported when set.
VISIBILITY_ENV = (
    "CUDA_VISIBLE_DEVICES",
    "NVIDIA_VISIBLE_DEVICES",
    "HIP_VISIBLE_DEVICES",
    "ROCR_VISIBLE_DEVICES",
    "ASCEND_RT_VISIBLE_DEVICES",
    "ZE_AFFINITY_MASK",
    "HSA_OVERRIDE_GFX_VERSION",
    "YOLO_DEVICE",
)

#: Set before anything heavy is imported: nothing the probe loads may reach the network.
OFFLINE_ENV = {"YOLO_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _import(module: str) -> Any:
    """Import a heavy optional library by name (typed ``Any``: it is probed, not trusted)."""
    return importlib.import_module(module)


def probe_torch(facts: dict[str, Any]) -> None:
    """Fill ``torch``, ``cuda``, ``rocm``, ``xpu`` and ``mps`` from torch itself."""
    torch = _import("torch")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        available = bool(torch.cuda.is_available())
        count = int(torch.cuda.device_count()) if available else 0
    cudnn = None
    with contextlib.suppress(Exception):
        if torch.backends.cudnn.is_available():
            cudnn = torch.backends.cudnn.version()
    arch_list: list[str] = []
    with contextlib.suppress(Exception):
        arch_list = list(torch.cuda.get_arch_list())
    facts["torch"] = {
        "version": str(torch.__version__),
        "cuda": torch.version.cuda,
        "hip": getattr(torch.version, "hip", None),
        "cudnn": cudnn,
        "debug": bool(getattr(torch.version, "debug", False)),
        "arch_list": arch_list,
        "cuda_available": available,
        "device_count": count,
        "num_threads": torch.get_num_threads(),
        "warnings": [str(w.message).strip() for w in caught],
    }
    devices = [_torch_cuda_device(torch, i) for i in range(count)]
    key = "rocm" if facts["torch"]["hip"] else "cuda"
    facts[key] = devices
    with contextlib.suppress(Exception):
        facts["mps"] = bool(torch.backends.mps.is_available())
    if hasattr(torch, "xpu"):
        try:
            if torch.xpu.is_available():
                count = torch.xpu.device_count()
                facts["xpu"] = [_torch_xpu_device(torch, i) for i in range(count)]
        except Exception as exc:
            facts["errors"].append(f"xpu: {type(exc).__name__}: {exc}")


def _torch_cuda_device(torch: Any, index: int) -> dict[str, Any]:
    props = torch.cuda.get_device_properties(index)
    uuid = getattr(props, "uuid", None)
    device: dict[str, Any] = {
        "index": index,
        "name": str(props.name),
        "memory_bytes": int(props.total_memory),
        "capability": f"{props.major}.{props.minor}",
        "multiprocessors": int(props.multi_processor_count),
        "integrated": bool(getattr(props, "is_integrated", False)),
        "uuid": str(uuid) if uuid is not None else None,
    }
    arch = getattr(props, "gcnArchName", None)
    if arch:
        device["arch"] = str(arch)
    return device


def _torch_xpu_device(torch: Any, index: int) -> dict[str, Any]:
    props = torch.xpu.get_device_properties(index)
    return {
        "index": index,
        "name": str(props.name),
        "memory_bytes": int(getattr(props, "total_memory", 0)) or None,
        "driver": str(getattr(props, "driver_version", "")) or None,
    }


def probe_npu(facts: dict[str, Any]) -> None:
    """Fill ``npu`` when torch_npu (Ascend) is installed; it stays ``None`` otherwise."""
    if not _installed("torch_npu"):
        return
    torch = _import("torch")
    _import("torch_npu")  # registers torch.npu

    npu = torch.npu
    devices = []
    if npu.is_available():
        for index in range(npu.device_count()):
            device: dict[str, Any] = {"index": index, "name": str(npu.get_device_name(index))}
            with contextlib.suppress(Exception):
                device["memory_bytes"] = int(npu.get_device_properties(index).total_memory)
            devices.append(device)
    facts["npu"] = devices


def probe_nvml(facts: dict[str, Any]) -> None:
    """Fill ``nvml`` with the driver and GPUs NVML sees; leave it ``None`` without a driver."""
    if not _installed("pynvml"):
        return
    pynvml = _import("pynvml")

    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        facts["nvml_error"] = str(exc)
        return
    try:
        cuda_version = pynvml.nvmlSystemGetCudaDriverVersion()
        nvml: dict[str, Any] = {
            "driver_version": _text(pynvml.nvmlSystemGetDriverVersion()),
            "cuda_driver_version": f"{cuda_version // 1000}.{cuda_version % 1000 // 10}",
            "devices": [],
        }
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            mig: bool | None = None
            with contextlib.suppress(pynvml.NVMLError):
                mig = bool(pynvml.nvmlDeviceGetMigMode(handle)[0])
            nvml["devices"].append(
                {
                    "index": index,
                    "name": _text(pynvml.nvmlDeviceGetName(handle)),
                    "uuid": _text(pynvml.nvmlDeviceGetUUID(handle)),
                    "memory_bytes": int(pynvml.nvmlDeviceGetMemoryInfo(handle).total),
                    "mig": mig,
                }
            )
        facts["nvml"] = nvml
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def join_nvml(facts: dict[str, Any]) -> None:
    """Give each CUDA device the driver version and MIG state NVML reports for it."""
    nvml = facts.get("nvml")
    if not nvml:
        return
    by_uuid = {str(d.get("uuid", "")).removeprefix("GPU-"): d for d in nvml.get("devices", [])}
    for device in facts.get("cuda", []):
        device["driver"] = nvml.get("driver_version")
        uuid = str(device.get("uuid") or "")
        parent = by_uuid.get(uuid.removeprefix("GPU-"))
        device["mig"] = uuid.startswith("MIG-") or bool(parent and parent.get("mig"))


def probe_openvino(facts: dict[str, Any]) -> None:
    """Fill ``openvino`` with its version and devices when it is installed."""
    if not _installed("openvino"):
        return
    openvino = _import("openvino")

    core = openvino.Core()
    devices = []
    for name in core.available_devices:
        device: dict[str, Any] = {"name": str(name), "full_name": None}
        with contextlib.suppress(Exception):
            device["full_name"] = str(core.get_property(name, "FULL_DEVICE_NAME"))
        with contextlib.suppress(Exception):
            device["type"] = str(core.get_property(name, "DEVICE_TYPE")).split(".")[-1].lower()
        devices.append(device)
    version = getattr(openvino, "__version__", None) or openvino.get_version()
    facts["openvino"] = {"version": str(version), "devices": devices}


def probe_onnxruntime(facts: dict[str, Any]) -> None:
    """Fill ``onnxruntime`` with its version and execution providers when it is installed."""
    if not _installed("onnxruntime"):
        return
    onnxruntime = _import("onnxruntime")

    facts["onnxruntime"] = {
        "version": str(onnxruntime.__version__),
        "providers": list(onnxruntime.get_available_providers()),
    }


def probe_tensorrt(facts: dict[str, Any]) -> None:
    """Fill ``tensorrt`` with its version when the TensorRT Python package is installed."""
    if not _installed("tensorrt"):
        return
    tensorrt = _import("tensorrt")

    facts["tensorrt"] = str(tensorrt.__version__)


def probe_host(facts: dict[str, Any]) -> None:
    """Fill ``host`` from /proc, /sys/fs/cgroup and /dev."""
    facts["host"] = read_host()


def empty_facts() -> dict[str, Any]:
    """Return the facts skeleton: every key present, nothing found yet."""
    return {
        "schema": 1,
        "probed_at": time.time(),
        "duration_s": None,
        "python": {"version": platform.python_version(), "executable": sys.executable},
        "platform": {
            "system": platform.system(),
            "machine": platform.machine(),
            "release": platform.release(),
        },
        "env": {k: os.environ[k] for k in VISIBILITY_ENV if k in os.environ},
        "host": None,
        "torch": None,
        "cuda": [],
        "rocm": [],
        "xpu": [],
        "mps": False,
        "npu": None,
        "openvino": None,
        "onnxruntime": None,
        "tensorrt": None,
        "nvml": None,
        "nvml_error": None,
        "errors": [],
    }


SUBPROBES: tuple[tuple[str, Callable[[dict[str, Any]], None]], ...] = (
    ("host", probe_host),
    ("nvml", probe_nvml),
    ("torch", probe_torch),
    ("npu", probe_npu),
    ("openvino", probe_openvino),
    ("onnxruntime", probe_onnxruntime),
    ("tensorrt", probe_tensorrt),
)


def collect() -> dict[str, Any]:
    """Run every sub-probe and return the raw facts; a failing sub-probe only adds an error."""
    started = time.monotonic()
    facts = empty_facts()
    for name, subprobe in SUBPROBES:
        try:
            subprobe(facts)
        except (Exception, SystemExit) as exc:  # a broken library must not end the probe
            facts["errors"].append(f"{name}: {type(exc).__name__}: {exc}".strip())
    join_nvml(facts)
    facts["duration_s"] = round(time.monotonic() - started, 3)
    return facts


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send everything written to stdout (also by C libraries) to stderr while inside."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def main() -> int:
    """Probe and print the facts as one JSON object on stdout."""
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    with stdout_to_stderr():
        facts = collect()
    sys.stdout.write(json.dumps(facts, default=str) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
