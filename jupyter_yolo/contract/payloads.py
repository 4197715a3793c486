"""Typed shapes of what the parts exchange: ``status.json``, events and REST payloads.

TypedDicts describe the JSON as it is on disk and on the wire, so a reader and a writer that
disagree fail ``mypy --strict`` instead of a user's run. ``job.json`` has its own module
(:mod:`.jobfile`) because it is also parsed and checked.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

Number = float | None


class StatusRecord(TypedDict):
    """``status.json``, written by the runner."""

    status: str
    pid: int
    started: float
    ended: float | None
    exit_reason: str | None
    error: str | None
    result: dict[str, Any] | None
    epochs_done: int


class EventBase(TypedDict):
    """Fields every line of ``events.jsonl`` has."""

    seq: int
    time: float
    type: str


class BatchFields(TypedDict):
    """What the runner writes for a ``batch`` event (the journal adds seq, time and type)."""

    epoch: int
    batch: int
    batches: int
    loss: dict[str, Number]
    lr: Number
    images_per_s: Number


class BatchEvent(EventBase, BatchFields):
    """One training batch: that task's losses (``box``, ``seg``, ``pose``, ``loss`` ...)."""


BoxMetrics = TypedDict(
    "BoxMetrics", {"precision": Number, "recall": Number, "mAP50": Number, "mAP50-95": Number}
)
"""The box metrics an epoch event carries under short names (None for tasks without boxes)."""


class EpochFields(BoxMetrics):
    """What the runner writes for an ``epoch`` event (the journal adds seq, time and type)."""

    epoch: int
    epochs: int
    loss: dict[str, Number]
    val_loss: dict[str, Number] | None
    metrics: dict[str, Number]
    headline: str
    fitness: Number
    lr: Number
    epoch_time: Number
    eta_s: Number


class EpochEvent(EventBase, EpochFields):
    """One completed epoch.

    ``precision``/``recall``/``mAP50``/``mAP50-95`` are the box metrics (None for tasks without
    boxes); ``metrics`` holds every metric of the task under ultralytics' own keys, and
    ``headline`` the key of the one the panels show first.
    """


class ArtifactEvent(EventBase):
    """A result file appeared or changed (workspace-relative ``path``)."""

    path: str
    category: str


class StatusEvent(EventBase):
    """A status change (see :mod:`.status`)."""

    status: str


class Box(TypedDict):
    """An axis-aligned box in pixels of the original image, with its class and score."""

    cls: int
    name: str
    conf: float | None
    box_xyxy: list[float | None]


class Detection(Box, total=False):
    """One predicted object of any task: the box plus what the task adds.

    segment: ``polygon`` (pixel [x, y] points of the instance's largest outline) and ``mask``
    (run-length encoded, see :class:`EncodedMask`); pose: ``keypoints`` ([x, y, conf] per
    keypoint, pixels); obb: ``corners`` (four [x, y] points, pixels), ``angle`` (radians) and
    ``xywhr`` (centre, size, rotation). ``track_id``: the object's identity across the frames
    of a video or stream, when the predict job tracks (ultralytics' ByteTrack or BoT-SORT).
    """

    polygon: list[list[float]]
    mask: EncodedMask
    keypoints: list[list[float]]
    corners: list[list[float]]
    angle: float
    xywhr: list[float]
    track_id: int


class EncodedMask(TypedDict):
    """A binary mask at the original image size, run-length encoded.

    COCO's uncompressed RLE: column-major order, ``counts`` alternates runs of 0 and 1,
    starting with 0.
    """

    size: list[int]
    counts: list[int]


class ClassScore(TypedDict):
    """One class of a classification result."""

    cls: int
    name: str
    prob: float


class PixelMap(TypedDict):
    """A per-pixel output as a PNG, beside a job's results or inline.

    A job's entry has ``file`` (workspace-relative); a ``POST /yolo/predict`` answer has
    ``png_base64`` instead. Exactly one of them is set.

    semantic: an 8-bit class index per pixel, ``summary`` has the share of pixels per class
    name; depth: 16-bit depth in millimetres, ``summary`` has min, max and mean metres.
    """

    file: NotRequired[str]
    png_base64: NotRequired[str]
    width: int
    height: int
    summary: dict[str, Any]


class ImagePrediction(TypedDict):
    """One entry of ``predictions.json``: everything one image (or video frame) produced.

    ``detections`` is empty for classify, semantic and depth; classify fills ``classes`` (top-5,
    best first); semantic and depth fill ``pixel_map`` (a PNG beside the results plus figures).
    """

    file: str
    width: int
    height: int
    detections: list[Detection]
    task: NotRequired[str]
    frame: NotRequired[int]
    classes: NotRequired[list[ClassScore]]
    pixel_map: NotRequired[PixelMap]


class StatusSets(TypedDict):
    """The job statuses by what they mean, so front ends need not hard-code them."""

    all: list[str]
    """Every status, in lifecycle order."""
    terminal: list[str]
    """A job in one of these will not change again."""
    active: list[str]
    """A runner process exists (or is believed to) for the job."""
    unfinished: list[str]
    """Not terminal: queued or active; a job in one of these may still change by itself."""


class TaskTable(TypedDict):
    """``GET /yolo/tasks``."""

    tasks: list[dict[str, Any]]
    architectures: list[dict[str, Any]]
    default: str
    ultralytics: str | None
    metric_labels: NotRequired[dict[str, str]]
    """Short labels of every metric key (``metrics/mAP50-95(M)`` → ``mask mAP50-95``)."""
    statuses: NotRequired[StatusSets]
    """The job statuses by meaning (servers before it was added do not send it)."""
