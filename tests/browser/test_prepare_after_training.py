"""The prediction panel's first answer right after a training, in a real JupyterLab: while the
trained model is prepared in the background (``prepare_after_training``), PyTorch answers and the
panel's backend line says it stands in for ``auto``; once prepared, the next answer runs on the
measured backend, reusing the stored measurement. A second job queued behind the training keeps
the preparation waiting until the first screenshot is taken (no race with its end)."""

from __future__ import annotations

from typing import Any

import nbformat
import pytest

from ..server_process import ServerProcess
from .notebook_ui import open_notebook, panel_screenshot, run_code_cell, wait_for_text, wait_until

PANEL = ".yolo-detection-panel"
TRAIN = {
    "kind": "train",
    "model": "yolov8n.yaml",
    "data": "shapes",
    "epochs": 1,
    "imgsz": 64,
    "batch": 8,
    "device": "cpu",
    "workers": 0,
    "plots": False,
}


@pytest.fixture
def lab_args() -> tuple[str, ...]:
    """The setting is on here (test servers run without it unless asked)."""
    return ("--YoloApp.prepare_after_training=True",)


def job_status(lab: ServerProcess, job_id: str) -> str:
    return str(lab.request("GET", f"/yolo/jobs/{job_id}")["status"])


def preparation(lab: ServerProcess, model: str) -> dict[str, Any] | None:
    for info in lab.request("GET", "/yolo/predict/workers")["preparations"]:
        if info["model"] == model:
            return dict(info)
    return None


@pytest.mark.slow
def test_first_answer_after_training_says_pytorch_stands_in(page: Any, lab: ServerProcess) -> None:
    job = lab.request("POST", "/yolo/jobs", TRAIN)
    busy = lab.request("POST", "/yolo/jobs", {**TRAIN, "epochs": 200})  # queued behind it
    wait_until(lambda: job_status(lab, job["id"]) == "succeeded", 600, "the training did not end")
    model = f"job:{job['id']}:best"
    wait_until(lambda: preparation(lab, model), 60, "no preparation was scheduled")

    code = (
        "from jupyter_yolo.widgets.detection import DetectionPanel\n"
        f"panel = DetectionPanel(model={model!r}, dataset='shapes')\n"
        "panel.predict()\npanel"
    )
    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(code), nbformat.v4.new_code_cell("panel.predict();")]
    )
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nbformat.write(notebook, lab.root / "after-training.ipynb")
    page.set_viewport_size({"width": 1400, "height": 1500})
    open_notebook(page, lab, "after-training.ipynb")
    run_code_cell(page, 0, timeout=600)
    wait_for_text(page, PANEL, "stand-in for auto", timeout=120)
    text = page.locator(PANEL).inner_text()
    assert "waits for the running or queued jobs" in text
    panel_screenshot(page, PANEL, "panel-first-answer-after-training")

    lab.request("POST", f"/yolo/jobs/{busy['id']}/stop", {})
    done = wait_until(
        lambda: (
            (p := preparation(lab, model))
            and p["state"] not in ("waiting", "running", "warming")
            and p
        ),
        900,
        "the preparation did not end",
    )
    assert done["state"] == "done", done
    run_code_cell(page, 1, timeout=300)
    wait_for_text(page, PANEL, "reused the stored measurement", timeout=120)
    assert "stand-in" not in page.locator(PANEL).inner_text()
    panel_screenshot(page, PANEL, "panel-answer-after-preparation")
