"""``/yolo/accelerators``: the hardware report and a cheap live usage reading."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from .base import YoloHandler


class AcceleratorsHandler(YoloHandler):
    """``GET /yolo/accelerators``: the cached hardware report; ``?refresh=1`` probes again."""

    auth_resource = "jupyter_yolo:accelerators"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """Return the accelerator report."""
        report = await self.yolo.accelerators.report(refresh=self.query_flag("refresh"))
        self.write_json(report)


class UsageHandler(YoloHandler):
    """``GET /yolo/accelerators/usage``: utilisation now, cheap enough to poll every second."""

    auth_resource = "jupyter_yolo:accelerators"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """Return CPU, memory and (where NVML exists) GPU utilisation."""
        self.write_json(self.yolo.accelerators.usage())


HANDLERS = [
    (r"/yolo/accelerators", AcceleratorsHandler),
    (r"/yolo/accelerators/usage", UsageHandler),
]
