"""What the runner may use of this host: CPUs under the cgroup quota and affinity, /dev/shm.

The readers are the accelerator report's (plain file reads, no torch), so the runner and the
report agree on what the container offers; they work before any heavy import.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..accelerators import host


def usable_cpus() -> int:
    """CPUs usable under both the affinity mask and the cgroup quota (as the report counts them)."""
    return host.usable_cpus(host.affinity_cpus(), os.cpu_count(), host.cgroup_cpu_quota())


def shm_available_bytes() -> int:
    """Free bytes in /dev/shm (0 when it does not exist)."""
    facts = host.shm_facts()
    return facts["free_bytes"] if facts else 0


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
        notes.append(
            (
                "workers_capped",
                f"workers={workers} is more than the {cpus} CPU(s) usable in this container; "
                f"using workers={cpus}.",
            )
        )
        workers = cpus
    if workers > 0:
        batch_images = batch if batch >= 1 else 16
        per_worker = shm_bytes_per_worker(batch_images, imgsz)
        fits = shm // per_worker if per_worker else workers
        if fits < workers:
            mib = shm / 2**20
            notes.append(
                (
                    "low_shm",
                    f"/dev/shm has {mib:.0f} MiB free, too little for {workers} dataloader "
                    f"worker(s) at batch={batch_images} imgsz={imgsz}; using workers={fits}. "
                    "Give the container more shared memory (docker run --shm-size=2g) to load "
                    "data in parallel.",
                )
            )
            workers = int(fits)
    return WorkerPlan(workers=workers, warnings=tuple(notes))
