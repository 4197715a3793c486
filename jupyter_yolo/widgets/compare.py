"""Compare training runs in the notebook: ``CompareRuns([job_a, job_b])``.

Pick several train jobs (finished or running) from a list that names each one (name, task,
dataset, date, status, best headline metric); the chart overlays their headline metric and total
training loss per epoch, one colour per run, and two tables set their best metrics and their
parameters side by side (parameters that differ are highlighted). Running jobs are refreshed
every few seconds until they end; :meth:`close` stops that.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import ipywidgets as widgets
import plotly.graph_objects as go

from ..client import YoloClient, YoloClientError
from .common import STYLE, Ticker, error_text, get_client, in_background, note
from .results_compare import (
    ComparedRun,
    best_table_html,
    compare_figure,
    fold_losses,
    job_label,
    metric_choices,
    params_table_html,
)
from .results_data import TERMINAL, fetch_results
from .results_figures import FigureSlot
from .tasks import metric_label

REFRESH_S = 5.0
"""Seconds between two refreshes while a compared run is still running."""


class CompareRuns(widgets.VBox):  # type: ignore[misc]
    """Overlay several training runs' curves and table their best metrics and parameters."""

    def __init__(
        self,
        job_ids: Sequence[str] | None = None,
        client: YoloClient | None = None,
        *,
        refresh_s: float = REFRESH_S,
    ) -> None:
        self.client = get_client(client)
        self._lock = threading.RLock()
        self._runs: dict[str, ComparedRun] = {}
        self._jobs: dict[str, dict[str, Any]] = {}
        self._closed = False
        self.loads = 0
        self.select_w = widgets.SelectMultiple(
            description="runs", rows=6, layout=widgets.Layout(width="760px")
        )
        self.reload_button = widgets.Button(description="Reload list", icon="refresh")
        self.metric_w = widgets.Dropdown(
            description="metric",
            options=[("headline", "")],
            value="",
            layout=widgets.Layout(width="320px"),
        )
        self.message_w = widgets.HTML()
        self.figure_slot = FigureSlot(compare_figure([]))
        self.best_w = widgets.HTML()
        self.params_w = widgets.HTML()
        super().__init__(
            children=[
                widgets.HTML(
                    STYLE + '<div class="yolo-h">Compare runs</div>'
                    '<div class="yolo-muted">Pick training runs (Ctrl/Shift-click for several).'
                    "</div>"
                ),
                widgets.HBox([self.select_w, self.reload_button]),
                self.message_w,
                self.metric_w,
                self.figure_slot,
                widgets.HTML('<div class="yolo-h">Best epoch</div>'),
                self.best_w,
                widgets.HTML('<div class="yolo-h">Parameters</div>'),
                self.params_w,
            ]
        )
        self.add_class("yolo-compare-runs")
        self._wanted = [str(j) for j in job_ids or []]
        self.select_w.observe(self._chosen, names="value")
        self.metric_w.observe(lambda _: self._background(self._draw), names="value")
        self.reload_button.on_click(lambda _: self._background(self.reload_list))
        self._ticker: Ticker | None = None
        self._refresh_s = refresh_s
        self._background(self._start)

    # ----------------------------------------------------------------------------- data

    @property
    def runs(self) -> list[ComparedRun]:
        """The runs shown now, in the order they were picked."""
        with self._lock:
            return [self._runs[j] for j in self.select_w.value if j in self._runs]

    def _start(self) -> None:
        self.reload_list()
        wanted = [j for j in self._wanted if j in {v for _, v in self.select_w.options}]
        missing = [j for j in self._wanted if j not in wanted]
        if missing:
            self.message_w.value = note(
                "warning", f"Not train jobs of this server: {', '.join(missing)}"
            )
        if wanted:
            self.select_w.value = tuple(wanted)  # draws through _chosen
        with self._lock:
            if self._refresh_s > 0 and not self._closed:  # close() may have come first
                self._ticker = Ticker(self._tick, self._refresh_s).start()

    def reload_list(self) -> None:
        """Read the server's train jobs again (newest first) into the picker."""
        jobs = [j for j in self.client.jobs() if j.get("kind") == "train"]
        options = [(job_label(j), str(j["id"])) for j in jobs]
        with self._lock:
            self._jobs = {str(j["id"]): j for j in jobs}
            chosen = tuple(v for v in self.select_w.value if v in {o[1] for o in options})
            self.select_w.options = options
            self.select_w.value = chosen

    def load(self, job_ids: Sequence[str] | None = None) -> list[ComparedRun]:
        """Fetch the picked runs (or ``job_ids``) that can still change, and redraw."""
        ids = list(job_ids if job_ids is not None else self.select_w.value)
        for job_id in ids:
            with self._lock:
                known = self._runs.get(job_id)
            if known is not None and known.results.get("status") in TERMINAL:
                continue  # an ended run's results are final
            results = fetch_results(self.client, job_id)
            events: list[dict[str, Any]] = []
            for page in self.client.iter_pages(job_id, follow=False, limit=5000):
                events.extend(e for e in page["events"] if e.get("type") == "epoch")
            epochs, totals = fold_losses(events)
            with self._lock:
                job = self._jobs.get(job_id)
                self._runs[job_id] = ComparedRun(results, job, epochs, totals)
        self._draw()
        self.loads += 1
        return self.runs

    def _chosen(self, _: Any) -> None:
        self._background(self.load)

    def _tick(self) -> None:
        if self._closed:
            return
        running = [r.job_id for r in self.runs if r.results.get("status") not in TERMINAL]
        if running:
            self.load(running)

    def _background(self, fn: Any) -> None:
        def failed(exc: BaseException) -> None:
            self.message_w.value = note("error", error_text(exc))

        def run() -> None:
            try:
                fn()
            except YoloClientError as exc:
                failed(exc)
            else:
                if "error" in str(self.message_w.value) and fn is not self._start:
                    self.message_w.value = ""

        in_background(run, failed, name="yolo-compare")

    def _draw(self) -> None:
        runs = self.runs
        with self._lock:
            if self._closed:
                return
            keys = metric_choices(runs)
            options = [("headline", "")] + [(metric_label(k), k) for k in keys]
            chosen = self.metric_w.value if self.metric_w.value in keys else ""
            if list(self.metric_w.options) != options:
                self.metric_w.options = options
            self.metric_w.value = chosen
            self.figure_slot.show(compare_figure(runs, chosen or None))
            self.best_w.value = STYLE + best_table_html(runs)
            self.params_w.value = STYLE + params_table_html(runs)

    @property
    def figure(self) -> go.FigureWidget:
        """The comparison chart shown now."""
        return self.figure_slot.figure

    # ----------------------------------------------------------------------------- lifetime

    def close(self) -> None:
        """Stop refreshing and close the widgets."""
        with self._lock:
            self._closed = True
            ticker = self._ticker
        if ticker is not None:
            ticker.stop()
        self.figure_slot.close()
        super().close()
