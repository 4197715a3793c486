"""Hostile task datasets: masks_dir leaving the dataset, decompression bombs in masks and depth
maps, RLE and polygon blow-ups, unbounded task detection scans; each built here by hand."""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image

from jupyter_yolo.datasets.layouts import normalise
from jupyter_yolo.datasets.paths import companion_path
from jupyter_yolo.datasets.samples import pixel_overlay
from jupyter_yolo.datasets.validate import validate_dataset
from jupyter_yolo.errors import UnsafeArchive

from .conftest import expect_error

SIZE = 32


def _png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def _image(path: Path, index: int = 0) -> Path:
    return _png(path, np.full((SIZE, SIZE, 3), 40 + index * 20, np.uint8))


def _semantic(root: Path, masks_dir: str | None, count: int = 2) -> Path:
    """A semantic dataset (masks under ``masks/``) whose data.yaml names ``masks_dir``."""
    for split in ("train", "val"):
        for i in range(count):
            _image(root / "images" / split / f"im{i}.png", i)
            _png(root / "masks" / split / f"im{i}.png", np.ones((SIZE, SIZE), np.uint8))
    data: dict[str, Any] = {"train": "images/train", "val": "images/val", "names": {0: "a", 1: "b"}}
    if masks_dir is not None:
        data["masks_dir"] = masks_dir
    (root / "data.yaml").write_text(yaml.safe_dump(data))
    return root


def problems(report: dict[str, Any], code: str) -> list[dict[str, Any]]:
    return [p for p in report["problems"] if p["code"] == code]


# --------------------------------------------------------------------------- masks_dir


def test_companion_path_refuses_a_folder_that_is_a_path(tmp_path: Path) -> None:
    image = tmp_path / "ws" / ".tmp" / "op1" / "raw" / "images" / "train" / "a.jpg"
    for folder in ("../../../../../home/user/victim", "a/b", "..", ".", "", "/etc"):
        with pytest.raises(UnsafeArchive):
            companion_path(image, folder, ".png")
    assert companion_path(image, "masks", ".png").parts[-3:] == ("masks", "train", "a.png")


def test_companion_path_must_resolve_inside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    image = _image(root / "images" / "train" / "a.png")
    outside = tmp_path / "elsewhere"
    _png(outside / "train" / "a.png", np.zeros((SIZE, SIZE), np.uint8))
    (root / "masks").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafeArchive):
        companion_path(image, "masks", ".png", root)
    assert companion_path(image, "depth", ".png", root) == root / "depth" / "train" / "a.png"


def test_upload_with_masks_dir_outside_is_refused_and_moves_nothing(tmp_path: Path) -> None:
    source = _semantic(tmp_path / "raw", "../../victim")
    # where the unchecked companion path of raw/images/train/im0.png pointed
    victim = _png(tmp_path / "victim" / "train" / "im0.png", np.zeros((SIZE, SIZE), np.uint8))
    with pytest.raises(UnsafeArchive, match="masks_dir"):
        normalise(source, tmp_path / "dest")
    assert victim.is_file()
    assert not (tmp_path / "dest" / "victim").exists()


def test_upload_with_plain_masks_dir_keeps_it(tmp_path: Path) -> None:
    source = _semantic(tmp_path / "raw", None)
    os.rename(source / "masks", source / "class_maps")
    data = {"train": "images/train", "val": "images/val", "names": {0: "a"}}
    (source / "data.yaml").write_text(yaml.safe_dump({**data, "masks_dir": "class_maps"}))
    normalise(source, tmp_path / "dest")
    assert (tmp_path / "dest" / "class_maps" / "train" / "im0.png").is_file()
    content = yaml.safe_load((tmp_path / "dest" / "data.yaml").read_text())
    assert content["masks_dir"] == "class_maps"


async def test_http_upload_with_masks_dir_outside_is_a_400(
    jp_fetch: Any, tmp_path: Path, yolo_workspace: Path
) -> None:
    source = _semantic(tmp_path / "raw", "../../../../../home/user/victim")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(source.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(source).as_posix())
    body = await expect_error(
        jp_fetch,
        400,
        "yolo",
        "datasets",
        method="POST",
        params={"name": "evil"},
        body=buffer.getvalue(),
        headers={"Content-Type": "application/zip"},
    )
    assert "masks_dir" in body["message"]
    assert not (yolo_workspace / "datasets" / "evil").exists()


def test_validation_reports_a_masks_dir_path_and_reads_nothing_there(tmp_path: Path) -> None:
    root = _semantic(tmp_path / "ds", "../outside")
    # a mask the unchecked path would have read: out-of-range classes would show in the report
    _png(tmp_path / "outside" / "train" / "im0.png", np.full((SIZE, SIZE), 9, np.uint8))
    report = validate_dataset(root, task="semantic")
    bad = problems(report, "data_yaml")
    assert bad and "masks_dir" in bad[0]["message"], report["problems"]
    assert not problems(report, "mask_class_out_of_range")


def test_samples_refuse_a_mask_outside_the_dataset(tmp_path: Path) -> None:
    root = _semantic(tmp_path / "ds", None)
    image = root / "images" / "train" / "im0.png"
    content = {"masks_dir": "../outside"}
    result = pixel_overlay(image, "semantic", content, 64, root=root)
    assert result["overlay"] is None and "masks_dir" in result["overlay_error"]
    # a masks folder that is a symlink out of the dataset
    os.rename(root / "masks", tmp_path / "moved")
    (root / "masks").symlink_to(tmp_path / "moved", target_is_directory=True)
    result = pixel_overlay(image, "semantic", {}, 64, root=root)
    assert result["overlay"] is None and "outside" in result["overlay_error"]


# --------------------------------------------------------------------------- decompression bombs


def _bomb_png(path: Path, side: int) -> Path:
    """A grey PNG of side x side pixels that compresses to a few kilobytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (side, side), 0).save(path, optimize=True)
    return path


def test_mask_bomb_is_refused_before_decoding(tmp_path: Path) -> None:
    root = _semantic(tmp_path / "ds", None, count=1)
    bomb = _bomb_png(root / "masks" / "train" / "im0.png", 9000)  # 81 Mpx, over the cap
    assert bomb.stat().st_size < 1024 * 1024
    report = validate_dataset(root, task="semantic")
    refused = [p for p in report["problems"] if p["file"] == "masks/train/im0.png"]
    assert refused and "not decoded" in refused[0]["message"], report["problems"]
    wrong = _bomb_png(root / "masks" / "val" / "im0.png", 64)
    report = validate_dataset(root, task="semantic")
    sized = problems(report, "mask_size")
    assert [p["file"] for p in sized] == ["masks/val/im0.png"], report["problems"]
    assert "64x64" in sized[0]["message"]
    result = pixel_overlay(
        root / "images" / "val" / "im0.png", "semantic", {}, 64, root=root, dims=(SIZE, SIZE)
    )
    assert result["overlay"] is None and "same size" in result["overlay_error"]
    assert wrong.is_file()


def _depth_root(tmp_path: Path) -> Path:
    root = tmp_path / "ds"
    for split in ("train", "val"):
        _image(root / "images" / split / "im0.png")
        _png(root / "depth" / split / "im0.png", np.full((SIZE, SIZE), 1000, np.uint16))
    data = {"train": "images/train", "val": "images/val", "names": {0: "depth"}}
    (root / "data.yaml").write_text(yaml.safe_dump({**data, "depth_scale": 1000}))
    return root


def test_depth_npy_header_checked_before_loading(tmp_path: Path) -> None:
    root = _depth_root(tmp_path)
    (root / "depth" / "train" / "im0.png").unlink()
    npy = root / "depth" / "train" / "im0.npy"
    # a header claiming 100000 x 100000 float64 (80 GB) over a tiny file
    header = {"descr": "<f8", "fortran_order": False, "shape": (100000, 100000)}
    with npy.open("wb") as handle:
        np.lib.format.write_array_header_1_0(handle, header)
        handle.write(b"\0" * 64)
    report = validate_dataset(root, task="depth")
    refused = [p for p in report["problems"] if p["file"] == "depth/train/im0.npy"]
    assert refused and "not decoded" in refused[0]["message"], report["problems"]
    # an object array (a pickle) is refused from its header
    np.save(npy, np.array([[1.0, None]], dtype=object), allow_pickle=True)
    report = validate_dataset(root, task="depth")
    refused = [p for p in report["problems"] if p["file"] == "depth/train/im0.npy"]
    assert refused and "numbers" in refused[0]["message"], report["problems"]
    # a right one is read
    np.save(npy, np.full((SIZE, SIZE), 2.0, np.float32))
    report = validate_dataset(root, task="depth")
    assert report["errors"] == 0, report["problems"]
    assert report["task_stats"]["depth_m"]["max"] == 2.0


# --------------------------------------------------------------------------- COCO RLE and polygons


def _coco(root: Path, annotations: list[dict[str, Any]], record_size: tuple[int, int]) -> Path:
    """Two real 32x32 images whose COCO records claim ``record_size``; ``annotations`` on both."""
    images = []
    anns = []
    for i in range(2):
        _image(root / "images" / f"p{i}.png", i)
        width, height = record_size
        images.append({"id": i, "file_name": f"p{i}.png", "width": width, "height": height})
        for k, annotation in enumerate(annotations):
            base = {"image_id": i, "category_id": 1, "bbox": [2, 2, 10, 10], "iscrowd": 0}
            anns.append({**base, "id": 100 * i + k, **annotation})
    content = {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "x"}]}
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / "instances.json").write_text(json.dumps(content))
    return root


def test_rle_size_must_be_the_real_image_size(tmp_path: Path) -> None:
    side = 8000  # the records claim 8000x8000 (64 Mpx) for 32x32 images
    rle = {"size": [side, side], "counts": [1000, 10, side * side - 1010]}
    source = _coco(tmp_path / "raw", [{"segmentation": rle}], (side, side))
    result = normalise(source, tmp_path / "dest")
    refused = [p for p in result.problems if p["code"] == "segmentation_refused"]
    assert refused and "real size [32, 32]" in refused[0]["message"], result.problems


def test_rle_pixels_per_upload_are_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from jupyter_yolo.datasets import coco_tasks
    from jupyter_yolo.errors import InvalidRequest

    full = {"size": [SIZE, SIZE], "counts": [0, SIZE * SIZE]}
    empty = {"size": [SIZE, SIZE], "counts": [SIZE * SIZE]}
    monkeypatch.setattr(coco_tasks, "MAX_DECODED_PIXELS", 3 * SIZE * SIZE)
    # empty masks are not decoded, so they cost nothing: 2 images x 4 of them pass
    source = _coco(tmp_path / "raw", [{"segmentation": empty}] * 4, (SIZE, SIZE))
    normalise(source, tmp_path / "dest")
    # 2 images x 2 full masks = 4 decodes, one over the budget of 3
    source = _coco(tmp_path / "raw2", [{"segmentation": full}] * 2, (SIZE, SIZE))
    with pytest.raises(InvalidRequest, match="RLE mask pixels"):
        normalise(source, tmp_path / "dest2")


def test_merge_of_huge_polygons_is_bounded(tmp_path: Path) -> None:
    import tracemalloc

    from jupyter_yolo.datasets.coco_tasks import MAX_POLYGON_POINTS, merge_multi_segment

    angles = np.linspace(0, 2 * np.pi, 20_000, endpoint=False)
    first = np.stack([100 + 50 * np.cos(angles), 100 + 50 * np.sin(angles)], 1)
    second = first + 200
    notes: list[str] = []
    tracemalloc.start()
    try:
        parts = merge_multi_segment([first.ravel().tolist(), second.ravel().tolist()], notes)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # unbounded, the 20k x 20k x 2 float64 distance matrix alone is 6.4 GB
    assert peak < 400 * 1024 * 1024, peak
    assert all(len(p) <= MAX_POLYGON_POINTS + 1 for p in parts)
    assert len(notes) == 2 and "simplified" in notes[0]


def test_closest_pair_in_chunks_matches_brute_force(monkeypatch: pytest.MonkeyPatch) -> None:
    from jupyter_yolo.datasets import coco_tasks

    monkeypatch.setattr(coco_tasks, "CLOSEST_CHUNK", 3)
    rng = np.random.default_rng(1)
    for _ in range(20):
        a, b = rng.random((int(rng.integers(1, 12)), 2)), rng.random((int(rng.integers(1, 12)), 2))
        full = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        i, j = coco_tasks._closest(a, b)
        assert full[i, j] == full.min()


# --------------------------------------------------------------------------- synthetic generation


async def test_one_synthetic_generation_at_a_time(
    jp_fetch: Any, yolo_workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio
    import threading

    from jupyter_yolo.datasets import synthetic_tasks
    from jupyter_yolo.errors import InvalidRequest

    started, release = threading.Event(), threading.Event()
    threads: list[str] = []

    def held(task: str, folder: Path) -> None:
        """Stands in for the generator: holds the slot until the test lets it go."""
        threads.append(threading.current_thread().name)
        started.set()
        release.wait()
        raise InvalidRequest("generation stopped by the test")

    monkeypatch.setattr(synthetic_tasks, "generate_task_dataset", held)

    def post(task: str) -> Any:
        return expect_error(
            jp_fetch, 400, "yolo", "datasets", method="POST", body=json.dumps({"synthetic": task})
        )

    first = asyncio.ensure_future(post("detect"))
    try:
        await asyncio.get_running_loop().run_in_executor(None, started.wait)
        busy = await expect_error(
            jp_fetch,
            409,
            "yolo",
            "datasets",
            method="POST",
            body=json.dumps({"synthetic": "segment"}),
        )
        assert "being generated" in busy["message"]
    finally:
        release.set()
    assert "stopped by the test" in (await first)["message"]
    # the slot is free again, and generation ran on the store's own thread
    started.clear()
    assert "stopped by the test" in (await post("obb"))["message"]
    assert len(threads) == 2 and all(t.startswith("yolo-synthetic") for t in threads)


# --------------------------------------------------------------------------- task detection


def test_label_scan_reads_within_the_byte_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jupyter_yolo.datasets import taskdetect

    monkeypatch.setattr(taskdetect, "MAX_SCANNED_BYTES", 1000)
    labels = tmp_path / "ds" / "labels" / "train"
    labels.mkdir(parents=True)
    line = "0 0.5 0.5 0.2 0.2\n"  # 18 bytes
    (labels / "a.txt").write_text(line * 1000)  # 18000 bytes, one file
    evidence = taskdetect.gather_from({}, tmp_path / "ds")
    assert 0 < evidence.boxes <= 1000 // len(line) + 1


def test_label_scan_stops_after_a_count_of_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jupyter_yolo.datasets import taskdetect

    monkeypatch.setattr(taskdetect, "MAX_SCANNED_ENTRIES", 50)
    labels = tmp_path / "ds" / "labels"
    for i in range(200):  # a tree of folders with no .txt at all, then a label
        (labels / f"d{i:03d}").mkdir(parents=True)
    (labels / "zzz").mkdir()
    (labels / "zzz" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    evidence = taskdetect.gather_from({}, tmp_path / "ds")
    assert evidence.boxes == 0  # the walk stopped long before zzz/
    monkeypatch.setattr(taskdetect, "MAX_SCANNED_ENTRIES", 10_000)
    assert taskdetect.gather_from({}, tmp_path / "ds").boxes == 1


def test_a_symlinked_labels_folder_is_not_followed(tmp_path: Path) -> None:
    from jupyter_yolo.datasets.taskdetect import gather_from

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "labels").symlink_to(elsewhere, target_is_directory=True)
    evidence = gather_from({}, tmp_path / "ds")
    assert evidence.boxes == 0 and not evidence.labels_folder


def _keypoint_dataset(root: Path) -> Path:
    for split in ("train", "val"):
        for i in range(2):
            _image(root / "images" / split / f"im{i}.png", i)
            label = root / "labels" / split / f"im{i}.txt"
            label.parent.mkdir(parents=True, exist_ok=True)
            label.write_text("0 0.5 0.5 0.4 0.4 0.4 0.4 2 0.6 0.4 1 0.5 0.6 0\n")  # 14 numbers
    data = {"train": "images/train", "val": "images/val", "names": {0: "a"}}
    (root / "data.yaml").write_text(yaml.safe_dump(data))
    return root


def test_keypoint_lines_without_kpt_shape_are_not_detect(tmp_path: Path) -> None:
    from jupyter_yolo.datasets.taskdetect import detected, gather, resolve_task
    from jupyter_yolo.errors import InvalidRequest

    root = _keypoint_dataset(tmp_path / "ds")
    task, how = detected(gather(root))
    assert task == "pose" and "kpt_shape" in how
    with pytest.raises(InvalidRequest, match=r"need kpt_shape in data\.yaml"):
        resolve_task(root, None)
    report = validate_dataset(root)
    missing = problems(report, "task_key_missing")
    assert missing and "kpt_shape" in missing[0]["message"], report["problems"]


# --------------------------------------------------------------------------- class folders


def _class_folders(root: Path, splits: tuple[str, ...], images: bool = True) -> Path:
    for split in splits:
        for name in ("cat", "dog"):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            if images:
                for i in range(2):
                    _image(folder / f"{name}{i}.png", i)
    return root


def test_val_and_valid_both_present_warns(tmp_path: Path) -> None:
    root = _class_folders(tmp_path / "raw", ("train", "val", "valid"))
    result = normalise(root, tmp_path / "dest")
    ignored = [p for p in result.problems if p["code"] == "split_folder_ignored"]
    assert len(ignored) == 1 and "valid/" in ignored[0]["message"], result.problems


def test_one_class_folder_rule_for_uploads_and_jobs(tmp_path: Path) -> None:
    from jupyter_yolo.datasets.classfolders import is_class_folders
    from jupyter_yolo.datasets.taskdetect import class_folders
    from jupyter_yolo.jobs.task_check import is_classify_root

    empty = _class_folders(tmp_path / "empty", ("train", "val"), images=False)
    full = _class_folders(tmp_path / "full", ("train", "val"))
    # folders without images are not a classify dataset, for uploads and for jobs alike
    assert class_folders(empty) == 0 and not is_class_folders(empty)
    assert not is_classify_root(empty)
    assert class_folders(full) == 2 and is_class_folders(full) and is_classify_root(full)


def test_a_job_refuses_a_data_yaml_whose_masks_dir_is_a_path(tmp_path: Path) -> None:
    from jupyter_yolo.errors import InvalidRequest
    from jupyter_yolo.jobs.schema import JobValidator
    from jupyter_yolo.workspace import Workspace

    workspace = Workspace(tmp_path / "ws")
    workspace.create()
    root = _semantic(workspace.root / "mine", "masks")
    validator = JobValidator(workspace, cuda_available=lambda: False)
    assert (
        validator.normalised_dataset(root / "data.yaml", "mine/data.yaml")["masks_dir"] == "masks"
    )
    (root / "data.yaml").write_text(
        (root / "data.yaml").read_text().replace("masks_dir: masks", "masks_dir: ../../victim")
    )
    with pytest.raises(InvalidRequest, match="masks_dir"):
        validator.normalised_dataset(root / "data.yaml", "mine/data.yaml")
