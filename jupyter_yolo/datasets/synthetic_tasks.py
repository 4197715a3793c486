"""A small synthetic dataset for every YOLO task, for first use and tests without any download.

``generate_task_dataset(task, dest)`` writes the task's dataset in ultralytics' own layout and
returns what to pass as ultralytics ``data``:

============  ============  ===================================================================
task          name          layout
============  ============  ===================================================================
detect        shapes        images/, labels/ (class cx cy w h): :mod:`.synthetic`
segment       shapes-seg    images/, labels/ (class x1 y1 ... xn yn: the exact drawn outline)
pose          shapes-pose   images/, labels/ (class cx cy w h + 5 house corners x y v),
                            ``kpt_shape: [5, 3]``, ``flip_idx`` for a left-right flip
obb           shapes-obb    images/, labels/ (class x1 y1 x2 y2 x3 y3 x4 y4: rotated rectangle)
classify      shapes-cls    train/<class>/, val/<class>/ (returns the folder, not data.yaml)
semantic      shapes-sem    images/, masks/ (PNG, one class id per pixel, 0 = background)
depth         shapes-depth  images/, depth/ (uint16 PNG millimetres, ``depth_scale: 1000``)
============  ============  ===================================================================

Every dataset also has a ``data.yaml`` (``path`` absolute). Output is deterministic: each image
has its own random stream from (seed, task, split, index). The dataset is built in a temporary
folder beside ``dest`` and renamed into place: ``dest`` is either absent or complete. Only numpy
and Pillow are used, so the jupyter server may call this without importing torch.
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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..contract.training_defaults import EMBEDDED_DATASETS, EMBEDDED_RECIPES
from .synthetic import _regular_polygon, generate_shapes
from .synthetic_depth import DEPTH_SCALE, render_depth_scene
from .synthetic_scenes import (
    HOUSE_FLIP_IDX,
    HOUSE_KEYPOINTS,
    OUTLINES,
    Outline,
    OutlineMaker,
    Placed,
    encode_jpeg,
    encode_png,
    image_rng,
    render_scene,
)

__all__ = [
    "DEFAULT_SIZES",
    "SYNTHETIC_NAMES",
    "TASK_CLASSES",
    "TRAIN_RECIPES",
    "generate_task_dataset",
    "main",
]

#: The built-in dataset name of each task (the contract's table).
SYNTHETIC_NAMES: dict[str, str] = dict(EMBEDDED_DATASETS)

#: Class names of each task's dataset, in class-id order.
TASK_CLASSES: dict[str, tuple[str, ...]] = {
    "detect": ("circle", "square", "triangle"),
    "segment": ("circle", "square", "triangle"),
    "pose": ("house",),
    "obb": ("bar", "ellipse"),
    "classify": ("circle", "square", "triangle"),
    "semantic": ("background", "circle", "square", "triangle"),
    "depth": ("depth",),
}

#: Default (train images, val images, image side) of each task's dataset.
DEFAULT_SIZES: dict[str, tuple[int, int, int]] = {
    "detect": (96, 24, 128),
    "segment": (96, 24, 128),
    "pose": (96, 24, 128),
    "obb": (96, 24, 128),
    "classify": (600, 90, 64),
    "semantic": (96, 24, 128),
    "depth": (96, 24, 128),
}

#: ultralytics training arguments that take each task's YAML architecture from scratch to a useful
#: metric on its default dataset in a few minutes on 2 CPU cores (pass with ``workers=0,
#: device="cpu"``): :data:`jupyter_yolo.contract.training_defaults.EMBEDDED_RECIPES`, where the
#: measured figures are noted. Every key is one ``POST /yolo/jobs`` accepts.
TRAIN_RECIPES: dict[str, dict[str, object]] = {
    task: dict(recipe) for task, recipe in EMBEDDED_RECIPES.items()
}

_TASK_IDS = {task: number for number, task in enumerate(SYNTHETIC_NAMES, start=1)}
_SPLITS = (("train", 0), ("val", 1))


@dataclass(frozen=True)
class _Split:
    """One split to write: its folder name, id (for the random streams), size and seed."""

    name: str
    id: int
    count: int
    imgsz: int
    seed: int


# A writer fills the temporary dataset folder with one split.
_SplitWriter = Callable[[Path, _Split], None]


def _fmt(value: float) -> str:
    return f"{min(max(value, 0.0), 1.0):.6f}"


def _box_fields(placed: Placed, imgsz: int) -> list[str]:
    x0, y0, x1, y1 = placed.box
    return [
        _fmt((x0 + x1) / 2 / imgsz),
        _fmt((y0 + y1) / 2 / imgsz),
        _fmt((x1 - x0) / imgsz),
        _fmt((y1 - y0) / imgsz),
    ]


def _points_fields(points: list[tuple[float, float]], imgsz: int) -> list[str]:
    return [_fmt(c / imgsz) for point in points for c in point]


def _segment_line(placed: Placed, imgsz: int) -> str:
    return " ".join([str(placed.cls), *_points_fields(placed.outline.polygon, imgsz)])


def _pose_line(placed: Placed, imgsz: int) -> str:
    fields = [str(placed.cls), *_box_fields(placed, imgsz)]
    for x, y in placed.outline.keypoints:
        fields += [_fmt(x / imgsz), _fmt(y / imgsz), "2"]  # every corner is in sight
    return " ".join(fields)


def _obb_line(placed: Placed, imgsz: int) -> str:
    return " ".join([str(placed.cls), *_points_fields(placed.outline.corners, imgsz)])


def _labelled_writer(task: str, line: Callable[[Placed, int], str]) -> _SplitWriter:
    makers = [OUTLINES[name] for name in TASK_CLASSES[task]]
    objects = (1, 3) if task == "pose" else (1, 4)

    def write(root: Path, split: _Split) -> None:
        images, labels = root / "images" / split.name, root / "labels" / split.name
        images.mkdir(parents=True)
        labels.mkdir(parents=True)
        for index in range(split.count):
            rng = image_rng(split.seed, _TASK_IDS[task], split.id, index)
            pixels, placed = render_scene(rng, split.imgsz, makers, objects=objects)
            stem = f"{SYNTHETIC_NAMES[task]}_{index:06d}"
            (images / f"{stem}.jpg").write_bytes(encode_jpeg(pixels))
            text = "".join(line(p, split.imgsz) + "\n" for p in placed)
            (labels / f"{stem}.txt").write_text(text, encoding="utf-8")

    return write


def _write_semantic(root: Path, split: _Split) -> None:
    images, masks = root / "images" / split.name, root / "masks" / split.name
    images.mkdir(parents=True)
    masks.mkdir(parents=True)
    makers = [OUTLINES[name] for name in TASK_CLASSES["semantic"][1:]]
    for index in range(split.count):
        rng = image_rng(split.seed, _TASK_IDS["semantic"], split.id, index)
        pixels, placed = render_scene(rng, split.imgsz, makers, radius=(0.12, 0.3))
        classes = np.zeros((split.imgsz, split.imgsz), dtype=np.uint8)
        for p in placed:
            classes[p.mask] = p.cls + 1  # 0 is the background class
        stem = f"{SYNTHETIC_NAMES['semantic']}_{index:06d}"
        (images / f"{stem}.jpg").write_bytes(encode_jpeg(pixels))
        (masks / f"{stem}.png").write_bytes(encode_png(classes))


def _write_depth(root: Path, split: _Split) -> None:
    images, depths = root / "images" / split.name, root / "depth" / split.name
    images.mkdir(parents=True)
    depths.mkdir(parents=True)
    for index in range(split.count):
        rng = image_rng(split.seed, _TASK_IDS["depth"], split.id, index)
        pixels, depth = render_depth_scene(rng, split.imgsz)
        encoded = np.maximum(np.rint(depth * DEPTH_SCALE), 1).astype(np.uint16)
        stem = f"{SYNTHETIC_NAMES['depth']}_{index:06d}"
        (images / f"{stem}.jpg").write_bytes(encode_jpeg(pixels))
        (depths / f"{stem}.png").write_bytes(encode_png(encoded))


def _upright(name: str) -> OutlineMaker:
    """An outline maker for a square or triangle kept upright (+-10 degrees).

    A square's edges stay level and a triangle points up, so a small network tells the classes
    apart from few images (with any rotation, yolov8n-cls stays at chance for 40 epochs).
    """
    sides, base = {"square": (4, math.pi / 4), "triangle": (3, -math.pi / 2)}[name]

    def make(rng: np.random.Generator, cx: float, cy: float, r: float) -> Outline:
        angle = base + float(rng.uniform(-0.17, 0.17))
        return Outline(_regular_polygon(cx, cy, r, sides, angle))

    return make


def _write_classify(root: Path, split: _Split) -> None:
    names = TASK_CLASSES["classify"]
    makers = [OUTLINES["circle"], _upright("square"), _upright("triangle")]
    folders = [root / split.name / name for name in names]
    for folder in folders:
        folder.mkdir(parents=True)
    for index in range(split.count):
        cls = index % len(names)  # round robin: every class gets images
        rng = image_rng(split.seed, _TASK_IDS["classify"], split.id, index)
        pixels, _ = render_scene(
            rng, split.imgsz, [makers[cls]], objects=(1, 1), radius=(0.25, 0.42)
        )
        (folders[cls] / f"{names[cls]}_{index:06d}.jpg").write_bytes(encode_jpeg(pixels))


_WRITERS: dict[str, _SplitWriter] = {
    "segment": _labelled_writer("segment", _segment_line),
    "pose": _labelled_writer("pose", _pose_line),
    "obb": _labelled_writer("obb", _obb_line),
    "classify": _write_classify,
    "semantic": _write_semantic,
    "depth": _write_depth,
}


def _data_yaml(task: str, dest: Path, seed: int) -> str:
    names = TASK_CLASSES[task]
    lines = [
        f"# Synthetic {SYNTHETIC_NAMES[task]} ({task}) dataset written by "
        f"jupyter_yolo.datasets.synthetic_tasks (seed {seed}).",
        f"path: {json.dumps(str(dest))}",
        f"train: {'train' if task == 'classify' else 'images/train'}",
        f"val: {'val' if task == 'classify' else 'images/val'}",
        f"nc: {len(names)}",
        "names:",
        *(f"  {i}: {json.dumps(name)}" for i, name in enumerate(names)),
    ]
    if task == "pose":
        lines += [
            f"kpt_shape: [{len(HOUSE_KEYPOINTS)}, 3]",
            f"flip_idx: {json.dumps(HOUSE_FLIP_IDX)}",
            "kpt_names:",
            "  0:",
            *(f"    - {name}" for name in HOUSE_KEYPOINTS),
        ]
    elif task == "semantic":
        lines.append("masks_dir: masks")
    elif task == "depth":
        lines += ["channels: 3", f"depth_scale: {DEPTH_SCALE}"]
    return "\n".join(lines) + "\n"


def _check(task: str, train: int, val: int, imgsz: int) -> None:
    if task not in SYNTHETIC_NAMES:
        raise ValueError(f"unknown task {task!r}; choose from {', '.join(SYNTHETIC_NAMES)}")
    if train < 1 or val < 1:
        raise ValueError("train and val must each be at least 1 image")
    if imgsz < 32:
        raise ValueError("imgsz must be at least 32 pixels")
    if task == "classify" and min(train, val) < len(TASK_CLASSES[task]):
        raise ValueError(
            f"classify needs at least {len(TASK_CLASSES[task])} train and val images "
            "(one per class)"
        )


def generate_task_dataset(
    task: str,
    dest: Path,
    *,
    train: int | None = None,
    val: int | None = None,
    imgsz: int | None = None,
    seed: int = 0,
) -> Path:
    """Write ``task``'s synthetic dataset to ``dest``; return what ultralytics takes as ``data``.

    That is ``dest/data.yaml``, except for classify, where ultralytics wants the dataset folder
    (``dest``; it holds a ``data.yaml`` too, for our own tools). ``train``, ``val`` and ``imgsz``
    default to :data:`DEFAULT_SIZES`. An existing ``dest`` (even empty) is never touched
    (``FileExistsError``); bad arguments raise ``ValueError``; on any failure nothing is left.
    """
    if task not in DEFAULT_SIZES:
        raise ValueError(f"unknown task {task!r}; choose from {', '.join(SYNTHETIC_NAMES)}")
    d_train, d_val, d_imgsz = DEFAULT_SIZES[task]
    train = d_train if train is None else train
    val = d_val if val is None else val
    imgsz = d_imgsz if imgsz is None else imgsz
    _check(task, train, val, imgsz)
    if task == "detect":
        return generate_shapes(dest, train=train, val=val, imgsz=imgsz, seed=seed)
    dest = Path(dest).absolute()
    if dest.exists() or dest.is_symlink():
        raise FileExistsError(f"{dest} already exists; choose another folder or delete it first")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        for split, split_id in _SPLITS:
            count = train if split == "train" else val
            _WRITERS[task](tmp, _Split(split, split_id, count, imgsz, seed))
        (tmp / "data.yaml").write_text(_data_yaml(task, dest, seed), encoding="utf-8")
        tmp.chmod(0o755)  # mkdtemp makes it private
        if dest.exists() or dest.is_symlink():
            raise FileExistsError(f"{dest} appeared while the dataset was being written")
        os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest if task == "classify" else dest / "data.yaml"


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m jupyter_yolo.datasets.synthetic_tasks DEST --task pose ...``."""
    parser = argparse.ArgumentParser(
        prog="python -m jupyter_yolo.datasets.synthetic_tasks",
        description="Write a synthetic dataset for one YOLO task in ultralytics' layout.",
    )
    parser.add_argument("dest", type=Path, help="folder to create (must not exist)")
    parser.add_argument("--task", default="detect", choices=list(SYNTHETIC_NAMES))
    parser.add_argument("--train", type=int, default=None, help="training images")
    parser.add_argument("--val", type=int, default=None, help="validation images")
    parser.add_argument("--imgsz", type=int, default=None, help="image side in pixels")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args(argv)
    try:
        path = generate_task_dataset(
            args.task, args.dest, train=args.train, val=args.val, imgsz=args.imgsz, seed=args.seed
        )
    except (ValueError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
