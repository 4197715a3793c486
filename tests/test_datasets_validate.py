"""The validation report: one seeded mistake of each kind is named with its file and line, and
clean datasets (coco8, the generated one) raise no false alarm."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from jupyter_yolo.datasets.validate import parse_names, validate_dataset

from .conftest import COCO8
from .dataset_tools import zip_dir


def _append(folder: Path, relative: str, line: str) -> int:
    """Append a line to a label file; return its line number."""
    path = folder / relative
    text = path.read_text()
    path.write_text(text + line + "\n")
    return len(text.splitlines()) + 1


def seed_mistakes(folder: Path) -> set[tuple[str, str, str, int | None]]:
    """Put one mistake of each kind into a copy of the generated dataset; return what the report
    must say: (severity, code, file, line)."""
    expected: set[tuple[str, str, str, int | None]] = set()
    image = folder / "images" / "train" / "shapes_000001.jpg"
    data = image.read_bytes()
    image.write_bytes(data[: len(data) // 2])  # truncated: still starts like a JPEG
    expected.add(("error", "corrupt_image", "images/train/shapes_000001.jpg", None))

    (folder / "labels" / "train" / "shapes_000002.txt").unlink()
    expected.add(("warning", "image_without_label", "images/train/shapes_000002.jpg", None))

    (folder / "labels" / "train" / "orphan.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    expected.add(("warning", "label_without_image", "labels/train/orphan.txt", None))

    for relative, line, code in [
        ("labels/train/shapes_000003.txt", "0 0.5 0.5 0.1", "malformed_line"),
        ("labels/train/shapes_000004.txt", "3 0.5 0.5 0.1 0.1", "class_out_of_range"),
        ("labels/train/shapes_000005.txt", "1 1.25 0.5 0.1 0.1", "coordinates_out_of_range"),
        ("labels/train/shapes_000006.txt", "2 0.5 0.5 0 0.1", "zero_area_box"),
    ]:
        expected.add(("error", code, relative, _append(folder, relative, line)))

    shutil.copy(
        folder / "images" / "train" / "shapes_000007.jpg",
        folder / "images" / "val" / "copy_of_7.jpg",
    )
    shutil.copy(
        folder / "labels" / "train" / "shapes_000007.txt",
        folder / "labels" / "val" / "copy_of_7.txt",
    )
    expected.add(("warning", "duplicate_image", "images/val/copy_of_7.jpg", None))

    lines = (folder / "data.yaml").read_text().splitlines()
    nc_line = next(i for i, line in enumerate(lines, 1) if line.startswith("nc:"))
    lines[nc_line - 1] = "nc: 4"
    (folder / "data.yaml").write_text("\n".join(lines) + "\n")
    expected.add(("error", "names_inconsistent", "data.yaml", nc_line))
    return expected


def found(report: dict[str, Any]) -> set[tuple[str, str, str, int | None]]:
    return {(p["severity"], p["code"], p["file"], p["line"]) for p in report["problems"]}


@pytest.fixture
def mistaken(shapes_template: Path, tmp_path: Path) -> tuple[Path, set[Any]]:
    folder = tmp_path / "mistaken"
    shutil.copytree(shapes_template, folder)
    lines = (folder / "data.yaml").read_text().splitlines()
    # no absolute 'path' (it points at the template), as in an uploaded dataset
    (folder / "data.yaml").write_text("\n".join(x for x in lines if not x.startswith("path:")))
    return folder, seed_mistakes(folder)


def test_report_names_every_seeded_mistake(mistaken: tuple[Path, set[Any]]) -> None:
    folder, expected = mistaken
    report = validate_dataset(folder)
    assert found(report) == expected
    assert report["status"] == "has_errors"
    assert report["errors"] == sum(1 for e in expected if e[0] == "error")
    assert report["warnings"] == sum(1 for e in expected if e[0] == "warning")
    assert all(p["message"] for p in report["problems"])
    duplicate = next(p for p in report["problems"] if p["code"] == "duplicate_image")
    assert "images/train/shapes_000007.jpg" in duplicate["message"]
    assert "train and the val split" in duplicate["message"]
    assert report["splits"]["train"]["unreadable_images"] == 1
    assert report["splits"]["train"]["backgrounds"] == 1


async def test_uploaded_report_names_every_seeded_mistake(
    jp_fetch: Any, mistaken: tuple[Path, set[Any]], tmp_path: Path, yolo_workspace: Path
) -> None:
    folder, expected = mistaken
    archive = zip_dir(folder, tmp_path / "mistaken.zip")
    response = await jp_fetch(
        "yolo",
        "datasets",
        method="POST",
        params={"name": "mistaken"},
        body=archive.read_bytes(),
        headers={"Content-Type": "application/zip"},
    )
    assert response.code == 201
    created = json.loads(response.body)
    assert created["status"] == "has_errors"
    report = json.loads((await jp_fetch("yolo", "datasets", "mistaken")).body)["report"]
    # lines point into the stored files; data.yaml was rewritten in the canonical form
    stored = (yolo_workspace / "datasets" / "mistaken" / "data.yaml").read_text().splitlines()
    nc_line = next(i for i, line in enumerate(stored, 1) if line.startswith("nc:"))
    assert stored[nc_line - 1] == "nc: 4"
    expected = {(s, c, f, nc_line if c == "names_inconsistent" else n) for s, c, f, n in expected}
    assert found(report) == expected
    listing = json.loads((await jp_fetch("yolo", "datasets")).body)["datasets"]
    assert listing[0]["status"] == "has_errors" and listing[0]["errors"] == report["errors"]


def test_names_missing_is_an_error_in_a_folder(shapes_template: Path, tmp_path: Path) -> None:
    folder = tmp_path / "nameless"
    shutil.copytree(shapes_template, folder)
    data = yaml.safe_load((folder / "data.yaml").read_text())
    del data["names"], data["nc"], data["path"]
    (folder / "data.yaml").write_text(yaml.safe_dump(data))
    report = validate_dataset(folder)
    assert {(p["code"], p["file"]) for p in report["problems"]} == {("names_missing", "data.yaml")}


async def test_names_missing_in_an_upload_are_invented_with_a_warning(
    jp_fetch: Any, shapes_template: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "nameless"
    shutil.copytree(shapes_template, folder)
    (folder / "data.yaml").write_text("train: images/train\nval: images/val\n")
    response = await jp_fetch(
        "yolo",
        "datasets",
        method="POST",
        params={"name": "nameless"},
        body=zip_dir(folder, tmp_path / "n.zip").read_bytes(),
        headers={"Content-Type": "application/zip"},
    )
    dataset = json.loads(response.body)
    assert dataset["status"] == "ok"
    assert [(p["code"], p["severity"]) for p in dataset["report"]["problems"]] == [
        ("names_missing", "warning")
    ]
    assert dataset["report"]["names"] == {"0": "class_0", "1": "class_1", "2": "class_2"}


@pytest.mark.parametrize(
    ("names", "problem"),
    [
        (["a", "b"], None),
        ({0: "a", 1: "b"}, None),
        ({"0": "a", "1": "b"}, None),
        ({0: "a", 2: "c"}, "without gaps"),
        ({"x": "a"}, "not a class id"),
        ("a b c", "must be a list"),
        ([["nested"]], "must be a name"),
    ],
)
def test_class_names(names: Any, problem: str | None) -> None:
    parsed = parse_names(names)
    if problem is None:
        assert parsed == {0: "a", 1: "b"}
    else:
        assert isinstance(parsed, str) and problem in parsed


@pytest.mark.skipif(not COCO8.is_dir(), reason="../shared/datasets/coco8 is not present")
def test_no_false_alarms_on_coco8_in_place() -> None:
    report = validate_dataset(COCO8)
    assert report["problems"] == [] and report["status"] == "ok"
    assert report["splits"]["train"]["images"] == len(list((COCO8 / "images" / "train").iterdir()))


def test_no_false_alarms_on_the_generated_dataset(shapes_template: Path) -> None:
    report = validate_dataset(shapes_template)
    assert report["problems"] == [] and report["status"] == "ok"
    assert report["box_sizes"]["width_pixels"]["min"] > 0


def test_an_image_plugin_that_raises_anything_marks_the_image_unreadable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PIL plugins (or patches of Image.open, as ultralytics installs) raise more than OSError."""
    from PIL import Image

    from jupyter_yolo.datasets.validate import check_image

    path = tmp_path / "x.jpg"
    path.write_bytes(b"not an image at all")

    def failing_open(*_args: object, **_kwargs: object) -> None:
        raise ModuleNotFoundError("No module named 'pi_heif'")

    monkeypatch.setattr(Image, "open", failing_open)
    dims, digest, problem, large = check_image(path)
    assert dims is None and digest and not large
    assert problem is not None and "cannot be decoded" in problem
