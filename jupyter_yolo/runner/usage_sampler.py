"""System usage of a running job, sampled into ``usage`` events from a daemon thread.

Every :data:`~jupyter_yolo.contract.results.USAGE_INTERVAL_S` seconds (the first sample after a
second, so a short job has one): the container's CPU share and memory limit and the GPUs
(:class:`~jupyter_yolo.accelerators.usage.UsageReader`: cgroups, /proc, NVML or sysfs, no torch),
and the memory of the runner and its session (dataloader workers: proportional set sizes, so
shared pages count once) from /proc. A
failed reading never touches the job: the sampler logs nothing and tries again next time.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import Any

from ..accelerators.usage import UsageReader
from ..contract.results import USAGE_EVENT, USAGE_INTERVAL_S, GpuUsage, UsageFields
from ..jobs.process import session_members
from .journal import Journal, number

FIRST_SAMPLE_S = 1.0
PROC = Path("/proc")


def _page_size() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError):
        return 4096


def process_memory_bytes(pid: int) -> int:
    """A process's proportional share of memory (PSS), or its resident size where PSS is unknown.

    Dataloader workers are forked from the runner and share its pages copy-on-write: summing
    their resident sizes would count those pages once per worker; PSS divides a shared page
    among its sharers, so the sum over a session is what the session really holds.
    """
    with contextlib.suppress(OSError, ValueError):
        for line in (PROC / str(pid) / "smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    return int((PROC / str(pid) / "statm").read_text().split()[1]) * _page_size()


def tree_rss_bytes() -> int | None:
    """Memory held by the runner and everything it started (its session, which it leads)."""
    me = os.getpid()
    members = session_members(me) if os.getsid(0) == me else [me]  # started by hand: itself
    total = 0
    found = False
    for pid in members:
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += process_memory_bytes(pid)
            found = True
    return total if found else None


def _gpu(raw: dict[str, Any]) -> GpuUsage:
    used, total = raw.get("memory_used_bytes"), raw.get("memory_total_bytes")
    return {
        "index": int(raw.get("index") or 0),
        "name": str(raw.get("name") or ""),
        "util_percent": number(raw.get("utilization_percent"), 1),
        "memory_used_bytes": used if isinstance(used, int) else None,
        "memory_total_bytes": total if isinstance(total, int) else None,
    }


def read_sample(reader: UsageReader) -> UsageFields:
    """One usage sample of this runner (fields the platform does not tell are None)."""
    cpu: float | None = None
    with contextlib.suppress(Exception):
        cpu = reader.cpu_percent()
    limit: int | None = None
    with contextlib.suppress(Exception):
        value = reader.memory().get("limit_bytes")
        limit = value if isinstance(value, int) else None
    gpus: list[GpuUsage] = []
    with contextlib.suppress(Exception):
        gpus = [_gpu(gpu) for gpu in (reader.nvidia_gpus() or reader.sysfs_gpus())]
    rss: int | None = None
    with contextlib.suppress(Exception):
        rss = tree_rss_bytes()
    return {
        "cpu_percent": number(cpu, 1),
        "memory_bytes": rss,
        "memory_limit_bytes": limit,
        "gpus": gpus,
    }


class UsageSampler:
    """Writes a ``usage`` event every ``interval`` seconds until :meth:`stop`."""

    def __init__(self, journal: Journal, interval: float = USAGE_INTERVAL_S) -> None:
        self.journal = journal
        self.interval = interval
        self.reader = UsageReader()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="yolo-usage", daemon=True)
        self.samples = 0

    def start(self) -> UsageSampler:
        """Start sampling (the CPU share is measured from now)."""
        with contextlib.suppress(Exception):
            self.reader.prime()
        self._thread.start()
        return self

    def _run(self) -> None:
        wait = min(FIRST_SAMPLE_S, self.interval)
        while not self._stopped.wait(wait):
            wait = self.interval
            try:
                fields = read_sample(self.reader)
                if self._stopped.is_set():
                    return
                self.journal.emit(USAGE_EVENT, **fields)
                self.samples += 1
            except Exception:  # a closed journal at the very end, an unreadable /proc ...
                continue

    def stop(self, timeout: float = 2.0) -> None:
        """Stop sampling and wait (briefly) for the thread, so no event follows the last one."""
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
