"""Panels survive a browser reload (issue 15): in a real JupyterLab and Chromium, a notebook shows
the dataset panel (class histogram, samples grid), a training panel on a tiny run and a prediction
panel; the page is reloaded during the run and after it, and each plotly figure is drawn again
from the kernel's state: the curves have their points (and keep growing while the run goes on),
the histogram its bars, the samples and the prediction their images. Everything is read from the
page (plotly's ``gd.data`` / ``gd.layout`` and the drawn SVG), polled, never slept on.
Screenshots before and after each reload are artifacts."""

from __future__ import annotations

from typing import Any

import nbformat
import pytest

from ..server_process import ServerProcess
from .conftest import screenshot
from .notebook_ui import (
    dismiss_news,
    open_notebook,
    panel_screenshot,
    run_code_cell,
    trace_points,
    wait_until,
)

TRAINING = ".yolo-training-panel"
DATASETS = ".yolo-datasets-panel"
PREDICTION = ".yolo-detection-panel"
BATCH_TRACE = "box loss / batch"
EPOCH_TRACE = "box loss / epoch"
TALL = {"width": 1400, "height": 3400}
"""Tall enough for the whole notebook: no panel waits off screen to be drawn."""
BACK_S = 60.0
"""How long a reloaded page may take to draw a figure again (polled; a loaded 2-core box)."""

CELLS = (
    # 0: the dataset panel: class histogram and samples grid
    "from jupyter_yolo.client import YoloClient\n"
    "from jupyter_yolo.widgets import DatasetsPanel, DetectionPanel, TrainingPanel\n\n"
    "client = YoloClient()\n"
    "datasets = DatasetsPanel(client, dataset='shapes')\n"
    "datasets",
    # 1: a training run long enough to be reloaded in the middle of (cell 2 stops it)
    "training = TrainingPanel(client, data='shapes', model='yolov8n.yaml', epochs=200, imgsz=64,\n"
    "                         batch=8, extra={'plots': False, 'workers': 0, 'device': 'cpu'})\n"
    "job_id = training.start()\n"
    "training",
    # 2: the run ends (stopped; its weights are kept)
    "training.stop()\nprint('job', job_id, training.wait(timeout=300))",
    # 3: the prediction panel on a dataset image, with the run's weights
    "detection = DetectionPanel(client, model=f'job:{job_id}', dataset='shapes', conf=0.0002,\n"
    "                           backend='pytorch')\n"
    "boxes = detection.predict()\n"
    "detection",
)

PLOTS = """([panel]) => {
    const root = document.querySelector(panel);
    if (!root) return [];
    return [...root.querySelectorAll('.js-plotly-plot')].map(gd => ({
        traces: (gd.data || []).map(t => ({
            type: t.type || 'scatter',
            name: t.name || '',
            points: t.x ? t.x.length : 0,
            total: t.type === 'bar' && t.y ? Array.from(t.y).reduce((a, b) => a + (+b || 0), 0) : 0,
            source: t.type === 'image' && typeof t.source === 'string' ? t.source.slice(0, 11) : '',
        })),
        layout_images: ((gd.layout || {}).images || []).filter(i => i && i.source).length,
        drawn: {
            bars: gd.querySelectorAll('.barlayer .point path').length,
            images: [...gd.querySelectorAll('.imagelayer image')]
                .filter(i => (i.getAttribute('href') || '').startsWith('data:image')).length,
            lines: gd.querySelectorAll('.scatterlayer .trace path.js-line').length,
        },
    }));
}"""


def plots(page: Any, panel: str) -> list[dict[str, Any]]:
    """What every plotly figure rendered inside ``panel`` holds and draws."""
    result: list[dict[str, Any]] = page.evaluate(PLOTS, [panel])
    return result


def histogram(page: Any) -> dict[str, Any] | None:
    """The dataset histogram's bars (None until drawn): boxes counted, bars drawn."""
    for plot in plots(page, DATASETS):
        bars = [t for t in plot["traces"] if t["type"] == "bar"]
        if bars and plot["drawn"]["bars"]:
            return {"boxes": sum(t["total"] for t in bars), "bars": plot["drawn"]["bars"]}
    return None


def samples_images(page: Any) -> int:
    """Images drawn by the dataset panel's samples grid."""
    return max((p["drawn"]["images"] for p in plots(page, DATASETS)), default=0)


def prediction(page: Any) -> dict[str, Any] | None:
    """The prediction figure's image and outlines (None until its image is drawn)."""
    for plot in plots(page, PREDICTION):
        sources = [
            t["source"]
            for t in plot["traces"]
            if t["type"] == "image" and t["name"] == "image" and t["source"]
        ]
        if sources and plot["drawn"]["images"]:
            outlines = [t for t in plot["traces"] if t["type"] == "scatter"]
            return {"images": plot["drawn"]["images"], "outlines": len(outlines)}
    return None


def show(page: Any, cell: int) -> None:
    """Scroll code cell ``cell``'s output into view (JupyterLab draws what is on screen)."""
    output = page.locator(".jp-Notebook .jp-CodeCell").nth(cell).locator(".jp-OutputArea")
    output.first.scroll_into_view_if_needed()


def save_and_reload(page: Any, name: str) -> None:
    """Save the notebook (the outputs hold the widget views), screenshot, reload the page."""
    page.locator(".jp-Notebook .jp-Cell").first.click()
    page.keyboard.press("Escape")
    page.keyboard.press("Control+s")
    page.wait_for_function(
        "() => !document.querySelector('.lm-TabBar-tab.jp-mod-current.jp-mod-dirty')",
        timeout=30_000,
    )
    dismiss_news(page)
    screenshot(page, f"reload-{name}-before")
    page.reload()
    page.wait_for_selector(".jp-Notebook .jp-CodeCell", timeout=120_000)
    dismiss_news(page)


@pytest.mark.slow
def test_panels_draw_again_after_a_reload_during_and_after_a_run(
    page: Any, lab: ServerProcess
) -> None:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(notebook, lab.root / "panels.ipynb")
    page.set_viewport_size(TALL)
    open_notebook(page, lab, "panels.ipynb")

    run_code_cell(page, 0)
    before_hist = wait_until(lambda: histogram(page), BACK_S, "the histogram never drew bars")
    wait_until(lambda: samples_images(page) >= 4, BACK_S, "the samples grid drew no images")
    assert before_hist["boxes"] > 0
    run_code_cell(page, 1)
    wait_until(
        lambda: trace_points(page, TRAINING, BATCH_TRACE) > 0, 180, "the run drew no batch loss"
    )
    panel_screenshot(page, TRAINING, "reload-training-running-before")

    # ---- reload while the run goes on
    save_and_reload(page, "during-run")
    n1 = wait_until(
        lambda: (n := trace_points(page, TRAINING, BATCH_TRACE)) > 0 and n,
        BACK_S,
        "after the reload the training figure had no points",
    )
    wait_until(
        lambda: trace_points(page, TRAINING, BATCH_TRACE) > n1,
        120,
        "after the reload the training figure stopped growing while the run went on",
    )
    assert wait_until(lambda: histogram(page), BACK_S, "after the reload the histogram is empty")
    assert histogram(page) == before_hist
    wait_until(lambda: samples_images(page) >= 4, BACK_S, "after the reload: no samples drawn")
    panel_screenshot(page, TRAINING, "reload-training-running-after")
    panel_screenshot(page, DATASETS, "reload-datasets-after")
    screenshot(page, "reload-during-run-after")

    # ---- the run ends; a prediction with its weights; reload after the run
    wait_until(
        lambda: trace_points(page, TRAINING, EPOCH_TRACE) >= 1, 180, "no epoch was completed"
    )
    run_code_cell(page, 2, timeout=300)
    run_code_cell(page, 3, timeout=300)
    show(page, 3)
    before_prediction = wait_until(
        lambda: prediction(page), BACK_S, "the prediction figure drew no image"
    )
    final_points = trace_points(page, TRAINING, BATCH_TRACE)
    final_epochs = trace_points(page, TRAINING, EPOCH_TRACE)
    panel_screenshot(page, PREDICTION, "reload-prediction-before")

    save_and_reload(page, "after-run")
    show(page, 1)
    wait_until(
        lambda: trace_points(page, TRAINING, BATCH_TRACE) == final_points,
        BACK_S,
        f"after the reload the finished run's curve lacks its {final_points} points",
    )
    assert trace_points(page, TRAINING, EPOCH_TRACE) == final_epochs
    assert wait_until(lambda: histogram(page), BACK_S, "after the reload the histogram is empty")
    assert histogram(page) == before_hist
    show(page, 3)
    after_prediction = wait_until(
        lambda: prediction(page), BACK_S, "after the reload the prediction has no image"
    )
    assert after_prediction == before_prediction
    panel_screenshot(page, TRAINING, "reload-training-finished-after")
    panel_screenshot(page, PREDICTION, "reload-prediction-after")
    screenshot(page, "reload-after-run-after")
