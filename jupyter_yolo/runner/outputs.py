"""An ultralytics ``Results`` → a :class:`~jupyter_yolo.contract.payloads.ImagePrediction`.

Every task fills what it predicts: boxes (detect), polygons and RLE masks (segment), keypoints
(pose), rotated boxes (obb), top-5 classes (classify), a class-index PNG (semantic) or a depth
PNG in millimetres (depth), the last two saved beside a job's results
(:func:`image_prediction`) or inline as base64 PNG (:func:`inline_prediction`, for the warm
inference workers). A :class:`PredictionTally` condenses a prediction run into the job's result
one image at a time, so a long folder or video is summed up without keeping its entries.

Every float passes :func:`~jupyter_yolo.runner.journal.number` (finite or None), so an entry is
always strict JSON; masks are upscaled to the image a few instances at a time.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..contract.payloads import ClassScore, Detection, ImagePrediction, PixelMap
from ..rle import encode
from .journal import number

MAX_POLYGON_POINTS = 200
MAPS_DIR = "maps"
MASK_CHUNK = 4
"""Instance masks upscaled to the original image together (4 masks of a 4K image: ~130 MB)."""


def _names(result: Any) -> dict[int, str]:
    names = getattr(result, "names", None) or {}
    return {int(k): str(v) for k, v in names.items()} if isinstance(names, dict) else {}


def _coord(value: Any) -> float:
    """A pixel coordinate rounded to 0.1; a non-finite one (never expected) is 0."""
    return number(value, 1) or 0.0


def _array(tensor: Any) -> Any:
    data: Any = tensor.cpu().numpy() if hasattr(tensor, "cpu") else tensor
    return np.asarray(data, dtype=np.float64)


def _base(
    names: dict[int, str], box: Any, score: Any, label: Any
) -> Detection:  # one box, as detect has always reported it
    index = int(label)
    return {
        "cls": index,
        "name": names.get(index, str(index)),
        "conf": number(float(score), 4),
        "box_xyxy": [number(float(v), 2) for v in box],
    }


def simplify(points: Any, limit: int = MAX_POLYGON_POINTS) -> list[list[float]]:
    """A polygon of at most ``limit`` points (Douglas-Peucker, tolerance grown until it fits)."""
    import cv2

    contour: Any = np.asarray(points, dtype=np.float32).reshape(-1, 1, 2)
    epsilon = 0.5
    while len(contour) > limit:
        contour = cv2.approxPolyDP(contour, epsilon, True)
        epsilon *= 2
    return [[_coord(x), _coord(y)] for x, y in contour.reshape(-1, 2)]


def _segment(result: Any, detections: list[Detection]) -> None:
    masks = getattr(result, "masks", None)
    if masks is None or len(masks) == 0:
        return
    from ultralytics.utils import ops

    data = masks.data
    outlines = ops.masks2segments(data, strategy="largest")
    height, width = result.orig_shape[:2]
    count = min(len(detections), len(outlines), len(data))
    for start in range(0, count, MASK_CHUNK):  # never every instance at full size at once
        chunk = data[start : start + MASK_CHUNK]
        full = (ops.scale_masks(chunk[None].float(), (height, width))[0] > 0.5).cpu().numpy()
        for offset, mask in enumerate(full):
            index = start + offset
            outline = ops.scale_coords(data.shape[1:], outlines[index], (height, width))
            det = detections[index]
            det["polygon"] = simplify(outline) if len(outline) else []
            det["mask"] = encode(mask)
        del full


def _pose(result: Any, detections: list[Detection]) -> None:
    keypoints = getattr(result, "keypoints", None)
    if keypoints is None or len(keypoints) == 0:
        return
    xy = _array(keypoints.xy)
    conf = _array(keypoints.conf) if keypoints.conf is not None else np.ones(xy.shape[:2])
    for index, det in enumerate(detections):
        det["keypoints"] = [  # a NaN confidence is 0: the point is not trusted
            [_coord(x), _coord(y), number(c, 4) or 0.0]
            for (x, y), c in zip(xy[index], conf[index], strict=False)
        ]


def _obb(result: Any) -> list[Detection]:
    obb = getattr(result, "obb", None)
    if obb is None or len(obb) == 0:
        return []
    names = _names(result)
    corners = _array(obb.xyxyxyxy)
    xywhr = _array(obb.xywhr)
    found = []
    for index, (box, score, label) in enumerate(
        zip(_array(obb.xyxy), _array(obb.conf), _array(obb.cls), strict=False)
    ):
        det = _base(names, box, score, label)
        det["corners"] = [[_coord(x), _coord(y)] for x, y in corners[index]]
        det["xywhr"] = [number(v, 4) or 0.0 for v in xywhr[index]]
        det["angle"] = number(xywhr[index][4], 4) or 0.0
        found.append(det)
    return found


def _classes(result: Any) -> list[ClassScore]:
    probs = getattr(result, "probs", None)
    if probs is None:
        return []
    names = _names(result)
    top = [int(i) for i in probs.top5]
    conf = _array(probs.top5conf).tolist()
    return [
        {"cls": i, "name": names.get(i, str(i)), "prob": number(c, 5) or 0.0}
        for i, c in zip(top, conf, strict=False)
    ]


def _dense(value: Any, shape: tuple[int, int], *, nearest: bool) -> Any:
    """A per-pixel map as a 2-D numpy array at the original image size."""
    import cv2

    data = value.data if hasattr(value, "data") else value
    array = data.cpu().numpy() if hasattr(data, "cpu") else np.asarray(data)
    while array.ndim > 2:
        array = array[0]
    height, width = shape
    if array.shape != (height, width):
        how = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
        array = cv2.resize(array.astype(np.float32), (width, height), interpolation=how)
    return array


def _pixel_png(
    result: Any, task: str, shape: tuple[int, int]
) -> tuple[bytes, dict[str, Any]] | None:
    """The per-pixel map of a semantic or depth result as PNG bytes, and its summary figures."""
    import cv2

    if task == "semantic" and getattr(result, "semantic_mask", None) is not None:
        classes = _dense(result.semantic_mask, shape, nearest=True).astype(np.int64)
        image = np.clip(classes, 0, 255).astype(np.uint8)
        names = _names(result)
        values, counts = np.unique(image, return_counts=True)
        total = max(int(counts.sum()), 1)
        summary: dict[str, Any] = {
            "shares": {
                names.get(int(v), str(int(v))): round(int(c) / total, 5)
                for v, c in zip(values, counts, strict=False)
            }
        }
    elif task == "depth" and getattr(result, "depth", None) is not None:
        metres = _dense(result.depth, shape, nearest=False).astype(np.float64)
        finite = metres[np.isfinite(metres)]
        image = np.clip(np.nan_to_num(metres) * 1000.0, 0, 65535).round().astype(np.uint16)
        summary = {
            "min_m": number(float(finite.min()), 4) if finite.size else None,
            "max_m": number(float(finite.max()), 4) if finite.size else None,
            "mean_m": number(float(finite.mean()), 4) if finite.size else None,
            "unit": "mm",
        }
    else:
        return None
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        return None
    return encoded.tobytes(), summary


def _pixel_map(
    result: Any, task: str, out: Path, workspace: Path, shape: tuple[int, int]
) -> PixelMap | None:
    """The map written to ``out`` (a job's entry names the file, workspace-relative)."""
    from ..contract.files import write_atomic

    made = _pixel_png(result, task, shape)
    if made is None:
        return None
    png, summary = made
    write_atomic(out, png)
    try:
        shown = out.resolve().relative_to(workspace.resolve()).as_posix()
    except ValueError:
        shown = str(out)
    height, width = shape
    return {"file": shown, "width": int(width), "height": int(height), "summary": summary}


def _inline_map(result: Any, task: str, shape: tuple[int, int]) -> PixelMap | None:
    """The map as base64 PNG inside the entry (a ``POST /yolo/predict`` answer: no job folder)."""
    made = _pixel_png(result, task, shape)
    if made is None:
        return None
    png, summary = made
    height, width = shape
    return {
        "png_base64": base64.b64encode(png).decode("ascii"),
        "width": int(width),
        "height": int(height),
        "summary": summary,
    }


def _entry(
    result: Any, task: str, name: str, pixel_map: Callable[[tuple[int, int]], PixelMap | None]
) -> ImagePrediction:
    height, width = (int(x) for x in result.orig_shape[:2])
    entry: ImagePrediction = {
        "file": name,
        "width": width,
        "height": height,
        "detections": [],
        "task": task,
    }
    if task == "obb":
        entry["detections"] = _obb(result)
    elif task in ("detect", "segment", "pose"):
        boxes = getattr(result, "boxes", None)
        if boxes is not None and len(boxes):
            names = _names(result)
            entry["detections"] = [
                _base(names, box, score, label)
                for box, score, label in zip(
                    _array(boxes.xyxy), _array(boxes.conf), _array(boxes.cls), strict=False
                )
            ]
        if task == "segment":
            _segment(result, entry["detections"])
        elif task == "pose":
            _pose(result, entry["detections"])
    elif task == "classify":
        entry["classes"] = _classes(result)
    elif task in ("semantic", "depth"):
        made = pixel_map((height, width))
        if made is not None:
            entry["pixel_map"] = made
    return entry


def image_prediction(
    result: Any, task: str, name: str, *, run_dir: Path, workspace: Path, number_: int
) -> ImagePrediction:
    """What one image produced, in the contract's shape for ``task``.

    A semantic or depth map is written to ``run_dir/maps/<number_>-<stem>.png`` and the entry
    names it relative to ``workspace`` (``PixelMap.file``).
    """
    stem = Path(name).stem or "image"
    out = run_dir / MAPS_DIR / f"{number_:05d}-{stem}.png"
    return _entry(result, task, name, lambda shape: _pixel_map(result, task, out, workspace, shape))


def inline_prediction(result: Any, task: str, name: str) -> ImagePrediction:
    """:func:`image_prediction` with nothing written: a map comes as ``PixelMap.png_base64``."""
    return _entry(result, task, name, lambda shape: _inline_map(result, task, shape))


class PredictionTally:
    """Task-fitting counts of a prediction run, added one image at a time (nothing kept)."""

    def __init__(self, task: str) -> None:
        self.task = task
        self.images = 0
        self.instances = 0
        self.masks = 0
        self.visible_keypoints = 0
        self.pixel_maps = 0
        self.top1: ClassScore | None = None
        self.first_map: dict[str, Any] | None = None

    def add(self, image: ImagePrediction) -> None:
        """Count one image's entry."""
        self.images += 1
        detections = image["detections"]
        self.instances += len(detections)
        self.masks += sum(1 for d in detections if "mask" in d)
        self.visible_keypoints += sum(
            1 for d in detections for k in d.get("keypoints", []) if k[2] >= 0.5
        )
        classes = image.get("classes")
        if self.top1 is None and classes:
            self.top1 = classes[0]
        if "pixel_map" in image:
            self.pixel_maps += 1
            if self.first_map is None:
                self.first_map = image["pixel_map"]["summary"]

    def figures(self) -> dict[str, Any]:
        """The counts that fit the task, for the job's result."""
        figures: dict[str, Any] = {"task": self.task, "instances": self.instances}
        if self.task == "classify":
            figures["top1"] = self.top1
        elif self.task == "segment":
            figures["masks"] = self.masks
        elif self.task == "pose":
            figures["visible_keypoints"] = self.visible_keypoints
        elif self.task in ("semantic", "depth"):
            figures["pixel_maps"] = self.pixel_maps
            figures["first"] = self.first_map
        return figures


def summary_figures(task: str, images: list[ImagePrediction]) -> dict[str, Any]:
    """Task-fitting counts for a predict job's result (a :class:`PredictionTally` of ``images``)."""
    tally = PredictionTally(task)
    for image in images:
        tally.add(image)
    return tally.figures()
