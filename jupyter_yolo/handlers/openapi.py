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
        """Return the OpenAPI document."""
        self.write_json(build_spec())


HANDLERS = [(r"/yolo/openapi.json", OpenAPIHandler)]
