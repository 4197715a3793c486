"""``/yolo/notebooks/{name}``: copy a shipped example notebook where JupyterLab can open it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..notebooks import copy_destination, copy_notebook, server_path
from .base import YoloHandler


class NotebookCopyHandler(YoloHandler):
    """``POST /yolo/notebooks/{name}``: a fresh copy of the example notebook ``name``.

    The copy goes into the workspace when it lies inside the server's root directory, else into
    the root itself; an existing file is never overwritten (``quickstart-1.ipynb`` ... instead).
    The answer's ``path`` is relative to the server root, ready for JupyterLab to open.
    """

    auth_resource = "jupyter_yolo:notebooks"

    @web.authenticated
    @authorized
    async def post(self, name: str) -> None:
        """Copy the notebook and return its server path."""
        root = Path(self.serverapp.root_dir)
        destination = copy_destination(self.yolo.yolo_workspace.root, root)
        copy = await asyncio.to_thread(copy_notebook, name, destination)
        self.write_json({"name": name, "path": server_path(copy, root)}, status=201)


HANDLERS = [(r"/yolo/notebooks/(?P<name>[^/]+)", NotebookCopyHandler)]
