"""Scene drawing for the synthetic datasets of every task: shapes with exact outlines.

A scene is a noisy gradient background with a few non-overlapping filled shapes. Each shape is
drawn from its own outline polygon, so the polygon *is* the label (segment), its mask is the
per-pixel label (semantic), its named vertices are keypoints (pose) and its rotated rectangle gives
the four corners of an oriented box (obb). Only numpy and Pillow: the server may call this.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from io import BytesIO

import numpy as np
from PIL import Image, ImageDraw

from .synthetic import _overlaps, _regular_polygon, _shape_colour

__all__ = [
    "HOUSE_FLIP_IDX",
    "HOUSE_KEYPOINTS",
    "OUTLINES",
    "Outline",
    "Placed",
    "encode_jpeg",
    "encode_png",
    "image_rng",
    "render_scene",
]

Points = list[tuple[float, float]]


@dataclass(frozen=True)
class Outline:
    """One shape's geometry in pixels, before it is placed."""

    polygon: Points
    """The outline that is filled: the exact segment label."""
    keypoints: Points = field(default_factory=list)
    """Named points of the shape (pose), in :data:`HOUSE_KEYPOINTS` order for a house."""
    corners: Points = field(default_factory=list)
    """The four corners of the shape's rotated bounding rectangle (obb)."""


@dataclass(frozen=True)
class Placed:
    """A shape drawn in a scene."""

    cls: int
    outline: Outline
    mask: np.ndarray
    """bool (H, W): the pixels painted with the shape's colour (later shapes never overlap it)."""
    box: tuple[int, int, int, int]
    """x0, y0, x1, y1 in pixels, x1/y1 exclusive: the mask's extent."""


#: An outline maker: (rng, cx, cy, radius) -> outline centred on (cx, cy) within ``radius``.
OutlineMaker = Callable[[np.random.Generator, float, float, float], Outline]


def _rotated(points: Points, cx: float, cy: float, scale: float, angle: float) -> Points:
    cos, sin = math.cos(angle), math.sin(angle)
    return [(cx + scale * (x * cos - y * sin), cy + scale * (x * sin + y * cos)) for x, y in points]


def _circle(rng: np.random.Generator, cx: float, cy: float, r: float) -> Outline:
    return Outline(_regular_polygon(cx, cy, r, 24, 0.0))


def _square(rng: np.random.Generator, cx: float, cy: float, r: float) -> Outline:
    return Outline(_regular_polygon(cx, cy, r, 4, float(rng.uniform(0.0, math.pi / 2))))


def _triangle(rng: np.random.Generator, cx: float, cy: float, r: float) -> Outline:
    return Outline(_regular_polygon(cx, cy, r, 3, float(rng.uniform(0.0, 2 * math.pi))))


#: Keypoint names of the pose dataset's "house" (a pentagon with a roof), in label order.
HOUSE_KEYPOINTS = ("roof", "right_eave", "right_base", "left_base", "left_eave")
#: Which keypoint each one becomes when the image is flipped left-right.
HOUSE_FLIP_IDX = [0, 4, 3, 2, 1]
_HOUSE = [(0.0, -1.0), (0.75, -0.25), (0.75, 0.9), (-0.75, 0.9), (-0.75, -0.25)]


def _house(rng: np.random.Generator, cx: float, cy: float, r: float) -> Outline:
    # Upright within +-25 degrees, so "left" and "right" keep their meaning (flip_idx holds).
    angle = float(rng.uniform(-0.44, 0.44))
    points = _rotated(_HOUSE, cx, cy, r, angle)
    return Outline(points, keypoints=points)


def _rectangle_corners(cx: float, cy: float, a: float, b: float, angle: float) -> Points:
    return _rotated([(-a, -b), (a, -b), (a, b), (-a, b)], cx, cy, 1.0, angle)


def _bar(rng: np.random.Generator, cx: float, cy: float, r: float) -> Outline:
    angle = float(rng.uniform(0.0, math.pi))
    b = r / float(rng.uniform(2.0, 3.0))
    corners = _rectangle_corners(cx, cy, r, b, angle)
    return Outline(corners, corners=corners)


def _ellipse(rng: np.random.Generator, cx: float, cy: float, r: float) -> Outline:
    angle = float(rng.uniform(0.0, math.pi))
    b = r / float(rng.uniform(1.6, 2.4))
    local = [
        (r * math.cos(2 * math.pi * k / 32), b * math.sin(2 * math.pi * k / 32)) for k in range(32)
    ]
    return Outline(
        _rotated(local, cx, cy, 1.0, angle), corners=_rectangle_corners(cx, cy, r, b, angle)
    )


#: Outline makers by shape name.
OUTLINES: dict[str, OutlineMaker] = {
    "circle": _circle,
    "square": _square,
    "triangle": _triangle,
    "house": _house,
    "bar": _bar,
    "ellipse": _ellipse,
}


def image_rng(seed: int, task_id: int, split_id: int, index: int) -> np.random.Generator:
    """The random stream of one image: independent of every other image's (and of the counts)."""
    return np.random.Generator(
        np.random.PCG64(np.random.SeedSequence([seed, task_id, split_id, index]))
    )


def background(rng: np.random.Generator, imgsz: int) -> tuple[np.ndarray, np.ndarray]:
    """A random colour with a soft gradient: (float32 canvas (H, W, 3), the base colour)."""
    base = rng.integers(0, 256, size=3)
    ramp = np.linspace(-1.0, 1.0, imgsz, dtype=np.float32)
    direction = rng.uniform(-1.0, 1.0, size=2).astype(np.float32)
    strength = rng.uniform(0.0, 40.0)
    gradient = (ramp[None, :] * direction[0] + ramp[:, None] * direction[1]) * strength
    canvas = np.empty((imgsz, imgsz, 3), dtype=np.float32)
    canvas[:] = base.astype(np.float32)
    canvas += gradient[:, :, None]
    return canvas, base


def _inside(points: Points, imgsz: int) -> bool:
    return all(1.0 <= x <= imgsz - 1.0 and 1.0 <= y <= imgsz - 1.0 for x, y in points)


def render_scene(
    rng: np.random.Generator,
    imgsz: int,
    makers: list[OutlineMaker],
    *,
    objects: tuple[int, int] = (1, 4),
    radius: tuple[float, float] = (0.08, 0.22),
) -> tuple[np.ndarray, list[Placed]]:
    """Draw 1-4 (``objects``, inclusive) non-overlapping shapes; return (uint8 RGB, shapes).

    ``makers[cls]`` makes the outline of class ``cls``; ``radius`` is the range of shape sizes as a
    fraction of the image side. Every outline (polygon, keypoints, corners) lies inside the image.
    """
    canvas, base = background(rng, imgsz)
    placed: list[Placed] = []
    boxes: list[tuple[int, int, int, int]] = []
    min_radius = max(5.0, imgsz * radius[0])
    max_radius = max(min_radius + 1.0, imgsz * radius[1])
    for _ in range(int(rng.integers(objects[0], objects[1] + 1))):
        cls = int(rng.integers(0, len(makers)))
        for _attempt in range(40):
            r = float(rng.uniform(min_radius, max_radius))
            cx = float(rng.uniform(r + 1, imgsz - r - 1))
            cy = float(rng.uniform(r + 1, imgsz - r - 1))
            outline = makers[cls](rng, cx, cy, r)
            if not _inside(outline.polygon + outline.corners + outline.keypoints, imgsz):
                continue
            mask_img = Image.new("L", (imgsz, imgsz), 0)
            ImageDraw.Draw(mask_img).polygon(outline.polygon, fill=255)
            bbox = mask_img.getbbox()
            if bbox is None or _overlaps(bbox, boxes, gap=2):
                continue
            mask = np.asarray(mask_img) > 0
            colour = _shape_colour(rng, base).astype(np.float32)
            canvas[mask] = colour
            boxes.append(bbox)
            placed.append(Placed(cls, outline, mask, bbox))
            break
    canvas += rng.normal(0.0, 12.0, size=canvas.shape).astype(np.float32)
    return np.clip(canvas, 0, 255).astype(np.uint8), placed


def encode_jpeg(pixels: np.ndarray) -> bytes:
    """JPEG bytes of an RGB image (deterministic for a given Pillow)."""
    buffer = BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=95, subsampling=0)
    return buffer.getvalue()


def encode_png(array: np.ndarray) -> bytes:
    """PNG bytes of a uint8 (mode L) or uint16 (mode I;16) single-channel map."""
    buffer = BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()
