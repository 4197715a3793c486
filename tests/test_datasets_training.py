"""Uploaded datasets train: coco8, the generated dataset and a COCO JSON conversion, one real
ultralytics job each through the job API (tiny settings), all ``succeeded``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from .conftest import COCO8, fetch_json, post_json, wait_for_job
from .dataset_tools import assert_matches_labels, upload, yolo_to_coco, zip_dir

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

pytestmark = pytest.mark.slow


async def train(jp_fetch: Any, data: str, workspace: Path) -> dict[str, Any]:
    job = await post_json(jp_fetch, "yolo", "jobs", body={**TRAIN, "data": data})
    final = await wait_for_job(jp_fetch, job["id"], {"succeeded", "failed", "interrupted"})
    assert final["status"] == "succeeded", final
    assert (workspace / "jobs" / job["id"] / "run" / "weights" / "best.pt").is_file()
    return final


@pytest.mark.skipif(not COCO8.is_dir(), reason="../shared/datasets/coco8 is not present")
async def test_uploaded_coco8_trains(jp_fetch: Any, tmp_path: Path, yolo_workspace: Path) -> None:
    archive = zip_dir(COCO8, tmp_path / "coco8.zip", prefix="coco8/")
    dataset = await upload(jp_fetch, "coco8", archive.read_bytes())
    assert_matches_labels(dataset, COCO8)
    await train(jp_fetch, "coco8", yolo_workspace)


async def test_uploaded_generated_dataset_trains_and_is_kept_while_in_use(
    jp_fetch: Any, shapes_template: Path, tmp_path: Path, yolo_workspace: Path
) -> None:
    dataset = await upload(
        jp_fetch, "gen", zip_dir(shapes_template, tmp_path / "gen.zip").read_bytes()
    )
    assert_matches_labels(dataset, shapes_template)
    job = await post_json(
        jp_fetch, "yolo", "jobs", body={**TRAIN, "data": "datasets/gen/data.yaml"}
    )
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("yolo", "datasets", "gen", method="DELETE")
    assert info.value.code == 409
    assert job["id"] in json.loads(info.value.response.body)["message"]
    final = await wait_for_job(jp_fetch, job["id"], {"succeeded", "failed", "interrupted"})
    assert final["status"] == "succeeded", final
    response = await jp_fetch("yolo", "datasets", "gen", method="DELETE")
    assert response.code == 204
    assert (await fetch_json(jp_fetch, "yolo", "datasets"))["datasets"] == []


async def test_uploaded_coco_json_trains(
    jp_fetch: Any, shapes_template: Path, tmp_path: Path, yolo_workspace: Path
) -> None:
    coco = yolo_to_coco(shapes_template, tmp_path / "coco")
    dataset = await upload(jp_fetch, "cocojson", zip_dir(coco, tmp_path / "coco.zip").read_bytes())
    assert dataset["format"] == "coco" and dataset["status"] == "ok"
    assert_matches_labels(dataset, shapes_template)
    await train(jp_fetch, "cocojson", yolo_workspace)
