"""A small synthetic "shapes" detection dataset in YOLO layout, for first use without any download.

Every image shows 1-4 filled shapes (circle, square, triangle, ...) in random colours on a noisy
background. Boxes are exact: each shape is drawn on its own mask and its box is the mask's pixel
extent. Shapes never overlap, so no box is occluded. The output is deterministic: the same
arguments give the same bytes (each image has its own random stream derived from the seed, the
split and the index, so the training images do not change when ``val`` does).

Only numpy and Pillow are used: the jupyter server may call this without importing torch.

Layout written::

    DEST/data.yaml             path (absolute), train, val, names
    DEST/images/{train,val}/   shapes_000000.jpg ...
    DEST/labels/{train,val}/   shapes_000000.txt (class cx cy w h, normalised)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from io import BytesIO
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..contract.training_defaults import EMBEDDED_RECIPES

__all__ = ["RECOMMENDED_TRAIN_ARGS", "SHAPES", "generate_shapes"]

#: Training arguments that take yolov8n from scratch (``yolov8n.yaml``) to mAP50 > 0.9 on the
#: default dataset (96 train / 24 val images at 128 px) in about 2 minutes on 2 CPU cores: the
#: detect recipe of :data:`jupyter_yolo.contract.training_defaults.EMBEDDED_RECIPES` (the one
#: source the panels, the quickstart and the hardware report read), without its model.
RECOMMENDED_TRAIN_ARGS: dict[str, object] = {
    key: value for key, value in EMBEDDED_RECIPES["detect"].items() if key != "model"
}

_Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels, x1/y1 exclusive
_Points = list[tuple[float, float]]


def _regular_polygon(cx: float, cy: float, radius: float, sides: int, angle: float) -> _Points:
    return [
        (
            cx + radius * math.cos(angle + 2 * math.pi * k / sides),
            cy + radius * math.sin(angle + 2 * math.pi * k / sides),
        )
        for k in range(sides)
    ]


def _star(cx: float, cy: float, radius: float, angle: float) -> _Points:
    points: _Points = []
    for k in range(10):
        r = radius if k % 2 == 0 else radius * 0.45
        a = angle + math.pi * k / 5
        points.append((cx + r * math.cos(a), cy + r * math.sin(a)))
    return points


def _cross(cx: float, cy: float, radius: float) -> _Points:
    t = radius * 0.33
    r = radius
    return [
        (cx - t, cy - r),
        (cx + t, cy - r),
        (cx + t, cy - t),
        (cx + r, cy - t),
        (cx + r, cy + t),
        (cx + t, cy + t),
        (cx + t, cy + r),
        (cx - t, cy + r),
        (cx - t, cy + t),
        (cx - r, cy + t),
        (cx - r, cy - t),
        (cx - t, cy - t),
    ]


def _draw_circle(draw: ImageDraw.ImageDraw, cx: float, cy: float, r: float, angle: float) -> None:
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)


def _draw_square(draw: ImageDraw.ImageDraw, cx: float, cy: float, r: float, angle: float) -> None:
    h = r * 0.85
    draw.rectangle((cx - h, cy - h, cx + h, cy + h), fill=255)


def _draw_triangle(draw: ImageDraw.ImageDraw, cx: float, cy: float, r: float, angle: float) -> None:
    draw.polygon(_regular_polygon(cx, cy, r, 3, angle), fill=255)


def _draw_diamond(draw: ImageDraw.ImageDraw, cx: float, cy: float, r: float, angle: float) -> None:
    draw.polygon(_regular_polygon(cx, cy, r, 4, 0.0), fill=255)


def _draw_hexagon(draw: ImageDraw.ImageDraw, cx: float, cy: float, r: float, angle: float) -> None:
    draw.polygon(_regular_polygon(cx, cy, r, 6, angle), fill=255)


def _draw_star(draw: ImageDraw.ImageDraw, cx: float, cy: float, r: float, angle: float) -> None:
    draw.polygon(_star(cx, cy, r, angle), fill=255)


def _draw_cross(draw: ImageDraw.ImageDraw, cx: float, cy: float, r: float, angle: float) -> None:
    draw.polygon(_cross(cx, cy, r), fill=255)


_Drawer = Callable[[ImageDraw.ImageDraw, float, float, float, float], None]

#: The shape names ``classes`` may use, in no particular order.
SHAPES: dict[str, _Drawer] = {
    "circle": _draw_circle,
    "square": _draw_square,
    "triangle": _draw_triangle,
    "diamond": _draw_diamond,
    "hexagon": _draw_hexagon,
    "star": _draw_star,
    "cross": _draw_cross,
}

_SPLIT_IDS = {"train": 0, "val": 1}


def _overlaps(box: _Box, others: list[_Box], gap: int) -> bool:
    x0, y0, x1, y1 = box
    return any(
        x0 < b[2] + gap and b[0] < x1 + gap and y0 < b[3] + gap and b[1] < y1 + gap for b in others
    )


def _shape_colour(rng: np.random.Generator, background: np.ndarray) -> np.ndarray:
    """A colour far enough from the background to be seen through the noise."""
    colour = rng.integers(0, 256, size=3)
    for _ in range(32):
        if float(np.linalg.norm(colour - background)) >= 120:
            break
        colour = rng.integers(0, 256, size=3)
    else:  # fall back to the background's complement
        colour = 255 - background
    return colour


def _render(
    rng: np.random.Generator, imgsz: int, n_classes: int, drawers: list[_Drawer]
) -> tuple[bytes, list[tuple[int, _Box]]]:
    """Draw one image; return its JPEG bytes and its (class, box) list."""
    background = rng.integers(0, 256, size=3)
    # A soft gradient plus per-pixel noise, so the background is not a flat colour.
    ramp = np.linspace(-1.0, 1.0, imgsz, dtype=np.float32)
    direction = rng.uniform(-1.0, 1.0, size=2).astype(np.float32)
    strength = rng.uniform(0.0, 40.0)
    gradient = (ramp[None, :] * direction[0] + ramp[:, None] * direction[1]) * strength
    canvas = np.empty((imgsz, imgsz, 3), dtype=np.float32)
    canvas[:] = background.astype(np.float32)
    canvas += gradient[:, :, None]

    boxes: list[tuple[int, _Box]] = []
    placed: list[_Box] = []
    min_radius = max(6.0, imgsz * 0.07)
    max_radius = max(min_radius + 1.0, imgsz * 0.22)
    for _ in range(int(rng.integers(1, 5))):
        cls = int(rng.integers(0, n_classes))
        for _attempt in range(40):
            radius = float(rng.uniform(min_radius, max_radius))
            cx = float(rng.uniform(radius + 1, imgsz - radius - 1))
            cy = float(rng.uniform(radius + 1, imgsz - radius - 1))
            angle = float(rng.uniform(0.0, 2 * math.pi))
            mask_img = Image.new("L", (imgsz, imgsz), 0)
            drawers[cls](ImageDraw.Draw(mask_img), cx, cy, radius, angle)
            bbox = mask_img.getbbox()
            if bbox is None or _overlaps(bbox, placed, gap=2):
                continue
            colour = _shape_colour(rng, background).astype(np.float32)
            mask = np.asarray(mask_img, dtype=np.float32)[:, :, None] / 255.0
            canvas = canvas * (1.0 - mask) + colour * mask
            placed.append(bbox)
            boxes.append((cls, bbox))
            break
    canvas += rng.normal(0.0, 12.0, size=canvas.shape).astype(np.float32)
    pixels = np.clip(canvas, 0, 255).astype(np.uint8)
    buffer = BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=95, subsampling=0)
    return buffer.getvalue(), boxes


def _label_lines(boxes: list[tuple[int, _Box]], imgsz: int) -> str:
    lines = []
    for cls, (x0, y0, x1, y1) in boxes:
        cx, cy = (x0 + x1) / 2 / imgsz, (y0 + y1) / 2 / imgsz
        w, h = (x1 - x0) / imgsz, (y1 - y0) / imgsz
        lines.append(f"{cls} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n")
    return "".join(lines)


def _data_yaml(dest: Path, classes: Sequence[str], seed: int) -> str:
    names = "".join(f"  {i}: {json.dumps(name)}\n" for i, name in enumerate(classes))
    return (
        f"# Synthetic shapes dataset written by jupyter_yolo.datasets.synthetic (seed {seed}).\n"
        f"path: {json.dumps(str(dest))}\n"
        "train: images/train\n"
        "val: images/val\n"
        f"nc: {len(classes)}\n"
        f"names:\n{names}"
    )


def _check_args(train: int, val: int, imgsz: int, classes: Sequence[str]) -> list[_Drawer]:
    if train < 1 or val < 1:
        raise ValueError("train and val must each be at least 1 image")
    if imgsz < 32:
        raise ValueError("imgsz must be at least 32 pixels")
    if isinstance(classes, str) or not classes:
        raise ValueError("classes must be a non-empty sequence of shape names")
    if len(set(classes)) != len(classes):
        raise ValueError(f"classes has duplicates: {list(classes)}")
    unknown = [name for name in classes if name not in SHAPES]
    if unknown:
        raise ValueError(f"unknown shape class(es) {unknown}; choose from {sorted(SHAPES)}")
    return [SHAPES[name] for name in classes]


def generate_shapes(
    dest: Path,
    *,
    train: int = 96,
    val: int = 24,
    imgsz: int = 128,
    seed: int = 0,
    classes: Sequence[str] = ("circle", "square", "triangle"),
) -> Path:
    """Write a synthetic shapes dataset to ``dest`` and return the path of its ``data.yaml``.

    The dataset is built in a temporary folder next to ``dest`` and renamed into place, so
    ``dest`` either does not exist or is complete. An existing ``dest`` is never overwritten
    (``FileExistsError``). ``classes`` are shape names from :data:`SHAPES`; their order gives the
    class ids.
    """
    drawers = _check_args(train, val, imgsz, classes)
    dest = Path(dest).absolute()
    if dest.exists() or dest.is_symlink():
        raise FileExistsError(f"{dest} already exists; choose another folder or delete it first")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        for split, count in (("train", train), ("val", val)):
            images = tmp / "images" / split
            labels = tmp / "labels" / split
            images.mkdir(parents=True)
            labels.mkdir(parents=True)
            for index in range(count):
                sequence = np.random.SeedSequence([seed, _SPLIT_IDS[split], index])
                rng = np.random.Generator(np.random.PCG64(sequence))
                jpeg, boxes = _render(rng, imgsz, len(classes), drawers)
                stem = f"shapes_{index:06d}"
                (images / f"{stem}.jpg").write_bytes(jpeg)
                (labels / f"{stem}.txt").write_text(_label_lines(boxes, imgsz), encoding="utf-8")
        (tmp / "data.yaml").write_text(_data_yaml(dest, classes, seed), encoding="utf-8")
        tmp.chmod(0o755)  # mkdtemp makes it private
        if dest.exists() or dest.is_symlink():
            raise FileExistsError(f"{dest} appeared while the dataset was being written")
        os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest / "data.yaml"


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m jupyter_yolo.datasets.synthetic DEST [--seed N] ...``."""
    parser = argparse.ArgumentParser(
        prog="python -m jupyter_yolo.datasets.synthetic",
        description="Write a synthetic shapes detection dataset in YOLO layout.",
    )
    parser.add_argument("dest", type=Path, help="folder to create (must not exist)")
    parser.add_argument("--train", type=int, default=96, help="training images (default 96)")
    parser.add_argument("--val", type=int, default=24, help="validation images (default 24)")
    parser.add_argument("--imgsz", type=int, default=128, help="image side in pixels (default 128)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--classes",
        default="circle,square,triangle",
        help=f"comma-separated shape names from {','.join(sorted(SHAPES))}",
    )
    args = parser.parse_args(argv)
    classes = [name.strip() for name in args.classes.split(",") if name.strip()]
    try:
        path = generate_shapes(
            args.dest,
            train=args.train,
            val=args.val,
            imgsz=args.imgsz,
            seed=args.seed,
            classes=classes,
        )
    except (ValueError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
