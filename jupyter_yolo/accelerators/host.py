"""Host facts read from /proc, /sys/fs/cgroup and /dev, without importing torch.

Every reader takes ``root`` (default ``/``) so that tests can point it at a fake tree. Readers
never raise for a missing or unreadable file: they return ``None`` (or an empty list) instead,
because a host that hides a file is normal (macOS has no /proc, containers hide cgroup parents).
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

ROOT = Path("/")

#: Values at or above this many bytes mean "no memory limit" (cgroup v1 writes 2**63 rounded down
#: to the page size; some runtimes write other huge numbers).
UNLIMITED_BYTES = 1 << 60

#: Patterns, relative to ``/dev``, of device nodes that belong to an accelerator family.
DEVICE_NODE_PATTERNS: tuple[str, ...] = (
    "nvidia[0-9]*",
    "nvidiactl",
    "nvidia-uvm",
    "nvhost-*",
    "nvmap",
    "kfd",
    "dri/renderD*",
    "davinci[0-9]*",
    "davinci_manager",
    "dxg",
)


def _read_text(path: Path) -> str | None:
    """Return a file's text, or ``None`` when it is missing or unreadable."""
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _under(root: Path, absolute: str) -> Path:
    """Return ``absolute`` (a path such as ``/proc/meminfo``) inside ``root``."""
    return root / absolute.lstrip("/")


def cpu_model(root: Path = ROOT) -> str | None:
    """Return the CPU model name from /proc/cpuinfo (or the board model on ARM boards)."""
    text = _read_text(_under(root, "/proc/cpuinfo")) or ""
    fallback = None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip().lower(), value.strip()
        if key == "model name" and value:
            return value
        if key in {"hardware", "model"} and value and fallback is None:
            fallback = value
    return fallback or board_model(root)


def board_model(root: Path = ROOT) -> str | None:
    """Return the device-tree board model (Jetson, Raspberry Pi ...), or ``None``."""
    text = _read_text(_under(root, "/proc/device-tree/model"))
    if text is None:
        return None
    return text.replace("\x00", "").strip() or None


def tegra_release(root: Path = ROOT) -> str | None:
    """Return the first line of /etc/nv_tegra_release (present on NVIDIA Jetson), or ``None``."""
    text = _read_text(_under(root, "/etc/nv_tegra_release"))
    if text is None:
        return None
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first.lstrip("# ").strip() or "present"


def affinity_cpus() -> int | None:
    """Return how many CPUs this process may run on, or ``None`` where the OS cannot say."""
    getaffinity = getattr(os, "sched_getaffinity", None)
    if getaffinity is None:
        return None
    try:
        return len(getaffinity(0))
    except OSError:
        return None


def cgroup_version(root: Path = ROOT) -> int | None:
    """Return 2 for a unified cgroup hierarchy, 1 for the legacy one, ``None`` for none."""
    base = _under(root, "/sys/fs/cgroup")
    if (base / "cgroup.controllers").is_file():
        return 2
    if any((base / name).is_dir() for name in ("cpu", "cpu,cpuacct", "memory", "cpuacct")):
        return 1
    return None


def _proc_cgroups(root: Path) -> dict[str, str]:
    """Map each cgroup controller (``""`` for v2) to this process's path from /proc/self/cgroup."""
    result: dict[str, str] = {}
    for line in (_read_text(_under(root, "/proc/self/cgroup")) or "").splitlines():
        parts = line.strip().split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if hierarchy == "0" and not controllers:
            result[""] = path
        for controller in controllers.split(","):
            if controller:
                result[controller] = path
    return result


def cgroup_dirs(root: Path, controller: str) -> list[Path]:
    """Return this process's cgroup folders for ``controller``, deepest first, then its ancestors.

    ``controller`` is a v1 controller name (``cpu``, ``cpuacct``, ``memory``); on a unified (v2)
    hierarchy it is ignored. The process's own folder is missing when the runtime mounts only
    its cgroup (Docker without a cgroup namespace): then the list starts at the mount point.
    Limits are hierarchical, so callers take the smallest value over the whole list.
    """
    base = _under(root, "/sys/fs/cgroup")
    version = cgroup_version(root)
    paths = _proc_cgroups(root)
    if version == 2:
        mount, relative = base, paths.get("", "/")
    elif version == 1:
        mounts = sorted(d for d in base.iterdir() if d.is_dir() and controller in d.name.split(","))
        if not mounts:
            return []
        mount, relative = mounts[0], paths.get(controller, "/")
    else:
        return []
    folders: list[Path] = []
    current = mount.joinpath(*[p for p in relative.split("/") if p and p != ".."])
    while True:
        if current.is_dir():
            folders.append(current)
        if current == mount:
            return folders
        current = current.parent


def _first_int(text: str | None) -> int | None:
    if text is None:
        return None
    match = re.match(r"\s*(-?\d+)", text)
    return int(match.group(1)) if match else None


def cgroup_cpu_quota(root: Path = ROOT) -> float | None:
    """Return the cgroup CPU quota in CPUs (``2.5`` for ``--cpus=2.5``); ``None``: no quota."""
    quotas: list[float] = []
    version = cgroup_version(root)
    for folder in cgroup_dirs(root, "cpu"):
        if version == 2:
            fields = (_read_text(folder / "cpu.max") or "").split()
            if len(fields) >= 2 and fields[0] != "max":
                quota, period = _first_int(fields[0]), _first_int(fields[1])
                if quota and period and quota > 0 and period > 0:
                    quotas.append(quota / period)
        else:
            quota = _first_int(_read_text(folder / "cpu.cfs_quota_us"))
            period = _first_int(_read_text(folder / "cpu.cfs_period_us"))
            if quota and period and quota > 0 and period > 0:
                quotas.append(quota / period)
    return min(quotas) if quotas else None


def cgroup_memory_limit(root: Path = ROOT) -> int | None:
    """Return the cgroup memory limit in bytes, or ``None`` when there is none."""
    name = "memory.max" if cgroup_version(root) == 2 else "memory.limit_in_bytes"
    limits: list[int] = []
    for folder in cgroup_dirs(root, "memory"):
        value = _first_int(_read_text(folder / name))
        if value is not None and 0 < value < UNLIMITED_BYTES:
            limits.append(value)
    return min(limits) if limits else None


def meminfo(root: Path = ROOT) -> dict[str, int]:
    """Return /proc/meminfo as bytes per field (``MemTotal``, ``MemAvailable`` ...)."""
    result: dict[str, int] = {}
    for line in (_read_text(_under(root, "/proc/meminfo")) or "").splitlines():
        key, _, rest = line.partition(":")
        fields = rest.split()
        if fields and fields[0].isdigit():
            scale = 1024 if len(fields) > 1 and fields[1].lower() == "kb" else 1
            result[key.strip()] = int(fields[0]) * scale
    return result


def shm_facts(root: Path = ROOT) -> dict[str, int] | None:
    """Return the size and free space of /dev/shm in bytes, or ``None`` without one."""
    path = _under(root, "/dev/shm")
    if not path.is_dir():
        return None
    try:
        stat = os.statvfs(path)
    except OSError:
        return None
    return {
        "size_bytes": stat.f_blocks * stat.f_frsize,
        "free_bytes": stat.f_bavail * stat.f_frsize,
    }


def device_nodes(root: Path = ROOT) -> list[dict[str, Any]]:
    """Return accelerator device nodes found in /dev, each with whether this user may open it."""
    dev = _under(root, "/dev")
    found: set[Path] = set()
    for pattern in DEVICE_NODE_PATTERNS:
        found.update(dev.glob(pattern))
    nodes = []
    for path in sorted(found, key=lambda p: _natural_key(str(p))):
        relative = path.relative_to(dev).as_posix()
        nodes.append({"path": f"/dev/{relative}", "accessible": os.access(path, os.R_OK | os.W_OK)})
    return nodes


def _natural_key(text: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def usable_cpus(affinity: int | None, cpu_count: int | None, quota: float | None) -> int:
    """Return the CPUs a process can keep busy: min(affinity, ceil(quota)), at least 1."""
    limit = max(1, math.ceil(quota - 1e-9)) if quota is not None else None
    visible = affinity or cpu_count or limit or 1
    return max(1, min(visible, limit) if limit is not None else visible)


def read_host(
    root: Path = ROOT, *, cpu_count: int | None = None, affinity: int | None = None
) -> dict[str, Any]:
    """Return every host fact as a JSON-ready dict.

    ``cpu_count`` and ``affinity`` default to :func:`os.cpu_count` and the scheduler affinity of
    this process; tests that use a fake ``root`` pass their own.
    """
    if root == ROOT:
        cpu_count = cpu_count if cpu_count is not None else os.cpu_count()
        affinity = affinity if affinity is not None else affinity_cpus()
    quota = cgroup_cpu_quota(root)
    info = meminfo(root)
    total = info.get("MemTotal")
    limit = cgroup_memory_limit(root)
    effective = min(v for v in (total, limit) if v is not None) if (total or limit) else None
    return {
        "cpu_model": cpu_model(root),
        "cpu_count": cpu_count,
        "affinity_cpus": affinity,
        "cgroup_version": cgroup_version(root),
        "cpu_quota": quota,
        "cpus_usable": usable_cpus(affinity, cpu_count, quota),
        "memory_total_bytes": total,
        "memory_available_bytes": info.get("MemAvailable"),
        "memory_limit_bytes": limit,
        "memory_effective_bytes": effective,
        "shm": shm_facts(root),
        "device_nodes": device_nodes(root),
        "tegra_release": tegra_release(root),
        "board_model": board_model(root),
    }
