"""Predict and export jobs over REST: files are produced and exported models agree with PyTorch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from jupyter_yolo.datasets.synthetic import generate_shapes

from .conftest import post_json, wait_for_job

TRAIN = {"kind": "train", "model": "yolov8n.yaml", "epochs": 15, "imgsz": 64, "batch": 16,
         "nbs": 16, "optimizer": "AdamW", "lr0": 0.003, "device": "cpu", "workers": 0,
         "plots": False, "seed": 0}


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


async def run_job(jp_fetch: Any, body: dict[str, Any]) -> dict[str, Any]:
    job = await post_json(jp_fetch, "yolo", "jobs", body=body)
    final = await wait_for_job(jp_fetch, job["id"], {"succeeded", "failed", "stopped"}, 400)
    assert final["status"] == "succeeded", final
    return final


@pytest.mark.slow
async def test_predict_and_exports_match_pytorch(jp_fetch: Any, yolo_workspace: Path) -> None:
    # 96 images and 15 epochs (about 30 s) give boxes with scores well above noise
    generate_shapes(yolo_workspace / "datasets" / "shapes96", train=96, val=16, imgsz=64, seed=0)
    trained = await run_job(jp_fetch, {**TRAIN, "data": "shapes96"})
    model = f"job:{trained['id']}:last"
    source = "datasets/shapes96/images/val"
    predict = {"kind": "predict", "source": source, "imgsz": 64, "conf": 0.01, "device": "cpu"}

    reference_job = await run_job(jp_fetch, {**predict, "model": model})
    assert reference_job["result"]["images"] == len(list((yolo_workspace / source).iterdir()))
    reference_path = yolo_workspace / "jobs" / reference_job["id"] / "run" / "predictions.json"
    reference = json.loads(reference_path.read_text())
    annotated = [p for p in reference_path.parent.iterdir() if p.suffix in (".jpg", ".png")]
    assert annotated, "predict saves annotated images"

    for fmt in ("onnx", "openvino"):
        exported = await run_job(jp_fetch, {"kind": "export", "model": model, "format": fmt,
                                            "imgsz": 64, "device": "cpu"})
        path = yolo_workspace / "jobs" / exported["id"] / exported["result"]["path"]
        assert path.exists(), exported["result"]
        relative = path.relative_to(yolo_workspace).as_posix()
        other_job = await run_job(jp_fetch, {**predict, "model": relative})
        other_path = yolo_workspace / "jobs" / other_job["id"] / "run" / "predictions.json"
        other = json.loads(other_path.read_text())
        share = agreement(reference, other, min_conf=0.05)
        assert share >= 0.9, f"{fmt} reproduced only {share:.0%} of PyTorch's detections"
