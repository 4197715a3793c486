"""ipywidgets panels for the notebook, built on :class:`jupyter_yolo.client.YoloClient` only.

Import the panels from their modules or from here (imports are lazy, so importing the package
costs nothing)::

    from jupyter_yolo.widgets import Dashboard, TrainingPanel

    TrainingPanel(epochs=3, imgsz=64)        # finds the server by itself inside JupyterLab
    TrainingPanel.attach("0123456789ab")     # picks a running or finished job up again
    ResultsPanel("0123456789ab")             # a run's results: metrics, curves, images, usage
    CompareRuns(["0123456789ab", "ba9876543210"])  # runs' curves and parameters side by side
    TunePanel(iterations=4, epochs=2)        # a hyperparameter search; "Train with the best"
"""

from __future__ import annotations

import importlib
from typing import Any

_PANELS = {
    "AcceleratorsPanel": "accelerators",
    "DatasetsPanel": "datasets",
    "TrainingPanel": "training",
    "DetectionPanel": "detection",
    "MediaPanel": "media",
    "Dashboard": "dashboard",
    "ResultsPanel": "results",
    "CompareRuns": "compare",
    "TunePanel": "tune",
}

__all__ = [
    "AcceleratorsPanel",
    "CompareRuns",
    "Dashboard",
    "DatasetsPanel",
    "DetectionPanel",
    "MediaPanel",
    "ResultsPanel",
    "TrainingPanel",
    "TunePanel",
]


def __getattr__(name: str) -> Any:
    module = _PANELS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
