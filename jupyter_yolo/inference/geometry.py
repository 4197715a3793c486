"""Overlap and distance measures of the agreement check, one per kind of task output.

Axis-aligned box IoU, rotated-box IoU (convex polygon clipping, Sutherland-Hodgman), mask IoU
of boolean arrays at the original image size, and the keypoint check of pose. Pure Python apart
from :func:`mask_iou` (numpy arrays in, a float out); nothing here imports torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

Point = tuple[float, float]


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two ``x0, y0, x1, y1`` boxes."""
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def polygon_area(points: Sequence[Sequence[float]]) -> float:
    """Signed area of a polygon (shoelace formula): positive when counter-clockwise."""
    total = 0.0
    count = len(points)
    for index in range(count):
        x0, y0 = points[index][0], points[index][1]
        x1, y1 = points[(index + 1) % count][0], points[(index + 1) % count][1]
        total += x0 * y1 - x1 * y0
    return total / 2.0


def _counter_clockwise(points: Sequence[Sequence[float]]) -> list[Point]:
    ring = [(float(p[0]), float(p[1])) for p in points]
    return ring if polygon_area(ring) >= 0 else ring[::-1]


def _cross(a: Point, b: Point, p: Point) -> float:
    """> 0 when ``p`` lies left of the directed edge ``a`` → ``b``."""
    return (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])


def _intersection(p: Point, q: Point, a: Point, b: Point) -> Point:
    """Where segment ``p``-``q`` crosses the line through ``a`` and ``b``."""
    dp, dq = _cross(a, b, p), _cross(a, b, q)
    t = dp / (dp - dq) if dp != dq else 0.0
    return (p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1]))


def clip_convex(subject: Sequence[Sequence[float]], clip: Sequence[Sequence[float]]) -> list[Point]:
    """The intersection polygon of two convex polygons (Sutherland-Hodgman clipping).

    Either orientation is accepted; the result is counter-clockwise (empty when they do not
    overlap).
    """
    output = _counter_clockwise(subject)
    window = _counter_clockwise(clip)
    for index in range(len(window)):
        if not output:
            break
        a, b = window[index], window[(index + 1) % len(window)]
        points, output = output, []
        for k in range(len(points)):
            current, previous = points[k], points[k - 1]
            inside_now = _cross(a, b, current) >= 0
            inside_before = _cross(a, b, previous) >= 0
            if inside_now:
                if not inside_before:
                    output.append(_intersection(previous, current, a, b))
                output.append(current)
            elif inside_before:
                output.append(_intersection(previous, current, a, b))
    return output


def rotated_iou(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]]) -> float:
    """IoU of two rotated boxes given by their four corners (any convex quadrilaterals)."""
    same = len(a) == len(b) and all(
        abs(p[0] - q[0]) <= 1e-6 and abs(p[1] - q[1]) <= 1e-6 for p, q in zip(a, b, strict=False)
    )
    if same:  # clipping a box by itself puts every vertex on an edge: rounding decides
        return 1.0
    area_a, area_b = abs(polygon_area(a)), abs(polygon_area(b))
    if area_a <= 0 or area_b <= 0:  # a degenerate box (a line) overlaps nothing else
        return 0.0
    inter_points = clip_convex(a, b)
    inter = abs(polygon_area(inter_points)) if len(inter_points) >= 3 else 0.0
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
