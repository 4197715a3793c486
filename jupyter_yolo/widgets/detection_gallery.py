"""The prediction panel's gallery, ground truth, legend and the model's classes.

A mixin of :class:`~jupyter_yolo.widgets.detection.DetectionPanel`. **Predict all** sends the
gallery's images to the warm service (dataset images by path in one request, uploads as bytes
in another) and draws each thumbnail with its labels; a tile's button opens that image in the
large figure. The class filter and the legend list every class of the model (its training
dataset's names for a trained job, else the chosen dataset's), not only the predicted ones.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import ipywidgets as widgets

from ..client import YoloClient, YoloClientError
from .common import note
from .detection_draw import ImageChoice
from .gallery import Gallery
from .labels_draw import annotate, decode_data_uri, legend_html, truth_boxes


class GalleryPrediction:
    """Several images predicted at once, the legend and the class list (the panel has widgets)."""

    client: YoloClient
    device: str | None
    gallery: Gallery
    gallery_status_w: widgets.HTML
    truth_w: widgets.Checkbox
    legend_w: widgets.HTML
    classes_w: widgets.SelectMultiple
    image_w: widgets.Dropdown
    model_w: widgets.Dropdown
    dataset_w: widgets.Dropdown
    backend_w: widgets.Dropdown
    conf_w: widgets.FloatLogSlider
    iou_w: widgets.FloatSlider
    _lock: threading.RLock
    _images: dict[str, ImageChoice]
    _class_ids: dict[str, int]
    class_names: dict[int, str]
    gallery_results: dict[str, dict[str, Any]]
    _programmatic: Callable[[], AbstractContextManager[None]]  # the panel's
    request: Callable[..., int | None]  # ServicePrediction's

    def _model_dataset(self, model: str) -> str | None:
        """The dataset ``job:<id>:...`` weights were trained on (None when not known)."""
        if not model.startswith("job:"):
            return None
        try:
            job = self.client.job(model.split(":")[1])
        except YoloClientError:
            return None
        data = (job.get("request") or {}).get("data") or (job.get("params") or {}).get("data")
        return str(data) if isinstance(data, str) and "/" not in data else None

    def load_classes(self) -> dict[int, str]:
        """Fill the class filter and the legend with every class of the chosen weights."""
        model = str(self.model_w.value or "")
        names: dict[int, str] = {}
        for dataset in (self._model_dataset(model), self.dataset_w.value):
            if not dataset:
                continue
            try:
                report = self.client.dataset(str(dataset)).get("report") or {}
            except YoloClientError:
                continue
            found = report.get("names") or {}
            if isinstance(found, list):
                found = dict(enumerate(found))
            names = {int(k): str(v) for k, v in dict(found).items()}
            if names:
                break
        self.set_classes(names, replace=True)
        return names

    def set_classes(self, names: dict[int, str], *, replace: bool = False) -> None:
        """Offer ``names`` (class index: name) in the filter (keeps the selection) and legend.

        ``replace``: these are all the classes (other weights chosen); else they are added.
        """
        with self._lock:
            merged = dict(names) if replace else {**self.class_names, **names}
            self.class_names = merged
            if replace:
                self._class_ids.clear()
            self._class_ids.update({v: k for k, v in merged.items()})
        ordered = [merged[k] for k in sorted(merged)]
        if list(self.classes_w.options) != ordered:
            selected = tuple(v for v in self.classes_w.value if v in ordered)
            with self._programmatic():
                self.classes_w.options = ordered
                self.classes_w.value = selected
        self.show_legend()

    def show_legend(self, present: set[int] | None = None) -> None:
        """The legend: every class in its colour, those in the image shown in bold."""
        self.legend_w.value = legend_html(self.class_names, present)

    # ------------------------------------------------------------------------------ tiles

    def show_gallery(self) -> None:
        """Tiles for the listed images, pictures drawn (with ground truth when it is on)."""
        with self._lock:
            choices = list(self._images.values())
        uploads = [c.path for c in choices if c.data is not None]
        dataset = [c.path for c in choices if c.data is None]
        self.gallery.show(uploads[::-1] + dataset)
        for path in self.gallery.paths:
            self._draw_tile(path)
        self.gallery.mark(self.image_w.value)

    def _draw_tile(self, path: str) -> None:
        with self._lock:
            choice = self._images.get(path)
            entry = self.gallery_results.get(path)
        if choice is None:
            return
        if choice.thumbnail is not None:
            source, size = decode_data_uri(choice.thumbnail), choice.size
        elif choice.data is not None:
            source, size = choice.data, None
        else:
            return
        detections = list((entry or {}).get("detections") or [])
        truth: list[dict[str, Any]] = []
        if self.truth_w.value and choice.truth and choice.size:
            truth = truth_boxes(choice.truth, *choice.size)
        try:
            png = annotate(source, detections, size=size, truth=truth)
        except (OSError, ValueError):
            return
        caption = None
        if entry is not None:
            count = len(detections)
            caption = f"{count} object{'s' if count != 1 else ''}" if count else "nothing found"
        self.gallery.set_tile(path, png, caption)

    def predict_gallery(self) -> dict[str, list[dict[str, Any]]]:
        """Predict every gallery image on the warm service (two requests at most); draw them."""
        model = self.model_w.value
        if not model:
            self.gallery_status_w.value = note("info", "Choose weights first.")
            return {}
        with self._lock:
            choices = [self._images[p] for p in self.gallery.paths if p in self._images]
        wanted = [self._class_ids[n] for n in self.classes_w.value if n in self._class_ids]
        params: dict[str, Any] = {
            "model": str(model),
            "conf": float(self.conf_w.value),
            "iou": round(float(self.iou_w.value), 3),
            "backend": str(self.backend_w.value or "auto"),
            "classes": sorted(wanted) or None,
            "device": self.device,
        }
        self.gallery_status_w.value = note(
            "info", f"Predicting {len(choices)} images with {model} (a cold model starts first)..."
        )
        paths = [c for c in choices if c.data is None]
        uploads = [c for c in choices if c.data is not None]
        results: dict[str, dict[str, Any]] = {}
        if paths:
            answer = self.client.predict_images(paths=[c.path for c in paths], **params)
            for choice, entry in zip(paths, answer.get("images") or [], strict=False):
                results[choice.path] = dict(entry)
        if uploads:
            answer = self.client.predict_images([c.data or b"" for c in uploads], **params)
            for choice, entry in zip(uploads, answer.get("images") or [], strict=False):
                results[choice.path] = dict(entry)
        with self._lock:
            self.gallery_results.update(results)
        for path in results:
            self._draw_tile(path)
        total = sum(len(e.get("detections") or []) for e in results.values())
        self.gallery_status_w.value = note(
            "info",
            f"{len(results)} images, {total} objects at confidence >= {params['conf']:.3g} "
            f"by {model}. Click an image to see it large.",
        )
        return {p: list(e.get("detections") or []) for p, e in results.items()}

    def _gallery_pick(self, path: str) -> None:
        """A tile's button: show that image large (and predict it)."""
        self.gallery.mark(path)
        if self.image_w.value == path:
            self.request(force=True)
        else:
            self.image_w.value = path  # the observer predicts it
