"""The detection panel: weights, backend, images (dataset samples or uploads), conf / IoU, classes.

Detections come from the server's warm inference service (``POST /yolo/predict``), never from
a job: choosing an image, moving the confidence or IoU slider, changing the classes or the
backend sends one request from a background thread (:class:`.predict_service.LatestOnly`: a
short debounce, the latest request wins, stale answers are dropped), and once the model's
worker is warm the figure is redrawn within a few tens of milliseconds of inference. The
backend dropdown offers ``auto`` (the fastest backend that agrees with PyTorch, measured once
per weights and image size on the server) and every backend the server can run; the panel
shows which backend ran and where the milliseconds went (queue, pre, inference, post, total).
What a prediction holds is drawn over the original image in a plotly figure by its task's
geometry (see :mod:`.drawing`: boxes, masks, skeletons, rotated boxes, class bars, pixel maps),
with hover labels, and listed in a table. Folders, videos and streams run as predict jobs in
:class:`.media.MediaPanel`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import ipywidgets as widgets

from ..client import YoloClient
from ..contract.serving import PredictResponse
from .common import STYLE, esc, get_client, in_background
from .detection_draw import ImageChoice, Prediction, PredictionDrawing, detection_figure
from .detection_gallery import GalleryPrediction
from .detection_images import ImageChoices
from .detection_service import ServicePrediction, ServiceRequest
from .detection_views import NO_OBJECTS, backend_html
from .drawing import (
    MAX_BOXES_DRAWN,
    box_traces,
    scores_figure,
)
from .gallery import Gallery
from .predict_service import LatestOnly
from .tasks import task_facts
from .training_form import weights_choices

__all__ = ["MAX_BOXES_DRAWN", "DetectionPanel", "backend_html", "box_traces", "detection_figure"]


class DetectionPanel(
    ServicePrediction,
    PredictionDrawing,
    GalleryPrediction,
    ImageChoices,
    widgets.VBox,  # type: ignore[misc]
):
    """Run a trained model on images (a gallery, one shown large) and look at the boxes."""

    def __init__(
        self,
        client: YoloClient | None = None,
        *,
        model: str | None = None,
        dataset: str | None = None,
        split: str = "val",
        conf: float = 0.25,
        iou: float = 0.7,
        samples: int = 16,
        device: str | None = None,
        backend: str = "auto",
    ) -> None:
        self.client = get_client(client)
        self.device = device
        self.samples = samples
        self._class_ids: dict[str, int] = {}
        self.class_names: dict[int, str] = {}
        self.gallery_results: dict[str, dict[str, Any]] = {}
        self.last_error: BaseException | None = None
        self._stored: dict[str, list[dict[str, Any]]] = {}
        self._model_tasks: dict[str, str] = {}
        self._images: dict[str, ImageChoice] = {}
        self._pixels: dict[str, str] = {}
        self._lock = threading.RLock()
        self._quiet = 0
        self._current: tuple[ImageChoice, Prediction] | None = None
        self.detections: list[dict[str, Any]] = []
        self.facts = task_facts(self.client)
        self.task: str | None = None
        self.figure = detection_figure()
        self.scores_figure = scores_figure()
        self.figure.add_class("yolo-prediction-figure")
        self.scores_figure.add_class("yolo-scores-figure")
        self.scores_box = widgets.Box(layout=widgets.Layout(display="none"))
        self.scores_box.children = [self.scores_figure]
        self.header_w = widgets.HTML(STYLE + '<div class="yolo-h">Detection</div>')
        self.model_w = widgets.Dropdown(description="weights", layout=widgets.Layout(width="330px"))
        self.backend_w = widgets.Dropdown(
            description="backend",
            options=[("auto (measured)", "auto")],
            value="auto",
            layout=widgets.Layout(width="260px"),
        )
        self.backend_info_w = widgets.HTML()
        self.dataset_w = widgets.Dropdown(
            description="dataset", layout=widgets.Layout(width="260px")
        )
        self.split_w = widgets.Dropdown(
            options=["val", "train", "test"],
            value=split,
            description="split",
            layout=widgets.Layout(width="160px"),
        )
        self.image_w = widgets.Dropdown(description="image", layout=widgets.Layout(width="420px"))
        self.upload_w = widgets.FileUpload(
            accept="image/*", multiple=True, description="Upload images"
        )
        # logarithmic: fine steps where weak models (and their first epochs) score
        self.conf_w = widgets.FloatLogSlider(
            value=conf,
            base=10,
            min=-4,
            max=0,
            step=0.05,
            description="confidence",
            continuous_update=False,
            readout_format=".2g",
        )
        self.iou_w = widgets.FloatSlider(
            value=iou,
            min=0.05,
            max=0.95,
            step=0.05,
            description="IoU",
            continuous_update=False,
            readout_format=".2f",
        )
        self.classes_w = widgets.SelectMultiple(
            description="classes", rows=4, layout=widgets.Layout(width="260px")
        )
        self.detect_button = widgets.Button(
            description="Detect", icon="search", button_style="primary"
        )
        self.status_w = widgets.HTML()
        self.table_w = widgets.HTML()
        self.truth_w = widgets.Checkbox(
            value=False, description="ground truth (dashed)", indent=False
        )
        self.legend_w = widgets.HTML()
        self.gallery = Gallery(self._gallery_pick)
        self.gallery_button = widgets.Button(
            description="Predict all", icon="th", tooltip="predict every image of the gallery"
        )
        self.gallery_status_w = widgets.HTML()
        super().__init__(
            children=[
                self.header_w,
                widgets.HBox([self.model_w, self.backend_w, self.dataset_w, self.split_w]),
                widgets.HBox([self.image_w, self.upload_w]),
                widgets.HBox(
                    [
                        widgets.VBox([self.conf_w, self.iou_w, self.truth_w]),
                        self.classes_w,
                        widgets.VBox([self.detect_button, self.gallery_button]),
                    ]
                ),
                self.gallery_status_w,
                self.gallery,
                self.status_w,
                self.backend_info_w,
                self.legend_w,
                self.figure,
                self.scores_box,
                self.table_w,
            ]
        )
        self.add_class("yolo-detection-panel")
        self._service: LatestOnly[ServiceRequest, PredictResponse] = LatestOnly(
            self._ask_service,
            self._service_answered,
            self._service_error,
            on_start=self._service_sending,
        )
        self.refresh_models(select=model, backend=backend)
        self._load_datasets(dataset)
        self.load_samples()
        self.dataset_w.observe(lambda _: self._run(self.load_samples), names="value")
        self.split_w.observe(lambda _: self._run(self.load_samples), names="value")
        self.model_w.observe(lambda _: self._show_stored(), names="value")
        self.model_w.observe(lambda _: self._show_task(), names="value")
        self.image_w.observe(self._image_picked, names="value")
        for control in (self.conf_w, self.iou_w, self.model_w, self.backend_w, self.classes_w):
            control.observe(self._control_moved, names="value")
        self.upload_w.observe(lambda _: self._run(self._uploaded), names="value")
        self.detect_button.on_click(lambda _: self.request(force=True))
        self.gallery_button.on_click(lambda _: self._run(self.predict_gallery))
        self.truth_w.observe(lambda _: self._run(self._truth_toggled), names="value")
        self.model_w.observe(lambda _: self._run(self.load_classes), names="value")
        self.load_classes()
        self.show_gallery()

    # ------------------------------------------------------------------ who asks for a prediction

    @contextmanager
    def _programmatic(self) -> Iterator[None]:
        """Changes the panel makes to its own controls (filling lists): they predict nothing."""
        with self._lock:
            self._quiet += 1
        try:
            yield
        finally:
            with self._lock:
                self._quiet -= 1

    def _image_picked(self, _: Any) -> None:
        """The person picked an image: predict it (filling the list does not)."""
        self.gallery.mark(self.image_w.value)
        if not self._quiet:
            self.request()

    def _truth_toggled(self) -> None:
        """Ground truth on or off: the gallery and the large image are drawn again (no request)."""
        for path in self.gallery.paths:
            self._draw_tile(path)
        self._redraw()

    def _control_moved(self, _: Any) -> None:
        """A slider, the weights, backend or classes moved: predict again once asked before."""
        if not self._quiet and self.asked:
            self.request()

    def close(self) -> None:
        """Close the panel and its request thread."""
        self._stop_ticking()
        self._service.close()
        super().close()

    # ------------------------------------------------------------------------------ choices

    def refresh_models(self, select: str | None = None, backend: str | None = None) -> None:
        """Fill the weights list and the backends the server can run.

        Weights: trained jobs' best/last, then .pt files in the workspace.
        """
        models = self.client.models()
        self._stored = {
            str(m["model"]): list(m.get("inference") or [])
            for m in [*(models.get("trained") or []), *(models.get("weights") or [])]
        }
        backends = [("auto (measured)", "auto")] + [
            (str(b.get("label") or b["name"]), str(b["name"]))
            for b in models.get("backends") or []
            if b.get("available")
        ]
        wanted = backend or self.backend_w.value or "auto"
        if wanted not in [v for _, v in backends]:
            backends.append((f"{wanted} (not available)", wanted))
        with self._programmatic():
            self.backend_w.options = backends
            self.backend_w.value = wanted
        listed = [*(models.get("trained") or []), *(models.get("weights") or [])]
        self._model_tasks = {
            str(m["model"]): str(m.get("task") or self.facts.task_of_model(str(m["model"])))
            for m in listed
        }
        options, best = weights_choices(models)  # best run first, labelled with its metric
        if select and select not in [v for _, v in options]:
            options.insert(0, (select, select))
        current = self.model_w.value
        with self._programmatic():
            self.model_w.options = options
            if options:
                self.model_w.value = select or (
                    current if current in [v for _, v in options] else best or options[0][1]
                )
        self._show_stored()
        self._show_task()

    def model_task(self, model: str) -> str:
        """The task of weights ``model``: as the server lists it, else from its name."""
        return self._model_tasks.get(model) or self.facts.task_of_model(model)

    def _show_task(self, task: str | None = None) -> None:
        """Name the task of the chosen weights (or of the prediction shown) in the header."""
        task = task or self.model_task(str(self.model_w.value or ""))
        self.task = task
        # IoU (box overlap in NMS) and the class filter mean nothing to a task without objects
        shown = "none" if self.facts.geometry(task) in NO_OBJECTS else None
        self.iou_w.layout.display = shown
        self.classes_w.layout.display = shown
        self.header_w.value = (
            STYLE + f'<div class="yolo-h">Prediction: {esc(self.facts.title(task))} '
            f'<span class="yolo-muted yolo-task">({esc(task)})</span></div>'
        )

    def _show_stored(self) -> None:
        """Show the backend choice measured earlier for the chosen weights, if any."""
        stored = self._stored.get(str(self.model_w.value or "")) or []
        if stored:
            best = max(stored, key=lambda r: float(r.get("measured_at") or 0))
            self.backend_info_w.value = backend_html(
                {**best, "name": best.get("choice")}, stored=True
            )
        else:
            self.backend_info_w.value = ""

    # ------------------------------------------------------------------------------ predict

    def _run(self, fn: Any) -> None:
        in_background(fn, self._show_error, name="yolo-detect")
