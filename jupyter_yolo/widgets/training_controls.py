"""The training panel's form: task, architecture, dataset, epochs, image size, batch, device.

Its defaults come from :func:`~jupyter_yolo.contract.training_defaults.train_defaults` (the
embedded dataset's tuned recipe, the hardware's sizes), like the quickstart's and the report's.

A mixin of :class:`~jupyter_yolo.widgets.training.TrainingPanel`: it builds the controls from
what the server lists (choices in :mod:`.training_form`), turns them into a training request,
and fills them from a followed job's request.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets

from ..client import YoloClient, YoloClientError
from ..contract.tasks import DEFAULT_TASK
from ..contract.training_defaults import EMBEDDED_DATASETS, embedded_task, train_defaults
from .tasks import TaskFacts
from .training_advanced import AdvancedSection
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
        epochs: int | None,
        imgsz: int | None,
        batch: int | None,
        device: str | None,
        amp: bool | None,
    ) -> None:
        report = self._load_report()
        rec = report.get("recommendation") or {}
        self._recommendation: dict[str, Any] = dict(rec)
        self._filling = False
        self._models = self._load_models()
        self._weights = list(self._models.get("weights") or [])
        datasets = self._dataset_options()
        listed = [value for _, value in datasets]
        wanted_task = self.facts.task_of_model(model) if model else DEFAULT_TASK
        embedded = EMBEDDED_DATASETS.get(wanted_task)
        chosen_data = data or (
            embedded if embedded in listed else (datasets[0][1] if datasets else None)
        )
        defaults = train_defaults(chosen_data, rec)
        self._recommended_workers = rec.get("workers")
        devices = device_options(report)
        chosen_device = device or str(defaults["device"])
        if chosen_device not in [value for _, value in devices]:
            devices.append((chosen_device, chosen_device))
        chosen_model = model or str(defaults["model"])
        chosen_task = self.facts.task_of_model(chosen_model)
        models = model_options(self.facts, chosen_task, self._weights)
        if chosen_model not in [value for _, value in models]:
            models.append((chosen_model, chosen_model))
        epochs = epochs if epochs is not None else int(str(defaults["epochs"]))
        imgsz = imgsz or int(str(defaults["imgsz"]))
        batch = batch or int(str(defaults["batch"]))
        amp = bool(defaults["amp"]) if amp is None else amp
        self.task_w = widgets.Dropdown(
            options=task_options(self.facts),
            value=chosen_task if chosen_task in self.facts.tasks else ALL_TASKS,
            description="task",
            layout=widgets.Layout(width="280px"),
        )
        self.task_info_w = widgets.HTML()
        if chosen_data is not None and chosen_data not in [value for _, value in datasets]:
            datasets.append((chosen_data, chosen_data))
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
            value=batch,
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
        self.amp_w = widgets.Checkbox(value=amp, description="AMP (mixed precision)")
        self.advanced_w = AdvancedSection()
        self.advanced_w.set_defaults(defaults)
        self.advanced_w.set_pretrained_options(self._models, chosen_task)
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
        self.data_w.observe(lambda _: self._data_chosen(), names="value")

    def _load_report(self) -> dict[str, Any]:
        try:
            return self.client.accelerators()
        except YoloClientError:
            return {}

    def _load_models(self) -> dict[str, Any]:
        try:
            return dict(self.client.models())
        except YoloClientError:
            return {}

    def _data_chosen(self) -> None:
        """A dataset picked by hand: show its defaults (an embedded one: its tuned recipe)."""
        if self._filling:
            return
        data = self.data_w.value
        defaults = train_defaults(data, self._recommendation)
        task = embedded_task(data)
        if task is not None and task in self.facts.tasks:
            self.task_w.value = task
            self._set_option(self.model_w, str(defaults["model"]))
        self.epochs_w.value = int(str(defaults["epochs"]))
        self._set_option(self.imgsz_w, int(str(defaults["imgsz"])))
        self.batch_w.value = int(str(defaults["batch"]))
        self.advanced_w.set_defaults(defaults)

    @staticmethod
    def _set_option(widget: widgets.Dropdown, value: Any) -> None:
        values = [v[1] if isinstance(v, tuple) else v for v in widget.options]
        if value not in values:
            if widget.options and isinstance(widget.options[0], tuple):
                widget.options = [*widget.options, (str(value), value)]
            else:
                widget.options = sorted({*widget.options, value})
        widget.value = value

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
        self.advanced_w.set_pretrained_options(self._models, task or None)

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
        body.update(self.advanced_w.values())
        body.update(self.extra)
        body.update(overrides)
        return body

    def _fill_form(self, request: dict[str, Any]) -> None:
        self._filling = True
        try:
            self._fill_controls(request)
            self.advanced_w.fill(request)
        finally:
            self._filling = False

    def _fill_controls(self, request: dict[str, Any]) -> None:
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
