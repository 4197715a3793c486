"""``/yolo/tasks``: the task profile table the widgets and the JupyterLab extension read."""

from __future__ import annotations

import asyncio

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..contract.table import task_table
from .base import YoloHandler


class TasksHandler(YoloHandler):
    """``GET /yolo/tasks``: each YOLO task's profile and the architectures ultralytics offers."""

    auth_resource = "jupyter_yolo:tasks"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """Return the task table (architectures are read from disk once, in a thread)."""
        loop = asyncio.get_running_loop()
        self.write_json(dict(await loop.run_in_executor(None, task_table)))


HANDLERS = [(r"/yolo/tasks", TasksHandler)]
