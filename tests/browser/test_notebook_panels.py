"""The quickstart notebook in a real JupyterLab (token required) and Chromium: the accelerator
table, a training started, stopped and resumed from the panel's buttons while the loss curve
gains points, and boxes drawn by the detection panel. Screenshots of each panel are artifacts."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import nbformat
import pytest
from playwright.sync_api import expect

from ..server_process import ServerProcess
from .conftest import copy_notebook, screenshot
from .notebook_ui import (
    dismiss_news,
    hover_first_box,
    open_notebook,
    panel_screenshot,
    plot_summary,
    run_code_cell,
    trace_points,
    wait_for_text,
    wait_until,
)

TRAINING = ".yolo-training-panel"
DETECTION = ".yolo-detection-panel"
ACCELERATORS = ".yolo-accelerators-panel"
DATASETS = ".yolo-datasets-panel"
DASHBOARD = ".yolo-dashboard"
BATCH_TRACE = "box loss / batch"
EPOCHS = 6
TALL = {"width": 1400, "height": 1700}


def shot(page: Any, name: str) -> None:
    """A screenshot artifact, with JupyterLab's news toast out of the way."""
    dismiss_news(page)
    screenshot(page, name)


@pytest.fixture
def quickstart_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiny settings for the notebook, read by its parameter cell (the kernel inherits them)."""
    monkeypatch.setenv("YOLO_NB_EPOCHS", str(EPOCHS))
    monkeypatch.setenv("YOLO_NB_IMGSZ", "64")
    monkeypatch.setenv("YOLO_NB_BATCH", "8")
    monkeypatch.setenv("YOLO_NB_CONF", "0.0002")


@pytest.mark.slow
def test_quickstart_panels_train_stop_resume_detect(
    quickstart_settings: None, page: Any, lab: ServerProcess
) -> None:
    page.set_viewport_size(TALL)  # whole panels fit in their screenshots
    copy_notebook("quickstart.ipynb", lab.root)
    open_notebook(page, lab, "quickstart.ipynb")
    run_code_cell(page, 0)  # parameters
    run_code_cell(page, 1)  # client + accelerators panel
    page.wait_for_selector(f"{ACCELERATORS} .yolo-table", timeout=120_000)
    wait_for_text(page, ACCELERATORS, "Recommended: device cpu")
    wait_for_text(page, ACCELERATORS, "CPUs usable")
    panel_screenshot(page, ACCELERATORS, "panel-accelerators")

    run_code_cell(page, 2)  # dataset summary
    run_code_cell(page, 3)  # training panel
    page.wait_for_selector(f"{TRAINING} .js-plotly-plot", timeout=60_000)
    assert trace_points(page, TRAINING, BATCH_TRACE) == 0

    page.locator(f"{TRAINING} button:has-text('Start')").click()
    first = wait_until(
        lambda: trace_points(page, TRAINING, BATCH_TRACE) > 0,
        120,
        "the loss curve never got a point",
    )
    n1 = trace_points(page, TRAINING, BATCH_TRACE)
    n2 = wait_until(
        lambda: (n := trace_points(page, TRAINING, BATCH_TRACE)) > n1 and n,
        60,
        "the loss curve did not gain points while the run was going",
    )
    assert first and n2 > n1
    wait_for_text(page, f"{TRAINING} .yolo-status", "running")
    panel_screenshot(page, TRAINING, "panel-training-running")

    page.locator(f"{TRAINING} button:has-text('Stop')").click()
    wait_for_text(page, f"{TRAINING} .yolo-status", "stopped", timeout=120)
    stopped_points = trace_points(page, TRAINING, BATCH_TRACE)
    panel_screenshot(page, TRAINING, "panel-training-stopped")

    page.locator(f"{TRAINING} button:has-text('Resume')").click()
    wait_for_text(page, f"{TRAINING} .yolo-status", "running", timeout=120)
    wait_for_text(page, f"{TRAINING} .yolo-status", "succeeded", timeout=300)
    final_points = wait_until(
        lambda: (n := trace_points(page, TRAINING, BATCH_TRACE)) > stopped_points and n,
        30,
        "the curve did not continue after the resume",
    )
    assert trace_points(page, TRAINING, "box loss / epoch") == EPOCHS
    assert trace_points(page, TRAINING, "box mAP50") == EPOCHS
    assert final_points >= EPOCHS * 4  # 32 images, batch 8: 4 batches an epoch
    panel_screenshot(page, TRAINING, "panel-training-finished")
    shot(page, "lab-quickstart-training")
    # the job's speed choices, folded under the status line, each with its reason
    speed = page.locator(f"{TRAINING} details.yolo-speed")
    expect(speed.locator("summary")).to_contain_text("speed choices: workers")
    speed.locator("summary").click()
    expect(speed).to_contain_text("omp_wait_policy = PASSIVE")
    panel_screenshot(page, TRAINING, "panel-training-speed-choices")

    run_code_cell(page, 4)  # job_id (the run started with the button)
    run_code_cell(page, 5)  # wait(): already over
    run_code_cell(page, 6)  # detection panel
    run_code_cell(page, 7, timeout=240)  # predict
    summary = wait_until(
        lambda: (s := plot_summary(page, DETECTION)) and s["traces"] > 1 and s,
        60,
        "the detection panel drew no box",
    )
    assert summary["drawn"] >= 1, summary
    label = hover_first_box(page, DETECTION)
    assert any(name in label for name in ("circle", "square", "triangle")), label
    panel_screenshot(page, DETECTION, "panel-detection")


DASHBOARD_NOTEBOOK = "from jupyter_yolo.widgets import Dashboard\n\nboard = Dashboard()\nboard"


def test_dashboard_tabs_and_a_dataset_uploaded_through_the_browser(
    page: Any, lab: ServerProcess, shapes_template: Path, tmp_path: Path
) -> None:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(DASHBOARD_NOTEBOOK)])
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(notebook, lab.root / "dashboard.ipynb")
    page.set_viewport_size(TALL)
    archive = Path(shutil.make_archive(str(tmp_path / "mini-shapes"), "zip", shapes_template))

    open_notebook(page, lab, "dashboard.ipynb")
    run_code_cell(page, 0)
    page.wait_for_selector(f"{DASHBOARD} {ACCELERATORS} .yolo-table", timeout=120_000)
    panel_screenshot(page, DASHBOARD, "dashboard-hardware")

    page.locator(f"{DASHBOARD} .lm-TabBar-tab:has-text('Datasets')").click()
    datasets = f"{DASHBOARD} {DATASETS}"
    page.wait_for_function(
        "(s) => document.querySelectorAll(s + ' .js-plotly-plot').length >= 2",
        arg=datasets,
        timeout=60_000,
    )
    # a small archive chosen in the browser's file picker, sent through the kernel
    with page.expect_file_chooser() as chooser:
        page.locator(f"{datasets} button:has-text('Choose .zip')").click()
    chooser.value.set_files(str(archive))
    name_field = page.locator(f"{datasets} input[type=text]").first
    wait_until(name_field.input_value, 30, "the name was not filled in from the file name")
    page.locator(f"{datasets} button:has-text('Upload')").click()
    wait_for_text(page, datasets, "mini-shapes: ok", timeout=120)
    wait_for_text(page, datasets, "mini-shapes added")
    panel_screenshot(page, datasets, "panel-datasets")

    page.locator(f"{DASHBOARD} .lm-TabBar-tab:has-text('Training')").click()
    page.wait_for_selector(f"{DASHBOARD} {TRAINING} .js-plotly-plot", timeout=60_000)
    panel_screenshot(page, DASHBOARD, "dashboard-training")
