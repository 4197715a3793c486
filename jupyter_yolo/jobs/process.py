"""Runner processes seen from the server: identity across restarts, signals, a clean environment."""

from __future__ import annotations

import contextlib
import os
import re
import signal
from collections.abc import Mapping
from pathlib import Path

#: Variables a job (or the hardware probe) may inherit from the server, by exact name.
ALLOWED_NAMES = frozenset(
    {
        # the process and the user
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "TERM",
        "NO_COLOR",
        "TZ",
        "TZDIR",
        "TMPDIR",
        "TMP",
        "TEMP",
        "LANG",
        "LANGUAGE",
        "XDG_CACHE_HOME",
        "XDG_CONFIG_HOME",
        "XDG_DATA_HOME",
        # the Python environment
        "VIRTUAL_ENV",
        "CONDA_PREFIX",
        "CONDA_DEFAULT_ENV",
        # the dynamic loader: CUDA, ROCm, CANN and TensorRT libraries, tcmalloc or jemalloc
        "LD_LIBRARY_PATH",
        "LD_PRELOAD",
        # matplotlib (ultralytics' plots), offline switches of the libraries a job imports
        "MPLBACKEND",
        "MPLCONFIGDIR",
        "HF_HUB_OFFLINE",
        "TRANSFORMERS_OFFLINE",
        # Intel OpenVINO and oneAPI, Ascend CANN, thread counts without a prefix of their own
        "INTEL_OPENVINO_DIR",
        "TOOLCHAIN_HOME",
        "VECLIB_MAXIMUM_THREADS",
        "BLIS_NUM_THREADS",
    }
)

#: Variables a job may inherit by prefix (a name that looks like a secret is still dropped).
ALLOWED_PREFIXES = (
    "LC_",  # locale
    "PYTHON",  # PYTHONPATH, PYTHONHOME, PYTHONUTF8, PYTHONHASHSEED ...
    "YOLO_",  # ultralytics and this project (YOLO_OFFLINE, YOLO_CONFIG_DIR, YOLO_DEVICE ...)
    "JUPYTER_YOLO_",  # this project's runner switches
    # NVIDIA: CUDA_VISIBLE_DEVICES, CUDA_HOME, NVIDIA_VISIBLE_DEVICES, NCCL_*, TensorRT
    "CUDA_",
    "CUDNN_",
    "CUBLAS_",
    "NVIDIA_",
    "NCCL_",
    "TRT_",
    "TENSORRT_",
    # torch: TORCH_HOME, PYTORCH_CUDA_ALLOC_CONF, TRITON_CACHE_DIR
    "TORCH_",
    "PYTORCH_",
    "TRITON_",
    # AMD ROCm: HIP_VISIBLE_DEVICES, ROCR_VISIBLE_DEVICES, HSA_OVERRIDE_GFX_VERSION, MIOpen
    "HIP_",
    "ROCR_",
    "ROCM_",
    "HSA_",
    "MIOPEN_",
    "AMD_",
    "GPU_DEVICE_ORDINAL",
    # Huawei Ascend CANN and torch_npu
    "ASCEND_",
    "HCCL_",
    "NPU_",
    # NVIDIA Jetson (JetPack)
    "JETSON_",
    # Intel GPUs (XPU), oneAPI, OpenVINO, ONNX Runtime, oneDNN
    "ZE_",
    "SYCL_",
    "ONEAPI_",
    "OPENVINO_",
    "OV_",
    "ORT_",
    "DNNL_",
    "ONEDNN_",
    # CPU threads and their placement: OpenMP, Intel OpenMP, GNU OpenMP, MKL, OpenBLAS
    "OMP_",
    "KMP_",
    "GOMP_",
    "MKL_",
    "OPENBLAS_",
    "NUMEXPR_",
    # OpenCV (images and video in ultralytics), glibc's allocator tuning
    "OPENCV_",
    "MALLOC_",
)

#: Names that are never inherited even when allowed: credentials, tokens, keys, agent
#: sockets and anything that would let a job reach a service as the server's user.
_SECRET_NAME = re.compile(
    r"TOKEN|SECRET|PASSW|PASSPHRASE|API_?KEY|PRIVATE|AUTHORI[SZ]|CREDENTIAL|COOKIE|SESSION"
    r"|SIGNATURE|CONNECTION_STRING|DSN|WEBHOOK|(^|_)(KEY|KEYS|AUTH|CERT|CREDS|PAT|SAS|SOCK)(_|$)"
)
#: Values that carry a credential whatever the name (``scheme://user:password@host``).
_SECRET_VALUE = re.compile(r"://[^/\s:@]*:[^/\s@]*@")


def process_start_time(pid: int) -> int | None:
    """Start time of a process in clock ticks since boot (field 22 of /proc/PID/stat).

    Together with the pid it identifies a process across server restarts, so a recycled pid is
    never mistaken for the runner that once had it.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return int(fields[19])


def process_state(pid: int) -> str | None:
    """The one-letter state of a process (``Z`` for a zombie), or None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rfind(")") + 2 :].split()[0]


def is_same_process_alive(pid: int | None, start_time: int | None) -> bool:
    """Whether the process ``pid`` started at ``start_time`` still runs (zombies count as gone)."""
    if not pid:
        return False
    state = process_state(pid)
    if state is None or state in ("Z", "X"):
        return False
    return start_time is None or process_start_time(pid) == start_time


def session_members(session_id: int) -> list[int]:
    """Pids of the live processes of a session (a runner and everything it started)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if int(fields[3]) == session_id and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def signal_process(pid: int, sig: signal.Signals) -> None:
    """Send a signal to one process, ignoring one that is already gone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def signal_session(session_id: int, sig: signal.Signals) -> None:
    """Send a signal to the runner's process group and to any member of its session.

    The runner leads its own session and process group; dataloader workers stay in that group,
    but a member that made a group of its own is found through the session id.
    """
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(session_id, sig)
    for pid in session_members(session_id):
        signal_process(pid, sig)


def is_allowed_variable(name: str, value: str) -> bool:
    """Whether a job may inherit the variable: allowed by name or prefix, and no secret."""
    upper = name.upper()
    if name not in ALLOWED_NAMES and not name.startswith(ALLOWED_PREFIXES):
        return False
    return not _SECRET_NAME.search(upper) and not _SECRET_VALUE.search(value)


def allowed_environment(base: Mapping[str, str]) -> dict[str, str]:
    """The variables of ``base`` that a job or the hardware probe needs, and nothing else.

    An allow-list (:data:`ALLOWED_NAMES`, :data:`ALLOWED_PREFIXES`): Python, torch,
    ultralytics, the accelerator stacks (CUDA, ROCm, CANN, Jetson, XPU), OpenVINO and ONNX
    Runtime, thread settings and the locale. Cloud credentials, tokens, agent sockets, cluster
    and container settings of the server's environment are not on it; a name or value that
    looks like a secret is dropped even when its prefix is allowed.
    """
    return {key: value for key, value in base.items() if is_allowed_variable(key, value)}


def runner_environment(base: Mapping[str, str]) -> dict[str, str]:
    """The environment of a job: :func:`allowed_environment`, with unbuffered output."""
    env = allowed_environment(base)
    env["PYTHONUNBUFFERED"] = "1"
    return env
