"""What the runner may use of this host: CPUs under the cgroup quota and affinity, /dev/shm.

Plain file reads only (no torch), so the figures can be computed before any heavy import.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
SHM_PATH = Path("/dev/shm")


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None


def _cgroup_paths(proc_cgroup: Path = Path("/proc/self/cgroup")) -> tuple[str | None, str | None]:
    """Return (cgroup v2 path, cgroup v1 cpu controller path) of this process."""
    text = _read(proc_cgroup) or ""
    v2: str | None = None
    v1: str | None = None
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            v2 = path
        elif "cpu" in controllers.split(","):
            v1 = path
    return v2, v1


def _candidate_dirs(base: Path, path: str | None) -> list[Path]:
    """The cgroup folder of this process and its ancestors up to ``base``, innermost first."""
    dirs: list[Path] = []
    if path:
        current = base / path.lstrip("/")
        while True:
            dirs.append(current)
            if current == base or base not in current.parents:
                break
            current = current.parent
    if base not in dirs:
        dirs.append(base)
    return [d for d in dirs if d.is_dir()]


def cgroup_cpu_quota(
    root: Path = CGROUP_ROOT, proc_cgroup: Path = Path("/proc/self/cgroup")
) -> float | None:
    """The CPU limit (in CPUs) of the tightest cgroup around this process; None: unlimited."""
    v2, v1 = _cgroup_paths(proc_cgroup)
    limits: list[float] = []
    for folder in _candidate_dirs(root, v2):
        text = _read(folder / "cpu.max")
        if text:
            fields = text.split()
            if len(fields) == 2 and fields[0] != "max":
                try:
                    quota, period = int(fields[0]), int(fields[1])
                except ValueError:
                    continue
                if quota > 0 and period > 0:
                    limits.append(quota / period)
    for name in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
        base = root / name
        if not base.is_dir():
            continue
        for folder in _candidate_dirs(base, v1):
            quota_text = _read(folder / "cpu.cfs_quota_us")
            period_text = _read(folder / "cpu.cfs_period_us")
            try:
                quota = int(quota_text or "-1")
                period = int(period_text or "0")
            except ValueError:
                continue
            if quota > 0 and period > 0:
                limits.append(quota / period)
        break
    return min(limits) if limits else None


def affinity_cpus() -> int:
    """CPUs this process may be scheduled on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def usable_cpus() -> int:
    """CPUs usable under both the affinity mask and the cgroup quota (quota rounded down, >= 1)."""
    cpus = affinity_cpus()
    quota = cgroup_cpu_quota()
    if quota is not None:
        cpus = min(cpus, max(1, math.floor(quota)))
    return cpus


def shm_available_bytes(path: Path = SHM_PATH) -> int:
    """Free bytes in /dev/shm (0 when it does not exist)."""
    try:
        stats = os.statvfs(path)
    except OSError:
        return 0
    return stats.f_bavail * stats.f_frsize


@dataclass(frozen=True)
class WorkerPlan:
    """Dataloader workers to use and why they were lowered, if they were."""

    workers: int
    warnings: tuple[tuple[str, str], ...] = ()


def shm_bytes_per_worker(batch: int, imgsz: int) -> int:
    """A generous estimate of the shared memory one dataloader worker holds at once.

    ultralytics prefetches 4 training batches and 2 validation batches (of twice the size) per
    worker; a batch is uint8 images of 3 x imgsz x imgsz. A 25 % margin covers labels and
    collation copies.
    """
    per_image = 3 * imgsz * imgsz
    return int(per_image * batch * (4 + 2 * 2) * 1.25)


def plan_workers(
    requested: int,
    *,
    batch: int,
    imgsz: int,
    cpus: int | None = None,
    shm_bytes: int | None = None,
) -> WorkerPlan:
    """Cap dataloader workers to the usable CPUs and to what /dev/shm can hold."""
    cpus = usable_cpus() if cpus is None else cpus
    shm = shm_available_bytes() if shm_bytes is None else shm_bytes
    workers = max(0, requested)
    notes: list[tuple[str, str]] = []
    if workers > cpus:
        notes.append((
            "workers_capped",
            f"workers={workers} is more than the {cpus} CPU(s) usable in this container; "
            f"using workers={cpus}.",
        ))
        workers = cpus
    if workers > 0:
        batch_images = batch if batch >= 1 else 16
        per_worker = shm_bytes_per_worker(batch_images, imgsz)
        fits = shm // per_worker if per_worker else workers
        if fits < workers:
            mib = shm / 2**20
            notes.append((
                "low_shm",
                f"/dev/shm has {mib:.0f} MiB free, too little for {workers} dataloader "
                f"worker(s) at batch={batch_images} imgsz={imgsz}; using workers={fits}. Give the "
                "container more shared memory (docker run --shm-size=2g) to load data in parallel.",
            ))
            workers = int(fits)
    return WorkerPlan(workers=workers, warnings=tuple(notes))
