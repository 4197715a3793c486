"""One dashboard with the panels in tabs, sharing one client."""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets

from ..client import YoloClient
from .accelerators import AcceleratorsPanel
from .common import get_client
from .datasets import DatasetsPanel
from .detection import DetectionPanel
from .training import TrainingPanel
from .tune import TunePanel

TITLES = ("Hardware", "Datasets", "Training", "Detection", "Tune")


class Dashboard(widgets.Tab):  # type: ignore[misc]
    """Hardware, datasets, training, detection and hyperparameter tuning in tabs.

    ``training`` takes the :class:`TrainingPanel` settings (``epochs``, ``imgsz``, ``extra``
    ...); ``job_id`` attaches the training tab to an existing job.
    """

    def __init__(
        self,
        client: YoloClient | None = None,
        *,
        job_id: str | None = None,
        training: dict[str, Any] | None = None,
        detection: dict[str, Any] | None = None,
        tune: dict[str, Any] | None = None,
    ) -> None:
        self.client = get_client(client)
        self.accelerators = AcceleratorsPanel(self.client)
        self.datasets = DatasetsPanel(self.client)
        self.training = TrainingPanel(self.client, job_id=job_id, **(training or {}))
        self.detection = DetectionPanel(self.client, **(detection or {}))
        self.tune = TunePanel(self.client, **(tune or {}))
        super().__init__(children=[*self.panels])
        for index, title in enumerate(TITLES):
            self.set_title(index, title)
        self.add_class("yolo-dashboard")
        self.observe(self._tab_changed, names="selected_index")

    @property
    def panels(self) -> tuple[Any, ...]:
        """The panels, in tab order."""
        return (self.accelerators, self.datasets, self.training, self.detection, self.tune)

    def _tab_changed(self, change: dict[str, Any]) -> None:
        """Trained weights appear in the detection tab as soon as it is opened."""
        if change.get("new") == TITLES.index("Detection"):
            self.detection.refresh_models(select=self.detection.model_w.value)

    def close(self) -> None:
        """Stop every panel's background work and close the widgets."""
        for panel in self.panels:
            panel.close()
        super().close()
