"""The detection panel: weights, backend, images (dataset samples or uploads), conf / IoU, classes.

Detections come from predict jobs over REST: one job per (weights, source, IoU, backend), run at
a low confidence floor, whose ``run/predictions.json`` is cached. The backend dropdown offers
``auto`` (the fastest backend that agrees with PyTorch, measured once per weights and image size
on the server) and every backend the server can run; the panel shows which backend ran and the
measured latencies. Raising the confidence slider (or changing the class filter) only filters
the cached boxes again; lowering it below the job's floor, or changing the IoU or the backend,
runs a new job. What a prediction holds is drawn over the original image in a plotly figure
by its task's geometry (see :mod:`.drawing`: boxes, masks, skeletons, rotated boxes, class
bars, pixel maps), with hover labels, and listed in a table.
"""

from __future__ import annotations

import base64
import json
import mimetypes
import posixpath
import threading
from dataclasses import dataclass, field
from typing import Any

import ipywidgets as widgets
import plotly.graph_objects as go

from ..client import YoloClient, YoloClientError
from .common import STYLE, error_text, esc, get_client, in_background, note
from .detection_views import NO_OBJECTS, backend_html, results_table, title_text
from .drawing import (
    MAX_BOXES_DRAWN,
    box_traces,
    keypoint_traces,
    label_annotations,
    mask_overlay,
    pixel_map_overlay,
    polygon_traces,
    rotated_traces,
    scores_figure,
)
from .tasks import task_facts

__all__ = ["MAX_BOXES_DRAWN", "DetectionPanel", "backend_html", "box_traces", "detection_figure"]

CONF_FLOOR = 0.05
FOLDER_JOB_LIMIT = 64
UPLOAD_FOLDER = "uploads/detect"


@dataclass
class Prediction:
    """One finished predict job: its confidence floor and the detections per image file."""

    job_id: str
    conf: float
    images: dict[str, dict[str, Any]] = field(default_factory=dict)
    backend: dict[str, Any] | None = None


@dataclass
class ImageChoice:
    """An image the panel can show: where it is in the workspace and how to fetch it."""

    path: str  # workspace-relative
    label: str
    dataset: str | None = None
    dataset_path: str | None = None  # relative to the dataset folder
    folder_source: str | None = None  # a small folder to predict on in one job
    data: bytes | None = None  # uploaded bytes


def detection_figure() -> go.FigureWidget:
    """An empty image figure with the y axis pointing down and square pixels."""
    fig = go.FigureWidget(
        data=[
            go.Image(source=None, hoverinfo="skip", name="image"),
            go.Image(source=None, hoverinfo="skip", name="overlay"),
        ]
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


class DetectionPanel(widgets.VBox):  # type: ignore[misc]
    """Run a trained model on images and look at the boxes."""

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
        self._cache: dict[tuple[str, str, float, str], Prediction] = {}
        self._stored: dict[str, list[dict[str, Any]]] = {}
        self._model_tasks: dict[str, str] = {}
        self._images: dict[str, ImageChoice] = {}
        self._pixels: dict[str, str] = {}
        self._lock = threading.RLock()
        self._current: tuple[ImageChoice, Prediction] | None = None
        self.detections: list[dict[str, Any]] = []
        self.facts = task_facts(self.client)
        self.task: str | None = None
        self.figure = detection_figure()
        self.scores_figure = scores_figure()
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
        super().__init__(
            children=[
                self.header_w,
                widgets.HBox([self.model_w, self.backend_w, self.dataset_w, self.split_w]),
                widgets.HBox([self.image_w, self.upload_w]),
                widgets.HBox(
                    [widgets.VBox([self.conf_w, self.iou_w]), self.classes_w, self.detect_button]
                ),
                self.status_w,
                self.backend_info_w,
                self.figure,
                self.scores_box,
                self.table_w,
            ]
        )
        self.add_class("yolo-detection-panel")
        self._predict_lock = threading.Lock()
        self.refresh_models(select=model, backend=backend)
        self._load_datasets(dataset)
        self.load_samples()
        self.dataset_w.observe(lambda _: self._run(self.load_samples), names="value")
        self.split_w.observe(lambda _: self._run(self.load_samples), names="value")
        self.model_w.observe(lambda _: self._show_stored(), names="value")
        self.model_w.observe(lambda _: self._show_task(), names="value")
        for control in (self.image_w, self.conf_w, self.iou_w, self.model_w, self.backend_w):
            control.observe(lambda _: self._run(self.predict), names="value")
        self.classes_w.observe(lambda _: self._run(self._redraw), names="value")
        self.upload_w.observe(lambda _: self._run(self._uploaded), names="value")
        self.detect_button.on_click(lambda _: self._run(self.predict))

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
        self.backend_w.options = backends
        self.backend_w.value = wanted
        listed = [*(models.get("trained") or []), *(models.get("weights") or [])]
        self._model_tasks = {
            str(m["model"]): str(m.get("task") or self.facts.task_of_model(str(m["model"])))
            for m in listed
        }
        options = [
            (
                f"{m['model']}"
                + (f" ({m['name']})" if m.get("name") else "")
                + f" \u00b7 {self._model_tasks[str(m['model'])]}",
                str(m["model"]),
            )
            for m in models.get("trained") or []
        ]
        options.sort(key=lambda o: (not o[1].endswith(":best"),))
        options.extend(
            (
                f"{w['model']} (pretrained \u00b7 {self._model_tasks[str(w['model'])]})",
                str(w["model"]),
            )
            for w in models.get("weights") or []
        )
        if select and select not in [v for _, v in options]:
            options.insert(0, (select, select))
        self.model_w.options = options
        if options:
            self.model_w.value = select or options[0][1]
        self._show_stored()
        self._show_task()

    def model_task(self, model: str) -> str:
        """The task of weights ``model``: as the server lists it, else from its name."""
        return self._model_tasks.get(model) or self.facts.task_of_model(model)

    def _show_task(self, task: str | None = None) -> None:
        """Name the task of the chosen weights (or of the prediction shown) in the header."""
        task = task or self.model_task(str(self.model_w.value or ""))
        self.task = task
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

    def _load_datasets(self, dataset: str | None) -> None:
        names = [
            str(d["name"])
            for d in self.client.datasets()
            if d.get("status") not in ("preparing", "error")
        ]
        if dataset and dataset not in names:
            names.insert(0, dataset)
        self.dataset_w.options = names
        if names:
            self.dataset_w.value = dataset or names[0]

    def load_samples(self) -> None:
        """List sample images of the chosen dataset split (uploads stay in the list)."""
        name = self.dataset_w.value
        choices = [c for c in self._images.values() if c.data is not None]
        if name:
            samples = self.client.dataset_samples(
                name, split=self.split_w.value, count=self.samples
            )
            folders = {posixpath.dirname(s["path"]) for s in samples["samples"]}
            small = samples.get("images_in_split", 0) <= FOLDER_JOB_LIMIT and len(folders) == 1
            for sample in sorted(samples["samples"], key=lambda s: s["path"]):
                path = f"datasets/{name}/{sample['path']}"
                folder = f"datasets/{name}/{posixpath.dirname(sample['path'])}"
                choices.append(
                    ImageChoice(
                        path=path,
                        label=f"{name}: {sample['path']}",
                        dataset=name,
                        dataset_path=sample["path"],
                        folder_source=folder if small else None,
                    )
                )
        with self._lock:
            self._images = {c.path: c for c in choices}
        first = next((c.path for c in choices if c.data is None), None)
        self.image_w.options = [(c.label, c.path) for c in choices]
        self.image_w.value = first or (choices[-1].path if choices else None)

    def add_image(self, path: str, data: bytes | None = None, *, select: bool = True) -> None:
        """Offer the workspace image ``path`` (its bytes ``data`` for the preview) and show it.

        Selecting it runs the prediction, as choosing it in the dropdown does. Without ``data``
        the image must be a dataset's file (``datasets/<name>/...``).
        """
        parts = path.split("/")
        dataset = parts[1] if len(parts) > 2 and parts[0] == "datasets" else None
        choice = ImageChoice(
            path=path,
            label=f"image: {path}",
            dataset=dataset,
            dataset_path="/".join(parts[2:]) if dataset else None,
            data=data,
        )
        if data is None and dataset is None:
            raise ValueError(f"{path}: give its bytes, or a path under datasets/<name>/.")
        with self._lock:
            self._images[path] = choice
        self.image_w.options = [(c.label, c.path) for c in self._images.values()]
        if select:
            self.image_w.value = path

    def _uploaded(self) -> None:
        files = list(self.upload_w.value or ())
        last = None
        for item in files:
            name = posixpath.basename(str(item["name"])).replace(" ", "_")
            content = bytes(item["content"])
            path = self.client.put_workspace_file(f"{UPLOAD_FOLDER}/{name}", content)
            with self._lock:
                self._images[path] = ImageChoice(path=path, label=f"upload: {name}", data=content)
            last = path
        if last is not None:
            self.image_w.options = [(c.label, c.path) for c in self._images.values()]
            self.image_w.value = last  # runs predict through the observer

    # ------------------------------------------------------------------------------ predict

    def _run(self, fn: Any) -> None:
        in_background(fn, self._show_error, name="yolo-detect")

    def _show_error(self, exc: BaseException) -> None:
        self.status_w.value = note("error", error_text(exc))

    def predict(self, image: str | None = None) -> list[dict[str, Any]]:
        """Detect on ``image`` (default: the chosen one) and draw; returns the shown boxes."""
        with self._predict_lock:
            return self._predict(image)

    def _predict(self, image: str | None) -> list[dict[str, Any]]:
        if image is not None and image != self.image_w.value:
            self.image_w.value = image
        with self._lock:
            choice = self._images.get(self.image_w.value or "")
        model = self.model_w.value
        if choice is None or not model:
            self.status_w.value = note("info", "Choose weights and an image first.")
            return []
        conf = float(self.conf_w.value)
        iou = round(float(self.iou_w.value), 3)
        backend = str(self.backend_w.value or "auto")
        source = choice.folder_source or choice.path
        key = (model, source, iou, backend)
        with self._lock:
            cached = self._cache.get(key)
        if cached is None or cached.conf > conf:
            cached = self._run_job(model, source, iou, min(conf, CONF_FLOOR), backend)
            with self._lock:
                self._cache[key] = cached
        self.backend_info_w.value = backend_html(cached.backend)
        with self._lock:
            self._current = (choice, cached)
        self._redraw()
        return self.detections

    def _run_job(
        self, model: str, source: str, iou: float, conf: float, backend: str = "auto"
    ) -> Prediction:
        first = "; the first auto job on new weights measures the backends" * (backend == "auto")
        self.status_w.value = note(
            "info", f"Running a predict job with {model} on {source} ({backend}{first})\u2026"
        )
        self.detect_button.disabled = True
        try:
            params: dict[str, Any] = {"conf": conf, "iou": iou, "backend": backend}
            if self.device:
                params["device"] = self.device
            job = self.client.predict(model, source, **params)
            done = self.client.wait(job["id"], timeout=600)
            if done["status"] != "succeeded":
                raise YoloClientError(
                    None, f"predict job {job['id']} {done['status']}: {done.get('error')}"
                )
            entries = json.loads(self.client.artifact(job["id"], "run/predictions.json"))
        finally:
            self.detect_button.disabled = False
        images = {}
        folder = source if not posixpath.splitext(source)[1] else posixpath.dirname(source)
        for entry in entries:
            images[posixpath.join(folder, entry["file"])] = entry
        report = (done.get("result") or {}).get("backend")
        return Prediction(
            job_id=job["id"],
            conf=conf,
            images=images,
            backend=report if isinstance(report, dict) else None,
        )

    # ------------------------------------------------------------------------------ drawing

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
        names = sorted({str(d.get("name")) for d in everything})
        if set(names) - set(self.classes_w.options):
            selected = self.classes_w.value
            self.classes_w.options = sorted({*self.classes_w.options, *names})
            self.classes_w.value = tuple(v for v in selected if v in self.classes_w.options)
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
        self.figure.data = self.figure.data[:2]
        with self.figure.batch_update():
            self.figure.data[0].source = uri
            self.figure.data[1].source = overlay
            self.figure.layout.title.text = title_text(choice.path, entry, shown, geometry)
            self.figure.layout.annotations = label_annotations(shown)
            if width and height:
                self.figure.layout.xaxis.range = [0, width]
                self.figure.layout.yaxis.range = [height, 0]
        self.figure.add_traces(traces)
        self._draw_scores(entry.get("classes") or [])
        self.detections = shown
        self.table_w.value = results_table(entry, shown, geometry)
        what = "detection(s)" if geometry not in NO_OBJECTS else "result"
        self.status_w.value = note(
            "ok",
            f"{len(shown) if geometry not in NO_OBJECTS else 1} {what} at confidence "
            f"\u2265 {conf:.3g} (predict job {esc(prediction.job_id)} ran at "
            f"{prediction.conf:.3g}; raising the threshold filters without a new job)",
            raw=True,
        )

    @staticmethod
    def _traces(shown: list[dict[str, Any]], geometry: str, *, masked: bool) -> list[Any]:
        if geometry == "polygon":
            return list(polygon_traces(shown, filled=not masked))  # type: ignore[arg-type]
        if geometry == "keypoints":
            return list(keypoint_traces(shown))  # type: ignore[arg-type]
        if geometry == "rotated-box":
            return list(rotated_traces(shown))  # type: ignore[arg-type]
        return list(box_traces(shown))  # type: ignore[arg-type]

    def _overlay(
        self, entry: dict[str, Any], shown: list[dict[str, Any]], geometry: str, job_id: str
    ) -> str | None:
        """The translucent image over the photo: instance masks, or a class / depth map."""
        width, height = int(entry.get("width") or 0), int(entry.get("height") or 0)
        if geometry == "polygon" and width and height:
            return mask_overlay(shown, width, height)  # type: ignore[arg-type]
        pixel_map = entry.get("pixel_map")
        if not isinstance(pixel_map, dict) or not pixel_map.get("file"):
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
        from .drawing import class_bars

        self.scores_box.layout.display = "flex" if classes else "none"
        if not classes:
            return
        bars = class_bars(classes)  # type: ignore[arg-type]
        with self.scores_figure.batch_update():
            bar = self.scores_figure.data[0]
            bar.x, bar.y, bar.text = bars.x, bars.y, bars.text
            bar.marker.color = bars.marker.color
            bar.textposition = "auto"
