"""How the prediction panel draws one image's results, for every task.

A mixin of :class:`~jupyter_yolo.widgets.detection.DetectionPanel`: the photo, an overlay
(instance masks, or a semantic / depth map inline in the service's answer or fetched from a
predict job), the task's geometry
as traces (:mod:`.drawing`), labels, top-5 class bars, the results table and the status line.
"""

from __future__ import annotations

import base64
import mimetypes
import posixpath
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ipywidgets as widgets
import plotly.graph_objects as go

from ..client import YoloClient, YoloClientError
from ..client_predict import to_png
from .common import esc, note
from .detection_views import NO_OBJECTS, results_table, title_text
from .drawing import (
    box_traces,
    class_bars,
    color,
    halo_traces,
    keypoint_traces,
    label_annotations,
    mask_overlay,
    pixel_map_overlay,
    polygon_traces,
    rotated_traces,
)
from .figure import LiveFigure, live_figure
from .labels_draw import truth_boxes
from .tasks import TaskFacts


@dataclass
class Prediction:
    """One answer (of the warm service, or a predict job): its threshold and results per image."""

    job_id: str | None
    conf: float
    images: dict[str, dict[str, Any]] = field(default_factory=dict)
    backend: dict[str, Any] | None = None
    timing: dict[str, Any] | None = None
    model: str | None = None


BROWSER_IMAGE_TYPES = (
    "image/jpeg",
    "image/png",
    "image/webp",
    "image/gif",
    "image/bmp",
    "image/x-ms-bmp",
)
"""Image types every browser shows in the figure as they are."""


@dataclass
class ImageChoice:
    """An image the panel can show: where it is in the workspace and how to fetch it."""

    path: str  # workspace-relative
    label: str
    dataset: str | None = None
    dataset_path: str | None = None  # relative to the dataset folder
    data: bytes | None = None  # uploaded bytes, sent to the service as they are
    truth: list[dict[str, Any]] | None = None  # a dataset sample's labels (xywhn, class_id)
    thumbnail: str | None = None  # a dataset sample's thumbnail (data URI)
    size: tuple[int, int] | None = None  # the original image's width, height


def detection_figure() -> LiveFigure:
    """An empty image figure with the y axis pointing down and square pixels."""
    fig = live_figure(
        go.Figure(
            data=[
                go.Image(source=None, hoverinfo="skip", name="image"),
                go.Image(source=None, hoverinfo="skip", name="overlay"),
            ]
        )
    )
    fig.update_layout(
        height=460,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        template="plotly_white",
        xaxis={"visible": False, "constrain": "domain"},
        yaxis={"visible": False, "autorange": "reversed", "scaleanchor": "x"},
        title={"text": "", "font": {"size": 13}},
    )
    return fig


class PredictionDrawing:
    """Drawing of the chosen image's prediction (the panel supplies the widgets)."""

    client: YoloClient
    facts: TaskFacts
    figure: go.FigureWidget
    scores_figure: go.FigureWidget
    scores_box: widgets.Box
    conf_w: widgets.FloatLogSlider
    classes_w: widgets.SelectMultiple
    model_w: widgets.Dropdown
    table_w: widgets.HTML
    status_w: widgets.HTML
    detections: list[dict[str, Any]]
    _lock: threading.RLock
    _current: tuple[ImageChoice, Prediction] | None
    _pixels: dict[str, str]
    truth_w: widgets.Checkbox
    class_names: dict[int, str]
    set_classes: Callable[..., None]  # GalleryPrediction's
    show_legend: Callable[..., None]
    redraws: int = 0

    def model_task(self, model: str) -> str:
        """The task of weights ``model`` (the panel knows the listing)."""
        raise NotImplementedError

    def _show_task(self, task: str | None = None) -> None:
        raise NotImplementedError

    def _image_uri(self, choice: ImageChoice) -> str:
        with self._lock:
            uri = self._pixels.get(choice.path)
        if uri is not None:
            return uri
        if choice.data is not None:
            content = choice.data
        elif choice.dataset and choice.dataset_path:
            content = self.client.dataset_file(choice.dataset, choice.dataset_path)
        else:
            raise YoloClientError(None, f"No way to fetch {choice.path}.")
        mime = mimetypes.guess_type(choice.path)[0] or "image/jpeg"
        if mime not in BROWSER_IMAGE_TYPES:  # a TIFF...: browsers show it as PNG
            content, mime = to_png(content, choice.path), "image/png"
        uri = f"data:{mime};base64," + base64.b64encode(content).decode("ascii")
        with self._lock:
            self._pixels[choice.path] = uri
        return uri

    def _redraw(self) -> None:
        with self._lock:
            current = self._current
        if current is None:
            return
        choice, prediction = current
        entry = prediction.images.get(choice.path) or {"detections": []}
        task = str(entry.get("task") or self.model_task(str(self.model_w.value or "")))
        self._show_task(task)
        geometry = self.facts.geometry(task)
        conf = float(self.conf_w.value)
        everything = entry.get("detections") or []
        seen = {
            int(d["cls"]): str(d.get("name"))
            for d in everything
            if isinstance(d.get("cls"), int) and int(d["cls"]) not in self.class_names
        }
        if seen:  # classes the listing did not know (weights of another dataset)
            self.set_classes(seen)
        wanted = set(self.classes_w.value)
        shown = [
            d
            for d in everything
            if float(d.get("conf") or 0) >= conf and (not wanted or str(d.get("name")) in wanted)
        ]
        shown.sort(key=lambda d: -float(d.get("conf") or 0))
        uri = self._image_uri(choice)
        width, height = entry.get("width"), entry.get("height")
        overlay = self._overlay(entry, shown, geometry, prediction.job_id)
        traces = self._traces(shown, geometry, masked=overlay is not None)
        truth = self._truth_traces(choice, entry, geometry)
        self.show_legend({int(d["cls"]) for d in shown if isinstance(d.get("cls"), int)})
        self.figure.data = self.figure.data[:2]
        with self.figure.batch_update():
            self.figure.data[0].source = uri
            self.figure.data[1].source = overlay
            self.figure.layout.title.text = title_text(choice.path, entry, shown, geometry)
            self.figure.layout.annotations = label_annotations(shown)
            if width and height:
                self.figure.layout.xaxis.range = [0, width]
                self.figure.layout.yaxis.range = [height, 0]
            # a counter the page can watch: the browser test times input -> redraw with it
            self.redraws += 1
            self.figure.layout.meta = {"redraw": self.redraws, "shown": len(shown), "conf": conf}
        self.figure.add_traces(truth + traces)
        self._draw_scores(entry.get("classes") or [])
        self.detections = shown
        self.table_w.value = results_table(entry, shown, geometry)
        total = (prediction.timing or {}).get("total_ms")
        by = esc(prediction.model or self.model_w.value)
        if prediction.job_id is not None:
            job = f"predict job {esc(prediction.job_id)} at {prediction.conf:.3g}"
        elif isinstance(total, int | float):
            job = f"warm service, {float(total):.0f} ms"
        else:
            job = "warm service"
        started = (prediction.timing or {}).get("worker_start_ms")
        if isinstance(started, int | float):
            job += f"; the model started in {float(started) / 1000:.1f} s"
        image = esc(posixpath.basename(choice.path))
        if geometry in NO_OBJECTS:
            text = f"{esc(self.facts.title(task))} of {image} by <b>{by}</b> ({job})"
        elif not shown:
            text = (
                f"No objects found in {image} at confidence &ge; {conf:.3g} by <b>{by}</b> "
                f"({job}). A lower confidence shows weaker guesses."
            )
        else:
            text = (
                f"{len(shown)} object{'s' if len(shown) != 1 else ''} in {image} at confidence "
                f"&ge; {conf:.3g} by <b>{by}</b> ({job})"
            )
        empty = not shown and geometry not in NO_OBJECTS  # a neutral note, not a success
        html = note("info" if empty else "ok", text, raw=True)
        self.status_w.value = (
            html.replace('"yolo-note ', '"yolo-note yolo-empty ') if empty else html
        )

    @staticmethod
    def _traces(shown: list[dict[str, Any]], geometry: str, *, masked: bool) -> list[Any]:
        """The detections' outlines (limbs, points), each line over a contrasting halo."""
        if geometry == "polygon":
            traces = list(polygon_traces(shown, filled=not masked))  # type: ignore[arg-type]
        elif geometry == "keypoints":
            traces = list(keypoint_traces(shown))  # type: ignore[arg-type]
        elif geometry == "rotated-box":
            traces = list(rotated_traces(shown))  # type: ignore[arg-type]
        else:
            traces = list(box_traces(shown))  # type: ignore[arg-type]
        return halo_traces(traces) + traces

    def _truth_traces(
        self, choice: ImageChoice, entry: dict[str, Any], geometry: str
    ) -> list[go.Scatter]:
        """The dataset's labels as dashed boxes over a dark halo (when ground truth is on)."""
        if not self.truth_w.value or not choice.truth or geometry in NO_OBJECTS:
            return []
        width = entry.get("width") or (choice.size or (0, 0))[0]
        height = entry.get("height") or (choice.size or (0, 0))[1]
        if not width or not height:
            return []
        traces = []
        for box in truth_boxes(choice.truth, float(width), float(height)):
            x0, y0, x1, y1 = box["box_xyxy"]
            xs, ys = [x0, x1, x1, x0, x0], [y0, y0, y1, y1, y0]
            label = f"truth: {box['name']}"
            for hue, width_px, dash in (
                ("#141414", 5.0, "solid"),
                (color(box["cls"]), 2.5, "dash"),
            ):
                traces.append(
                    go.Scatter(
                        x=xs,
                        y=ys,
                        mode="lines",
                        line={"color": hue, "width": width_px, "dash": dash},
                        opacity=0.55 if dash == "solid" else 1.0,
                        name=label,
                        text=label,
                        hoverinfo="text",
                        showlegend=False,
                        meta={"kind": "truth"},
                    )
                )
        return traces

    def _overlay(
        self, entry: dict[str, Any], shown: list[dict[str, Any]], geometry: str, job_id: str | None
    ) -> str | None:
        """The translucent image over the photo: instance masks, or a class / depth map."""
        width, height = int(entry.get("width") or 0), int(entry.get("height") or 0)
        if geometry == "polygon" and width and height:
            return mask_overlay(shown, width, height)  # type: ignore[arg-type]
        pixel_map = entry.get("pixel_map")
        if isinstance(pixel_map, dict) and pixel_map.get("png_base64"):
            return pixel_map_overlay(base64.b64decode(pixel_map["png_base64"]), geometry)
        if not isinstance(pixel_map, dict) or not pixel_map.get("file") or job_id is None:
            return None
        file = str(pixel_map["file"])
        prefix = f"jobs/{job_id}/"
        path = file[len(prefix) :] if file.startswith(prefix) else file
        try:
            png = self.client.artifact(job_id, path)
        except YoloClientError:
            return None
        return pixel_map_overlay(png, geometry)

    def _draw_scores(self, classes: list[dict[str, Any]]) -> None:
        """Top-5 class bars under the image (hidden for tasks without class scores)."""
        self.scores_box.layout.display = "flex" if classes else "none"
        if not classes:
            return
        bars = class_bars(classes)  # type: ignore[arg-type]
        with self.scores_figure.batch_update():
            bar = self.scores_figure.data[0]
            bar.x, bar.y, bar.text = bars.x, bars.y, bars.text
            bar.marker.color = bars.marker.color
            bar.textposition = "auto"
