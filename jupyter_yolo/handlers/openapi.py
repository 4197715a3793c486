"""``/yolo/openapi.json``: the REST API described as OpenAPI 3."""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..openapi import build_spec
from .base import YoloHandler


class OpenAPIHandler(YoloHandler):
    """``GET /yolo/openapi.json``: the OpenAPI document."""

    auth_resource = "jupyter_yolo:api"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """Return the OpenAPI document, with this server's upload limit."""
        self.write_json(build_spec(max_upload_bytes=self.yolo.max_upload_bytes))


HANDLERS = [(r"/yolo/openapi.json", OpenAPIHandler)]
