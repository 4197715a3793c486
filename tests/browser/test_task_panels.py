"""Every task's panels in a real JupyterLab and Chromium, on real tiny segment and pose runs.

A segmentation model (2 epochs) and a pose model (1 epoch) are trained at imgsz 64 through the
REST API; a notebook then attaches the training panel to the segmentation job (its curves are
the task's: ``seg`` loss, ``mask mAP50-95`` first), and prediction panels run each model on an
image: the segmentation one draws a translucent mask with its outline, the pose one a keypoint
skeleton. The jobs sidebar names each job's task and headline metric. Screenshots are artifacts.
"""

from __future__ import annotations

from typing import Any

import nbformat
import pytest

from jupyter_yolo.client import YoloClient

from ..server_process import ServerProcess
from .conftest import SCREENSHOTS, screenshot
from .notebook_ui import dismiss_news, open_notebook, run_code_cell
from .task_jobs import run_task_jobs
from .test_labextension import job_row, open_jobs_sidebar

TALL = {"width": 1400, "height": 1800}

CELL_PLOT = """([index, panel, figure]) => {
    const cell = document.querySelectorAll('.jp-Notebook .jp-CodeCell')[index];
    const root = cell && cell.querySelector(panel);
    const holder = root && (figure ? root.querySelector(figure) : root);
    const plot = holder && (holder.classList.contains('js-plotly-plot')
        ? holder : holder.querySelector('.js-plotly-plot'));
    if (!plot || !plot.data) return null;
    return {
        text: root.textContent || '',
        traces: plot.data.map(t => ({
            name: t.name || '',
            type: t.type || 'scatter',
            kind: (t.meta && t.meta.kind) || null,
            points: t.x ? t.x.length : 0,
            source: typeof t.source === 'string' ? t.source.slice(0, 22) : null,
            visible: t.visible === undefined ? true : t.visible,
            width: t.line && t.line.width,
        })),
        paths: root.querySelectorAll('.scatterlayer .trace path').length,
        images: root.querySelectorAll('.imagelayer image, image').length,
        annotations: root.querySelectorAll('.annotation').length,
    };
}"""


def cell_plot(page: Any, index: int, panel: str) -> dict[str, Any] | None:
    """What the main plot of ``panel`` in code cell ``index`` holds (None: not drawn yet).

    A prediction panel's plot is its ``.yolo-prediction-figure`` (it also has a bar chart).
    """
    figure = ".yolo-prediction-figure" if "detection" in panel else ""
    result: dict[str, Any] | None = page.evaluate(CELL_PLOT, [index, panel, figure])
    return result


def wait_plot(page: Any, index: int, panel: str, check: Any, what: str) -> dict[str, Any]:
    """Wait until ``check(plot)`` holds for the plot of cell ``index``; return the plot."""
    page.wait_for_function(
        """([index, panel]) => {
            const cell = document.querySelectorAll('.jp-Notebook .jp-CodeCell')[index];
            return !!(cell && cell.querySelector(panel + ' .js-plotly-plot'));
        }""",
        arg=[index, panel],
        timeout=120_000,
    )
    cell = page.locator(".jp-Notebook .jp-CodeCell").nth(index)
    cell.locator(panel).first.scroll_into_view_if_needed()  # rendered, not windowed away
    for _ in range(600):
        plot = cell_plot(page, index, panel)
        if plot is not None and check(plot):
            return plot
        page.wait_for_timeout(200)
    raise AssertionError(f"{what}: {cell_plot(page, index, panel)}")


def cell_shot(page: Any, index: int, panel: str, name: str) -> None:
    """A screenshot artifact of ``panel`` in code cell ``index``."""
    dismiss_news(page)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    element = page.locator(".jp-Notebook .jp-CodeCell").nth(index).locator(panel).first
    element.scroll_into_view_if_needed()
    element.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def notebook(runs: dict[str, Any]) -> Any:
    seg, pose = runs["segment"], runs["pose"]
    cells = [
        "from pathlib import Path\n"
        "from jupyter_yolo.widgets.training import TrainingPanel\n"
        "from jupyter_yolo.widgets.detection import DetectionPanel",
        f"training = TrainingPanel.attach({seg.train_id!r})\ntraining.wait(timeout=120)\ntraining",
        f"seg = DetectionPanel(model='job:{seg.train_id}:best', conf=0.0001, backend='pytorch')\n"
        f"seg.add_image({seg.image!r}, Path({seg.image!r}).read_bytes(), select=False)\n"
        f"seg.predict({seg.image!r})\nseg",
        f"pose = DetectionPanel(model='job:{pose.train_id}:best', conf=0.0001, backend='pytorch')\n"
        f"pose.add_image({pose.image!r}, Path({pose.image!r}).read_bytes(), select=False)\n"
        f"pose.predict({pose.image!r})\npose",
    ]
    book = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    book.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    return book


@pytest.mark.slow
def test_task_panels_draw_masks_skeletons_and_task_curves(page: Any, lab: ServerProcess) -> None:
    client = YoloClient(lab.url, token=lab.token)
    runs = run_task_jobs(client, lab.root, {"segment": 2, "pose": 1})
    nbformat.write(notebook(runs), lab.root / "tasks.ipynb")
    page.set_viewport_size(TALL)
    open_notebook(page, lab, "tasks.ipynb")
    run_code_cell(page, 0)

    # the training panel draws the segmentation task's curves, headline first
    run_code_cell(page, 1, timeout=180)
    training = wait_plot(
        page,
        1,
        ".yolo-training-panel",
        lambda p: any(t["name"] == "mask mAP50-95" and t["points"] == 2 for t in p["traces"]),
        "no mask mAP50-95 curve of 2 epochs",
    )
    names = [t["name"] for t in training["traces"]]
    assert "seg loss / batch" in names and "seg val loss" in names
    metrics = [t for t in training["traces"] if "mAP" in t["name"] or "precision" in t["name"]]
    assert metrics[0]["name"] == "mask mAP50-95" and metrics[0]["width"] == 4
    assert "mask mAP50-95" in training["text"]  # the status line names the headline
    cell_shot(page, 1, ".yolo-training-panel", "task-training-segment")

    # the segmentation prediction: a mask image over the photo, outlines, labels
    run_code_cell(page, 2, timeout=240)
    seg = wait_plot(
        page,
        2,
        ".yolo-detection-panel",
        lambda p: any(t["kind"] == "polygon" for t in p["traces"]),
        "no instance outline drawn",
    )
    overlay = [t for t in seg["traces"] if t["name"] == "overlay"]
    assert overlay and overlay[0]["source"] == "data:image/png;base64,", seg["traces"][:2]
    assert seg["images"] >= 2 and seg["paths"] >= 1 and seg["annotations"] >= 1
    assert "Instance segmentation" in seg["text"]

    # the pose prediction: boxes, skeleton lines and keypoints
    run_code_cell(page, 3, timeout=240)
    pose = wait_plot(
        page,
        3,
        ".yolo-detection-panel",
        lambda p: any(t["kind"] == "skeleton" and t["points"] >= 3 for t in p["traces"]),
        "no keypoint skeleton drawn",
    )
    assert any(t["kind"] == "keypoints" and t["points"] >= 2 for t in pose["traces"])
    assert "Pose / keypoints" in pose["text"]
    cell_shot(page, 2, ".yolo-detection-panel", "task-predict-segment")
    cell_shot(page, 3, ".yolo-detection-panel", "task-predict-pose")

    # the jobs sidebar: each job's task, and the headline metric labelled from the task table
    open_jobs_sidebar(page)
    for task, run in runs.items():
        row = job_row(page, run.train_id)
        row.wait_for(timeout=60_000)
        assert row.get_attribute("data-task") == task
        assert row.locator(".jp-yolo-JobRow-task").inner_text().strip() == task
    seg_row = job_row(page, runs["segment"].train_id)
    page.wait_for_function(
        "(el) => /mask mAP50-95 \\d/.test(el.textContent || '')",
        arg=seg_row.locator(".jp-yolo-JobRow-progress").element_handle(),
        timeout=30_000,
    )
    assert "pose mAP50-95" in job_row(page, runs["pose"].train_id).inner_text()
    screenshot(page, "task-sidebar")
