"""Every task's exports agree with PyTorch by the task's own measure, and ``auto`` picks for it.

For segment, pose, obb and classify: a tiny model trained a few epochs on the task's synthetic
dataset at imgsz 64, its ONNX Runtime and OpenVINO FP32 exports compared with PyTorch on the
validation images (mask IoU, keypoint distance, rotated-box IoU, top-1 and its probability),
then ``auto`` measured and reused, a forced backend, and TensorRT refused with the task named.
Real ultralytics in a subprocess (tests/inference_check.py ``tasks``): the pytest process never
imports it. The models are weak on purpose; what is asserted is relative (the exports compute
the same function as PyTorch), never a latency. semantic and depth run untrained (any weights
give a map): their exports must give the same class per pixel / the same depth.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from jupyter_yolo.contract.tasks import profile
from jupyter_yolo.inference.tolerance import tolerance_for

from .conftest import REPO_ROOT
from .inference_models import TASK_ARCHITECTURES, UNTRAINED_ARCHITECTURES, runner_env

TASKS = tuple(TASK_ARCHITECTURES)
PIXEL_TASKS = tuple(UNTRAINED_ARCHITECTURES)
EXPORTS = ("onnxruntime", "openvino")
MIN_INSTANCES = 5  # compared instances per export (classify: images)


@pytest.fixture(scope="module")
def figures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("tasks")
    out = base / "tasks.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.inference_check",
            "tasks",
            str(out),
            str(base / "ws"),
            str(base / "data"),
            *TASKS,
            *PIXEL_TASKS,
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
        env=runner_env(),
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report: dict[str, Any] = json.loads(out.read_text())
    return report


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS)
def test_exports_agree_with_pytorch_by_the_tasks_measure(
    figures: dict[str, Any], task: str
) -> None:
    found = figures[task]
    tol = tolerance_for(task, "fp32")
    assert found["outputs"] >= MIN_INSTANCES, found  # the model gives something to compare
    for name in EXPORTS:
        result = found["agreement"][name]
        assert result["measure"] == profile(task).agreement.measure, result
        assert result["agree"] is True, (name, result)
        assert result["compared_boxes"] >= MIN_INSTANCES, (name, result)
        assert result["recall"] >= tol.share and result["precision"] >= tol.share, (name, result)
        if task == "classify":
            assert result["top1_agreement"] >= tol.share, (name, result)
            assert result["max_score_delta"] <= tol.score, (name, result)
        else:
            # mask IoU, box IoU or rotated-box IoU of the matched instances: the same function
            assert result["median_iou"] >= 0.95, (name, result)
            assert result["min_iou"] >= tol.iou, (name, result)
        if task == "pose" and result["keypoints_compared"]:
            assert result["keypoint_agreement"] >= tol.share, (name, result)


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS)
def test_auto_measures_the_task_and_reuses_its_choice(figures: dict[str, Any], task: str) -> None:
    found = figures[task]
    auto = found["auto"]
    assert auto["task"] == task and auto["name"] in auto["latency_ms"], auto
    assert auto["cached"] is False and auto["agreement"], auto
    for name in EXPORTS:
        assert name in auto["latency_ms"], auto
        assert found["auto_record_agreement"][name]["measure"] == profile(task).agreement.measure
    assert found["auto_again"]["name"] == auto["name"] and found["auto_again"]["cached"] is True
    assert f"auto-{task}-64-cpu.json" in found["choice_files"], found["choice_files"]
    assert [c["task"] for c in found["stored_choices"]] == [task]
    # the training data lies outside the test's workspace: INT8 is left out, saying why
    assert "outside this workspace" in auto["skipped"]["openvino-int8"], auto["skipped"]


@pytest.mark.slow
@pytest.mark.parametrize("task", PIXEL_TASKS)
def test_per_pixel_exports_agree_and_auto_runs_them(figures: dict[str, Any], task: str) -> None:
    found = figures[task]
    tol = tolerance_for(task, "fp32")
    assert found["outputs"] == found["images"] >= MIN_INSTANCES, found  # one map per image
    for name in EXPORTS:
        result = found["agreement"][name]
        assert result["measure"] == profile(task).agreement.measure, result
        assert result["agree"] is True and result["compared_images"] == found["images"], result
        assert result["min_pixel_agreement"] >= tol.iou, (name, result)
    auto = found["auto"]
    assert auto["task"] == task and auto["name"] in auto["latency_ms"], auto
    assert set(EXPORTS) <= set(auto["agreement"]), auto
    assert found["forced"] == {"name": "openvino", "task": task, "cached": True}


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS + PIXEL_TASKS)
def test_forced_backends_run_the_task_or_say_why_not(figures: dict[str, Any], task: str) -> None:
    found = figures[task]
    assert found["forced"] == {"name": "openvino", "task": task, "cached": True}
    assert found["forced_predicts"] == 1
    refusal = found["tensorrt_refusal"]
    if refusal is not None:  # a box with CUDA and TensorRT may run it
        assert f"this {task} model" in refusal and "TensorRT" in refusal, refusal
