"""Typed shapes of a run's results: what a finished train or val job shows beyond its curves.

The runner writes :data:`RESULTS_FILE` in the job folder once its final validation is done
(from ultralytics' validator: per-class metrics, the PR/F1/P/R curves, the confusion matrix and a
few validation images with their ground truth and predictions). ``GET /yolo/jobs/{id}/results``
answers a :class:`RunResults`: that file merged with what the events already say (best and last
epoch, the metric history, system usage over the run), so a running job has partial results.

While it runs, the runner also samples system usage every :data:`USAGE_INTERVAL_S` seconds into
``usage`` events (:class:`UsageEvent`), so a results view can draw CPU, RAM and GPU use over the
run.
"""

from __future__ import annotations

from typing import NotRequired, TypedDict

from .payloads import Detection, EventBase
from .tune import TuneResult

RESULTS_FILE = "results.json"
"""A finished run's validator results (:class:`ValidatorResults`), in the job folder."""

USAGE_EVENT = "usage"
"""Event type of a system usage sample (:class:`UsageFields`)."""
USAGE_INTERVAL_S = 5.0
"""Seconds between two usage samples of a running job."""

MAX_VAL_IMAGES = 16
"""At most this many validation images with truth and predictions are kept per run."""
CURVE_POINTS = 101
"""Curves are resampled to this many points on x in [0, 1] (ultralytics computes 1000)."""

Number = float | None


class GpuUsage(TypedDict):
    """One accelerator at one moment (fields are None where the platform does not tell)."""

    index: int
    name: str
    util_percent: Number
    memory_used_bytes: int | None
    memory_total_bytes: int | None


class UsageReading(TypedDict):
    """The measured part of a usage sample: what a ``usage`` event and a results sample share.

    ``cpu_percent`` is the share of the CPUs the container may use (0-100); ``memory_bytes`` the
    resident memory of the runner and its children.
    """

    cpu_percent: Number
    memory_bytes: int | None
    memory_limit_bytes: int | None
    gpus: list[GpuUsage]


class UsageFields(UsageReading):
    """What the runner writes for a ``usage`` event (the journal adds seq, time and type)."""

    time: NotRequired[float]
    """When the sample was taken (epoch seconds; set in ``RunResults.usage``)."""


class UsageEvent(EventBase, UsageReading):
    """One system usage sample of a running job."""


class ClassMetrics(TypedDict):
    """One class's row of the final validation (box metrics, and mask or pose ones by task).

    ``metrics`` holds the class's values under ultralytics' metric keys (``metrics/mAP50(B)``,
    ``metrics/mAP50-95(M)`` ...), so the same labels as the epoch metrics apply.
    """

    cls: int
    name: str
    images: int | None
    instances: int | None
    metrics: dict[str, Number]


class Curve(TypedDict):
    """One of the validator's curves (``PR``, ``F1``, ``Precision``, ``Recall``), box or mask.

    ``x`` has :data:`CURVE_POINTS` points; ``per_class`` maps a class name to its y values and
    ``mean`` is the mean over classes (what ultralytics draws as "all classes").
    """

    name: str
    kind: str
    """``B`` (box), ``M`` (mask), ``P`` (pose): the suffix of the metric keys it belongs to."""
    x_label: str
    y_label: str
    x: list[float]
    per_class: dict[str, list[float]]
    mean: list[float]


class ConfusionMatrix(TypedDict):
    """Counts at the validator's thresholds: ``matrix[predicted][true]`` as ultralytics keeps it.

    ``names`` has one entry per row and column; detection tasks add ``background`` last (a missed
    object is in its row, a false detection in its column).
    """

    names: list[str]
    matrix: list[list[float]]


class ValImage(TypedDict):
    """A validation image with its ground truth and the final model's predictions.

    ``image`` is workspace-relative (served by the workspace route); boxes are in pixels of the
    original image; classify puts the true class in ``truth_class`` and the top-5 in
    ``predicted_classes`` instead of boxes.
    """

    image: str
    width: int
    height: int
    truth: list[Detection]
    predicted: list[Detection]
    truth_class: NotRequired[str]
    predicted_classes: NotRequired[list[str]]


class ValidatorResults(TypedDict):
    """:data:`RESULTS_FILE`: the final validation of a run, written once by the runner."""

    task: str
    names: list[str]
    weights: str | None
    """Workspace-relative weights the final validation used (``best.pt`` of a training)."""
    metrics: dict[str, Number]
    per_class: list[ClassMetrics]
    curves: list[Curve]
    confusion: ConfusionMatrix | None
    val_images: list[ValImage]
    speed_ms: dict[str, Number]
    """Per image: ``preprocess``, ``inference``, ``postprocess`` (and ``loss``) in milliseconds."""


class EpochSummary(TypedDict):
    """One epoch's headline figures, from its ``epoch`` event."""

    epoch: int
    metrics: dict[str, Number]
    fitness: Number
    time: float
    loss: NotRequired[dict[str, Number]]
    """The epoch's mean training losses (``box``, ``cls`` ...), as its event has them."""
    val_loss: NotRequired[dict[str, Number] | None]


class RunResults(TypedDict):
    """``GET /yolo/jobs/{id}/results``: a job's results as far as they exist now.

    ``final`` is None until the runner wrote :data:`RESULTS_FILE` (a running, stopped or failed
    training has only its epochs). ``params`` are the job's parameters (to table runs side by
    side), ``usage`` the job's usage samples in order.
    """

    job_id: str
    kind: str
    status: str
    task: str
    name: str | None
    created: float | None
    started: float | None
    ended: float | None
    params: dict[str, object]
    headline: str
    best: EpochSummary | None
    last: EpochSummary | None
    epochs: int
    final: ValidatorResults | None
    usage: list[UsageFields]
    history: NotRequired[list[EpochSummary]]
    """Every completed epoch in order (the curves to overlay when runs are compared)."""
    tune: NotRequired[TuneResult | None]
    """A tune job's trials table (as far as it exists now); absent for other kinds."""
