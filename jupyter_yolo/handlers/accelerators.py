"""``/yolo/accelerators``: the hardware report and a cheap live usage reading.

With ``YoloApp.ray_address`` set both carry the Ray cluster too (``cluster``): asked in a worker
thread with a short timeout and cached a few seconds, so a cluster that is down shows as an
``error`` in the report, never as a slow page or a 5xx.
"""

from __future__ import annotations

import asyncio

from jupyter_server.auth.decorator import authorized
from tornado import web

from .base import YoloHandler


class AcceleratorsHandler(YoloHandler):
    """``GET /yolo/accelerators``: the cached hardware report; ``?refresh=1`` probes again."""

    auth_resource = "jupyter_yolo:accelerators"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """Return the accelerator report, the executors offered and the Ray cluster (or null)."""
        refresh = self.query_flag("refresh")
        cluster = asyncio.ensure_future(self.yolo.cluster.report(refresh=refresh))
        try:
            report = await self.yolo.accelerators.report(refresh=refresh)
        finally:
            cluster_report = await cluster
        self.write_json(
            {**report, "executors": self.yolo.cluster.executors, "cluster": cluster_report}
        )


class UsageHandler(YoloHandler):
    """``GET /yolo/accelerators/usage``: utilisation now, cheap enough to poll every second."""

    auth_resource = "jupyter_yolo:accelerators"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """Return CPU, memory, GPU utilisation (where NVML exists) and the Ray cluster's use."""
        usage = self.yolo.accelerators.usage()
        self.write_json({**usage, "cluster": await self.yolo.cluster.usage()})


HANDLERS = [
    (r"/yolo/accelerators", AcceleratorsHandler),
    (r"/yolo/accelerators/usage", UsageHandler),
]
