"""``POST /yolo/predict`` gives what a predict job gives, for every task, on the same image.

A real server; tiny models of every task that trains offline (tests/predict_service_models.py,
in a subprocess: the pytest process never imports ultralytics); for each, a predict job and a
request to the warm service on the same PNG with the same backend (PyTorch), conf, iou and
imgsz. Objects: same classes and count in the same order, boxes within 1 px, scores within
1e-3; classify: the same top-5; semantic: at least 99 % of the pixels the same class; depth:
every pixel within 1 mm. With ``max_predict_workers`` 2, the seven models also take turns
(least recently used idle workers are evicted).
"""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from jupyter_yolo.contract.tasks import TASKS

from .conftest import post_json, wait_for_job
from .inference_models import runner_env

ORDER = ("detect", "segment", "classify", "pose", "obb", "semantic", "depth")
NAMES = [name for name in ORDER if TASKS[name].trains_offline]
SETTINGS = {"conf": "0.05", "iou": "0.7", "imgsz": "64", "device": "cpu", "backend": "pytorch"}
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict[str, str]]]:
    """Every task's tiny model and probe image, made in a workspace of their own."""
    root = tmp_path_factory.mktemp("service-tasks")
    workspace = root / "workspace"
    workspace.mkdir()
    out = root / "index.json"
    done = subprocess.run(
        [sys.executable, "-m", "tests.predict_service_models", str(out), str(workspace), *NAMES],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=1200,
        env=runner_env(),
        check=False,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    index: dict[str, dict[str, str]] = json.loads(out.read_text())
    return workspace, index


@pytest.fixture
def yolo_workspace(models: tuple[Path, dict[str, dict[str, str]]]) -> Path:
    return models[0]


@pytest.fixture
def yolo_config() -> dict[str, Any]:
    return {"max_predict_workers": 2}


def png_array(data: bytes) -> Any:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image)


def compare(task: str, job: dict[str, Any], served: dict[str, Any], workspace: Path) -> None:
    """Assert the job's prediction of one image and the service's agree."""
    assert (job["width"], job["height"]) == (served["width"], served["height"]), task
    if task == "classify":
        assert len(served["classes"]) == min(5, len(job["classes"])) > 0, task
        assert [c["cls"] for c in job["classes"]] == [c["cls"] for c in served["classes"]]
        for a, b in zip(job["classes"], served["classes"], strict=True):
            assert abs(a["prob"] - b["prob"]) <= 1e-3, (task, a, b)
        return
    if task in ("semantic", "depth"):
        stored = (workspace / job["pixel_map"]["file"]).read_bytes()
        inline = base64.b64decode(served["pixel_map"]["png_base64"])
        a, b = png_array(stored).astype(np.int64), png_array(inline).astype(np.int64)
        assert a.shape == b.shape, task
        if task == "semantic":
            assert float(np.mean(a == b)) >= 0.99, task
        else:
            assert int(np.abs(a - b).max()) <= 1, task
        return
    jobs, answers = job["detections"], served["detections"]
    assert answers, f"{task}: nothing found at conf {SETTINGS['conf']}: the comparison is empty"
    assert [d["cls"] for d in jobs] == [d["cls"] for d in answers], task
    for a, b in zip(jobs, answers, strict=True):
        assert np.allclose(a["box_xyxy"], b["box_xyxy"], atol=1.0), (task, a, b)
        assert abs(a["conf"] - b["conf"]) <= 1e-3, (task, a, b)


@pytest.mark.slow
async def test_the_service_agrees_with_predict_jobs_for_every_task(
    jp_fetch: Any, models: tuple[Path, dict[str, dict[str, str]]]
) -> None:
    workspace, index = models
    jobs = {}
    for task in NAMES:  # queued at once; they run while the service answers
        body = {
            "kind": "predict",
            "model": index[task]["weights"],
            "source": index[task]["image"],
            "conf": float(SETTINGS["conf"]),
            "iou": float(SETTINGS["iou"]),
            "imgsz": int(SETTINGS["imgsz"]),
            "device": SETTINGS["device"],
            "backend": SETTINGS["backend"],
        }
        jobs[task] = (await post_json(jp_fetch, "yolo", "jobs", body=body))["id"]
    served = {}
    for task in NAMES:
        response = await jp_fetch(
            "yolo",
            "predict",
            method="POST",
            body=(workspace / index[task]["image"]).read_bytes(),
            headers={"Content-Type": "image/png"},
            params={"model": index[task]["weights"], **SETTINGS},
            request_timeout=600,
        )
        answer = json.loads(response.body)
        assert answer["task"] == task and answer["imgsz"] == 64
        assert answer["backend"]["name"] == "pytorch"
        served[task] = answer["images"][0]
    workers = json.loads((await jp_fetch("yolo", "predict", "workers")).body)["workers"]
    assert len(workers) <= 2  # the others were evicted, least recently used first
    for task in NAMES:
        done = await wait_for_job(jp_fetch, jobs[task], {"succeeded", "failed"}, timeout=900)
        assert done["status"] == "succeeded", (task, done)
        predictions = workspace / "jobs" / jobs[task] / "run" / "predictions.json"
        (job_image,) = json.loads(predictions.read_text())
        compare(task, job_image, served[task], workspace)
