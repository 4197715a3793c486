"""jupyter-yolo: a JupyterLab environment for Ultralytics YOLO that adapts to its accelerator."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from .app import YoloApp

    return [{"module": "jupyter_yolo.app", "app": YoloApp}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """Where the built JupyterLab extension is (``jupyter labextension develop`` reads this)."""
    return [{"src": "labextension", "dest": "jupyter-yolo"}]
