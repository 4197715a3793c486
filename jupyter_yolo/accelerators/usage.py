"""Live utilisation, cheap enough to poll every second: CPU, memory and GPUs.

CPU time comes from the container's cgroup where there is one (so a container with ``--cpus=2``
on a 64-core host reads 100 % when it uses its two CPUs), else from /proc/stat. GPUs come from
NVML (NVIDIA, initialised once and only if it loads), amdgpu sysfs files and the Jetson GPU load
file. Nothing here imports torch.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .host import (
    ROOT,
    UNLIMITED_BYTES,
    affinity_cpus,
    cgroup_cpu_quota,
    cgroup_dirs,
    cgroup_version,
    meminfo,
    usable_cpus,
)

FIRST_SAMPLE_S = 0.05


@dataclass
class CpuSample:
    """One reading of consumed CPU time: ``busy`` seconds of CPU at ``wall`` monotonic seconds."""

    wall: float
    busy: float
    total: float | None  # /proc/stat only: all CPU seconds, idle included


class UsageReader:
    """Reads utilisation; keeps the previous CPU sample so each reading is a real delta.

    ``clock`` (monotonic seconds) times the CPU samples and ``sleep`` waits for the first one
    when :meth:`prime` was not called; tests pass their own to measure without real time.
    """

    def __init__(
        self,
        root: Path = ROOT,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.root = root
        self.clock = clock
        self.sleep = sleep
        self._previous: CpuSample | None = None
        self._located = False
        self._cpu_file: Path | None = None
        self._memory_dirs: list[Path] = []
        self._cpus = 1
        self._nvml: Any = None
        self._nvml_handles: list[Any] = []
        self._nvml_failed = False

    # -- locating the files once ------------------------------------------------------------

    def _locate(self) -> None:
        if self._located:
            return
        self._located = True
        version = cgroup_version(self.root)
        if version == 2:
            dirs = cgroup_dirs(self.root, "cpu")
            self._cpu_file = dirs[0] / "cpu.stat" if dirs else None
        elif version == 1:
            dirs = cgroup_dirs(self.root, "cpuacct")
            self._cpu_file = dirs[0] / "cpuacct.usage" if dirs else None
        if self._cpu_file is not None and not self._cpu_file.is_file():
            self._cpu_file = None
        self._memory_dirs = cgroup_dirs(self.root, "memory")
        affinity = affinity_cpus() if self.root == ROOT else None
        count = os.cpu_count() if self.root == ROOT else None
        self._cpus = usable_cpus(affinity, count, cgroup_cpu_quota(self.root))

    # -- CPU --------------------------------------------------------------------------------

    def _sample(self) -> CpuSample | None:
        wall = self.clock()
        if self._cpu_file is not None:
            with contextlib.suppress(OSError, ValueError):
                text = self._cpu_file.read_text()
                if self._cpu_file.name == "cpu.stat":
                    fields = dict(line.split()[:2] for line in text.splitlines() if line.strip())
                    return CpuSample(wall, int(fields["usage_usec"]) / 1e6, None)
                return CpuSample(wall, int(text.split()[0]) / 1e9, None)
        with contextlib.suppress(OSError, ValueError, IndexError):
            line = (self.root / "proc/stat").read_text().splitlines()[0]
            ticks = [int(v) for v in line.split()[1:]]
            idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
            return CpuSample(wall, float(sum(ticks) - idle), float(sum(ticks)))
        return None

    def prime(self) -> None:
        """Take a first CPU sample now so the next :meth:`read` measures from here."""
        self._locate()
        self._previous = self._sample()

    def cpu_percent(self) -> float | None:
        """Return CPU use since the previous call in percent of the usable CPUs (0-100)."""
        self._locate()
        if self._previous is None:
            self._previous = self._sample()
            self.sleep(FIRST_SAMPLE_S)
        current = self._sample()
        previous, self._previous = self._previous, current
        if current is None or previous is None:
            return None
        if current.total is not None and previous.total is not None:
            spent = current.total - previous.total
            percent = 100.0 * (current.busy - previous.busy) / spent if spent > 0 else 0.0
        else:
            wall = current.wall - previous.wall
            percent = 100.0 * (current.busy - previous.busy) / (wall * self._cpus) if wall else 0.0
        return round(min(100.0, max(0.0, percent)), 1)

    # -- memory -----------------------------------------------------------------------------

    def memory(self) -> dict[str, Any]:
        """Return memory used and its limit: the cgroup's when it has a limit, else the host's."""
        self._locate()
        v2 = bool(self._memory_dirs) and (self._memory_dirs[0] / "memory.current").is_file()
        limit_name, usage_name = (
            ("memory.max", "memory.current")
            if v2
            else ("memory.limit_in_bytes", "memory.usage_in_bytes")
        )
        limits = [
            v
            for v in (_int_file(d / limit_name) for d in self._memory_dirs)
            if v is not None and 0 < v < UNLIMITED_BYTES
        ]
        if limits and self._memory_dirs:
            used = _int_file(self._memory_dirs[0] / usage_name)
            if used is not None:
                stat = _key_values(self._memory_dirs[0] / "memory.stat")
                used -= stat.get("inactive_file", stat.get("total_inactive_file", 0))
                return _memory(max(used, 0), min(limits), "cgroup")
        info = meminfo(self.root)
        total = info.get("MemTotal")
        if total is None:
            return {"used_bytes": None, "limit_bytes": None, "percent": None, "source": None}
        return _memory(total - info.get("MemAvailable", info.get("MemFree", 0)), total, "host")

    # -- GPUs -------------------------------------------------------------------------------

    def _nvml_init(self) -> bool:
        if self._nvml is not None:
            return True
        if self._nvml_failed:
            return False
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml_handles = [
                pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())
            ]
        except Exception:
            self._nvml_failed = True
            return False
        self._nvml = pynvml
        return True

    def nvidia_gpus(self) -> list[dict[str, Any]]:
        """Return NVML readings per NVIDIA GPU, or ``[]`` where NVML does not load."""
        if self.root != ROOT or not self._nvml_init():
            return []
        nvml = self._nvml
        gpus = []
        for index, handle in enumerate(self._nvml_handles):
            gpu: dict[str, Any] = {
                "index": index,
                "backend": "nvml",
                "name": None,
                "utilization_percent": None,
                "memory_used_bytes": None,
                "memory_total_bytes": None,
                "temperature_c": None,
                "power_w": None,
                "power_limit_w": None,
            }
            with contextlib.suppress(Exception):
                name = nvml.nvmlDeviceGetName(handle)
                gpu["name"] = name.decode() if isinstance(name, bytes) else str(name)
            with contextlib.suppress(Exception):
                gpu["utilization_percent"] = float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
            with contextlib.suppress(Exception):
                memory = nvml.nvmlDeviceGetMemoryInfo(handle)
                gpu["memory_used_bytes"] = int(memory.used)
                gpu["memory_total_bytes"] = int(memory.total)
            with contextlib.suppress(Exception):
                gpu["temperature_c"] = float(
                    nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU)
                )
            with contextlib.suppress(Exception):
                gpu["power_w"] = nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0
            with contextlib.suppress(Exception):
                gpu["power_limit_w"] = nvml.nvmlDeviceGetEnforcedPowerLimit(handle) / 1000.0
            gpus.append(gpu)
        return gpus

    def sysfs_gpus(self) -> list[dict[str, Any]]:
        """Return AMD GPU readings from amdgpu sysfs files and the Jetson GPU load."""
        gpus: list[dict[str, Any]] = []
        for card in sorted((self.root / "sys/class/drm").glob("card[0-9]*")):
            device = card / "device"
            if "-" in card.name or _text(device / "vendor") != "0x1002":
                continue
            busy = _int_file(device / "gpu_busy_percent")
            if busy is None:
                continue
            hwmon = next(iter(sorted(device.glob("hwmon/hwmon*"))), None)
            temp = _int_file(hwmon / "temp1_input") if hwmon else None
            power = _int_file(hwmon / "power1_average") if hwmon else None
            gpus.append(
                {
                    "index": len(gpus),
                    "backend": "amdgpu",
                    "name": card.name,
                    "utilization_percent": float(busy),
                    "memory_used_bytes": _int_file(device / "mem_info_vram_used"),
                    "memory_total_bytes": _int_file(device / "mem_info_vram_total"),
                    "temperature_c": temp / 1000.0 if temp is not None else None,
                    "power_w": power / 1e6 if power is not None else None,
                    "power_limit_w": None,
                }
            )
        for load_file in ("sys/devices/gpu.0/load", "sys/devices/platform/gpu.0/load"):
            load = _int_file(self.root / load_file)
            if load is not None:
                gpus.append(
                    {
                        "index": len(gpus),
                        "backend": "jetson",
                        "name": "Jetson GPU",
                        "utilization_percent": load / 10.0,
                        "memory_used_bytes": None,
                        "memory_total_bytes": None,
                        "temperature_c": None,
                        "power_w": None,
                        "power_limit_w": None,
                    }
                )
                break
        return gpus

    # -- everything -------------------------------------------------------------------------

    def read(self) -> dict[str, Any]:
        """Return one reading: time, CPU percent and count, memory, GPUs."""
        self._locate()
        gpus = self.nvidia_gpus() or self.sysfs_gpus()
        load = None
        with contextlib.suppress(OSError, AttributeError):
            load = [round(v, 2) for v in os.getloadavg()]
        return {
            "time": time.time(),
            "cpu": {
                "percent": self.cpu_percent(),
                "cpus": self._cpus,
                "load_average": load,
                "source": "cgroup" if self._cpu_file is not None else "proc",
            },
            "memory": self.memory(),
            "gpus": gpus,
        }


def _text(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _int_file(path: Path) -> int | None:
    text = _text(path)
    if text is None:
        return None
    try:
        return int(text.split()[0])
    except (ValueError, IndexError):
        return None


def _key_values(path: Path) -> dict[str, int]:
    result: dict[str, int] = {}
    for line in (_text(path) or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            result[parts[0]] = int(parts[1])
    return result


def _memory(used: int, limit: int, source: str) -> dict[str, Any]:
    percent = round(100.0 * used / limit, 1) if limit else None
    return {"used_bytes": used, "limit_bytes": limit, "percent": percent, "source": source}


_default: UsageReader | None = None


def read_usage() -> dict[str, Any]:
    """Return one utilisation reading from a process-wide reader (created on first use)."""
    global _default  # noqa: PLW0603  (one reader keeps the previous CPU sample between calls)
    if _default is None:
        _default = UsageReader()
    return _default.read()
