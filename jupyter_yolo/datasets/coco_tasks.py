"""COCO annotations of segment and pose datasets turned into YOLO label lines.

Follows ultralytics' own ``convert_coco`` (``ultralytics/data/converter.py``), without
importing it or pycocotools: crowd annotations (``iscrowd``) are left out; an instance of
several polygons is joined into one outline (``merge_multi_segment``: each part linked to the
next at their closest points by a thin double line); an RLE mask (uncompressed counts or
COCO's compressed string) is decoded and traced to its outer contours; keypoints
are normalised by the image size with their visibility kept, and an instance without a labelled
keypoint is left out.

Bounded work: an RLE mask is decoded (by the shared checked :mod:`jupyter_yolo.rle`) only when its
size is the image file's real size, empty masks are not decoded at all, all masks of an upload
together decode at most :data:`MAX_DECODED_PIXELS`; polygons are simplified to at most
:data:`MAX_POLYGON_POINTS` points before they are joined.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import rle
from ..errors import InvalidRequest
from ..safeyaml import describe

COCO_PERSON_FLIP = [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]
COCO_PERSON_NAMES = [
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip",
    "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
]  # fmt: skip
MAX_DECODED_PIXELS = 256 * 1024 * 1024
"""RLE mask pixels decoded per upload, all annotations together; past it the upload is a 400."""
MAX_POLYGON_POINTS = 10_000
"""Points of one polygon joined by merge_multi_segment; longer ones are simplified first."""
CLOSEST_CHUNK = 256
"""Rows of the first polygon compared at once in the closest-pair search."""

__all__ = [
    "MAX_DECODED_PIXELS",
    "RleBudget",
    "flip_index",
    "keypoint_line",
    "merge_multi_segment",
    "segment_line",
]


class RleBudget:
    """The RLE pixels one upload may still decode; a mask past it is a 400."""

    def __init__(self, limit: int | None = None) -> None:
        self.left = MAX_DECODED_PIXELS if limit is None else limit

    def take(self, pixels: int) -> None:
        """Charge ``pixels`` decoded pixels, or raise InvalidRequest past the budget."""
        if pixels > self.left:
            raise InvalidRequest(
                f"The COCO annotations hold more RLE mask pixels than one upload may decode "
                f"({MAX_DECODED_PIXELS} in all); split the dataset or give polygons instead."
            )
        self.left -= pixels


def _rle_polygons(
    segmentation: dict[str, Any], real: tuple[int, int], budget: RleBudget
) -> tuple[list[list[float]] | None, str | None]:
    """An RLE mask traced to its outer contours, or (None, why it was not decoded)."""
    size = segmentation.get("size")
    width, height = real
    if size != [height, width]:
        return None, (
            f"its RLE size {describe(size)} is not the image's real size [{height}, {width}] "
            f"(height, width)"
        )
    try:
        raw = segmentation.get("counts")
        counts = rle.counts_from_string(raw, limit=height * width) if isinstance(raw, str) else raw
        if (
            isinstance(counts, list)
            and all(isinstance(c, int) and not isinstance(c, bool) for c in counts)
            and sum(counts[1::2]) == 0
            and sum(counts) == height * width
        ):
            return [], None  # an empty mask: nothing to decode or trace
        budget.take(height * width)
        mask = rle.decode({"size": [height, width], "counts": counts})
    except ValueError as exc:
        return None, f"its RLE mask cannot be decoded: {exc}"
    import cv2

    contours = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)[
        0
    ]
    return [c.ravel().astype(float).tolist() for c in contours], None


def _closest(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """Indices of the closest pair of points of ``a`` and ``b``, in chunks of ``a``'s rows.

    Memory is O(len(b) * CLOSEST_CHUNK), never the whole len(a) x len(b) distance matrix.
    """
    best, best_i, best_j = np.inf, 0, 0
    for start in range(0, len(a), CLOSEST_CHUNK):
        chunk = a[start : start + CLOSEST_CHUNK]
        distances = ((chunk[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        flat = int(np.argmin(distances))
        i, j = divmod(flat, distances.shape[1])
        if distances[i, j] < best:
            best, best_i, best_j = float(distances[i, j]), start + i, j
    return best_i, best_j


def _bounded(points: np.ndarray) -> tuple[np.ndarray, bool]:
    """The polygon cut to MAX_POLYGON_POINTS points (cv2.approxPolyDP), and if it was cut."""
    if len(points) <= MAX_POLYGON_POINTS:
        return points, False
    import cv2

    contour = points.astype(np.float32).reshape(-1, 1, 2)
    span = float(np.ptp(points, axis=0).max()) or 1.0
    epsilon = span * 1e-4
    simplified = points
    while len(simplified) > MAX_POLYGON_POINTS:
        simplified = cv2.approxPolyDP(contour, epsilon, True).reshape(-1, 2).astype(np.float64)
        epsilon *= 2
    return simplified, True


def merge_multi_segment(
    segments: list[list[float]], warnings: list[str] | None = None
) -> list[np.ndarray]:
    """Join the polygons of one instance into one outline (ultralytics' merge_multi_segment).

    A polygon over MAX_POLYGON_POINTS points is simplified first (a note goes to ``warnings``),
    so the closest-pair search stays bounded.
    """
    parts = []
    for segment in segments:
        points, simplified = _bounded(np.array(segment, dtype=np.float64).reshape(-1, 2))
        if simplified and warnings is not None:
            warnings.append(
                f"a polygon of {len(segment) // 2} points was simplified to {len(points)} "
                f"(at most {MAX_POLYGON_POINTS} per polygon)"
            )
        parts.append(points)
    links: list[list[int]] = [[] for _ in parts]
    for i in range(1, len(parts)):
        first, second = _closest(parts[i - 1], parts[i])
        links[i - 1].append(first)
        links[i].append(second)
    out: list[np.ndarray] = []
    for i, link in enumerate(links):  # forward
        idx = link
        if len(idx) == 2 and idx[0] > idx[1]:
            idx = [len(parts[i]) - 1 - x for x in idx]
            parts[i] = parts[i][::-1, :]
        parts[i] = np.roll(parts[i], -idx[0], axis=0)
        parts[i] = np.concatenate([parts[i], parts[i][:1]])
        if i in {0, len(links) - 1}:
            out.append(parts[i])
        else:
            out.append(parts[i][0 : idx[1] - idx[0] + 1])
    for i in range(len(links) - 1, -1, -1):  # backward
        if i not in {0, len(links) - 1}:
            step = abs(links[i][1] - links[i][0])
            out.append(parts[i][step:])
    return out


def _polygons(
    segmentation: Any,
    width: float,
    height: float,
    real: tuple[int, int] | None,
    budget: RleBudget,
) -> tuple[list[list[float]] | None, str | None]:
    """The instance's polygons in pixels (an RLE traced to contours), or (None, why not)."""
    why = None
    if isinstance(segmentation, dict):
        if real is None or segmentation.get("size") != [int(height), int(width)]:
            return None, None
        segmentation, why = _rle_polygons(segmentation, real, budget)
    if not isinstance(segmentation, list):
        return None, why
    return [
        p
        for p in segmentation
        if isinstance(p, list)
        and len(p) >= 6
        and not len(p) % 2
        and all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in p)
    ] or None, why


def segment_line(
    cls: int,
    annotation: dict[str, Any],
    box: list[float],
    width: float,
    height: float,
    *,
    real: tuple[int, int] | None = None,
    budget: RleBudget | None = None,
    warnings: list[str] | None = None,
) -> tuple[str, bool]:
    """The YOLO polygon line of one instance, and whether its box stood in for the mask.

    ``box`` is the normalised ``cx cy w h``; an instance without a usable segmentation gets its
    box as a four-corner polygon, as ultralytics does. An RLE mask is decoded only when its size
    is the image file's ``real`` (width, height), read from the image's header, and while the
    upload's ``budget`` of decoded pixels lasts; why one was not decoded goes to ``warnings``.
    """
    polygons, why = _polygons(
        annotation.get("segmentation"), width, height, real, budget or RleBudget()
    )
    if why is not None and warnings is not None:
        warnings.append(f"annotation {describe(annotation.get('id'))}: {why}")
    if polygons is None:
        cx, cy, w, h = box
        x0, y0, x1, y1 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
        coords = [x0, y0, x1, y0, x1, y1, x0, y1]
        return f"{cls} " + " ".join(f"{v:.6f}" for v in coords) + "\n", True
    if len(polygons) > 1:
        points = np.concatenate(merge_multi_segment(polygons, warnings), axis=0)
    else:
        points = np.array(polygons[0], dtype=np.float64).reshape(-1, 2)
    points = np.clip(points / np.array([width, height]), 0.0, 1.0)
    return f"{cls} " + " ".join(f"{v:.6f}" for v in points.reshape(-1)) + "\n", False


def keypoint_line(
    cls: int,
    annotation: dict[str, Any],
    box: list[float],
    *,
    count: int,
    width: float,
    height: float,
) -> str | None:
    """The YOLO pose line (box then ``count`` x y v), or None without a labelled keypoint."""
    raw = annotation.get("keypoints")
    if not isinstance(raw, list) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in raw
    ):
        return None
    values = [float(v) for v in raw[: count * 3]]
    values += [0.0] * (count * 3 - len(values))
    if not any(values[2::3]):
        return None
    points = []
    for i in range(count):
        x, y, v = values[i * 3 : i * 3 + 3]
        v = v if v in (0.0, 1.0, 2.0) else 2.0
        if v == 0:
            x = y = 0.0
        points += [min(max(x / width, 0.0), 1.0), min(max(y / height, 0.0), 1.0), v]
    text = " ".join(f"{v:.6f}" for v in box) + " "
    text += " ".join(f"{v:.6f}" if i % 3 < 2 else f"{int(v)}" for i, v in enumerate(points))
    return f"{cls} {text}\n"


def flip_index(names: list[str]) -> tuple[list[int], str | None]:
    """The keypoint order after a horizontal flip, and a warning when it had to be guessed.

    COCO's person keypoints get ultralytics' own order; other names are paired left/right by
    name; otherwise the identity, with a warning.
    """
    count = len(names)
    if names == COCO_PERSON_NAMES:
        return list(COCO_PERSON_FLIP), None
    lowered = [n.lower() for n in names]
    flip = list(range(count))
    paired = False
    for i, name in enumerate(lowered):
        for left, right in (("left", "right"), ("l_", "r_"), ("_l", "_r")):
            if left in name:
                other = name.replace(left, right)
                if other in lowered:
                    j = lowered.index(other)
                    flip[i], flip[j] = j, i
                    paired = True
    if paired:
        return flip, None
    return flip, (
        "The keypoints' left/right pairs could not be told from their names, so flip_idx is the "
        "identity: horizontal flips keep each keypoint's index. Edit flip_idx in data.yaml if "
        "some keypoints swap sides."
    )
