"""``/yolo/workspace``: where the workspace is, as the JupyterLab front end needs to know it."""

from __future__ import annotations

from pathlib import Path

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..notebooks import server_path
from .base import YoloHandler


class WorkspaceHandler(YoloHandler):
    """``GET /yolo/workspace``: the workspace's path relative to the server's root directory.

    ``server_path`` is ``""`` when the workspace is the root and ``null`` when it lies outside
    the root, where JupyterLab's file browser cannot show it (job files are then reachable
    through ``/yolo/jobs/{id}/artifacts`` only).
    """

    auth_resource = "jupyter_yolo:workspace"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """Describe the workspace's place in the server's root."""
        root = Path(self.serverapp.root_dir)
        self.write_json({"server_path": server_path(self.yolo.yolo_workspace.root, root)})


HANDLERS = [(r"/yolo/workspace", WorkspaceHandler)]
