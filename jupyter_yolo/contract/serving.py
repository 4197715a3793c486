"""Inference as a service: what ``POST /yolo/predict`` answers and what media jobs report.

Pure: stdlib only. The server, the inference workers, the Python client, the panels and the
benchmark all read these shapes from here.

A request runs on a warm *worker*: a long-lived process (never the server) that holds one model
on one backend, keyed by :class:`WorkerKey`. Each answered image is an
:class:`~jupyter_yolo.contract.payloads.ImagePrediction`, the same shape a predict job writes
to ``predictions.json``; per-pixel maps (semantic, depth) come inline as base64 PNG
(``PixelMap.png_base64``) because there is no job folder to hold them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NotRequired, TypedDict

from .payloads import ImagePrediction

PREDICT_IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp")
"""Content types ``POST /yolo/predict`` takes as one image body (or as multipart parts)."""

MULTIPART_TYPE = "multipart/form-data"

MEDIA_VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v")
"""Video files a predict job's ``source`` may name."""

STREAM_SCHEMES = ("rtsp", "rtmp", "http", "https")
"""URL schemes of live stream sources (MJPEG or HLS over http(s), RTSP, RTMP)."""

DEVICE_SOURCE_PREFIX = "/dev/video"
"""Local capture devices (mapped into the container) a predict job's ``source`` may name."""

PROGRESS_EVENT = "progress"
"""Event type of a media predict job's progress (:class:`ProgressEvent`)."""

RETRY_AFTER_S = 2
"""``Retry-After`` seconds of a 429 (queue full) or 503 (worker restarting) answer."""


@dataclass(frozen=True)
class WorkerKey:
    """What makes two requests able to share one warm worker."""

    digest: str
    """sha256 of the weights file (or of the export's main file)."""
    backend: str
    """The backend asked for: ``auto`` or a name from :mod:`jupyter_yolo.inference.backends`."""
    imgsz: int
    device: str

    def label(self) -> str:
        """Short text for logs and the worker list."""
        return f"{self.digest[:12]}/{self.backend}/{self.imgsz}/{self.device}"


class PredictTiming(TypedDict):
    """Where the milliseconds of one request went (sums over its images)."""

    queue_ms: float
    """Waiting for the worker (behind other requests, or for it to start)."""
    preprocess_ms: float
    inference_ms: float
    postprocess_ms: float
    """ultralytics' postprocess plus turning results into the contract's shapes."""
    total_ms: float
    """From the request's arrival at the server to the answer being ready."""
    worker_start_ms: NotRequired[float]
    """Present when this request started the worker (model load, backend choice, warm-up)."""


class BackendChoice(TypedDict):
    """The backend a worker runs and why (the ``report`` a predict job records)."""

    name: str
    requested: str
    report: NotRequired[dict[str, object]]


class WorkerInfo(TypedDict):
    """One warm worker, as ``GET /yolo/predict/workers`` lists it and answers name it."""

    key: str
    model: str
    task: str
    backend: str
    imgsz: int
    device: str
    pid: int | None
    state: str
    """``starting``, ``ready``, ``busy`` or ``stopped``."""
    requests: int
    queued: int
    rss_bytes: int | None
    idle_s: float
    started: float


class PredictResponse(TypedDict):
    """``POST /yolo/predict``: one entry per image, in request order."""

    task: str
    model: str
    """The model reference as given (``job:<id>:best``, a workspace path ...)."""
    backend: BackendChoice
    imgsz: int
    images: list[ImagePrediction]
    timing: PredictTiming
    worker: WorkerInfo


class ProgressEvent(TypedDict):
    """``{"type": "progress"}`` of a predict job over a folder, a video or a stream."""

    seq: int
    time: float
    type: str
    unit: str
    """``images`` or ``frames``."""
    done: int
    total: int | None
    """None for a live stream (or a video whose length is unknown)."""
    fps: float | None
    """Images or frames per second over the last few seconds."""
    eta_s: float | None
    source: NotRequired[str]
    reconnects: NotRequired[int]


class PreparationInfo(TypedDict):
    """One background preparation of a model for ``backend=auto`` (``GET /yolo/predict/workers``).

    After a training job succeeds (or when a request finds no measured choice), the server
    exports the model and measures its backends in a low-priority process, so the first
    prediction finds the ``auto`` choice stored and, ideally, its worker warm.
    """

    model: str
    """The model reference prepared (``job:<id>:best``) or its workspace path."""
    key: str
    """The worker key prepared (:meth:`WorkerKey.label`)."""
    reason: str
    state: str
    """``waiting`` (for running or queued jobs to end), ``running`` (exports and measurement),
    ``warming`` (starting the warm worker), ``done``, ``failed``, ``cancelled`` or ``dropped``."""
    message: str | None
    """What went wrong (``failed``), or a note (``done`` without a warm worker)."""
    pid: int | None
    queued_at: float
    started_at: float | None
    finished_at: float | None
    yielded_to: list[str]
    """Jobs it waited for before it started (it never runs beside a queued or running job)."""
    choice: str | None
    """The backend ``auto`` chose, once measured."""
