"""Datasets of every YOLO task: task detection, ``?task=`` forcing, per-task validation (with
file and line), task statistics, on tiny datasets built here (no training)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image

from jupyter_yolo.datasets.validate import validate_dataset

from .conftest import expect_error, fetch_json, post_json

NAMES = {0: "a", 1: "b"}
LINES = {
    "detect": ["0 0.5 0.5 0.4 0.4", "1 0.3 0.3 0.2 0.2"],
    "segment": ["0 0.2 0.2 0.8 0.2 0.5 0.8", "1 0.1 0.1 0.3 0.1 0.3 0.3 0.1 0.3"],
    "pose": ["0 0.5 0.5 0.4 0.4 0.4 0.4 2 0.6 0.4 1 0.5 0.6 0"],
    "obb": ["0 0.5 0.2 0.8 0.5 0.5 0.8 0.2 0.5", "1 0.1 0.1 0.3 0.1 0.3 0.3 0.1 0.3"],
}
SIZE = 32


def _image(path: Path, index: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    colour = (index * 37 % 256, index * 71 % 256, 90 + index)
    Image.new("RGB", (SIZE, SIZE), colour).save(path)


def build(task: str, root: Path, count: int = 3) -> Path:
    """A tiny dataset of ``task`` in the YOLO layout (class folders for classify)."""
    root.mkdir(parents=True, exist_ok=True)
    index = 0
    if task == "classify":
        for split in ("train", "val"):
            for name in NAMES.values():
                for i in range(count):
                    index += 1
                    _image(root / split / name / f"{name}{i}.png", index)
        return root
    data: dict[str, Any] = {"train": "images/train", "val": "images/val", "names": NAMES}
    if task == "pose":
        data.update(kpt_shape=[3, 3], flip_idx=[0, 2, 1])
    for split in ("train", "val"):
        for i in range(count):
            index += 1
            image = root / "images" / split / f"im{i}.png"
            _image(image, index)
            if task in LINES:
                label = root / "labels" / split / f"im{i}.txt"
                label.parent.mkdir(parents=True, exist_ok=True)
                label.write_text("\n".join(LINES[task]) + "\n")
            elif task == "semantic":
                mask = np.zeros((SIZE, SIZE), np.uint8)
                mask[8:24, 8:24] = 1
                mask[0:4, :] = 255
                path = root / "masks" / split / f"im{i}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(mask, mode="L").save(path)
            elif task == "depth":
                depth = np.full((SIZE, SIZE), 1500, np.uint16)
                depth[:8] = 0
                depth[16:] = 3000
                path = root / "depth" / split / f"im{i}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(depth).save(path)
    if task == "depth":
        data.update(names={0: "depth"}, depth_scale=1000)
    (root / "data.yaml").write_text(yaml.safe_dump(data))
    return root


def zipped(folder: Path, dest: Path) -> bytes:
    with zipfile.ZipFile(dest, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder).as_posix())
    return dest.read_bytes()


async def upload(jp_fetch: Any, name: str, data: bytes, task: str | None = None) -> dict[str, Any]:
    """POST a zip (with ``?task=`` when given) and return the created dataset."""
    params = {"name": name} | ({"task": task} if task else {})
    response = await jp_fetch(
        "yolo",
        "datasets",
        method="POST",
        params=params,
        body=data,
        headers={"Content-Type": "application/zip"},
        request_timeout=120,
    )
    assert response.code == 201
    result: dict[str, Any] = json.loads(response.body)
    return result


def problems(report: dict[str, Any], code: str) -> list[dict[str, Any]]:
    return [p for p in report["problems"] if p["code"] == code]


# --------------------------------------------------------------------------- detection


@pytest.mark.parametrize(
    "task", ["detect", "segment", "classify", "pose", "obb", "semantic", "depth"]
)
async def test_upload_detects_task(
    jp_fetch: Any, tmp_path: Path, yolo_workspace: Path, task: str
) -> None:
    data = zipped(build(task, tmp_path / task), tmp_path / f"{task}.zip")
    dataset = await upload(jp_fetch, f"t-{task}", data)
    assert dataset["task"] == task, dataset["task_source"]
    assert dataset["task_source"].startswith("detected from"), dataset["task_source"]
    report = dataset["report"]
    assert report["errors"] == 0, report["problems"]
    assert report["task"] == task
    # the task survives: stored in meta.json, served by GET and the listing
    meta = json.loads((yolo_workspace / "datasets" / f"t-{task}" / "meta.json").read_text())
    assert meta["task"] == task
    again = await fetch_json(jp_fetch, "yolo", "datasets", f"t-{task}")
    assert again["task"] == task
    listing = await fetch_json(jp_fetch, "yolo", "datasets")
    assert {d["name"]: d.get("task") for d in listing["datasets"]}[f"t-{task}"] == task


async def test_forced_task_agrees_and_disagrees(
    jp_fetch: Any, tmp_path: Path, yolo_workspace: Path
) -> None:
    seg = zipped(build("segment", tmp_path / "seg"), tmp_path / "seg.zip")
    forced = await upload(jp_fetch, "forced-seg", seg, "segment")
    assert forced["task"] == "segment" and forced["task_source"] == "forced"
    # detection of the same polygons is allowed: ultralytics boxes them
    as_detect = await upload(jp_fetch, "seg-as-det", seg, "detect")
    assert as_detect["task"] == "detect"
    # boxes cannot be a segment dataset; polygons cannot be oriented boxes
    boxes = zipped(build("detect", tmp_path / "det"), tmp_path / "det.zip")
    body = await expect_error(
        jp_fetch,
        400,
        "yolo",
        "datasets",
        method="POST",
        params={"name": "x1", "task": "segment"},
        body=boxes,
        headers={"Content-Type": "application/zip"},
    )
    assert "box" in body["message"] and "detect" in body["message"]
    body = await expect_error(
        jp_fetch,
        400,
        "yolo",
        "datasets",
        method="POST",
        params={"name": "x2", "task": "obb"},
        body=seg,
        headers={"Content-Type": "application/zip"},
    )
    assert "9 numbers" in body["message"] and "segment" in body["message"]
    body = await expect_error(
        jp_fetch,
        400,
        "yolo",
        "datasets",
        method="POST",
        params={"name": "x3", "task": "nope"},
        body=seg,
        headers={"Content-Type": "application/zip"},
    )
    assert "detect" in body["message"] and "segment" in body["message"]
    assert not (yolo_workspace / "datasets" / "x1").exists()
    assert list((yolo_workspace / ".tmp").iterdir()) == [], "nothing half-written is left"
    # an import takes "task" in its JSON body
    folder = build("obb", yolo_workspace / "uploads" / "obbfolder")
    imported = await post_json(
        jp_fetch,
        "yolo",
        "datasets",
        body={"name": "imp-obb", "path": "uploads/obbfolder", "task": "obb"},
    )
    assert imported["task"] == "obb" and imported["task_source"] == "forced"
    assert folder.is_dir()
    await expect_error(
        jp_fetch,
        400,
        "yolo",
        "datasets",
        method="POST",
        body=json.dumps({"name": "imp-cls", "path": "uploads/obbfolder", "task": "classify"}),
    )


# --------------------------------------------------------------------------- validation


def _write(path: Path, lines: list[str]) -> None:
    path.write_text("\n".join(lines) + "\n")


def test_segment_mistakes_named_with_file_and_line(tmp_path: Path) -> None:
    root = build("segment", tmp_path / "seg")
    label = root / "labels" / "train" / "im0.txt"
    _write(
        label,
        [
            "0 0.2 0.2 0.8 0.2 0.5 0.8",  # fine
            "0 0.1 0.1 0.9 0.9",  # 2 points (a box)
            "0 0.1 0.1 0.5 0.5 0.9",  # odd coordinate count
            "0 0.1 0.1 0.5 0.5 0.9 0.9",  # collinear: zero area
            "0 0.1 0.1 0.5 0.1 0.5 0.1 0.3 0.4",  # a repeated point
            "1 0.1 0.1 1.2 0.1 0.5 0.5",  # outside 0-1
        ],
    )
    report = validate_dataset(root, task="segment", task_source="forced")
    where = {(p["code"], p["file"], p["line"]) for p in report["problems"]}
    rel = "labels/train/im0.txt"
    assert ("polygon_too_few_points", rel, 2) in where
    assert ("malformed_line", rel, 3) in where
    assert ("polygon_zero_area", rel, 4) in where
    assert ("polygon_repeated_point", rel, 5) in where
    assert ("coordinates_out_of_range", rel, 6) in where
    stats = report["task_stats"]
    assert stats["vertices"]["min"] == 3 and stats["vertices"]["max"] == 4
    assert 0 < stats["mask_area_share"]["min"] < stats["mask_area_share"]["max"] <= 1


def test_pose_mistakes_named_with_file_and_line(tmp_path: Path) -> None:
    root = build("pose", tmp_path / "pose")
    label = root / "labels" / "val" / "im1.txt"
    _write(
        label,
        [
            LINES["pose"][0],
            "0 0.5 0.5 0.4 0.4 0.4 0.4 0.6 0.4 0.5 0.6",  # visibility missing
            "0 0.5 0.5 0.4 0.4 0.4 0.4 2 0.6 0.4 3 0.5 0.6 0",  # visibility 3
        ],
    )
    report = validate_dataset(root, task="pose")
    where = {(p["code"], p["file"], p["line"]) for p in report["problems"]}
    rel = "labels/val/im1.txt"
    assert ("pose_keypoint_count", rel, 2) in where
    missing = next(p for p in problems(report, "pose_keypoint_count"))
    assert "visibility" in missing["message"] and "56" not in missing["message"]
    assert ("pose_visibility", rel, 3) in where
    visibility = report["task_stats"]["keypoint_visibility"]
    assert len(visibility) == 3 and visibility[0]["2"] > 0 and visibility[2]["0"] > 0
    # flip_idx of the wrong length, not a permutation; kpt_shape missing
    data = yaml.safe_load((root / "data.yaml").read_text())
    for flip, words in (([0, 1], "2 entries"), ([0, 0, 1], "once")):
        data["flip_idx"] = flip
        (root / "data.yaml").write_text(yaml.safe_dump(data))
        found = problems(validate_dataset(root, task="pose"), "flip_idx")
        assert found and words in found[0]["message"] and found[0]["file"] == "data.yaml"
        assert found[0]["line"] is not None
    del data["kpt_shape"], data["flip_idx"]
    (root / "data.yaml").write_text(yaml.safe_dump(data))
    found = problems(validate_dataset(root, task="pose"), "task_key_missing")
    assert found and "kpt_shape" in found[0]["message"]


def test_obb_mistakes_named_with_file_and_line(tmp_path: Path) -> None:
    root = build("obb", tmp_path / "obb")
    _write(
        root / "labels" / "train" / "im2.txt",
        [
            LINES["obb"][0],
            "0 0.5 0.5 0.4 0.4",  # not 9 numbers
            "0 0.1 0.1 0.3 0.3 0.1 0.3 0.3 0.1",  # corners out of order: edges cross
            "0 0.1 0.1 0.2 0.2 0.3 0.3 0.4 0.4",  # on one line
        ],
    )
    report = validate_dataset(root, task="obb")
    where = {(p["code"], p["file"], p["line"]) for p in report["problems"]}
    rel = "labels/train/im2.txt"
    assert ("malformed_line", rel, 2) in where
    assert ("obb_self_intersecting", rel, 3) in where
    assert ("obb_degenerate", rel, 4) in where
    angles = report["task_stats"]
    assert angles["instances"] > 0 and sum(angles["angle_histogram"]) == angles["instances"]
    assert {0, 45} == {
        round(a) for a in (angles["angle_degrees"]["min"], angles["angle_degrees"]["max"])
    }


def test_classify_mistakes(tmp_path: Path) -> None:
    from jupyter_yolo.datasets.layouts import normalise

    raw = build("classify", tmp_path / "raw")
    (raw / "val" / "b").rename(raw / "val" / "c")  # val: missing b, extra c
    (raw / "train" / "empty").mkdir()
    (raw / "train" / "a" / "broken.png").write_bytes(b"not a png")
    dest = tmp_path / "ds"
    result = normalise(raw, dest)
    assert result.format == "class-folders"
    report = validate_dataset(dest, task="classify")
    differ = problems(report, "class_folders_differ")
    assert differ and "missing b" in differ[0]["message"] and "extra c" in differ[0]["message"]
    assert problems(report, "class_folder_empty")[0]["file"] == "train/empty"
    assert problems(report, "corrupt_image")[0]["file"] == "train/a/broken.png"
    per_class = report["task_stats"]["images_per_class"]
    assert per_class["train"]["a"] == 4 and per_class["train"]["b"] == 3


def test_semantic_and_depth_mistakes(tmp_path: Path) -> None:
    root = build("semantic", tmp_path / "sem")
    (root / "masks" / "train" / "im0.png").unlink()
    Image.fromarray(np.zeros((16, 16), np.uint8), mode="L").save(
        root / "masks" / "train" / "im1.png"
    )
    Image.fromarray(np.full((SIZE, SIZE), 7, np.uint8), mode="L").save(
        root / "masks" / "val" / "im0.png"
    )
    report = validate_dataset(root, task="semantic")
    assert problems(report, "mask_missing")[0]["file"] == "images/train/im0.png"
    assert problems(report, "mask_size")[0]["file"] == "masks/train/im1.png"
    wrong = problems(report, "mask_class_out_of_range")[0]
    assert wrong["file"] == "masks/val/im0.png" and "7" in wrong["message"]
    share = report["task_stats"]["pixel_share"]
    assert share["b"] > 0 and share["ignore"] > 0 and abs(sum(share.values()) - 1) < 0.01

    root = build("depth", tmp_path / "depth")
    (root / "depth" / "train" / "im0.png").unlink()
    Image.new("RGB", (SIZE, SIZE)).save(root / "depth" / "val" / "im0.png")
    report = validate_dataset(root, task="depth")
    assert problems(report, "depth_missing")[0]["file"] == "images/train/im0.png"
    assert problems(report, "depth_unreadable")[0]["file"] == "depth/val/im0.png"
    depth = report["task_stats"]["depth_m"]
    assert depth == {"min": 1.5, "mean": pytest.approx(depth["mean"]), "max": 3.0}
    assert 1.5 < depth["mean"] < 3.0


# --------------------------------------------------------------------------- COCO and DOTA


def rle_string(counts: list[int]) -> str:
    """COCO's compressed RLE string (pycocotools' rleToString)."""
    out = []
    for i, count in enumerate(counts):
        x = count - counts[i - 2] if i > 2 else count
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = x != -1 if c & 0x10 else x != 0
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def rle_counts_of(mask: np.ndarray) -> list[int]:
    flat = mask.T.reshape(-1)  # column-major
    counts, value, run = [], 0, 0
    for pixel in flat.tolist():
        if pixel != value:
            counts.append(run)
            value, run = pixel, 0
        run += 1
    counts.append(run)
    return counts


def coco_folder(root: Path, kind: str) -> Path:
    width, height = 40, 30
    images, annotations = [], []
    mask = np.zeros((height, width), np.uint8)
    mask[5:20, 10:30] = 1
    counts = rle_counts_of(mask)
    for i in range(4):
        _image(root / "images" / f"p{i}.png", i)
        Image.new("RGB", (width, height), (i * 40, 80, 120)).save(root / "images" / f"p{i}.png")
        images.append({"id": i, "file_name": f"p{i}.png", "width": width, "height": height})
        base = {"image_id": i, "category_id": 1, "bbox": [10, 5, 20, 15], "iscrowd": 0}
        if kind == "segment":
            annotations += [
                {**base, "id": 10 * i, "segmentation": [[10, 5, 30, 5, 20, 20]]},
                {**base, "id": 10 * i + 1,
                 "segmentation": [[2, 2, 8, 2, 5, 8], [12, 2, 18, 2, 15, 8]]},
                {**base, "id": 10 * i + 2,
                 "segmentation": {"size": [height, width], "counts": counts}},
                {**base, "id": 10 * i + 3,
                 "segmentation": {"size": [height, width], "counts": rle_string(counts)}},
                {**base, "id": 10 * i + 4, "iscrowd": 1,
                 "segmentation": {"size": [height, width], "counts": counts}},
            ]  # fmt: skip
        else:
            points = [0.0] * 51
            points[0:3] = [20, 10, 2]  # nose
            points[15:18] = [12, 12, 1]  # left shoulder
            annotations += [
                {**base, "id": 10 * i, "keypoints": points, "num_keypoints": 2},
                {**base, "id": 10 * i + 1, "keypoints": [0] * 51, "num_keypoints": 0},
            ]
    from jupyter_yolo.datasets.coco_tasks import COCO_PERSON_NAMES

    category: dict[str, Any] = {"id": 1, "name": "thing"}
    if kind == "pose":
        category["keypoints"] = COCO_PERSON_NAMES
    content = {"images": images, "annotations": annotations, "categories": [category]}
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / "instances.json").write_text(json.dumps(content))
    return root


def test_rle_round_trip() -> None:
    from jupyter_yolo.rle import decode

    rng = np.random.default_rng(0)
    mask = (rng.random((23, 17)) > 0.6).astype(np.uint8)
    counts = rle_counts_of(mask)
    for encoded in (counts, rle_string(counts)):
        decoded = decode({"size": [23, 17], "counts": encoded})
        assert (decoded == mask).all()
    with pytest.raises(ValueError):
        decode({"size": [23, 17], "counts": counts[:-1]})


async def test_coco_segment_pose_and_dota_uploads(
    jp_fetch: Any, tmp_path: Path, yolo_workspace: Path
) -> None:
    seg = zipped(coco_folder(tmp_path / "cseg", "segment"), tmp_path / "cseg.zip")
    dataset = await upload(jp_fetch, "coco-seg", seg)
    assert dataset["format"] == "coco" and dataset["task"] == "segment"
    assert dataset["errors"] == 0, dataset["report"]["problems"]
    # 5 annotations per image: the crowd one is left out, and the two RLE encodings of one
    # mask give the same line (a duplicate the report warns of)
    assert dataset["instances"] == 4 * 3
    duplicates = [p for p in dataset["report"]["problems"] if p["code"] == "duplicate_label"]
    assert len(duplicates) == 4 and {p["line"] for p in duplicates} == {4}
    assert any("crowd" in note for note in dataset["notes"])
    folder = yolo_workspace / "datasets" / "coco-seg"
    lines = [
        line.split()
        for path in sorted((folder / "labels").rglob("*.txt"))
        for line in path.read_text().splitlines()
    ]
    assert len(lines) == 16
    for parts in lines[2:4]:  # the RLE masks, traced to the rectangle's outline
        xs, ys = [float(v) for v in parts[1::2]], [float(v) for v in parts[2::2]]
        assert min(xs) == pytest.approx(10 / 40, abs=0.03) and max(xs) == pytest.approx(
            29 / 40, abs=0.03
        )
        assert min(ys) == pytest.approx(5 / 30, abs=0.04) and max(ys) == pytest.approx(
            19 / 30, abs=0.04
        )
    assert (len(lines[1]) - 1) // 2 >= 6, "the two polygons are merged into one outline"

    pose = zipped(coco_folder(tmp_path / "cpose", "pose"), tmp_path / "cpose.zip")
    dataset = await upload(jp_fetch, "coco-pose", pose)
    assert dataset["task"] == "pose" and dataset["errors"] == 0, dataset["report"]["problems"]
    written = yaml.safe_load((yolo_workspace / "datasets" / "coco-pose" / "data.yaml").read_text())
    assert written["kpt_shape"] == [17, 3]
    assert written["flip_idx"][:5] == [0, 2, 1, 4, 3]
    assert dataset["instances"] == 4, "instances without a labelled keypoint are left out"
    visibility = dataset["report"]["task_stats"]["keypoint_visibility"]
    assert visibility[0]["2"] == 4 and visibility[5]["1"] == 4 and visibility[1]["0"] == 4

    root = tmp_path / "dota"
    for i in range(3):
        Image.new("RGB", (100, 50), (i * 60, 90, 30)).save(_mkparent(root / "images" / f"d{i}.png"))
        _mkparent(root / "labelTxt" / f"d{i}.txt").write_text(
            "imagesource:test\ngsd:0.5\n50 5 80 25 50 45 20 25 plane 0\n"
            "10 10 30 10 30 30 10 30 ship 1\nbad line\n"
        )
    dataset = await upload(jp_fetch, "dota", zipped(root, tmp_path / "dota.zip"))
    assert dataset["format"] == "dota" and dataset["task"] == "obb"
    assert dataset["report"]["names"] == {"0": "plane", "1": "ship"}
    assert dataset["instances"] == 6 and dataset["errors"] == 0
    bad = [p for p in dataset["report"]["problems"] if p["code"] == "bad_object"]
    assert len(bad) == 3 and bad[0]["line"] == 5
    label = next((yolo_workspace / "datasets" / "dota" / "labels").rglob("d*.txt")).read_text()
    assert label.splitlines()[0].split()[1:3] == ["0.500000", "0.100000"]


def _mkparent(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


# --------------------------------------------------------------------------- samples


async def test_samples_carry_task_geometry(
    jp_fetch: Any, tmp_path: Path, yolo_workspace: Path
) -> None:
    for task in ("detect", "segment", "pose", "obb", "classify", "semantic", "depth"):
        await upload(jp_fetch, f"s-{task}", zipped(build(task, tmp_path / task), tmp_path / "z"))

    async def samples(task: str) -> list[dict[str, Any]]:
        result = await fetch_json(
            jp_fetch, "yolo", "datasets", f"s-{task}", "samples",
            params={"split": "train", "count": 2, "thumbnail": 16},
        )  # fmt: skip
        assert result["task"] == task
        assert len(result["samples"]) == 2
        items: list[dict[str, Any]] = result["samples"]
        return items

    for sample in await samples("detect"):
        assert sample["boxes"][0]["xyxy"] == [9.6, 9.6, 22.4, 22.4]
        assert sample["boxes"][0]["xywhn"] == [0.5, 0.5, 0.4, 0.4]
        assert sample["thumbnail"].startswith("data:image/jpeg;base64,")
    for sample in await samples("segment"):
        polygon = sample["polygons"][0]
        assert polygon["points_n"] == [[0.2, 0.2], [0.8, 0.2], [0.5, 0.8]]
        assert polygon["points"] == [[6.4, 6.4], [25.6, 6.4], [16.0, 25.6]]
        assert sample["boxes"][0]["xywhn"] == pytest.approx([0.5, 0.5, 0.6, 0.6])
        assert sample["boxes"][0]["polygon"] == polygon["points_n"]
    for sample in await samples("pose"):
        points = sample["keypoints"][0]["points"]
        assert points == [[12.8, 12.8, 2.0], [19.2, 12.8, 1.0], [16.0, 19.2, 0.0]]
        assert sample["boxes"][0]["keypoints"][1] == [0.6, 0.4, 1.0]
    for sample in await samples("obb"):
        assert sample["corners"][0]["corners_n"] == [[0.5, 0.2], [0.8, 0.5], [0.5, 0.8], [0.2, 0.5]]
        assert sample["corners"][0]["corners"][1] == [25.6, 16.0]
        assert sample["boxes"][0]["corners"] == sample["corners"][0]["corners_n"]
    for sample in await samples("classify"):
        assert sample["class_name"] in ("a", "b") and sample["path"].startswith("train/")
        assert sample["class_id"] == {"a": 0, "b": 1}[sample["class_name"]]
    for task in ("semantic", "depth"):
        for sample in await samples(task):
            assert sample["overlay"].startswith("data:image/png;base64,")
            assert sample["overlay_size"] == [16, 16]
    semantic = await samples("semantic")
    assert semantic[0]["classes_present"] == [0, 1, 255]


# --------------------------------------------------------------------------- synthetic


async def test_synthetic_dataset_of_every_task(jp_fetch: Any, yolo_workspace: Path) -> None:
    from jupyter_yolo.datasets.synthetic_tasks import SYNTHETIC_NAMES

    for task in ("segment", "pose", "obb", "classify", "semantic", "depth"):
        dataset = await post_json(jp_fetch, "yolo", "datasets", body={"synthetic": task})
        assert dataset["name"] == SYNTHETIC_NAMES[task]
        assert dataset["task"] == task and dataset["task_source"] == "forced"
        assert dataset["status"] == "ok" and dataset["errors"] == 0, dataset["report"]["problems"]
        assert dataset["source"] == f"synthetic:{task}"
        assert dataset["images"] > 0 and dataset["report"]["task_stats"]
    named = await post_json(
        jp_fetch, "yolo", "datasets", body={"synthetic": "obb", "name": "my-obb"}
    )
    assert named["name"] == "my-obb" and named["task"] == "obb"
    written = yaml.safe_load(
        (yolo_workspace / "datasets" / "shapes-pose" / "data.yaml").read_text()
    )
    assert written["kpt_shape"] and written["flip_idx"] and "path" not in written
    sem = yaml.safe_load((yolo_workspace / "datasets" / "shapes-sem" / "data.yaml").read_text())
    assert sem["masks_dir"] == "masks"
    for body, words in (
        ({"synthetic": "obb"}, "already exists"),
        ({"synthetic": "nope"}, "Unknown task"),
        ({"synthetic": "obb", "path": "x"}, "not both"),
    ):
        error = await expect_error(
            jp_fetch, 409 if words == "already exists" else 400, "yolo", "datasets",
            method="POST", body=json.dumps(body),
        )  # fmt: skip
        assert words in error["message"]
    assert list((yolo_workspace / ".tmp").iterdir()) == []


def test_large_coco_json_is_parsed_once(tmp_path: Path) -> None:
    """A several-MB COCO file is converted with one parsed copy in memory, not several."""
    import random
    import tracemalloc

    from jupyter_yolo.datasets.layouts import normalise

    root = tmp_path / "raw"
    (root / "images").mkdir(parents=True)
    (root / "annotations").mkdir()
    rng = random.Random(0)
    images, annotations = [], []
    for i in range(70):
        Image.new("RGB", (64, 48), (i, 2 * i % 256, 50)).save(root / "images" / f"i{i}.png")
        images.append({"id": i, "file_name": f"i{i}.png", "width": 64, "height": 48})
        for j in range(150):
            polygon = [round(rng.uniform(1, 45), 2) for _ in range(24)]
            annotations.append(
                {"id": i * 1000 + j, "image_id": i, "category_id": 1 + j % 3, "iscrowd": 0,
                 "bbox": [5, 5, 20, 20], "area": 400, "segmentation": [polygon]}
            )  # fmt: skip
    content = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": k, "name": f"c{k}"} for k in (1, 2, 3)],
    }
    path = root / "annotations" / "instances_train.json"
    path.write_text(json.dumps(content))
    del content, images, annotations
    size = path.stat().st_size
    assert size > 2_500_000
    tracemalloc.start()
    try:
        result = normalise(root, tmp_path / "out")
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.format == "coco"
    assert len(list((tmp_path / "out" / "labels").rglob("*.txt"))) == 70
    # the parsed objects of a polygon-heavy file take ~7-8x its bytes; two copies would be 15x+
    assert peak < 11 * size, f"peak {peak / size:.1f}x the file size"
