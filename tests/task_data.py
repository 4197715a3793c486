"""Tiny datasets of every task for the job tests (a few coloured shapes per image).

Stand-in for the built-in per-task generator: each call writes a YOLO-layout dataset (or class
folders for classify) that ultralytics trains on in seconds at imgsz 64.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import cv2
import numpy as np
import yaml

NAMES = {0: "square", 1: "triangle"}
COLOURS = ((40, 40, 220), (40, 200, 40))


def _shape(rng: random.Random, size: int, kind: int) -> np.ndarray:
    """Corner points (pixels) of a square (4, rotated) or a triangle (3)."""
    cx, cy = rng.uniform(0.3, 0.7) * size, rng.uniform(0.3, 0.7) * size
    radius = rng.uniform(0.18, 0.28) * size
    turn = rng.uniform(0, math.pi / 2)
    count = 4 if kind == 0 else 3
    return np.array(
        [
            [
                cx + radius * math.cos(turn + i * 2 * math.pi / count),
                cy + radius * math.sin(turn + i * 2 * math.pi / count),
            ]
            for i in range(count)
        ],
        dtype=np.float32,
    )


def _image(size: int, points: np.ndarray, kind: int) -> np.ndarray:
    image = np.full((size, size, 3), 200, np.uint8)
    cv2.fillPoly(image, [points.round().astype(np.int32)], COLOURS[kind])
    return image


def _label(task: str, points: np.ndarray, kind: int, size: int) -> str:
    norm = np.clip(points / size, 0.0, 1.0)
    x0, y0 = norm.min(axis=0)
    x1, y1 = norm.max(axis=0)
    box = [(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0]
    if task == "detect":
        values = box
    elif task == "segment":
        values = norm.reshape(-1).tolist()
    elif task == "pose":
        three = norm[:3]
        values = box + [v for point in three for v in (*point, 2.0)]
    elif task == "obb":
        rect = cv2.boxPoints(cv2.minAreaRect(points))
        values = np.clip(rect / size, 0, 1).reshape(-1).tolist()
    else:
        raise ValueError(task)
    return f"{kind} " + " ".join(f"{v:.5f}" for v in values)


def make_dataset(
    task: str, dest: Path, *, train: int = 16, val: int = 8, size: int = 64, seed: int = 0
) -> Path:
    """Write a tiny dataset of ``task`` under ``dest``; the data.yaml (classify: the folder)."""
    rng = random.Random(seed)
    dest.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", train), ("val", val)):
        for index in range(count):
            kind = index % 2
            points = _shape(rng, size, kind)
            image = _image(size, points, kind)
            if task == "classify":
                folder = dest / split / NAMES[kind]
                folder.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(folder / f"{index:03d}.png"), image)
                continue
            (dest / "images" / split).mkdir(parents=True, exist_ok=True)
            (dest / "labels" / split).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(dest / "images" / split / f"{index:03d}.png"), image)
            (dest / "labels" / split / f"{index:03d}.txt").write_text(
                _label(task, points, kind, size) + "\n", encoding="utf-8"
            )
    if task == "classify":
        return dest
    data = {"path": str(dest), "train": "images/train", "val": "images/val", "names": NAMES}
    if task == "pose":
        data.update(kpt_shape=[3, 3], flip_idx=[0, 2, 1])
    path = dest / "data.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path
