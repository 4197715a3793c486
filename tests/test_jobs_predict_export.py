"""Predict and export jobs over REST: files are produced, exported models agree with PyTorch, and
the inference backend is forced or chosen by measurement, with exports and the choice cached.

The server's workspace is the one the session's shared shapes detector was trained in (see
tests/inference_models.py), so the checkpoint's training data is inside it: INT8 calibrates on it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import (
    REPO_ROOT,
    all_events,
    expect_error,
    fetch_json,
    run_job,
)
from .inference_models import TrainedModel, runner_env, trained_model

VAL = "datasets/shapes/images/val"


def iou(a: list[float], b: list[float]) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def agreement(
    reference: list[dict[str, Any]], other: list[dict[str, Any]], min_conf: float
) -> float:
    """Share of the reference's confident boxes that the other backend reproduces."""
    by_file = {image["file"]: image["detections"] for image in other}
    wanted = matched = 0
    for image in reference:
        for det in image["detections"]:
            if det["conf"] < min_conf:
                continue
            wanted += 1
            if any(
                o["cls"] == det["cls"]
                and iou(o["box_xyxy"], det["box_xyxy"]) >= 0.8
                and abs(o["conf"] - det["conf"]) <= 0.05
                for o in by_file.get(image["file"], [])
            ):
                matched += 1
    confs = sorted((d["conf"] for i in reference for d in i["detections"]), reverse=True)
    assert wanted > 0, f"nothing confident to compare: top scores {confs[:10]}"
    return matched / wanted


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> TrainedModel:
    model = trained_model(tmp_path_factory.getbasetemp())
    orphan = model.workspace / "weights" / "orphan.pt"
    if not orphan.exists():  # the same network, but its training data is gone
        subprocess.run(
            [
                sys.executable,
                "-m",
                "tests.inference_check",
                "orphan",
                str(model.weights),
                str(orphan),
            ],
            cwd=REPO_ROOT,
            env=runner_env(),
            check=True,
            capture_output=True,
            timeout=300,
        )
    return model


@pytest.fixture
def yolo_workspace(shared: TrainedModel) -> Path:
    return shared.workspace


def predictions(workspace: Path, job: dict[str, Any]) -> list[dict[str, Any]]:
    path = workspace / "jobs" / job["id"] / "run" / "predictions.json"
    data: list[dict[str, Any]] = json.loads(path.read_text())
    return data


@pytest.mark.slow
async def test_predict_and_exports_match_pytorch(jp_fetch: Any, shared: TrainedModel) -> None:
    workspace = shared.workspace
    predict = {"kind": "predict", "source": VAL, "imgsz": 128, "conf": 0.01, "device": "cpu"}
    reference_job = await run_job(
        jp_fetch, {**predict, "model": shared.model_ref, "backend": "pytorch"}
    )
    assert reference_job["result"]["images"] == len(list((workspace / VAL).iterdir()))
    assert reference_job["result"]["backend"]["name"] == "pytorch"
    reference = predictions(workspace, reference_job)
    folder = workspace / "jobs" / reference_job["id"] / "run"
    assert [p for p in folder.iterdir() if p.suffix in (".jpg", ".png")], "annotated images"

    for fmt, runs_on in (("onnx", "onnxruntime"), ("openvino", "openvino")):
        exported = await run_job(
            jp_fetch,
            {
                "kind": "export",
                "model": shared.model_ref,
                "format": fmt,
                "imgsz": 128,
                "device": "cpu",
            },
        )
        path = workspace / "jobs" / exported["id"] / exported["result"]["path"]
        assert path.exists(), exported["result"]
        assert isinstance(exported["result"]["cached"], bool)
        relative = path.relative_to(workspace).as_posix()
        other_job = await run_job(jp_fetch, {**predict, "model": relative})
        assert other_job["result"]["backend"]["name"] == runs_on
        share = agreement(reference, predictions(workspace, other_job), min_conf=0.05)
        assert share >= 0.9, f"{fmt} reproduced only {share:.0%} of PyTorch's detections"

        again = await run_job(
            jp_fetch,
            {
                "kind": "export",
                "model": shared.model_ref,
                "format": fmt,
                "imgsz": 128,
                "device": "cpu",
            },
        )
        assert again["result"]["cached"] is True, "the second export comes from the cache"


def export_stamps(workspace: Path) -> dict[str, int]:
    root = workspace / "weights" / ".exports"
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("export.json")}


@pytest.mark.slow
async def test_predict_backends_forced_auto_and_cached(jp_fetch: Any, shared: TrainedModel) -> None:
    workspace = shared.workspace
    predict = {"kind": "predict", "model": shared.model_ref, "source": VAL, "device": "cpu"}

    body = await expect_error(
        jp_fetch,
        400,
        "yolo",
        "jobs",
        method="POST",
        body=json.dumps({**predict, "backend": "tensorrt"}),
    )
    assert "CUDA" in body["message"] and "Available here: auto" in body["message"]
    body = await expect_error(
        jp_fetch,
        400,
        "yolo",
        "jobs",
        method="POST",
        body=json.dumps({**predict, "backend": "coreml"}),
    )
    assert "'backend' must be one of" in body["message"]

    first = await run_job(jp_fetch, predict)  # backend "auto" by default
    backend = first["result"]["backend"]
    job_file = json.loads((workspace / "jobs" / first["id"] / "job.json").read_text())
    assert job_file["params"]["backend"] == "auto" and backend["requested"] == "auto"
    assert backend["cached"] is False, "the first auto job measures"
    assert set(backend["latency_ms"]) == {"pytorch", "onnxruntime", "openvino", "openvino-int8"}
    assert backend["name"] in backend["latency_ms"]
    fastest_agreeing = min(
        (n for n in backend["latency_ms"] if n == "pytorch" or backend["agreement"][n]["agree"]),
        key=lambda n: backend["latency_ms"][n],
    )
    assert backend["name"] == fastest_agreeing
    for name in ("onnxruntime", "openvino"):
        assert backend["agreement"][name]["agree"] is True, backend["agreement"]
        assert backend["agreement"][name]["compared_boxes"] >= 10
    assert backend["threads"]["ort_intra_op_threads"] == backend["threads"]["cpus"]
    assert backend["imgsz"] == 128  # the checkpoint's training size
    assert "tensorrt" in backend["skipped"]
    logs = [e["message"] for e in await all_events(jp_fetch, first["id"]) if e["type"] == "log"]
    assert any(m.startswith(f"backend {backend['name']} (requested auto") for m in logs), logs
    choice_files = list((workspace / "weights" / ".exports").glob("*/auto-128-cpu.json"))
    assert len(choice_files) == 1
    stored = json.loads(choice_files[0].read_text())
    assert stored["choice"] == backend["name"]
    assert stored["environment"]["imgsz"] == 128 and stored["environment"]["cpus"] >= 1
    stamps = export_stamps(workspace)

    second = await run_job(jp_fetch, predict)
    again = second["result"]["backend"]
    assert again["cached"] is True and again["exported"] == [], again
    assert again["name"] == backend["name"] and again["latency_ms"] == backend["latency_ms"]
    assert export_stamps(workspace) == stamps, "nothing was exported again"
    assert json.loads(choice_files[0].read_text())["measured_at"] == stored["measured_at"]

    forced = await run_job(jp_fetch, {**predict, "backend": "openvino"})
    assert forced["result"]["backend"]["name"] == "openvino"
    assert forced["result"]["backend"]["requested"] == "openvino"
    assert forced["result"]["backend"]["exported"] == []
    assert forced["result"]["detections"] > 0

    models = await fetch_json(jp_fetch, "yolo", "models")
    entry = next(m for m in models["trained"] if m["model"] == shared.model_ref)
    assert entry["inference"][0]["choice"] == backend["name"]
    assert entry["inference"][0]["imgsz"] == 128
    available = {b["name"]: b["available"] for b in models["backends"]}
    assert available["pytorch"] and available["openvino"] and not available["tensorrt"]

    # weights whose training data is gone: INT8 needs 'data', and says so
    orphan = {**predict, "model": "orphan.pt", "backend": "openvino-int8"}
    failed = await run_job(jp_fetch, orphan, status="failed")
    assert "calibrates on a dataset" in failed["error"] and "'data'" in failed["error"]
    calibrated = await run_job(jp_fetch, {**orphan, "data": "shapes"})
    assert calibrated["result"]["backend"]["name"] == "openvino-int8"
