"""Turn the probe's raw facts into the public accelerator report (a pure function, no I/O).

The report says what the box has, which device ultralytics should use, a model size, batch and
dataloader workers that fit it, and warnings a person can act on. Keeping this pure means every
other machine (8 x H100, MI300, Ascend, Jetson ...) is tested from recorded facts.
"""

from __future__ import annotations

import copy
import datetime as dt
import os
import re
from dataclasses import dataclass, field
from typing import Any

from ..contract.training_defaults import hardware_defaults
from ..contract.training_speed import SpeedFacts, SpeedPlan, plan_training_speed

GIB = 1 << 30
MIB = 1 << 20

#: Per-device memory (GiB) below which each model size is chosen; anything larger gets ``x``.
MODEL_TIERS: tuple[tuple[float, str], ...] = ((5.5, "n"), (10.0, "s"), (20.0, "m"), (40.0, "l"))

#: Shared memory one dataloader worker may need for its prefetched batches.
SHM_PER_WORKER = 256 * MIB

#: GPUs on which ultralytics itself turns AMP off (mirrors ultralytics.utils.checks.check_amp).
AMP_BROKEN = re.compile(
    r"(nvidia|geforce|quadro|tesla).*?(1660|1650|1630|t400|t550|t600|t1000|t1200|t2000|k40m)",
    re.IGNORECASE,
)

TIMES = " \u00d7 "

FAMILY_BACKEND = {"nvidia": "CUDA", "jetson": "CUDA", "wsl": "CUDA", "amd": "ROCm", "ascend": "NPU"}


@dataclass
class Choice:
    """The devices chosen for training and what is known about them."""

    kind: str
    devices: list[dict[str, Any]] = field(default_factory=list)
    jetson: bool = False
    label: str = ""

    @property
    def count(self) -> int:
        """Return how many devices training would use (0 for CPU and MPS)."""
        return len(self.devices)

    @property
    def memory_bytes(self) -> int | None:
        """Return the smallest memory of the chosen devices, or ``None`` when unknown."""
        values = [int(d["memory_bytes"]) for d in self.devices if d.get("memory_bytes")]
        return min(values) if values else None


def build_report(facts: dict[str, Any]) -> dict[str, Any]:
    """Build the public accelerator report from the probe's raw ``facts`` (left unchanged)."""
    facts = copy.deepcopy(facts)
    host: dict[str, Any] = dict(facts.get("host") or {})
    host["platform"] = facts.get("platform")
    warnings: list[dict[str, str]] = []
    choice = choose_devices(facts)
    unusable = unusable_device_nodes(facts, warnings)
    recommendation = recommend(choice, host, warnings)
    _torch_warnings(facts, choice, warnings)
    _host_warnings(host, warnings)
    if choice.kind == "cpu" and not unusable:
        warnings.insert(0, _no_accelerator(facts))
    for error in facts.get("errors") or []:
        warnings.append(_warning("probe_error", f"Part of the hardware probe failed: {error}"))
    return {
        "host": host,
        "torch": _torch_section(facts.get("torch")),
        "devices": {
            "cuda": list(facts.get("cuda") or []),
            "rocm": list(facts.get("rocm") or []),
            "xpu": list(facts.get("xpu") or []),
            "mps": bool(facts.get("mps")),
            "npu": list(facts.get("npu") or []),
            "jetson": _jetson_section(facts) if choice.jetson or _tegra(facts) else None,
            "openvino": facts.get("openvino"),
            "onnxruntime": facts.get("onnxruntime"),
            "tensorrt": facts.get("tensorrt"),
            "nvml": facts.get("nvml"),
        },
        "unusable_device_nodes": unusable,
        "primary": {
            "kind": choice.kind,
            "label": choice.label,
            "count": choice.count,
            "memory_bytes": choice.memory_bytes,
        },
        "recommendation": recommendation,
        "warnings": warnings,
        "probe": {
            "duration_s": facts.get("duration_s"),
            "python": (facts.get("python") or {}).get("executable"),
            "errors": list(facts.get("errors") or []),
        },
        "generated_at": _iso(facts.get("probed_at")),
    }


def _warning(code: str, message: str) -> dict[str, str]:
    return {"code": code, "message": message}


def _iso(timestamp: Any) -> str | None:
    if not isinstance(timestamp, int | float):
        return None
    moment = dt.datetime.fromtimestamp(float(timestamp), tz=dt.timezone.utc)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def gib(value: float | None) -> str:
    """Format a byte count as GiB for people (``79 GiB``, ``7.6 GiB``, ``64 MiB``)."""
    if value is None:
        return "unknown"
    if value < GIB:
        return f"{value / MIB:.0f} MiB"
    amount = value / GIB
    return f"{amount:.0f} GiB" if amount >= 10 else f"{amount:.1f} GiB"


def _tegra(facts: dict[str, Any]) -> bool:
    host = facts.get("host") or {}
    nodes = [n.get("path", "") for n in host.get("device_nodes") or []]
    return bool(host.get("tegra_release")) or any(
        p.startswith("/dev/nvhost") or p == "/dev/nvmap" for p in nodes
    )


def _jetson_section(facts: dict[str, Any]) -> dict[str, Any]:
    host = facts.get("host") or {}
    return {"tegra_release": host.get("tegra_release"), "board": host.get("board_model")}


def _torch_section(torch: dict[str, Any] | None) -> dict[str, Any] | None:
    if torch is None:
        return None
    section = dict(torch)
    cudnn = torch.get("cudnn")
    if isinstance(cudnn, int) and torch.get("hip"):  # MIOpen: major*1e6 + minor*1e3 + patch
        section["cudnn"] = None
        section["miopen"] = f"{cudnn // 1000000}.{cudnn // 1000 % 1000}.{cudnn % 1000}"
    elif isinstance(cudnn, int):
        major, rest = (
            (cudnn // 10000, cudnn % 10000) if cudnn >= 90000 else (cudnn // 1000, cudnn % 1000)
        )
        section["cudnn"] = f"{major}.{rest // 100}.{rest % 100}"
    return section


# --- which devices to train on ----------------------------------------------------------------


def choose_devices(facts: dict[str, Any]) -> Choice:
    """Pick the backend and devices training should use, best first: CUDA, ROCm, NPU, XPU, MPS."""
    host = facts.get("host") or {}
    for kind in ("cuda", "rocm", "npu", "xpu"):
        devices = [d for d in facts.get(kind) or [] if isinstance(d, dict)]
        if not devices:
            continue
        choice = Choice(kind=kind, devices=_same_kind(devices))
        choice.jetson = (
            kind == "cuda" and _tegra(facts) and any(d.get("integrated") for d in devices)
        )
        choice.label = _device_label(choice, host)
        return choice
    if facts.get("mps"):
        name = host.get("cpu_model")
        return Choice(kind="mps", label=f"Apple MPS ({name})" if name else "Apple MPS")
    cpus = int(host.get("cpus_usable") or 1)
    return Choice(kind="cpu", label=f"CPU {cpus} core{'s' if cpus != 1 else ''}")


def _same_kind(devices: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep the devices that match the largest one; one device only when MIG is involved."""
    best = max(devices, key=lambda d: int(d.get("memory_bytes") or 0))
    if any(d.get("mig") for d in devices):
        return [next(d for d in devices if d.get("mig"))]
    return [d for d in devices if d.get("name") == best.get("name")]


def _device_label(choice: Choice, host: dict[str, Any]) -> str:
    first = choice.devices[0]
    name = str(first.get("name") or choice.kind.upper())
    memory = gib(choice.memory_bytes) if choice.memory_bytes else None
    if choice.jetson:
        board = host.get("board_model") or "NVIDIA Jetson"
        return f"{board} ({name} GPU, {memory} shared with the CPU)" if memory else board
    if choice.count == 1:
        return f"{name}, {memory}" if memory else name
    many = f"{choice.count}{TIMES}{name}"
    return f"{many}, {memory} each" if memory else many


# --- recommendation ---------------------------------------------------------------------------


def recommend(
    choice: Choice, host: dict[str, Any], warnings: list[dict[str, str]]
) -> dict[str, Any]:
    """Return the ultralytics ``device``, model, batch, workers and AMP for ``choice``."""
    cpus = int(host.get("cpus_usable") or 1)
    memory = host.get("memory_effective_bytes")
    per_device = choice.memory_bytes
    sizes = hardware_defaults(
        {
            "kind": choice.kind,
            "cpus": cpus,
            "memory_bytes": memory,
            "devices": choice.count,
            "device_memory_bytes": per_device,
            "jetson": choice.jetson,
        }
    )
    batch, workers, devices = sizes["batch"], sizes["workers"], max(choice.count, 1)
    if choice.kind == "cpu":
        size = "n"
        device, amp = "cpu", False
        plural = "s" if cpus != 1 else ""
        why = f"training on {cpus} CPU core{plural}, where the nano model keeps epochs short"
    elif choice.kind == "mps":
        size = "s" if (memory or 0) >= 16 * GIB else "n"
        device, amp = "mps", False
        why = "Apple GPU through MPS (AMP is not used on MPS)"
    else:
        size = _size_for(per_device)
        if choice.jetson:
            size = "s" if (per_device or 0) >= 30 * GIB else "n"
        device = _device_string(choice)
        amp = not (choice.kind == "cuda" and AMP_BROKEN.search(str(choice.devices[0].get("name"))))
        why = _accelerator_reason(choice, batch // devices)
    shm = host.get("shm")
    if shm and shm.get("free_bytes") is not None:
        shm_cap = int(shm["free_bytes"]) // (SHM_PER_WORKER * devices)
        if shm_cap < workers:
            warnings.append(
                _warning(
                    "small_shm",
                    (
                        f"/dev/shm has {gib(shm['free_bytes'])} free, so dataloader workers are "
                        "limited "
                        f"to {shm_cap} per device (each needs about {gib(SHM_PER_WORKER)}); start "
                        "the "
                        "container with --shm-size=8g or --ipc=host to use more workers and load "
                        "data "
                        "faster."
                    ),
                )
            )
            workers = shm_cap
    return {
        "device": device,
        "model": f"yolov8{size}.yaml",
        "batch": batch,
        "workers": workers,
        "speed": _speed(choice, host, workers),
        "imgsz": sizes["imgsz"],
        "amp": bool(amp),
        "reason": (
            f"{why[:1].upper()}{why[1:]}. Recommended: yolov8{size}, batch {batch}, "
            f"{workers} dataloader worker{'s' if workers != 1 else ''}"
            f"{' per device' if choice.count > 1 else ''}."
        ),
    }


def _speed(choice: Choice, host: dict[str, Any], workers: int) -> SpeedPlan:
    """The training speed choices a job makes here (its dataset decides the cache per job)."""
    facts = SpeedFacts(
        device_kind=choice.kind,
        cpus=int(host.get("cpus_usable") or 1),
        memory_free_bytes=host.get("memory_available_bytes"),
        devices=choice.count if choice.kind not in {"cpu", "mps"} else 0,
        # the jobs' runners inherit these from the server's environment
        env_threads=_positive_int(os.environ.get("OMP_NUM_THREADS")),
        env_wait_policy=os.environ.get("OMP_WAIT_POLICY") or None,
    )
    plan = plan_training_speed(facts, {}, None, per_job=False)
    for item in plan["choices"]:
        if item["name"] == "workers" and item["value"] != workers:
            item["value"] = workers
            item["reason"] += f"; lowered to {workers} for the memory or /dev/shm available"
    return plan


def _positive_int(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() and int(text) > 0 else None


def _size_for(memory: int | None) -> str:
    if memory is None:
        return "s"
    for limit, size in MODEL_TIERS:
        if memory < limit * GIB:
            return size
    return "x"


def _device_string(choice: Choice) -> str:
    indices = ",".join(str(d.get("index", i)) for i, d in enumerate(choice.devices))
    if choice.kind == "npu":
        return f"npu:{indices}"
    if choice.kind == "xpu":
        return f"xpu:{choice.devices[0].get('index', 0)}"
    return indices


def _accelerator_reason(choice: Choice, per_batch: int) -> str:
    memory = gib(choice.memory_bytes)
    if choice.jetson:
        return (
            f"Jetson GPU with {memory} shared with the CPU: a small model, a small batch and "
            "few workers leave memory for the system"
        )
    backend = {"cuda": "CUDA", "rocm": "ROCm", "npu": "Ascend NPU", "xpu": "Intel XPU"}[choice.kind]
    if choice.kind == "xpu" and choice.count > 1:
        return (
            f"the first of {choice.count} Intel XPUs ({memory}); multi-XPU training is not set up"
        )
    if choice.count > 1:
        return (
            f"{choice.count} {backend} devices with {memory} each, trained together with DDP "
            f"({per_batch} images per device)"
        )
    return f"one {backend} device with {memory}"


# --- device nodes torch cannot use --------------------------------------------------------------


def _family(path: str, nodes: list[str]) -> str | None:
    name = path.removeprefix("/dev/")
    if name.startswith("nvidia"):
        return "nvidia"
    if name.startswith("nvhost") or name == "nvmap":
        return "jetson"
    if name == "kfd" or (name.startswith("dri/renderD") and "/dev/kfd" in nodes):
        return "amd"
    if name.startswith("davinci"):
        return "ascend"
    if name == "dxg":
        return "wsl"
    return None


def unusable_device_nodes(
    facts: dict[str, Any], warnings: list[dict[str, str]]
) -> list[dict[str, Any]]:
    """List device nodes no torch backend uses, with the likely cause; one warning per family."""
    host = facts.get("host") or {}
    entries = [n for n in host.get("device_nodes") or [] if isinstance(n, dict)]
    paths = [str(n.get("path")) for n in entries]
    used = {
        "nvidia": bool(facts.get("cuda")),
        "jetson": bool(facts.get("cuda")),
        # /dev/dxg also serves DirectML on AMD and Intel GPUs: only an NVIDIA driver makes it CUDA
        "wsl": bool(facts.get("cuda")) or not facts.get("nvml"),
        "amd": bool(facts.get("rocm")),
        "ascend": bool(facts.get("npu")),
    }
    families: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        family = _family(str(entry.get("path")), paths)
        if family is not None and not used[family]:
            families.setdefault(family, []).append(entry)
    result: list[dict[str, Any]] = []
    cpu_only_reported = False
    for family, nodes in families.items():
        code, cause = _cause(family, nodes, facts)
        result.extend({"path": n.get("path"), "family": family, "cause": cause} for n in nodes)
        if code == "torch_cpu_only_build":
            if cpu_only_reported:
                continue
            cpu_only_reported = True
        shown = ", ".join(str(n.get("path")) for n in nodes[:4])
        shown += " ..." if len(nodes) > 4 else ""
        warnings.append(
            _warning(
                code, f"{shown} present but torch cannot use {FAMILY_BACKEND[family]}: {cause}"
            )
        )
    return result


def _cause(family: str, nodes: list[dict[str, Any]], facts: dict[str, Any]) -> tuple[str, str]:
    """Return the warning code and the likely cause for one family of unused nodes."""
    torch = facts.get("torch")
    env = facts.get("env") or {}
    denied = [str(n.get("path")) for n in nodes if n.get("accessible") is False]
    if torch is None:
        return "device_nodes_unusable", "torch is not installed in the probe's Python."
    version = torch.get("version")
    cpu_only = not torch.get("cuda") and not torch.get("hip")
    if cpu_only and family != "ascend":
        wheel = (
            "NVIDIA's JetPack wheel for this L4T release (or an l4t-pytorch base image)"
            if family == "jetson"
            else "a ROCm build (pip install torch --index-url https://download.pytorch.org/whl/rocm6.2)"
            if family == "amd"
            else "a CUDA build (pip install torch --index-url https://download.pytorch.org/whl/cu124)"
        )
        return "torch_cpu_only_build", f"torch {version} is a CPU-only build; install {wheel}."
    if denied:
        groups = {"amd": "video and render", "ascend": "HwHiAiUser"}.get(family, "video")
        return "device_nodes_unusable", (
            f"this user may not open {', '.join(denied[:3])}; add it to the {groups} group(s) "
            f"(docker run --group-add ...) or fix the node permissions."
        )
    if family in {"nvidia", "jetson", "wsl"}:
        return "device_nodes_unusable", _nvidia_cause(family, torch, env, facts)
    if family == "amd":
        if not torch.get("hip"):
            return "device_nodes_unusable", (
                f"torch {version} is a CUDA build, not a ROCm build; install the ROCm build "
                "of torch."
            )
        hidden = _hidden(
            env, ("HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES")
        )
        if hidden:
            return "device_nodes_unusable", f"{hidden} hides every GPU from torch."
        return "device_nodes_unusable", (
            "the ROCm runtime found no supported GPU: check that the amdgpu driver is loaded on "
            "the host, that this ROCm release supports the GPU (HSA_OVERRIDE_GFX_VERSION helps "
            "for some consumer cards) and that /dev/dri was passed to the container."
        )
    if facts.get("npu") is None:
        return "device_nodes_unusable", (
            f"torch_npu is not installed; install the torch_npu release that matches torch "
            f"{version} and source the CANN set_env.sh."
        )
    hidden = _hidden(env, ("ASCEND_RT_VISIBLE_DEVICES",))
    if hidden:
        return "device_nodes_unusable", f"{hidden} hides every NPU from torch_npu."
    return "device_nodes_unusable", (
        "torch_npu sees no NPU: check that the Ascend driver version matches the CANN toolkit, "
        "that CANN's set_env.sh was sourced and that the driver folders are mounted into the "
        "container (/usr/local/Ascend/driver)."
    )


def _hidden(env: dict[str, Any], names: tuple[str, ...]) -> str | None:
    for name in names:
        value = env.get(name)
        if value is not None and str(value).strip().lower() in {"", "-1", "none", "void"}:
            return f"{name}={value!r}"
    return None


def _major(version: Any) -> int | None:
    match = re.match(r"\s*(\d+)", str(version or ""))
    return int(match.group(1)) if match else None


def _nvidia_cause(
    family: str, torch: dict[str, Any], env: dict[str, Any], facts: dict[str, Any]
) -> str:
    if torch.get("hip"):
        return f"torch {torch.get('version')} is a ROCm build; install a CUDA build of torch."
    hidden = _hidden(env, ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES"))
    if hidden:
        return f"{hidden} hides every GPU from torch."
    nvml = facts.get("nvml") or {}
    driver_cuda, runtime = nvml.get("cuda_driver_version"), torch.get("cuda")
    said = " ".join(torch.get("warnings") or [])
    if (_major(driver_cuda) or 99) < (_major(runtime) or 0) or re.search(
        r"driver.*(too old|insufficient)", said, re.IGNORECASE
    ):
        driver = nvml.get("driver_version") or "installed"
        return (
            f"driver/runtime mismatch: the {driver} NVIDIA driver supports CUDA "
            f"{driver_cuda or 'older than ' + str(runtime)} but torch {torch.get('version')} "
            f"needs CUDA {runtime}; upgrade the host driver or install a torch build for an "
            "older CUDA."
        )
    if family == "jetson":
        return (
            "torch sees no CUDA device: start the container with --runtime nvidia so the L4T "
            "CUDA libraries are mounted, and use a torch wheel built for this JetPack."
        )
    if family == "wsl":
        return (
            "torch sees no CUDA device through WSL2: install the NVIDIA Windows driver with "
            "WSL support and a CUDA build of torch."
        )
    if facts.get("nvml_error") or not nvml:
        return (
            "the device nodes are there but the NVIDIA driver libraries are not: start the "
            "container with --gpus all (NVIDIA Container Toolkit) instead of passing "
            "/dev/nvidia* with --device."
        )
    return (
        "torch's CUDA runtime could not open the GPU: run nvidia-smi in the container, "
        "check that no other process holds it in exclusive mode, and restart the container "
        "with --gpus all." + (f" torch said: {said}" if said else "")
    )


# --- other warnings ---------------------------------------------------------------------------


def _no_accelerator(facts: dict[str, Any]) -> dict[str, str]:
    openvino = facts.get("openvino") or {}
    ov_devices = [d.get("name") for d in openvino.get("devices") or []]
    extra = ""
    if any(str(n).startswith(("GPU", "NPU")) for n in ov_devices):
        extra = (
            f" OpenVINO sees {', '.join(map(str, ov_devices))}: export trained models with "
            "format=openvino to run inference there."
        )
    elif openvino:
        extra = " Export trained models with format=openvino for faster CPU inference."
    return _warning(
        "no_accelerator",
        (
            "No GPU or NPU is usable by torch, so training runs on the CPU: fine for the built-in "
            "shapes dataset and small images (imgsz 320 or less), slow for real datasets. To use a "
            "GPU, start the container with it (e.g. --gpus all) from a GPU image." + extra
        ),
    )


def _torch_warnings(facts: dict[str, Any], choice: Choice, warnings: list[dict[str, str]]) -> None:
    torch = facts.get("torch")
    if torch is None:
        errors = [e for e in facts.get("errors") or [] if str(e).startswith("torch")]
        python = (facts.get("python") or {}).get("executable") or "the probe's Python"
        warnings.append(
            _warning(
                "torch_missing",
                (
                    f"torch could not be imported by {python}"
                    f"{': ' + errors[0] if errors else ''}; install torch there or set "
                    "YoloApp.probe_python to an interpreter that has it."
                ),
            )
        )
        return
    if choice.kind == "cuda" and not choice.jetson:
        arch_list = [str(a) for a in torch.get("arch_list") or []]
        for device in choice.devices:
            if arch_list and not _arch_supported(str(device.get("capability", "")), arch_list):
                warnings.append(
                    _warning(
                        "cuda_arch_unsupported",
                        (
                            f"GPU {device.get('index')} ({device.get('name')}, compute capability "
                            f"{device.get('capability')}) is not in torch {torch.get('version')}'s "
                            f"kernel list ({' '.join(arch_list)}); training fails with 'no kernel "
                            "image'. "
                            "Install a torch build for a newer CUDA."
                        ),
                    )
                )
                break
    if any(d.get("mig") for d in choice.devices):
        device = choice.devices[0]
        warnings.append(
            _warning(
                "mig",
                (
                    f"GPU {device.get('index')} is a MIG instance with {gib(choice.memory_bytes)}: "
                    "a "
                    "process can use only one MIG instance, so training uses it alone; ask for a "
                    "whole "
                    "GPU for bigger models."
                ),
            )
        )


def _arch_supported(capability: str, arch_list: list[str]) -> bool:
    match = re.match(r"(\d+)\.(\d+)", capability)
    if not match:
        return True
    major, minor = int(match.group(1)), int(match.group(2))
    for arch in arch_list:
        found = re.match(r"(sm|compute)_(\d+?)(\d)[a-z]?$", arch)
        if not found:
            continue
        kind, a_major, a_minor = found.group(1), int(found.group(2)), int(found.group(3))
        if kind == "sm" and a_major == major and a_minor <= minor:
            return True
        if kind == "compute" and (a_major, a_minor) <= (major, minor):
            return True
    return False


def _host_warnings(host: dict[str, Any], warnings: list[dict[str, str]]) -> None:
    quota, visible = host.get("cpu_quota"), host.get("affinity_cpus") or host.get("cpu_count")
    usable = host.get("cpus_usable")
    if quota is not None and visible and usable and usable < visible:
        warnings.append(
            _warning(
                "cpu_quota",
                (
                    f"The container may use {quota:g} CPUs but sees {visible}; thread pools sized "
                    "from "
                    f"the visible count over-subscribe the quota and slow training. Set "
                    f"OMP_NUM_THREADS={usable} and keep workers at the recommended value, or raise "
                    "the "
                    "container's --cpus."
                ),
            )
        )
    memory = host.get("memory_effective_bytes")
    if memory is not None and memory < 4 * GIB:
        source = "its cgroup limit" if host.get("memory_limit_bytes") else "the machine"
        warnings.append(
            _warning(
                "low_memory",
                (
                    f"Only {gib(memory)} of memory is available ({source}); use a small batch, "
                    "workers=0 and cache=False, or give the container more memory (docker "
                    "--memory)."
                ),
            )
        )
