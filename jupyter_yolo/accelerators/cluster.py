"""The Ray cluster behind the ``ray`` executor, as the hardware report and the status bar show it.

The server never imports ``ray``: :class:`ClusterService` asks the head's dashboard through
:class:`jupyter_yolo.jobs.ray_api.RayJobsApi` in a worker thread, with a short timeout, and keeps
the answer a few seconds so that a status bar polling every second costs Ray one request every few
seconds. An unreachable cluster or one that runs another Ray version is a report with ``error``
set, never an exception: the hardware page stays up when the cluster is down.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypedDict

from ..contract.executors import EXECUTORS, ClusterNode, ClusterReport, Executor
from ..jobs.ray_api import RayJobsApi

REPORT_TIMEOUT_S = 3.0
"""Seconds one request to the Ray head may take before the cluster counts as unreachable."""

REPORT_MAX_AGE_S = 5.0
"""Seconds a cluster report is served from the cache (``?refresh=1`` asks Ray again)."""


class ExecutorsReport(TypedDict):
    """The executors this server offers a job request, and the one a request without any gets."""

    available: list[Executor]
    default: Executor


class ResourceUse(TypedDict):
    """One resource across the cluster: how much exists, is in use and is free."""

    total: float
    used: float
    free: float


class ClusterLiveUsage(TypedDict):
    """The cluster's part of ``GET /yolo/accelerators/usage``: what is free now."""

    address: str
    reachable: bool
    error: str | None
    nodes: int
    """Alive nodes."""
    cpu: ResourceUse
    gpu: ResourceUse
    gpu_types: dict[str, int]
    """GPUs by type across alive nodes (Ray reports use per resource, not per GPU type)."""
    resources: dict[str, ResourceUse]
    """Custom resources (everything but CPU, GPU and memory bookkeeping)."""
    members: list[ClusterNode]
    """Every node Ray knows, alive or dead (the status bar's tooltip lists them)."""


def offered_executors(executor: str, ray_address: str) -> ExecutorsReport:
    """What a job request may choose: ``local`` always, ``ray`` when a cluster is configured."""
    available: list[Executor] = [e for e in EXECUTORS if e == "local" or ray_address]
    default: Executor = "ray" if executor == "ray" and ray_address else "local"
    return {"available": available, "default": default}


def _use(report: ClusterReport, name: str) -> ResourceUse:
    pair = report["usage"].get(name)
    if pair is None:
        return {"total": 0.0, "used": 0.0, "free": 0.0}
    total, used = float(pair["total"]), float(pair["used"])
    return {"total": total, "used": used, "free": max(total - used, 0.0)}


_BOOKKEEPING = ("CPU", "GPU", "memory", "object_store_memory", "objectStoreMemory")


def live_usage(report: ClusterReport) -> ClusterLiveUsage:
    """The free and used CPUs, GPUs and custom resources of a cluster report."""
    custom = {
        name: _use(report, name)
        for name in sorted(report["usage"])
        if name not in _BOOKKEEPING and not name.startswith(("node:", "accelerator_type:"))
    }
    return {
        "address": report["address"],
        "reachable": report["reachable"],
        "error": report["error"],
        "nodes": sum(1 for node in report["nodes"] if node["state"] == "ALIVE"),
        "cpu": _use(report, "CPU"),
        "gpu": _use(report, "GPU"),
        "gpu_types": dict(report["gpu_types"]),
        "resources": custom,
        "members": list(report["nodes"]),
    }


def _safe(fetch: Callable[[], ClusterReport], address: str) -> ClusterReport:
    """``fetch()``, or a report of the error when Ray's answer could not even be read."""
    try:
        return fetch()
    except Exception as exc:  # a malformed answer must not become a 500 of the hardware page
        return {
            "address": address,
            "reachable": False,
            "ray_version": None,
            "version_ok": False,
            "error": f"The Ray cluster at {address} answered something unreadable ({exc}).",
            "nodes": [],
            "usage": {},
            "gpu_types": {},
        }


class ClusterService:
    """Caches the Ray cluster report; concurrent callers share one request to Ray.

    ``fetch`` builds the report (blocking); it defaults to :meth:`RayJobsApi.report` at
    ``address`` with a :data:`REPORT_TIMEOUT_S` timeout. ``address`` empty: no cluster.
    """

    def __init__(
        self,
        address: str,
        executor: str,
        *,
        fetch: Callable[[], ClusterReport] | None = None,
        max_age: float = REPORT_MAX_AGE_S,
    ) -> None:
        self.address = address
        self.executors = offered_executors(executor, address)
        self.max_age = max_age
        self._fetch = fetch or (
            RayJobsApi(address, timeout=REPORT_TIMEOUT_S).report if address else None
        )
        self._report: ClusterReport | None = None
        self._fetched_at = 0.0
        self._inflight: asyncio.Future[ClusterReport] | None = None

    @property
    def configured(self) -> bool:
        """Whether a Ray cluster is configured (``YoloApp.ray_address`` set)."""
        return self._fetch is not None

    async def report(self, refresh: bool = False) -> ClusterReport | None:
        """The cluster report (None without a cluster); asks Ray when stale or ``refresh``."""
        if self._fetch is None:
            return None
        fresh = time.monotonic() - self._fetched_at < self.max_age
        if self._report is not None and fresh and not refresh:
            return self._report
        if self._inflight is None:
            self._inflight = asyncio.ensure_future(self._ask(self._fetch))
        return await asyncio.shield(self._inflight)

    async def _ask(self, fetch: Callable[[], ClusterReport]) -> ClusterReport:
        try:
            report = await asyncio.to_thread(_safe, fetch, self.address)
        finally:
            self._inflight = None
        self._report = report
        self._fetched_at = time.monotonic()
        return report

    async def usage(self) -> ClusterLiveUsage | None:
        """The cluster's live usage (None without a cluster), from a report at most a few s old."""
        report = await self.report()
        return None if report is None else live_usage(report)
