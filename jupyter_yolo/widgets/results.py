"""The results of a run in the notebook: ``ResultsPanel(job_id)``.

Built on ``GET /yolo/jobs/{id}/results`` (:class:`~jupyter_yolo.contract.results.RunResults`):
a header (the run, its state, best and last epoch with the task's headline metric, the final
validation), and tabs: per-class metrics, the validator's curves, the confusion matrix,
validation images (ground truth beside predictions), the console (the log's tail) and system
usage over the run. While the job runs the panel refreshes every few seconds (partial results:
epochs and usage first, the validator's data after the final validation); it stops refreshing
once the job has ended and its results are complete, and on :meth:`close`.
"""

from __future__ import annotations

import base64
import mimetypes
import threading
import time
from typing import Any

import ipywidgets as widgets
import plotly.graph_objects as go

from ..client import YoloClient, YoloClientError
from ..client_predict import to_png
from ..contract.results import RunResults, ValidatorResults, ValImage
from .common import STYLE, Ticker, error_text, esc, get_client, in_background, note
from .detection_draw import BROWSER_IMAGE_TYPES
from .results_data import (
    CLASS_SORTS,
    TERMINAL,
    class_table_html,
    console_text,
    curve_kinds,
    fetch_results,
    header_html,
    image_label,
    kind_label,
    usage_html,
)
from .results_figures import (
    FigureSlot,
    confusion_figure,
    curves_figure,
    usage_figure,
    val_image_figure,
)
from .tasks import TaskFacts, task_facts

REFRESH_S = 3.0
"""Seconds between two refreshes of a running job's results."""
LOG_BYTES = 64 * 1024
"""The console reads at most this much of the log's end."""
TAB_TITLES = ("Metrics", "Curves", "Confusion matrix", "Validation images", "Console", "System")


def workspace_image(client: YoloClient, path: str) -> bytes:
    """The bytes of a workspace-relative image through the REST API.

    A dataset's file comes from the dataset route, a job's file from the artifacts route, any
    other through Jupyter's contents API (when the workspace lies in the server's root).
    """
    parts = [p for p in path.split("/") if p]
    if len(parts) > 2 and parts[0] == "datasets":
        return client.dataset_file(parts[1], "/".join(parts[2:]))
    if len(parts) > 2 and parts[0] == "jobs":
        return client.artifact(parts[1], "/".join(parts[2:]))
    prefix = client.workspace_server_path()
    if prefix is None:
        raise YoloClientError(None, f"{path} lies outside the server's root folder.")
    target = "/".join(filter(None, [prefix, *parts]))
    answer = client.request(
        "GET", f"api/contents/{target}", params={"format": "base64", "content": 1, "type": "file"}
    )
    return base64.b64decode(str(answer.get("content") or ""))


class ResultsPanel(widgets.VBox):  # type: ignore[misc]
    """A run's results: headline figures, per-class metrics, curves, confusion, images, usage.

    See the module's docstring for what each part shows.

    ``ResultsPanel(job_id)`` finds the server by itself inside JupyterLab; pass ``client`` for
    another one. ``refresh_s=0`` never refreshes by itself (call :meth:`refresh`).
    """

    def __init__(
        self, job_id: str, client: YoloClient | None = None, *, refresh_s: float = REFRESH_S
    ) -> None:
        self.client = get_client(client)
        self.job_id = job_id
        self.results: RunResults | None = None
        self.refreshes = 0
        self._lock = threading.RLock()
        self._facts: TaskFacts | None = None
        self._job: dict[str, Any] | None = None
        self._shown: tuple[Any, ...] | None = None
        self._pixels: dict[str, str] = {}
        self._closed = False
        self._quiet = False
        self.header_w = widgets.HTML(STYLE + '<div class="yolo-muted">Loading results\u2026</div>')
        self.message_w = widgets.HTML()
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh")
        self.sort_w = widgets.Dropdown(
            options=[("by class", "class"), ("most instances", "instances"), ("best", "headline")],
            value="class",
            description="sort",
            layout=widgets.Layout(width="220px"),
        )
        self.classes_w = widgets.HTML()
        self.kind_w = widgets.ToggleButtons(options=[("box", "B")], value="B")
        self.curves_slot = FigureSlot(curves_figure([], "B"))
        self.normalized_w = widgets.Checkbox(value=False, description="normalized per true class")
        self.confusion_slot = FigureSlot(confusion_figure(None, False))
        self.image_w = widgets.Dropdown(description="image", layout=widgets.Layout(width="460px"))
        self.image_note_w = widgets.HTML()
        self.images_slot = FigureSlot(val_image_figure(_EMPTY_IMAGE, None, "box"))
        self.console_w = widgets.HTML()
        self.usage_note_w = widgets.HTML()
        self.usage_slot = FigureSlot(usage_figure([]))
        self.tabs = widgets.Tab(
            children=[
                widgets.VBox([self.sort_w, self.classes_w]),
                widgets.VBox([self.kind_w, self.curves_slot]),
                widgets.VBox([self.normalized_w, self.confusion_slot]),
                widgets.VBox([self.image_w, self.image_note_w, self.images_slot]),
                self.console_w,
                widgets.VBox([self.usage_note_w, self.usage_slot]),
            ]
        )
        for index, title in enumerate(TAB_TITLES):
            self.tabs.set_title(index, title)
        super().__init__(children=[self.header_w, self.refresh_button, self.message_w, self.tabs])
        self.add_class("yolo-results-panel")
        self.sort_w.observe(lambda _: self._draw_classes(), names="value")
        self.kind_w.observe(self._kind_chosen, names="value")
        self.normalized_w.observe(lambda _: self._draw_confusion(), names="value")
        self.image_w.observe(self._image_chosen, names="value")
        self.refresh_button.on_click(lambda _: self._in_background(self.refresh))
        self._ticker: Ticker | None = None
        if refresh_s > 0:
            self._ticker = Ticker(self._tick, refresh_s).start()
        else:
            self._in_background(self.refresh)

    # ----------------------------------------------------------------------------- data

    @property
    def facts(self) -> TaskFacts:
        """The server's task table (fetched once)."""
        if self._facts is None:
            self._facts = task_facts(self.client)
        return self._facts

    @property
    def complete(self) -> bool:
        """Whether the job has ended and its results will not change any more."""
        results = self.results
        return results is not None and results.get("status") in TERMINAL

    def refresh(self) -> RunResults:
        """Fetch the results now and redraw what changed; returns them."""
        results = fetch_results(self.client, self.job_id)
        if self._job is None:
            self._job = self.client.job(self.job_id)  # the dataset's name is in its request
        log = self._log()
        with self._lock:
            if self._closed:
                return results
            self.results = results
            self._render(results, log)
            self.refreshes += 1
        return results

    def _log(self) -> str:
        try:
            return self.client.log(self.job_id, max_bytes=LOG_BYTES)
        except YoloClientError as exc:
            return f"(the log cannot be read: {exc.message})"

    def _tick(self) -> None:
        if self._closed:
            return
        try:
            self.refresh()
        except YoloClientError as exc:
            self.message_w.value = note("error", error_text(exc))
            return
        self.message_w.value = ""
        if self.complete and self._ticker is not None:
            self._ticker.stop()

    def _kind_chosen(self, _: Any) -> None:
        if not self._quiet:
            self._draw_curves()

    def _image_chosen(self, _: Any) -> None:
        if not self._quiet:
            self._in_background(self._draw_image)

    def _in_background(self, fn: Any) -> None:
        def failed(exc: BaseException) -> None:
            self.message_w.value = note("error", error_text(exc))

        in_background(fn, failed, name="yolo-results")

    # ----------------------------------------------------------------------------- drawing

    def _render(self, results: RunResults, log: str) -> None:
        final = results.get("final")
        title = self.facts.title(results.get("task"))
        self.header_w.value = STYLE + header_html(results, title, now=time.time(), job=self._job)
        # a column-reverse box opens scrolled to its end: the log's latest lines show first
        self.console_w.value = (
            '<div style="max-height:420px;overflow:auto;display:flex;'
            'flex-direction:column-reverse"><pre class="yolo-console" style="font-size:11px;'
            f'white-space:pre-wrap;margin:0">{esc(console_text(log, job_id=self.job_id))}'
            "</pre></div>"
        )
        usage = results.get("usage") or []
        last = results.get("last")
        self.usage_note_w.value = usage_html(usage)
        key = (
            results.get("status"),
            results.get("epochs"),
            last["epoch"] if last else None,
            final is not None,
            (len(usage), usage[-1].get("time") if usage else None),  # the server keeps 500 at most
        )
        if key == self._shown:
            return
        usage_changed = self._shown is None or self._shown[4] != key[4]
        final_changed = self._shown is None or self._shown[3] != (final is not None)
        self._shown = key
        if usage_changed:
            self.usage_slot.show(usage_figure(usage))
        self._draw_classes()
        if final_changed:
            kinds = curve_kinds(final["curves"] if final else []) or ["B"]
            images = final["val_images"] if final else []
            self._quiet = True
            try:
                self.kind_w.options = [(kind_label(k), k) for k in kinds]
                self.kind_w.value = kinds[0]
                self.image_w.options = [(image_label(image), i) for i, image in enumerate(images)]
                self.image_w.value = 0 if images else None
            finally:
                self._quiet = False
            self._draw_curves()
            self._draw_confusion()
            if images:
                self._draw_image()
            elif final:  # semantic and depth: their truth is a map, not objects
                self.image_note_w.value = (
                    '<div class="yolo-muted">This task\'s validation gives no images with '
                    "objects to show.</div>"
                )
            else:
                self.image_note_w.value = (
                    '<div class="yolo-muted">Validation images come with the final '
                    "validation.</div>"
                )

    def _final(self) -> ValidatorResults | None:
        return self.results["final"] if self.results else None

    def _draw_classes(self) -> None:
        if self.results is not None:
            self.classes_w.value = STYLE + class_table_html(self.results, str(self.sort_w.value))

    def _draw_curves(self) -> None:
        final = self._final()
        curves = final["curves"] if final else []
        self.curves_slot.show(curves_figure(curves, str(self.kind_w.value or "B")))

    def _draw_confusion(self) -> None:
        final = self._final()
        matrix = final["confusion"] if final else None
        self.confusion_slot.show(confusion_figure(matrix, bool(self.normalized_w.value)))

    def _draw_image(self) -> None:
        final = self._final()
        index = self.image_w.value
        if not final or not isinstance(index, int) or index >= len(final["val_images"]):
            return
        image = final["val_images"][index]
        try:
            uri = self._image_uri(image["image"])
        except YoloClientError as exc:
            uri = None
            self.image_note_w.value = note("warning", f"{image['image']}: {exc.message}")
        else:
            self.image_note_w.value = ""
        geometry = self.facts.geometry(self.results["task"] if self.results else None)
        self.images_slot.show(val_image_figure(image, uri, geometry))

    def _image_uri(self, path: str) -> str:
        uri = self._pixels.get(path)
        if uri is None:
            content = workspace_image(self.client, path)
            mime = mimetypes.guess_type(path)[0] or "image/jpeg"
            if mime not in BROWSER_IMAGE_TYPES:  # a TIFF...: browsers show it as PNG
                content, mime = to_png(content, path), "image/png"
            uri = f"data:{mime};base64," + base64.b64encode(content).decode("ascii")
            self._pixels[path] = uri
        return uri

    @property
    def curves(self) -> go.FigureWidget:
        """The validator's curves figure shown now."""
        return self.curves_slot.figure

    @property
    def confusion(self) -> go.FigureWidget:
        """The confusion matrix figure shown now."""
        return self.confusion_slot.figure

    @property
    def images(self) -> go.FigureWidget:
        """The validation image figure shown now (truth | predictions)."""
        return self.images_slot.figure

    @property
    def usage(self) -> go.FigureWidget:
        """The system usage figure shown now."""
        return self.usage_slot.figure

    # ----------------------------------------------------------------------------- lifetime

    def close(self) -> None:
        """Stop refreshing and close the widgets."""
        self._closed = True
        if self._ticker is not None:
            self._ticker.stop()
        for slot in (self.curves_slot, self.confusion_slot, self.images_slot, self.usage_slot):
            slot.close()
        super().close()


_EMPTY_IMAGE: ValImage = {"image": "", "width": 0, "height": 0, "truth": [], "predicted": []}

__all__ = ["CLASS_SORTS", "ResultsPanel", "workspace_image"]
