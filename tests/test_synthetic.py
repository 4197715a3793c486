"""The synthetic shapes dataset: deterministic, YOLO layout, exact boxes, atomic, no overwrite."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from jupyter_yolo.datasets.synthetic import SHAPES, generate_shapes


def tree_digest(root: Path) -> dict[str, str]:
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_layout_and_data_yaml(tmp_path: Path) -> None:
    dest = tmp_path / "shapes"
    data_yaml = generate_shapes(dest, train=10, val=4, imgsz=64, seed=3)
    assert data_yaml == dest.absolute() / "data.yaml"
    data = yaml.safe_load(data_yaml.read_text())
    assert data["path"] == str(dest.absolute())
    assert os.path.isabs(data["path"])
    assert data["train"] == "images/train"
    assert data["val"] == "images/val"
    assert data["names"] == {0: "circle", 1: "square", 2: "triangle"}
    for split, count in (("train", 10), ("val", 4)):
        images = sorted((dest / "images" / split).glob("*.jpg"))
        labels = sorted((dest / "labels" / split).glob("*.txt"))
        assert len(images) == count
        assert [p.stem for p in images] == [p.stem for p in labels]
        for image in images:
            with Image.open(image) as im:
                assert im.size == (64, 64)
                assert im.mode == "RGB"
    # nothing else was left next to dest (the temporary folder was renamed into place)
    assert [p.name for p in tmp_path.iterdir()] == ["shapes"]


def test_labels_are_valid_and_inside_the_image(tmp_path: Path) -> None:
    dest = tmp_path / "shapes"
    generate_shapes(dest, train=40, val=10, imgsz=96, seed=1)
    counts = []
    classes_seen = set()
    for label in (dest / "labels").rglob("*.txt"):
        lines = label.read_text().splitlines()
        assert 1 <= len(lines) <= 4
        counts.append(len(lines))
        for line in lines:
            cls, cx, cy, w, h = line.split()
            classes_seen.add(int(cls))
            cx_f, cy_f, w_f, h_f = map(float, (cx, cy, w, h))
            assert 0 <= int(cls) < 3
            assert 0 < w_f <= 1 and 0 < h_f <= 1
            assert cx_f - w_f / 2 >= 0 and cx_f + w_f / 2 <= 1
            assert cy_f - h_f / 2 >= 0 and cy_f + h_f / 2 <= 1
    assert classes_seen == {0, 1, 2}
    assert len(set(counts)) > 1  # a varying number of shapes per image


def test_boxes_are_exact(tmp_path: Path) -> None:
    """Each shape reaches all four edges of its box, and the pixels just outside are background."""
    size = 128
    dest = tmp_path / "shapes"
    generate_shapes(dest, train=24, val=1, imgsz=size, seed=5)
    outside_fractions = []
    for image_path in sorted((dest / "images" / "train").glob("*.jpg")):
        pixels = np.asarray(Image.open(image_path).convert("RGB"), dtype=np.float32)
        label = dest / "labels" / "train" / f"{image_path.stem}.txt"
        for line in label.read_text().splitlines():
            _, cx, cy, w, h = map(float, line.split())
            x0, x1 = round((cx - w / 2) * size), round((cx + w / 2) * size)
            y0, y1 = round((cy - h / 2) * size), round((cy + h / 2) * size)
            region = pixels[y0:y1, x0:x1]
            corners = np.concatenate(
                [
                    region[:2, :2].reshape(-1, 3),
                    region[:2, -2:].reshape(-1, 3),
                    region[-2:, :2].reshape(-1, 3),
                    region[-2:, -2:].reshape(-1, 3),
                ]
            )
            background = np.median(corners, axis=0)
            far = np.linalg.norm(region - background, axis=-1) > 60
            if far.mean() < 0.2:  # a square fills its box, corners included
                continue
            colour = np.median(region[far], axis=0)

            def is_shape(
                area: np.ndarray, colour: np.ndarray = colour, background: np.ndarray = background
            ) -> np.ndarray:
                return np.linalg.norm(area - colour, axis=-1) < np.linalg.norm(
                    area - background, axis=-1
                )

            inside = is_shape(region)
            assert inside[0].any() and inside[-1].any(), image_path.name
            assert inside[:, 0].any() and inside[:, -1].any(), image_path.name
            ring = []
            if y0 >= 1:
                ring.append(is_shape(pixels[y0 - 1, x0:x1]))
            if y1 < size:
                ring.append(is_shape(pixels[y1, x0:x1]))
            if x0 >= 1:
                ring.append(is_shape(pixels[y0:y1, x0 - 1]))
            if x1 < size:
                ring.append(is_shape(pixels[y0:y1, x1]))
            if ring:
                outside_fractions.append(float(np.concatenate(ring).mean()))
    assert outside_fractions
    assert float(np.mean(outside_fractions)) < 0.05


def test_deterministic_by_seed(tmp_path: Path) -> None:
    a = generate_shapes(tmp_path / "a", train=6, val=3, imgsz=64, seed=7).parent
    b = generate_shapes(tmp_path / "b", train=6, val=3, imgsz=64, seed=7).parent
    c = generate_shapes(tmp_path / "c", train=6, val=3, imgsz=64, seed=8).parent
    da, db, dc = tree_digest(a), tree_digest(b), tree_digest(c)
    da.pop("data.yaml"), db.pop("data.yaml"), dc.pop("data.yaml")  # holds the absolute path
    assert da == db
    assert da != dc
    # the training images do not depend on the number of validation images
    d = generate_shapes(tmp_path / "d", train=6, val=5, imgsz=64, seed=7).parent
    dd = tree_digest(d)
    assert {k: v for k, v in dd.items() if "/train/" in k} == {
        k: v for k, v in da.items() if "/train/" in k
    }


def test_same_dest_same_bytes(tmp_path: Path) -> None:
    dest = tmp_path / "x"
    generate_shapes(dest, train=3, val=2, imgsz=64, seed=2)
    first = tree_digest(dest)
    os.rename(dest, tmp_path / "old")
    generate_shapes(dest, train=3, val=2, imgsz=64, seed=2)
    assert tree_digest(dest) == first


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    dest = tmp_path / "exists"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        generate_shapes(dest, train=2, val=1, imgsz=64)
    assert [p.name for p in dest.iterdir()] == ["keep.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileExistsError):
        generate_shapes(empty, train=2, val=1, imgsz=64)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "exists"]


def test_failure_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from jupyter_yolo.datasets import synthetic

    calls = {"n": 0}
    real = synthetic._render

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        return real(*args, **kwargs)

    monkeypatch.setattr(synthetic, "_render", flaky)
    with pytest.raises(OSError, match="disk full"):
        generate_shapes(tmp_path / "ds", train=4, val=2, imgsz=64)
    assert list(tmp_path.iterdir()) == []


def test_custom_classes_and_bad_arguments(tmp_path: Path) -> None:
    data_yaml = generate_shapes(
        tmp_path / "five", train=20, val=2, imgsz=64, classes=("star", "cross", "hexagon")
    )
    assert yaml.safe_load(data_yaml.read_text())["names"] == {0: "star", 1: "cross", 2: "hexagon"}
    assert {"circle", "square", "triangle"} <= set(SHAPES)
    with pytest.raises(ValueError, match="unknown shape"):
        generate_shapes(tmp_path / "bad", classes=("circle", "blob"))
    with pytest.raises(ValueError, match="duplicates"):
        generate_shapes(tmp_path / "bad", classes=("circle", "circle"))
    with pytest.raises(ValueError):
        generate_shapes(tmp_path / "bad", train=0)
    assert not (tmp_path / "bad").exists()


def test_command_line(tmp_path: Path) -> None:
    dest = tmp_path / "cli"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "jupyter_yolo.datasets.synthetic",
            str(dest),
            "--train",
            "3",
            "--val",
            "2",
            "--imgsz",
            "64",
            "--seed",
            "4",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == str(dest / "data.yaml")
    assert len(list((dest / "images" / "train").iterdir())) == 3
    again = subprocess.run(
        [sys.executable, "-m", "jupyter_yolo.datasets.synthetic", str(dest)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert again.returncode == 2
    assert "already exists" in again.stderr


def test_does_not_import_torch() -> None:
    code = (
        "import sys, jupyter_yolo.datasets.synthetic as s; "
        "assert 'torch' not in sys.modules and 'ultralytics' not in sys.modules, 'heavy import'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
