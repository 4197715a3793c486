"""The datasets REST API against a real jupyter server: upload, import, list, report, samples,
files, delete, progress, authentication before the body, and the job gate."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import time
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
import yaml
from jupyter_server.auth.authorizer import Authorizer
from PIL import Image
from tornado.httpclient import HTTPClientError

from .conftest import COCO8, expect_error, fetch_json
from .dataset_tools import (
    assert_matches_labels,
    expected_stats,
    names_of,
    upload,
    yolo_to_coco,
    yolo_to_voc,
    zip_dir,
)

TRAIN = {
    "kind": "train",
    "model": "yolov8n.yaml",
    "epochs": 1,
    "imgsz": 64,
    "batch": 4,
    "device": "cpu",
    "workers": 0,
    "plots": False,
}


# --------------------------------------------------------------------------- uploads


@pytest.mark.skipif(not COCO8.is_dir(), reason="../shared/datasets/coco8 is not present")
async def test_upload_coco8(jp_fetch: Any, tmp_path: Path, yolo_workspace: Path) -> None:
    archive = zip_dir(COCO8, tmp_path / "coco8.zip", prefix="coco8/")
    dataset = await upload(jp_fetch, "coco8", archive.read_bytes())
    assert dataset["format"] == "yolo" and dataset["source"] == "upload:coco8.zip"
    assert dataset["status"] == "ok"
    assert dataset["report"]["problems"] == [], "no false alarms on clean coco8"
    assert dataset["classes"] == len(names_of(COCO8 / "data.yaml"))
    assert_matches_labels(dataset, COCO8)
    names = names_of(COCO8 / "data.yaml")
    for row in dataset["report"]["class_histogram"]:
        assert row["name"] == names[row["id"]]
    # the same report comes back from GET, from the cache
    again = await fetch_json(jp_fetch, "yolo", "datasets", "coco8")
    assert again["report"]["fingerprint"] == dataset["report"]["fingerprint"]
    assert again["report"]["checked"] == dataset["report"]["checked"]
    written = yaml.safe_load((yolo_workspace / "datasets" / "coco8" / "data.yaml").read_text())
    assert "path" not in written and "download" not in written
    assert list((yolo_workspace / ".tmp").iterdir()) == []


async def test_upload_generated_dataset(
    jp_fetch: Any, shapes_template: Path, tmp_path: Path, yolo_workspace: Path
) -> None:
    archive = zip_dir(shapes_template, tmp_path / "gen.zip")
    dataset = await upload(jp_fetch, "gen", archive.read_bytes())
    assert dataset["status"] == "ok" and dataset["errors"] == 0 and dataset["warnings"] == 0
    assert dataset["report"]["problems"] == [], "no false alarms on the generated dataset"
    assert_matches_labels(dataset, shapes_template)
    assert dataset["report"]["box_sizes"]["area_buckets"]
    folder = yolo_workspace / "datasets" / "gen"
    written = yaml.safe_load((folder / "data.yaml").read_text())
    assert "path" not in written, "the template's absolute path must not survive"
    assert written["names"] == names_of(shapes_template / "data.yaml")
    assert sorted(p.name for p in folder.iterdir()) == [
        "data.yaml",
        "images",
        "labels",
        "meta.json",
        "report.json",
    ]

    listing = (await fetch_json(jp_fetch, "yolo", "datasets"))["datasets"]
    (entry,) = [d for d in listing if d["name"] == "gen"]
    assert entry["status"] == "ok" and entry["builtin"] is False
    assert entry["format"] == "yolo" and entry["source"] == "upload:gen.zip"
    assert entry["size"] > 0 and entry["created"] > 0
    assert entry["splits"]["train"]["images"] == 32 and "report" not in entry

    await expect_error(
        jp_fetch,
        409,
        "yolo",
        "datasets",
        method="POST",
        params={"name": "gen"},
        body=archive.read_bytes(),
        headers={"Content-Type": "application/zip"},
    )


async def test_upload_refusals_without_body_problems(jp_fetch: Any) -> None:
    for params, headers, body, code, fragment in [
        ({"name": "../x"}, {"Content-Type": "application/zip"}, b"PK", 400, "Invalid dataset"),
        ({"name": "uploads"}, {"Content-Type": "application/zip"}, b"PK", 400, "reserved"),
        ({"name": "ok"}, {"Content-Type": "text/plain"}, b"PK", 415, "application/zip"),
        ({}, {"Content-Type": "application/zip"}, b"PK", 400, "?name="),
        ({"name": "empty"}, {"Content-Type": "application/zip"}, b"", 400, "empty"),
        ({}, {"Content-Type": "application/json"}, b"{nope", 400, "not valid JSON"),
        ({}, {}, json.dumps({"name": "a", "path": "x.zip", "more": 1}), 400, "Unknown key"),
        ({}, {}, json.dumps({"name": "a"}), 400, "needs 'path'"),
        ({}, {}, json.dumps({"name": "a", "path": "../etc"}), 400, "stay inside"),
        ({}, {}, json.dumps({"name": "a", "path": "missing.zip"}), 404, "does not exist"),
        ({}, {}, json.dumps({"name": "a b", "path": "x.zip"}), 400, "Invalid dataset"),
    ]:
        error = await expect_error(
            jp_fetch,
            code,
            "yolo",
            "datasets",
            method="POST",
            params=params,
            headers=headers,
            body=body,
            allow_nonstandard_methods=True,
        )
        assert fragment in error["message"], (params, error)


async def test_import_from_workspace_zip_and_folder(
    jp_fetch: Any, shapes_template: Path, yolo_workspace: Path
) -> None:
    uploads = yolo_workspace / "uploads"
    uploads.mkdir()
    zip_dir(shapes_template, uploads / "mine.zip")
    shutil.copytree(shapes_template, uploads / "folder")
    response = await jp_fetch(
        "yolo",
        "datasets",
        method="POST",
        body=json.dumps({"name": "mine", "path": "uploads/mine.zip"}),
    )
    assert response.code == 201
    dataset = json.loads(response.body)
    assert dataset["source"] == "import:uploads/mine.zip"
    assert_matches_labels(dataset, shapes_template)
    copied = json.loads(
        (
            await jp_fetch(
                "yolo",
                "datasets",
                method="POST",
                body=json.dumps({"name": "copied", "path": "uploads/folder"}),
            )
        ).body
    )
    assert copied["source"] == "import:uploads/folder" and copied["status"] == "ok"
    assert_matches_labels(copied, shapes_template)
    # the sources are left as they were
    assert (uploads / "mine.zip").is_file()
    assert expected_stats(uploads / "folder") == expected_stats(shapes_template)


async def test_single_pool_gets_a_seeded_validation_split(
    jp_fetch: Any, shapes_template: Path, tmp_path: Path
) -> None:
    pool = tmp_path / "pool"
    (pool / "images").mkdir(parents=True)
    (pool / "labels").mkdir()
    for image in sorted(shapes_template.glob("images/*/*.jpg")):
        name = f"{image.parent.name}_{image.name}"
        shutil.copy(image, pool / "images" / name)
        label = shapes_template / "labels" / image.parent.name / f"{image.stem}.txt"
        shutil.copy(label, pool / "labels" / Path(name).with_suffix(".txt"))
    names = names_of(shapes_template / "data.yaml")
    (pool / "classes.txt").write_text("\n".join(names[i] for i in sorted(names)) + "\n")
    archive = zip_dir(pool, tmp_path / "pool.zip").read_bytes()
    first = await upload(jp_fetch, "pool1", archive)
    await upload(jp_fetch, "pool2", archive)
    total = 40
    assert first["splits"]["val"]["images"] == round(total * 0.2)
    assert first["splits"]["train"]["images"] == total - round(total * 0.2)
    assert any("no validation split" in note and "seed 0" in note for note in first["notes"])
    assert first["status"] == "ok" and first["warnings"] == 0
    assert first["report"]["names"] == {str(k): v for k, v in names.items()}
    sample_1 = await fetch_json(
        jp_fetch, "yolo", "datasets", "pool1", "samples", params={"split": "val", "count": "64"}
    )
    sample_2 = await fetch_json(
        jp_fetch, "yolo", "datasets", "pool2", "samples", params={"split": "val", "count": "64"}
    )
    assert sorted(s["path"] for s in sample_1["samples"]) == sorted(
        s["path"] for s in sample_2["samples"]
    ), "the split must be the same every time"


async def test_coco_json_is_converted(
    jp_fetch: Any, shapes_template: Path, tmp_path: Path, yolo_workspace: Path
) -> None:
    coco = yolo_to_coco(shapes_template, tmp_path / "coco")
    dataset = await upload(jp_fetch, "coco", zip_dir(coco, tmp_path / "coco.zip").read_bytes())
    assert dataset["format"] == "coco" and dataset["status"] == "ok"
    assert dataset["report"]["problems"] == []
    assert_matches_labels(dataset, shapes_template)
    assert dataset["report"]["names"] == {
        str(k): v for k, v in names_of(shapes_template / "data.yaml").items()
    }
    # every converted box equals the original label to within rounding
    folder = yolo_workspace / "datasets" / "coco"
    for original in sorted(shapes_template.glob("labels/*/*.txt")):
        converted = folder / "labels" / original.parent.name / original.name
        a = [[float(v) for v in line.split()] for line in original.read_text().splitlines()]
        b = [[float(v) for v in line.split()] for line in converted.read_text().splitlines()]
        assert len(a) == len(b)
        for row_a, row_b in zip(a, b, strict=True):
            assert row_a[0] == row_b[0]
            assert all(abs(x - y) < 2e-6 for x, y in zip(row_a[1:], row_b[1:], strict=True))


async def test_pascal_voc_is_converted(
    jp_fetch: Any, shapes_template: Path, tmp_path: Path
) -> None:
    voc = yolo_to_voc(shapes_template, tmp_path / "voc")
    dataset = await upload(
        jp_fetch, "voc", zip_dir(voc, tmp_path / "voc.zip", prefix="VOC2012/").read_bytes()
    )
    assert dataset["format"] == "voc" and dataset["status"] == "ok", dataset["report"]["problems"]
    expected = expected_stats(shapes_template)
    assert dataset["images"] == sum(c["images"] for c in expected["splits"].values())
    assert dataset["instances"] == sum(c["instances"] for c in expected["splits"].values())
    assert any("no validation split" in note for note in dataset["notes"])
    totals = {row["name"]: row["total"] for row in dataset["report"]["class_histogram"]}
    names = names_of(shapes_template / "data.yaml")
    want = {names[c]: sum(h[c] for h in expected["histogram"].values()) for c in names}
    assert totals == {n: v for n, v in want.items() if v}


# --------------------------------------------------------------------------- listing, builtin


@pytest.mark.parametrize("yolo_config", [{"builtin_dataset": True}])
async def test_builtin_shapes_is_created_and_listed(jp_fetch: Any, yolo_workspace: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        listing = (await fetch_json(jp_fetch, "yolo", "datasets"))["datasets"]
        if listing and listing[0]["name"] == "shapes" and listing[0]["status"] != "preparing":
            break
        assert time.monotonic() < deadline, listing
        await asyncio.sleep(0.2)
    shapes = listing[0]
    assert shapes["builtin"] is True and shapes["source"] == "builtin"
    assert shapes["status"] == "ok" and shapes["splits"]["train"]["images"] == 96
    data = yaml.safe_load((yolo_workspace / "datasets" / "shapes" / "data.yaml").read_text())
    assert "path" not in data
    assert [p for p in (yolo_workspace / ".tmp").iterdir()] == []


async def test_delete_and_not_found(
    jp_fetch: Any, shapes_template: Path, tmp_path: Path, yolo_workspace: Path
) -> None:
    await upload(jp_fetch, "gone", zip_dir(shapes_template, tmp_path / "g.zip").read_bytes())
    response = await jp_fetch("yolo", "datasets", "gone", method="DELETE")
    assert response.code == 204
    assert not (yolo_workspace / "datasets" / "gone").exists()
    await expect_error(jp_fetch, 404, "yolo", "datasets", "gone")
    await expect_error(jp_fetch, 404, "yolo", "datasets", "gone", method="DELETE")
    await expect_error(jp_fetch, 404, "yolo", "datasets", "gone", "samples")
    assert (await fetch_json(jp_fetch, "yolo", "datasets"))["datasets"] == []


# --------------------------------------------------------------------------- preview


async def test_samples_and_files(
    jp_fetch: Any, shapes_template: Path, tmp_path: Path, yolo_workspace: Path
) -> None:
    await upload(jp_fetch, "prev", zip_dir(shapes_template, tmp_path / "p.zip").read_bytes())
    result = await fetch_json(
        jp_fetch,
        "yolo",
        "datasets",
        "prev",
        "samples",
        params={"count": "3", "split": "val", "thumbnail": "32"},
    )
    assert result["split"] == "val" and result["images_in_split"] == 8
    assert len(result["samples"]) == 3
    names = names_of(shapes_template / "data.yaml")
    for sample in result["samples"]:
        assert sample["path"].startswith("images/val/")
        assert sample["width"] == sample["height"] == 64
        label = shapes_template / "labels" / "val" / (Path(sample["path"]).stem + ".txt")
        lines = [line.split() for line in label.read_text().splitlines()]
        assert len(sample["boxes"]) == len(lines)
        for box, line in zip(sample["boxes"], lines, strict=True):
            assert box["class_id"] == int(line[0])
            assert box["class_name"] == names[int(line[0])]
            cx, cy, w, h = (float(v) for v in line[1:])
            assert box["xywhn"] == pytest.approx([cx, cy, w, h])
            assert box["xyxy"] == pytest.approx(
                [(cx - w / 2) * 64, (cy - h / 2) * 64, (cx + w / 2) * 64, (cy + h / 2) * 64],
                abs=0.01,
            )
        assert sample["thumbnail"].startswith("data:image/jpeg;base64,")
        thumb = Image.open(BytesIO(base64.b64decode(sample["thumbnail"].split(",", 1)[1])))
        assert max(thumb.size) <= 32
        # the URL serves the image itself
        assert sample["url"].endswith(f"/yolo/datasets/prev/files/{sample['path']}")
        relative = sample["url"].split("/yolo/", 1)[1]
        image = await jp_fetch("yolo", *relative.split("/"))
        assert image.headers["Content-Type"] == "image/jpeg"
        assert image.headers["X-Content-Type-Options"] == "nosniff"
        assert image.body == (yolo_workspace / "datasets" / "prev" / sample["path"]).read_bytes()
    again = await fetch_json(
        jp_fetch, "yolo", "datasets", "prev", "samples", params={"count": "3", "split": "val"}
    )
    assert [s["path"] for s in again["samples"]] == [s["path"] for s in result["samples"]]
    assert "thumbnail" not in again["samples"][0]
    (yolo_workspace / "secret.txt").write_text("secret")
    (yolo_workspace / "datasets" / "prev" / "images" / "val" / "link.jpg").symlink_to(
        yolo_workspace / "secret.txt"
    )
    for path, code in [
        ("../../secret.txt", 400),
        ("images/val/link.jpg", 404),
        ("meta.json", 200),
        (".hidden.jpg", 400),
        ("labels/x.sh", 404),
    ]:
        if code == 200:
            assert (await jp_fetch("yolo", "datasets", "prev", "files", path)).code == 200
            continue
        with pytest.raises(HTTPClientError) as info:
            await jp_fetch("yolo", "datasets", "prev", "files", path)
        assert info.value.code in (code, 404), path
    await expect_error(
        jp_fetch, 400, "yolo", "datasets", "prev", "samples", params={"split": "nope"}
    )
    await expect_error(
        jp_fetch, 400, "yolo", "datasets", "prev", "samples", params={"count": "1000"}
    )


# --------------------------------------------------------------------------- progress


async def test_progress_of_an_upload_in_flight(
    jp_fetch: Any, shapes_template: Path, tmp_path: Path
) -> None:
    data = zip_dir(shapes_template, tmp_path / "slow.zip").read_bytes()
    half = len(data) // 2
    seen: dict[str, Any] = {}

    async def producer(write: Any) -> None:
        await write(data[:half])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            listing = await fetch_json(jp_fetch, "yolo", "datasets", "uploads")
            if listing["uploads"] and listing["uploads"][0]["bytes_received"] == half:
                seen.update(listing["uploads"][0])
                break
            await asyncio.sleep(0.05)
        await write(data[half:])

    response = await jp_fetch(
        "yolo",
        "datasets",
        method="POST",
        params={"name": "slow", "filename": "slow.zip"},
        headers={"Content-Type": "application/zip", "Content-Length": str(len(data))},
        body_producer=producer,
        request_timeout=60,
    )
    assert response.code == 201
    assert seen["name"] == "slow" and seen["stage"] == "receiving" and seen["kind"] == "upload"
    assert seen["bytes_total"] == len(data) and seen["stage_fraction"] == pytest.approx(
        half / len(data), abs=1e-3
    )
    listing = await fetch_json(jp_fetch, "yolo", "datasets", "uploads")
    assert listing["uploads"] == []
    assert listing["recent"][0]["name"] == "slow" and listing["recent"][0]["stage"] == "done"
    assert listing["recent"][0]["source"] == "upload:slow.zip"


# --------------------------------------------------------------------------- auth


class NoDatasetWrites(Authorizer):
    """Lets everything through except writing datasets."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return not (resource == "jupyter_yolo:datasets" and action == "write")


async def _post_big_upload(jp_fetch: Any, headers: dict[str, str]) -> tuple[int, bool, Any]:
    called = False

    async def producer(write: Any) -> None:
        nonlocal called
        called = True
        await write(b"\0" * 1024)

    with pytest.raises(HTTPClientError) as info:
        await jp_fetch(
            "yolo",
            "datasets",
            method="POST",
            params={"name": "big"},
            headers={"Content-Type": "application/zip", "Content-Length": str(10**9), **headers},
            body_producer=producer,
            expect_100_continue=True,
        )
    body = json.loads(info.value.response.body) if info.value.response else None
    return info.value.code, called, body


async def test_upload_needs_the_token_before_the_body(jp_fetch: Any, yolo_workspace: Path) -> None:
    code, called, _ = await _post_big_upload(jp_fetch, {"Authorization": "token wrong"})
    assert code == 403 and not called, "the server must refuse without reading the body"
    for parts in [
        ("yolo", "datasets"),
        ("yolo", "datasets", "uploads"),
        ("yolo", "datasets", "x"),
        ("yolo", "datasets", "x", "samples"),
        ("yolo", "datasets", "x", "files", "a.jpg"),
    ]:
        with pytest.raises(HTTPClientError) as info:
            await jp_fetch(*parts, headers={"Authorization": "token wrong"})
        assert info.value.code == 403
    assert list((yolo_workspace / ".tmp").iterdir()) == []


@pytest.mark.parametrize("server_app_config", [{"authorizer_class": NoDatasetWrites}])
async def test_upload_needs_authorization_before_the_body(
    jp_fetch: Any, yolo_workspace: Path
) -> None:
    code, called, body = await _post_big_upload(jp_fetch, {})
    assert code == 403 and not called
    assert "not authorized" in body["message"]
    assert (await fetch_json(jp_fetch, "yolo", "datasets"))["datasets"] == []
    assert list((yolo_workspace / ".tmp").iterdir()) == []


# --------------------------------------------------------------------------- the job gate


async def test_dataset_with_errors_cannot_be_used_for_training(
    jp_fetch: Any, shapes_template: Path, tmp_path: Path, yolo_workspace: Path
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(shapes_template, broken)
    label = broken / "labels" / "train" / "shapes_000000.txt"
    label.write_text(label.read_text() + "9 0.5 0.5 0.1 0.1\n")
    dataset = await upload(jp_fetch, "broken", zip_dir(broken, tmp_path / "b.zip").read_bytes())
    assert dataset["status"] == "has_errors" and dataset["errors"] == 1
    for data in ("broken", "datasets/broken/data.yaml"):
        error = await expect_error(
            jp_fetch, 400, "yolo", "jobs", method="POST", body=json.dumps({**TRAIN, "data": data})
        )
        assert "GET /yolo/datasets/broken" in error["message"]
        assert "labels/train/shapes_000000.txt:" in error["message"]
        assert error["details"]["report"] == "/yolo/datasets/broken"
    assert list((yolo_workspace / "jobs").iterdir()) == []
    # fixed in place (e.g. in JupyterLab's editor), the report is recomputed and the gate opens
    fixed = yolo_workspace / "datasets" / "broken" / "labels" / "train" / "shapes_000000.txt"
    fixed.write_text((shapes_template / "labels" / "train" / "shapes_000000.txt").read_text())
    report = await fetch_json(jp_fetch, "yolo", "datasets", "broken")
    assert report["status"] == "ok"


@pytest.fixture
def leftovers(yolo_workspace: Path) -> Path:
    """Scratch folders a killed server left behind (made before the server starts)."""
    stale = yolo_workspace / ".tmp" / "ds-0123456789abcdef"
    (stale / "raw" / "images").mkdir(parents=True)
    (stale / "upload.zip").write_bytes(b"PK half an archive")
    return stale


async def test_stale_scratch_folders_are_removed_at_start(leftovers: Path, jp_fetch: Any) -> None:
    # a real server starts this with its event loop; the test server only by the first request
    assert (await fetch_json(jp_fetch, "yolo", "datasets"))["datasets"] == []
    deadline = time.monotonic() + 10
    while leftovers.exists():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    assert (await fetch_json(jp_fetch, "yolo", "datasets"))["datasets"] == []
