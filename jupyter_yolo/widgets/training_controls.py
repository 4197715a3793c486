"""The training panel's form: task, architecture, dataset, epochs, image size, batch, device.

A mixin of :class:`~jupyter_yolo.widgets.training.TrainingPanel`: it builds the controls from
what the server lists (choices in :mod:`.training_form`), turns them into a training request,
and fills them from a followed job's request.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets

from ..client import YoloClient, YoloClientError
from .tasks import TaskFacts
from .training_form import (
    ALL_TASKS,
    dataset_options,
    device_options,
    model_options,
    task_options,
)

IMAGE_SIZES = (64, 96, 128, 160, 192, 256, 320, 416, 480, 512, 640, 800, 960, 1024, 1280)


class TrainingForm:
    """The controls of a training request (the panel supplies ``client`` and ``facts``)."""

    client: YoloClient
    facts: TaskFacts
    extra: dict[str, Any]
    _recommended_workers: int | None
    _weights: list[dict[str, Any]]

    def _build_form(
        self,
        *,
        data: str | None,
        model: str | None,
        epochs: int,
        imgsz: int | None,
        batch: int | None,
        device: str | None,
        amp: bool | None,
    ) -> None:
        report = self._load_report()
        rec = report.get("recommendation") or {}
        self._recommended_workers = rec.get("workers")
        devices = device_options(report)
        rec_device = str(rec.get("device") or "cpu")
        chosen_device = device or rec_device
        if chosen_device not in [value for _, value in devices]:
            devices.append((chosen_device, chosen_device))
        rec_model = str(rec.get("model") or "yolov8n.yaml")
        chosen_model = model or rec_model
        chosen_task = self.facts.task_of_model(chosen_model)
        self._weights = self._load_weights()
        models = model_options(self.facts, chosen_task, self._weights)
        if chosen_model not in [value for _, value in models]:
            models.append((chosen_model, chosen_model))
        datasets = self._dataset_options()
        self.task_w = widgets.Dropdown(
            options=task_options(self.facts),
            value=chosen_task if chosen_task in self.facts.tasks else ALL_TASKS,
            description="task",
            layout=widgets.Layout(width="280px"),
        )
        self.task_info_w = widgets.HTML()
        chosen_data = data or (datasets[0][1] if datasets else None)
        if chosen_data is not None and chosen_data not in [value for _, value in datasets]:
            datasets.append((chosen_data, chosen_data))
        if imgsz is None:
            imgsz = 320 if rec_device == "cpu" else 640
        sizes = sorted({*IMAGE_SIZES, imgsz})
        small = widgets.Layout(width="200px")
        self.model_w = widgets.Dropdown(
            options=models,
            value=chosen_model,
            description="model",
            layout=widgets.Layout(width="280px"),
        )
        self.data_w = widgets.Dropdown(
            options=datasets,
            value=chosen_data,
            description="dataset",
            layout=widgets.Layout(width="260px"),
        )
        self.epochs_w = widgets.BoundedIntText(
            value=epochs, min=1, max=10000, description="epochs", layout=small
        )
        self.imgsz_w = widgets.Dropdown(
            options=sizes, value=imgsz, description="image size", layout=small
        )
        self.batch_w = widgets.BoundedIntText(
            value=batch or int(rec.get("batch") or 16),
            min=-1,
            max=1024,
            description="batch",
            layout=small,
        )
        self.device_w = widgets.Dropdown(
            options=devices,
            value=chosen_device,
            description="device",
            layout=widgets.Layout(width="280px"),
        )
        self.amp_w = widgets.Checkbox(
            value=bool(rec.get("amp")) if amp is None else amp, description="AMP (mixed precision)"
        )
        self.start_button = widgets.Button(description="Start", icon="play", button_style="success")
        self.stop_button = widgets.Button(description="Stop", icon="stop", button_style="danger")
        self.resume_button = widgets.Button(description="Resume", icon="redo", button_style="info")
        self.attach_w = widgets.Combobox(
            placeholder="job id",
            options=self._job_options(),
            ensure_option=False,
            layout=widgets.Layout(width="170px"),
        )
        self.attach_button = widgets.Button(
            description="Attach", icon="link", tooltip="Follow an existing job by its id"
        )
        self.message_w = widgets.HTML()
        self.status_w = widgets.HTML('<span class="yolo-muted">No job yet.</span>')
        self.progress_w = widgets.FloatProgress(
            value=0, min=0, max=1, layout=widgets.Layout(width="180px")
        )
        self.warnings_w = widgets.HTML()

    def _load_report(self) -> dict[str, Any]:
        try:
            return self.client.accelerators()
        except YoloClientError:
            return {}

    def _load_weights(self) -> list[dict[str, Any]]:
        try:
            return list(self.client.models().get("weights") or [])
        except YoloClientError:
            return []

    def _dataset_options(self) -> list[tuple[str, str]]:
        try:
            return dataset_options(self.client.datasets())
        except YoloClientError:
            return []

    def _task_chosen(self) -> None:
        """List the architectures of the chosen task; keep the model if it is one of them."""
        task = str(self.task_w.value or ALL_TASKS)
        options = model_options(self.facts, task, self._weights)
        current = self.model_w.value
        if not options:
            options = [(str(current), str(current))]
        values = [v for _, v in options]
        self.model_w.options = options
        self.model_w.value = current if current in values else values[0]

    def _job_options(self) -> list[str]:
        try:
            return [j["id"] for j in self.client.jobs() if j.get("kind") == "train"][:20]
        except YoloClientError:
            return []

    def request(self, **overrides: Any) -> dict[str, Any]:
        """The training request the form (plus ``extra`` and ``overrides``) describes."""
        body: dict[str, Any] = {
            "model": self.model_w.value,
            "data": self.data_w.value,
            "epochs": int(self.epochs_w.value),
            "imgsz": int(self.imgsz_w.value),
            "batch": int(self.batch_w.value),
            "device": self.device_w.value,
            "amp": bool(self.amp_w.value),
        }
        if self._recommended_workers is not None:
            body["workers"] = int(self._recommended_workers)
        body.update(self.extra)
        body.update(overrides)
        return body

    def _fill_form(self, request: dict[str, Any]) -> None:
        model = request.get("model")
        if isinstance(model, str):
            task = self.facts.task_of_model(model)
            self.task_w.value = task if task in self.facts.tasks else ALL_TASKS
        pairs = ((self.model_w, "model"), (self.data_w, "data"), (self.device_w, "device"))
        for widget, key in pairs:
            value = request.get(key)
            if isinstance(value, str):
                values = [v for _, v in widget.options]
                if value not in values:
                    widget.options = [*widget.options, (value, value)]
                widget.value = value
        for widget, key in ((self.epochs_w, "epochs"), (self.batch_w, "batch")):
            if isinstance(request.get(key), int):
                widget.value = request[key]
        if isinstance(request.get("imgsz"), int):
            if request["imgsz"] not in self.imgsz_w.options:
                self.imgsz_w.options = sorted({*self.imgsz_w.options, request["imgsz"]})
            self.imgsz_w.value = request["imgsz"]
        if isinstance(request.get("amp"), bool):
            self.amp_w.value = request["amp"]
