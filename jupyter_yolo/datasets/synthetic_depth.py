"""The synthetic depth scene: shapes standing on a receding ground plane, seen through fog.

The ground recedes from ``near`` metres at the bottom row to ``far`` metres at the top (inverse
depth linear in the row, as a flat floor seen by a level camera). Each shape stands on the ground:
its base sits on the row whose ground depth is its own depth, its size falls as 1/depth and its
colour fades into a fixed fog colour with depth, so a network has the cues a person uses. Shapes
are drawn far to near; the depth map takes the nearest surface. Only numpy and Pillow.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from .synthetic_scenes import OUTLINES, background

__all__ = ["DEPTH_SCALE", "render_depth_scene"]

#: PNG value per metre (uint16 millimetres), as ultralytics' ``depth_scale`` default.
DEPTH_SCALE = 1000
_FOG = np.array([200.0, 205.0, 215.0], dtype=np.float32)
_FOG_METRES = 4.0
_SHAPES = ("circle", "square", "triangle")


def _fog(colour: np.ndarray, depth: np.ndarray) -> np.ndarray:
    keep = np.exp(-depth / _FOG_METRES)[..., None]
    return colour * keep + _FOG * (1.0 - keep)


def render_depth_scene(rng: np.random.Generator, imgsz: int) -> tuple[np.ndarray, np.ndarray]:
    """One scene: (uint8 RGB (H, W, 3), float32 depth in metres (H, W), every pixel > 0)."""
    near = float(rng.uniform(1.2, 2.0))
    far = float(rng.uniform(7.0, 10.0))
    rows = np.linspace(0.0, 1.0, imgsz, dtype=np.float32)
    inverse = 1.0 / far + (1.0 / near - 1.0 / far) * rows
    depth = np.repeat((1.0 / inverse)[:, None], imgsz, axis=1).astype(np.float32)
    ground, _ = background(rng, imgsz)
    pixels = _fog(ground, depth)

    # Each shape stands on a ground row in the lower 60 % of the image; its depth is that row's.
    rows_at = sorted(float(rng.uniform(0.4, 0.97)) * (imgsz - 1) for _ in range(rng.integers(1, 4)))
    for base_row in rows_at:  # far (high rows) to near: nearer shapes cover farther ones
        d = float(depth[int(base_row), 0])
        r = min(imgsz * 0.25, imgsz * 0.5 / d)
        cy = base_row - r
        if cy - r < 1:
            continue
        cx = float(rng.uniform(r + 1, imgsz - r - 1))
        name = _SHAPES[int(rng.integers(0, len(_SHAPES)))]
        outline = OUTLINES[name](rng, cx, cy, r)
        mask_img = Image.new("L", (imgsz, imgsz), 0)
        ImageDraw.Draw(mask_img).polygon(outline.polygon, fill=255)
        mask = np.asarray(mask_img) > 0
        colour = rng.integers(0, 256, size=3).astype(np.float32)
        shade = np.linspace(1.0, 0.7, imgsz, dtype=np.float32)[:, None, None]  # lit from above
        surface = _fog(np.broadcast_to(colour, (imgsz, imgsz, 3)) * shade, np.full_like(depth, d))
        pixels[mask] = surface[mask]
        depth[mask] = d
    pixels += rng.normal(0.0, 6.0, size=pixels.shape).astype(np.float32)
    return np.clip(pixels, 0, 255).astype(np.uint8), depth
