"""The training panel's "Results" section: a button that opens the run's :class:`ResultsPanel`.

The section knows the panel's job through :meth:`ResultsSection.update` (called whenever the
panel redraws its buttons); its button is enabled once the job has results to show (an epoch
done, or the job ended) and opens the results view below, or hides it again.
"""

from __future__ import annotations

import threading
from typing import Any

import ipywidgets as widgets

from ..client import YoloClient
from .results_data import TERMINAL


class ResultsSection(widgets.VBox):  # type: ignore[misc]
    """A "Results" button and, once clicked, the run's :class:`ResultsPanel` under it."""

    def __init__(self, client: YoloClient) -> None:
        self.client = client
        self.job_id: str | None = None
        self.panel: Any = None
        self._lock = threading.Lock()
        self.button = widgets.Button(
            description="Results",
            icon="table",
            disabled=True,
            tooltip="Best epoch, per-class metrics, curves, confusion matrix, images, usage",
        )
        self.button.add_class("yolo-results-button")
        self.holder = widgets.VBox()
        super().__init__(children=[self.button, self.holder])
        self.button.on_click(lambda _: self.toggle())

    def update(self, job_id: str | None, status: str | None, epochs_done: int = 0) -> None:
        """Follow the panel's job: a new job closes the old results; the button says if any."""
        with self._lock:
            if job_id != self.job_id:
                self._close_panel()
                self.job_id = job_id
        ready = bool(job_id) and (status in TERMINAL or epochs_done > 0)
        self.button.disabled = not ready
        self.button.button_style = "info" if ready else ""

    def toggle(self) -> Any:
        """Open the results view below the button, or close it when it is open."""
        with self._lock:
            if self.panel is not None:
                self._close_panel()
                return None
            return self._open_locked()

    def open_results(self) -> Any:
        """The results view of the job (opened when it is not yet)."""
        with self._lock:
            return self.panel if self.panel is not None else self._open_locked()

    def _open_locked(self) -> Any:
        if not self.job_id:
            return None
        from .results import ResultsPanel

        self.panel = ResultsPanel(self.job_id, self.client)
        self.holder.children = [self.panel]
        self.button.description = "Hide results"
        return self.panel

    def _close_panel(self) -> None:
        if self.panel is not None:
            self.panel.close()
            self.panel = None
        self.holder.children = []
        self.button.description = "Results"

    def close(self) -> None:
        """Close the results view and the section."""
        with self._lock:
            self._close_panel()
        super().close()
