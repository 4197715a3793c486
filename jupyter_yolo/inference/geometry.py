"""Overlap and distance measures of the agreement check, one per kind of task output.

Axis-aligned box IoU, rotated-box IoU (convex clipping from :mod:`jupyter_yolo.geometry`, the
one home of the polygon helpers), mask IoU of boolean arrays at the original image size, and the
keypoint check of pose. Pure Python apart from :func:`mask_iou` (numpy arrays in, a float out);
nothing here imports torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..geometry import clip_convex, signed_area

__all__ = [
    "box_iou",
    "clip_convex",
    "corners_xywhr",
    "keypoints_agree",
    "mask_iou",
    "polygon_area",
    "rotated_iou",
]


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two ``x0, y0, x1, y1`` boxes."""
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def polygon_area(points: Sequence[Sequence[float]]) -> float:
    """Signed area of a polygon, positive when counter-clockwise.

    Kept for its callers; it is :func:`jupyter_yolo.geometry.signed_area`.
    """
    return signed_area(points)


def rotated_iou(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]]) -> float:
    """IoU of two rotated boxes given by their four corners (any convex quadrilaterals)."""
    same = len(a) == len(b) and all(
        abs(p[0] - q[0]) <= 1e-6 and abs(p[1] - q[1]) <= 1e-6 for p, q in zip(a, b, strict=False)
    )
    if same:  # clipping a box by itself puts every vertex on an edge: rounding decides
        return 1.0
    area_a, area_b = abs(signed_area(a)), abs(signed_area(b))
    if area_a <= 0 or area_b <= 0:  # a degenerate box (a line) overlaps nothing else
        return 0.0
    inter_points = clip_convex(a, b)
    inter = abs(signed_area(inter_points)) if len(inter_points) >= 3 else 0.0
    union = area_a + area_b - inter
    return inter / union if union > 0 else 0.0


def corners_xywhr(cx: float, cy: float, w: float, h: float, r: float) -> list[list[float]]:
    """The four corners of a box of centre ``cx, cy``, size ``w, h`` rotated by ``r`` radians."""
    cos, sin = math.cos(r), math.sin(r)
    out = []
    for dx, dy in ((-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2)):
        out.append([cx + dx * cos - dy * sin, cy + dx * sin + dy * cos])
    return out


def mask_iou(a: Any, b: Any) -> float:
    """IoU of two boolean masks of the same shape (numpy arrays)."""
    if a.shape != b.shape:
        raise ValueError(f"masks of different shapes {a.shape} and {b.shape}")
    union = int((a | b).sum())
    return int((a & b).sum()) / union if union else 0.0


def keypoints_agree(
    reference: Sequence[Sequence[float]],
    candidate: Sequence[Sequence[float]],
    box: Sequence[float],
    *,
    distance: float,
    visible: float = 0.5,
) -> tuple[int, int, float]:
    """How many of the reference's visible keypoints the candidate puts in the same place.

    A keypoint is visible when its confidence (third value, 1 when absent) is at least
    ``visible``; it agrees when the candidate's is within ``distance`` times the box size
    (the square root of the reference box's area). Returns (agreeing, visible, largest
    normalised distance among the visible ones).
    """
    size = math.sqrt(max(0.0, (box[2] - box[0]) * (box[3] - box[1]))) or 1.0
    agreeing = shown = 0
    worst = 0.0
    for ref, cand in zip(reference, candidate, strict=False):
        conf = ref[2] if len(ref) > 2 else 1.0
        if conf < visible:
            continue
        shown += 1
        gap = math.hypot(ref[0] - cand[0], ref[1] - cand[1]) / size
        worst = max(worst, gap)
        if gap <= distance:
            agreeing += 1
    return agreeing, shown, worst
