"""The task profile table: what each YOLO task means to every part of the product.

One row per task ultralytics 8.4 trains (``ultralytics.cfg.TASKS``). Datasets read the label
format and data.yaml keys from it, the runner the metric and loss keys, the inference trial the
agreement measure, the panels the geometry and headline metric. ``GET /yolo/tasks`` serves it
(with the installed architectures) so no front end hard-codes a key.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Literal

TaskName = Literal["detect", "segment", "classify", "pose", "obb", "semantic", "depth"]
Geometry = Literal[
    "box", "polygon", "keypoints", "rotated-box", "class-scores", "pixel-map", "depth-map"
]


@dataclass(frozen=True)
class Agreement:
    """How two backends' outputs of one task are judged the same.

    ``measure`` names the comparison; ``match`` is the threshold an output pair must reach (an
    IoU, a top-1 equality, a normalised distance), ``tolerance`` the largest score or value
    difference allowed, and ``share`` the fraction of pairs that must agree (per precision).
    """

    measure: str
    match: float
    tolerance: float
    description: str


@dataclass(frozen=True)
class TaskProfile:
    """One YOLO task as the product sees it."""

    name: TaskName
    title: str
    model_suffix: str
    """What an architecture or weights file name carries: ``yolov8n-seg.yaml`` → ``-seg``."""
    label_format: str
    label_line: str
    """One label line (or file) of the YOLO layout, as a person reads it."""
    required_keys: tuple[str, ...]
    """data.yaml keys the task cannot train without."""
    optional_keys: tuple[str, ...]
    layouts: tuple[str, ...]
    """Dataset layouts an upload of this task may come in (converted to the YOLO one)."""
    metric_keys: tuple[str, ...]
    """ultralytics' own metric keys for the task, as in results.csv."""
    loss_keys: tuple[str, ...]
    """Loss names of the v8/11 heads (other families may add some; events carry what ran)."""
    headline_metric: str
    geometry: Geometry
    agreement: Agreement
    trains_offline: bool
    """Whether ultralytics 8.4 trains it here from a YAML architecture and a local dataset."""
    offline_note: str = ""
    higher_is_better: bool = True
    """Whether a larger ``headline_metric`` is a better model. Every headline today is
    (mAP50-95, top-1 accuracy, mIoU, depth delta1); a task headlined by an error (e.g. depth's
    AbsRel) would say False, and the best epoch is then the lowest."""

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape served by ``GET /yolo/tasks``."""
        return asdict(self)


BOX_METRICS = (
    "metrics/precision(B)",
    "metrics/recall(B)",
    "metrics/mAP50(B)",
    "metrics/mAP50-95(B)",
)
MASK_METRICS = (
    "metrics/precision(M)",
    "metrics/recall(M)",
    "metrics/mAP50(M)",
    "metrics/mAP50-95(M)",
)
POSE_METRICS = (
    "metrics/precision(P)",
    "metrics/recall(P)",
    "metrics/mAP50(P)",
    "metrics/mAP50-95(P)",
)
BASE_KEYS = ("path", "train", "val", "names")

TASKS: dict[str, TaskProfile] = {
    "detect": TaskProfile(
        name="detect",
        title="Object detection",
        model_suffix="",
        label_format="yolo-boxes",
        label_line="class cx cy w h (normalised 0-1), one object per line",
        required_keys=BASE_KEYS,
        optional_keys=("test", "nc", "channels"),
        layouts=("yolo", "coco", "voc"),
        metric_keys=BOX_METRICS,
        loss_keys=("box", "cls", "dfl"),
        headline_metric="metrics/mAP50-95(B)",
        geometry="box",
        agreement=Agreement(
            "box-iou", 0.8, 0.02, "boxes matched one-to-one by class and IoU; score difference"
        ),
        trains_offline=True,
    ),
    "segment": TaskProfile(
        name="segment",
        title="Instance segmentation",
        model_suffix="-seg",
        label_format="yolo-polygons",
        label_line="class x1 y1 x2 y2 ... xn yn (a polygon of at least 3 points, normalised)",
        required_keys=BASE_KEYS,
        optional_keys=("test", "nc", "channels"),
        layouts=("yolo", "coco"),
        metric_keys=BOX_METRICS + MASK_METRICS,
        loss_keys=("box", "seg", "cls", "dfl"),
        headline_metric="metrics/mAP50-95(M)",
        geometry="polygon",
        agreement=Agreement(
            "mask-iou", 0.7, 0.02, "instances matched by class and mask IoU; score difference"
        ),
        trains_offline=True,
    ),
    "classify": TaskProfile(
        name="classify",
        title="Image classification",
        model_suffix="-cls",
        label_format="class-folders",
        label_line="train/<class>/<image>, val/<class>/<image> (test/ optional)",
        required_keys=("path", "names"),
        optional_keys=("train", "val", "test", "nc"),
        layouts=("class-folders",),
        metric_keys=("metrics/accuracy_top1", "metrics/accuracy_top5"),
        loss_keys=("loss",),
        headline_metric="metrics/accuracy_top1",
        geometry="class-scores",
        agreement=Agreement(
            "top1", 1.0, 0.05, "the same top-1 class; difference of its probability"
        ),
        trains_offline=True,
    ),
    "pose": TaskProfile(
        name="pose",
        title="Pose / keypoints",
        model_suffix="-pose",
        label_format="yolo-keypoints",
        label_line="class cx cy w h px1 py1 [v1] ... (kpt_shape[0] keypoints, v in 0/1/2)",
        required_keys=(*BASE_KEYS, "kpt_shape"),
        optional_keys=("test", "nc", "flip_idx", "kpt_names", "channels"),
        layouts=("yolo", "coco"),
        metric_keys=BOX_METRICS + POSE_METRICS,
        loss_keys=("box", "pose", "kobj", "cls", "dfl"),
        headline_metric="metrics/mAP50-95(P)",
        geometry="keypoints",
        agreement=Agreement(
            "keypoint-distance",
            0.7,
            0.05,
            "instances matched by box IoU; visible keypoints within 5 % of the box size",
        ),
        trains_offline=True,
    ),
    "obb": TaskProfile(
        name="obb",
        title="Oriented boxes",
        model_suffix="-obb",
        label_format="yolo-obb",
        label_line="class x1 y1 x2 y2 x3 y3 x4 y4 (the four corners, normalised)",
        required_keys=BASE_KEYS,
        optional_keys=("test", "nc", "channels"),
        layouts=("yolo", "dota"),
        metric_keys=BOX_METRICS,
        loss_keys=("box", "cls", "dfl", "angle"),
        headline_metric="metrics/mAP50-95(B)",
        geometry="rotated-box",
        agreement=Agreement(
            "rotated-iou",
            0.7,
            0.02,
            "rotated boxes matched by class and polygon IoU; score difference",
        ),
        trains_offline=True,
    ),
    "semantic": TaskProfile(
        name="semantic",
        title="Semantic segmentation",
        model_suffix="-sem",
        label_format="mask-png",
        label_line="masks/<split>/<image>.png, one class index per pixel (255: ignore)",
        required_keys=BASE_KEYS,
        optional_keys=("test", "nc", "masks_dir", "label_mapping", "channels"),
        layouts=("yolo",),
        metric_keys=("metrics/mIoU", "metrics/pixel_acc"),
        loss_keys=("ce", "dice", "aux"),
        headline_metric="metrics/mIoU",
        geometry="pixel-map",
        agreement=Agreement("pixel-agreement", 0.95, 0.0, "share of pixels with the same class"),
        trains_offline=True,
    ),
    "depth": TaskProfile(
        name="depth",
        title="Depth estimation",
        model_suffix="-depth",
        label_format="depth-png",
        label_line="depth/<split>/<image>.png (uint16, value / depth_scale = metres) or .npy",
        required_keys=BASE_KEYS,
        optional_keys=("test", "nc", "depth_scale", "channels"),
        layouts=("yolo",),
        metric_keys=(
            "metrics/delta1",
            "metrics/delta2",
            "metrics/delta3",
            "metrics/abs_rel",
            "metrics/rmse",
            "metrics/silog",
        ),
        loss_keys=("dlog", "dgrad"),
        headline_metric="metrics/delta1",
        geometry="depth-map",
        agreement=Agreement(
            "relative-depth", 0.95, 0.05, "share of pixels within 5 % relative depth"
        ),
        trains_offline=True,
    ),
}
TASK_NAMES: tuple[str, ...] = tuple(TASKS)
DEFAULT_TASK = "detect"

_SUFFIXES = sorted(
    ((p.model_suffix, p.name) for p in TASKS.values() if p.model_suffix),
    key=lambda item: -len(item[0]),
)
_SUFFIX_IN_NAME = re.compile(r"-(seg|cls|pose|obb|sem|depth)(?=$|[-_.])")
_SUFFIX_TASK = {suffix.lstrip("-"): name for suffix, name in _SUFFIXES}


def profile(task: str) -> TaskProfile:
    """The profile of ``task``; KeyError names the known tasks."""
    try:
        return TASKS[task]
    except KeyError:
        raise KeyError(f"unknown task {task!r}; known: {', '.join(TASK_NAMES)}") from None


def task_from_name(name: str) -> str:
    """The task a model or architecture file name implies (``yolo11n-pose.pt`` → ``pose``).

    ultralytics names models this way; a name without a task suffix is a detection model. A
    ``.pt`` file's own metadata is the better source where it can be read (the runner does).
    """
    stem = name.rsplit("/", 1)[-1]
    found = _SUFFIX_IN_NAME.search(stem)
    return _SUFFIX_TASK[found.group(1)] if found else DEFAULT_TASK


def headline(task: str) -> str:
    """The metric key the panels and the sidebar show first for ``task``."""
    return profile(task).headline_metric


def higher_is_better(metric_key: str) -> bool:
    """Whether a larger value of ``metric_key`` is better.

    The profile that headlines the key decides; True for a key no profile headlines.
    """
    for task_profile in TASKS.values():
        if task_profile.headline_metric == metric_key:
            return task_profile.higher_is_better
    return True


def metric_label(key: str) -> str:
    """A short label for an ultralytics metric key: ``metrics/mAP50-95(M)`` → ``mask mAP50-95``."""
    text = key.removeprefix("metrics/")
    for mark, word in (("(B)", "box "), ("(M)", "mask "), ("(P)", "pose ")):
        if text.endswith(mark):
            return word + text.removesuffix(mark)
    return text.replace("_", " ")
