"""Exported models agree with PyTorch; INT8 OpenVINO keeps mAP50 within 2 points of FP32.

Real ultralytics, real exports, in a subprocess (tests/inference_check.py) so the pytest process
never imports ultralytics; the model is the session's shared shapes detector.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import COCO8, REPO_ROOT
from .inference_models import runner_env, trained_model

MIN_COMPARED = 10
FP32_MAP50_TOLERANCE = 0.02
PLATEAU_MAP50 = 0.85  # 0.93-0.98 over the last 15 epochs of the shared model's training


@pytest.fixture(scope="module")
def check(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    model = trained_model(tmp_path_factory.getbasetemp())
    out = tmp_path_factory.mktemp("check") / "check.json"
    command = [
        sys.executable,
        "-m",
        "tests.inference_check",
        "agree",
        str(out),
        str(model.weights),
        str(model.data),
    ]
    coco8 = COCO8 / "images" / "val"
    if coco8.is_dir():
        command.append(str(coco8))
    done = subprocess.run(
        command,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env=runner_env(),
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report: dict[str, Any] = json.loads(out.read_text())
    report["int8"]["training_map50"] = model.map50
    return report


def assert_agree(figures: dict[str, Any]) -> None:
    for name in ("onnxruntime", "openvino"):
        result = figures[name]
        assert result["compared_boxes"] >= MIN_COMPARED, (name, result)
        assert result["agree"] is True, (name, result)
        assert result["recall"] >= 0.95 and result["precision"] >= 0.95, (name, result)
        assert result["max_score_delta"] <= 0.02, (name, result)


@pytest.mark.slow
def test_exports_agree_with_pytorch_on_coco8_validation_images(check: dict[str, Any]) -> None:
    if "coco8" not in check:
        pytest.skip(f"coco8 is not at {COCO8}")
    assert_agree(check["coco8"])


@pytest.mark.slow
def test_exports_agree_with_pytorch_on_generated_images(check: dict[str, Any]) -> None:
    assert_agree(check["generated"])


@pytest.mark.slow
def test_every_backend_runs_with_the_usable_cpus(check: dict[str, Any]) -> None:
    threads = check["threads"]
    # after ultralytics set its predictors up (its select_device() resets torch's count)
    assert threads["torch"] == threads["onnxruntime"] == threads["openvino"] == threads["cpus"]
    assert threads["openvino_hint"] in ("LATENCY", "PerformanceMode.LATENCY")


@pytest.mark.slow
def test_int8_openvino_keeps_map50_within_two_points(
    check: dict[str, Any], record_property: Any
) -> None:
    figures = check["int8"]
    for key in (
        "training_map50",
        "pytorch_map50",
        "fp32_map50",
        "int8_map50",
        "int8_map50_drop_pts",
        "int8_speedup_over_fp32",
        "fp32_latency_ms",
        "int8_latency_ms",
    ):
        record_property(key, round(float(figures[key]), 4))
    print(
        f"\nINT8 OpenVINO on the shapes val split at 128: mAP50 {figures['int8_map50']:.4f} "
        f"vs FP32 {figures['fp32_map50']:.4f} (PyTorch {figures['pytorch_map50']:.4f}); "
        f"drop {figures['int8_map50_drop_pts']:.2f} points; speedup over FP32 "
        f"{figures['int8_speedup_over_fp32']:.2f}x ({figures['fp32_latency_ms']:.1f} -> "
        f"{figures['int8_latency_ms']:.1f} ms per image, end to end)"
    )
    # judged on one model against itself: FP32 OpenVINO computes PyTorch's function, INT8 may
    # lose up to 2 points of it. The model is on its plateau (tests/inference_models.py), where
    # quantisation noise moves mAP50 little; the floor only says that training worked.
    assert figures["pytorch_map50"] >= PLATEAU_MAP50, ("not trained to its plateau", figures)
    # FP32 OpenVINO's convolutions round differently (~1e-5): a detection at the confidence
    # floor or at IoU 0.5 may flip, and one flip among the 48 validation images moves mAP50 by
    # up to ~2 points; the box-level agreement tests above are the strict check of FP32
    assert abs(figures["fp32_map50"] - figures["pytorch_map50"]) <= FP32_MAP50_TOLERANCE, figures
    assert figures["calibration"]["split"] == "train"
    assert figures["int8_map50_drop_pts"] <= 2.0, figures


@pytest.mark.slow
def test_two_processes_export_once(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Two processes ask for the same missing export at once: one makes it, the other reuses it
    (after waiting for the lock when they overlap)."""
    model = trained_model(tmp_path_factory.getbasetemp())
    workspace = tmp_path / "workspace"
    outs = [tmp_path / f"out{i}.json" for i in range(2)]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.inference_check",
                "export",
                str(out),
                str(model.weights),
                str(workspace),
                "96",
            ],
            cwd=REPO_ROOT,
            env=runner_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for out in outs
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()[-3000:]
    results = [json.loads(out.read_text()) for out in outs]
    assert sorted(r["exported"] for r in results) == [False, True], results
    assert results[0]["path"] == results[1]["path"] and Path(results[0]["path"]).is_file()
    entries = [p.name for p in Path(results[0]["path"]).parent.parent.iterdir()]
    assert "onnx-96-fp32-b1" in entries and not [e for e in entries if e.startswith(".tmp-")]
