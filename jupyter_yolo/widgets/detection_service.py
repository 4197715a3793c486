"""The prediction panel's requests to the warm service (``POST /yolo/predict``).

A mixin of :class:`~jupyter_yolo.widgets.detection.DetectionPanel`: what the controls ask for
(:class:`ServiceRequest`), sending it through :class:`.predict_service.LatestOnly` (debounced,
latest wins, stale answers dropped), and turning an answer into the drawn
:class:`.detection_draw.Prediction` with its timing breakdown and backend.
"""

from __future__ import annotations

import posixpath
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ipywidgets as widgets

from ..client import YoloClient
from ..client_predict import service_reads, to_png
from ..contract.serving import PredictResponse
from .common import error_text, note
from .detection_draw import ImageChoice, Prediction
from .detection_views import backend_html
from .predict_service import LatestOnly, timing_html

TICK_S = 1.0
"""How often the status line of a cold request (a worker starting) says how long it has been."""
STARTING = {
    "auto": "loading the weights, exporting to ONNX and OpenVINO, measuring each backend",
    "openvino": "loading the weights, exporting to OpenVINO",
    "openvino-int8": "loading the weights, exporting to OpenVINO INT8 (calibrating)",
    "onnxruntime": "loading the weights, exporting to ONNX",
    "tensorrt": "loading the weights, building the TensorRT engine",
}
"""What a worker does before its first answer, by the backend asked for (once per weights)."""


def starting_text(wanted: ServiceRequest, elapsed: float) -> str:
    """The status line while ``wanted`` waits for a worker to start: stages and elapsed time."""
    stages = STARTING.get(wanted.backend, "loading the weights")
    return (
        f"Starting the model {wanted.model} ({stages}; done once, later answers take "
        f"milliseconds)... {elapsed:.0f} s"
    )


SERVICE_WAIT_S = 600.0
"""How long :meth:`ServicePrediction.predict` waits for its answer (a cold worker measures)."""


@dataclass(frozen=True)
class ServiceRequest:
    """One ``POST /yolo/predict`` the panel sends: the image and the controls' values."""

    choice: ImageChoice
    model: str
    conf: float
    iou: float
    backend: str
    classes: tuple[int, ...] | None
    device: str | None


class ServicePrediction:
    """Requests from the panel's controls to the warm service, and their answers drawn."""

    client: YoloClient
    device: str | None
    detections: list[dict[str, Any]]
    image_w: widgets.Dropdown
    model_w: widgets.Dropdown
    backend_w: widgets.Dropdown
    conf_w: widgets.FloatLogSlider
    iou_w: widgets.FloatSlider
    classes_w: widgets.SelectMultiple
    status_w: widgets.HTML
    backend_info_w: widgets.HTML
    last_error: BaseException | None
    _lock: threading.RLock
    _images: dict[str, ImageChoice]
    _class_ids: dict[str, int]
    _current: tuple[ImageChoice, Prediction] | None
    _service: LatestOnly[ServiceRequest, PredictResponse]
    _last_request: ServiceRequest | None = None
    _waiting: object | None = None
    asked: bool = False
    """True once the person (or code) asked for a prediction: then moving a control predicts."""
    _redraw: Callable[[], None]  # drawing (PredictionDrawing)

    def _show_error(self, exc: BaseException) -> None:
        self.status_w.value = note("error", error_text(exc))

    def current_request(self) -> ServiceRequest | None:
        """The request the controls describe now (None: no weights or no image chosen)."""
        with self._lock:
            choice = self._images.get(self.image_w.value or "")
        model = self.model_w.value
        if choice is None or not model:
            return None
        wanted = [self._class_ids[n] for n in self.classes_w.value if n in self._class_ids]
        return ServiceRequest(
            choice=choice,
            model=str(model),
            conf=float(self.conf_w.value),
            iou=round(float(self.iou_w.value), 3),
            backend=str(self.backend_w.value or "auto"),
            classes=tuple(sorted(wanted)) if wanted else None,
            device=self.device,
        )

    def request(self, *, force: bool = False) -> int | None:
        """Ask the service for the controls' current prediction, in the background.

        Returns the request's generation number; None when weights or image are missing, or
        (without ``force``) when the controls ask for what was last asked and answered.
        """
        wanted = self.current_request()
        if wanted is None:
            self.status_w.value = note("info", "Choose weights and an image first.")
            return None
        with self._lock:
            self.asked = True
            if not force and wanted == self._last_request and self.last_error is None:
                return None
            self._last_request = wanted
        return self._service.submit(wanted)

    def predict(self, image: str | None = None, timeout: float = SERVICE_WAIT_S) -> list[Any]:
        """Predict on ``image`` (default: the chosen one), wait, draw; return the shown objects.

        It goes through the same queue as the controls, so the latest request still wins.
        """
        if image is not None and image != self.image_w.value:
            self.image_w.value = image
        if self.request(force=True) is None:
            return []
        self._service.idle(timeout)
        return self.detections

    def idle(self, timeout: float | None = None) -> bool:
        """Wait until no request is pending or in flight (False: ``timeout`` passed first)."""
        return self._service.idle(timeout)

    @property
    def requests_sent(self) -> int:
        """How many requests went to the service (debounced, superseded ones never do)."""
        return self._service.sent

    @property
    def answers_dropped(self) -> int:
        """Answers not drawn because a newer request had been made meanwhile."""
        return self._service.dropped

    def _service_sending(self, wanted: ServiceRequest) -> None:
        cold = " (the first request on new weights starts a worker and may measure backends)"
        with self._lock:
            previous = self._current[1] if self._current is not None else None
        if (
            previous is not None
            and previous.model == wanted.model
            and (previous.backend or {}).get("requested") == wanted.backend
            and self.last_error is None
        ):
            return  # a warm worker answers within the blink of an eye: no flashing notice
        self.status_w.value = note(
            "info",
            f"Predicting {posixpath.basename(wanted.choice.path)} with {wanted.model} "
            f"({wanted.backend}){cold}\u2026",
        )
        self._tick_while_starting(wanted)

    def _tick_while_starting(self, wanted: ServiceRequest) -> None:
        """While a cold request waits, say what the server is doing and for how long."""
        token = object()
        started = time.monotonic()
        with self._lock:
            self._waiting = token

        def tick() -> None:
            while True:
                time.sleep(TICK_S)
                with self._lock:
                    if self._waiting is not token:
                        return
                self.status_w.value = note(
                    "info", starting_text(wanted, time.monotonic() - started)
                )

        threading.Thread(target=tick, name="yolo-predict-wait", daemon=True).start()

    def _stop_ticking(self) -> None:
        with self._lock:
            self._waiting = None

    def _ask_service(self, wanted: ServiceRequest) -> PredictResponse:
        params: dict[str, Any] = {
            "model": wanted.model,
            "conf": wanted.conf,
            "iou": wanted.iou,
            "backend": wanted.backend,
            "classes": wanted.classes,
            "device": wanted.device,
        }
        if wanted.choice.data is not None:
            return self.client.predict_images(wanted.choice.data, **params)
        if wanted.choice.dataset and not service_reads(wanted.choice.path):
            # BMP, TIFF, GIF...: the service reads JPEG, PNG and WebP files only; sent as PNG
            data = self.client.dataset_file(wanted.choice.dataset, wanted.choice.dataset_path or "")
            return self.client.predict_images(to_png(data, wanted.choice.path), **params)
        return self.client.predict_images(paths=[wanted.choice.path], **params)

    def _service_answered(self, wanted: ServiceRequest, answer: PredictResponse) -> None:
        self._stop_ticking()
        images = answer.get("images") or []
        entry: dict[str, Any] = dict(images[0]) if images else {"detections": []}
        entry.setdefault("task", answer.get("task"))
        for d in entry.get("detections") or []:
            if d.get("name") is not None and isinstance(d.get("cls"), int):
                self._class_ids[str(d["name"])] = int(d["cls"])
        backend = dict(answer.get("backend") or {})
        prediction = Prediction(
            job_id=None,
            conf=wanted.conf,
            images={wanted.choice.path: entry},
            backend=backend,
            timing=dict(answer.get("timing") or {}),
            model=wanted.model,
        )
        stored = backend.get("report")
        report: dict[str, Any] = dict(stored) if isinstance(stored, dict) else {}
        report.update(name=backend.get("name"), requested=backend.get("requested"))
        self.backend_info_w.value = timing_html(prediction.timing, backend) + (
            backend_html(report) if stored else ""
        )
        with self._lock:
            self._current = (wanted.choice, prediction)
        self.last_error = None
        self._redraw()

    def _service_error(self, exc: BaseException) -> None:
        self._stop_ticking()
        self.last_error = exc
        self._show_error(exc)
