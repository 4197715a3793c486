"""The prediction panel's images: dataset samples (with their labels and thumbnails) and uploads.

A mixin of :class:`~jupyter_yolo.widgets.detection.DetectionPanel`. Filling the lists predicts
nothing (the changes are made in the panel's ``_programmatic`` block); choosing files in the
upload widget or :meth:`ImageChoices.add_image` with ``select`` asks for a prediction.
"""

from __future__ import annotations

import posixpath
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager

import ipywidgets as widgets

from ..client import YoloClient
from ..client_predict import service_reads, to_png
from .detection_draw import ImageChoice
from .labels_draw import THUMB

UPLOAD_PREFIX = "upload:"


class ImageChoices:
    """The image list and the gallery's sources (the panel supplies the widgets)."""

    client: YoloClient
    samples: int
    dataset_w: widgets.Dropdown
    split_w: widgets.Dropdown
    image_w: widgets.Dropdown
    model_w: widgets.Dropdown
    upload_w: widgets.FileUpload
    _lock: threading.RLock
    _images: dict[str, ImageChoice]
    _programmatic: Callable[[], AbstractContextManager[None]]
    request: Callable[..., int | None]
    model_task: Callable[[str], str]
    show_gallery: Callable[[], None]
    _show_error: Callable[[BaseException], None]

    def _load_datasets(self, dataset: str | None) -> None:
        """List the datasets; choose ``dataset``, else the first of the weights' task."""
        usable = [
            d for d in self.client.datasets() if d.get("status") not in ("preparing", "error")
        ]
        names = [str(d["name"]) for d in usable]
        if dataset and dataset not in names:
            names.insert(0, dataset)
        if not dataset:
            task = self.model_task(str(self.model_w.value or ""))
            dataset = next((str(d["name"]) for d in usable if d.get("task") == task), None)
        with self._programmatic():
            self.dataset_w.options = names
            if names:
                self.dataset_w.value = dataset or names[0]

    def load_samples(self) -> None:
        """List sample images of the chosen dataset split (uploads stay in the list)."""
        name = self.dataset_w.value
        choices = [c for c in self._images.values() if c.data is not None]
        if name:
            samples = self.client.dataset_samples(
                name, split=self.split_w.value, count=self.samples, thumbnail=THUMB
            )
            for sample in sorted(samples["samples"], key=lambda s: s["path"]):
                width, height = sample.get("width"), sample.get("height")
                choices.append(
                    ImageChoice(
                        path=f"datasets/{name}/{sample['path']}",
                        label=f"{name}: {sample['path']}",
                        dataset=name,
                        dataset_path=sample["path"],
                        truth=list(sample.get("boxes") or []),
                        thumbnail=sample.get("thumbnail"),
                        size=(int(width), int(height)) if width and height else None,
                    )
                )
        with self._lock:
            self._images = {c.path: c for c in choices}
        first = next((c.path for c in choices if c.data is None), None)
        with self._programmatic():
            self.image_w.options = [(c.label, c.path) for c in choices]
            self.image_w.value = first or (choices[-1].path if choices else None)
        self.show_gallery()

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
        self._list_images(path if select else None)
        if select:
            self.request()

    def _uploaded(self) -> None:
        files = list(self.upload_w.value or ())
        last = None
        for item in files:
            name = posixpath.basename(str(item["name"])).replace(" ", "_")
            content = bytes(item["content"])
            if not service_reads(name):  # a BMP, TIFF, GIF...: the service takes it as PNG
                try:
                    content = to_png(content, name)
                except ValueError as exc:
                    self._show_error(exc)
                    continue
            path = f"{UPLOAD_PREFIX}{name}"  # sent as bytes: nothing is written on the server
            with self._lock:
                self._images[path] = ImageChoice(path=path, label=f"upload: {name}", data=content)
            last = path
        if last is not None:
            self._list_images(last)
            self.request()  # choosing files is asking for their prediction

    def _list_images(self, select: str | None) -> None:
        """Show the image list; choose ``select`` (None: keep the choice). Predicts nothing."""
        current = self.image_w.value
        with self._lock:
            choices = list(self._images.values())
        values = [c.path for c in choices]
        chosen = next((v for v in (select, current) if v in values), values[0] if values else None)
        with self._programmatic():
            self.image_w.options = [(c.label, c.path) for c in choices]
            self.image_w.value = chosen
        self.show_gallery()
