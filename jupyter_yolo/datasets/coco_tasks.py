"""COCO annotations of segment and pose datasets turned into YOLO label lines.

Follows ultralytics' own ``convert_coco`` (``ultralytics/data/converter.py``), without
importing it or pycocotools: crowd annotations (``iscrowd``) are left out; an instance of
several polygons is joined into one outline (``merge_multi_segment``: each part linked to the
next at their closest points by a thin double line); an RLE mask (uncompressed counts or
COCO's compressed string) is decoded here with numpy and traced to its outer contours; keypoints
are normalised by the image size with their visibility kept, and an instance without a labelled
keypoint is left out.
"""

from __future__ import annotations

from typing import Any

import numpy as np

COCO_PERSON_FLIP = [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]
COCO_PERSON_NAMES = [
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip",
    "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
]  # fmt: skip
MAX_RLE_PIXELS = 64 * 1024 * 1024

__all__ = [
    "decode_rle",
    "flip_index",
    "keypoint_line",
    "merge_multi_segment",
    "rle_counts",
    "segment_line",
]


def rle_counts(counts: Any) -> list[int] | None:
    """COCO RLE counts: a list as is, a compressed string decoded (pycocotools' rleFrString)."""
    if isinstance(counts, list):
        ok = all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts)
        return counts if ok else None
    if not isinstance(counts, str):
        return None
    values: list[int] = []
    position = 0
    while position < len(counts):
        value = shift = 0
        more = True
        while more:
            if position >= len(counts):
                return None
            char = ord(counts[position]) - 48
            value |= (char & 0x1F) << (5 * shift)
            more = bool(char & 0x20)
            position += 1
            shift += 1
            if not more and char & 0x10:
                value |= -1 << (5 * shift)
        if len(values) > 2:
            value += values[-2]
        if value < 0:
            return None
        values.append(value)
    return values


def decode_rle(segmentation: dict[str, Any]) -> np.ndarray | None:
    """The binary mask (h, w, uint8) of a COCO RLE, or None when it is not a valid one."""
    size = segmentation.get("size")
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) for v in size)):
        return None
    height, width = size
    if height <= 0 or width <= 0 or height * width > MAX_RLE_PIXELS:
        return None
    counts = rle_counts(segmentation.get("counts"))
    if counts is None or sum(counts) != height * width:
        return None
    flat = np.zeros(height * width, np.uint8)
    position, value = 0, 0
    for count in counts:
        if value:
            flat[position : position + count] = 1
        position += count
        value ^= 1
    return flat.reshape(width, height).T.copy()  # column-major, as COCO stores it


def _closest(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    distances = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    flat = int(np.argmin(distances))
    return flat // distances.shape[1], flat % distances.shape[1]


def merge_multi_segment(segments: list[list[float]]) -> list[np.ndarray]:
    """Join the polygons of one instance into one outline (ultralytics' merge_multi_segment)."""
    parts = [np.array(s, dtype=np.float64).reshape(-1, 2) for s in segments]
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


def _polygons(segmentation: Any, width: float, height: float) -> list[list[float]] | None:
    """The instance's polygons in pixels (an RLE traced to contours), or None when unusable."""
    if isinstance(segmentation, dict):
        if segmentation.get("size") != [int(height), int(width)]:
            return None
        mask = decode_rle(segmentation)
        if mask is None:
            return None
        import cv2

        contours = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)[0]
        segmentation = [c.ravel().astype(float).tolist() for c in contours]
    if not isinstance(segmentation, list):
        return None
    return [
        p
        for p in segmentation
        if isinstance(p, list)
        and len(p) >= 6
        and not len(p) % 2
        and all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in p)
    ] or None


def segment_line(
    cls: int, annotation: dict[str, Any], box: list[float], width: float, height: float
) -> tuple[str, bool]:
    """The YOLO polygon line of one instance, and whether its box stood in for the mask.

    ``box`` is the normalised ``cx cy w h``; an instance without a usable segmentation gets its
    box as a four-corner polygon, as ultralytics does.
    """
    polygons = _polygons(annotation.get("segmentation"), width, height)
    if polygons is None:
        cx, cy, w, h = box
        x0, y0, x1, y1 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
        coords = [x0, y0, x1, y0, x1, y1, x0, y1]
        return f"{cls} " + " ".join(f"{v:.6f}" for v in coords) + "\n", True
    if len(polygons) > 1:
        points = np.concatenate(merge_multi_segment(polygons), axis=0)
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
