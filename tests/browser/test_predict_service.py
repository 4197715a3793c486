"""The prediction panel on the warm inference service in a real JupyterLab and Chromium: after
the first drawing, typing confidence values into the slider redraws the figure with as many
objects as the service gives at that threshold, without creating any job. The time from the
input (Enter in the slider's readout) to the redrawn figure is measured in the page and
reported, not asserted: it depends on the machine's load."""

from __future__ import annotations

import shutil
import statistics
from typing import Any

import nbformat
import pytest

from jupyter_yolo.client import YoloClient

from ..inference_models import trained_model
from ..server_process import ServerProcess
from .notebook_ui import open_notebook, panel_screenshot, run_code_cell

PANEL = ".yolo-detection-panel"
FIGURE = ".yolo-prediction-figure.js-plotly-plot, .yolo-prediction-figure .js-plotly-plot"
MODEL = "shapes-n.pt"
IMAGES = "uploads/shapes-val"
THRESHOLDS = (0.9, 0.01, 0.5, 0.05, 0.95, 0.2)

WATCH = """(selector) => {
    const plot = document.querySelector(selector);
    window.__redraws = [];
    let last = plot.layout.meta && plot.layout.meta.redraw;
    const look = () => {
        const meta = plot.layout.meta;
        if (meta && meta.redraw !== last) {
            last = meta.redraw;
            window.__redraws.push({at: performance.now(), redraw: meta.redraw,
                                   shown: meta.shown, conf: meta.conf,
                                   boxes: plot.querySelectorAll('.scatterlayer .trace').length});
        }
    };
    new MutationObserver(look).observe(plot, {subtree: true, childList: true, attributes: true});
    setInterval(look, 5);
    return last;
}"""

TYPE_CONF = """([panel, value]) => {
    const readout = [...document.querySelectorAll(panel + ' .widget-slider')]
        .find(s => (s.textContent || '').includes('confidence'))
        .querySelector('.widget-readout');
    readout.focus();
    readout.textContent = String(value);
    window.__inputAt = performance.now();
    readout.dispatchEvent(new KeyboardEvent('keydown', {keyCode: 13, bubbles: true}));
    return window.__inputAt;
}"""

REDRAWN = """(since) => (window.__redraws || []).find(r => r.at >= since) || null"""


@pytest.mark.slow
def test_slider_redraws_from_the_warm_service_without_jobs(
    page: Any,
    lab: ServerProcess,
    tmp_path_factory: pytest.TempPathFactory,
    record_property: Any,
) -> None:
    model = trained_model(tmp_path_factory.getbasetemp())
    (lab.workspace / "weights").mkdir(parents=True, exist_ok=True)
    shutil.copy2(model.weights, lab.workspace / "weights" / MODEL)
    shutil.copytree(model.data.parent / "images" / "val", lab.workspace / IMAGES)
    image = f"{IMAGES}/" + sorted(p.name for p in (lab.workspace / IMAGES).iterdir())[0]
    code = (
        "from jupyter_yolo.widgets.detection import DetectionPanel\n"
        f"panel = DetectionPanel(model={MODEL!r}, conf=0.25)\n"
        f"panel.add_image({image!r}, open({image!r}, 'rb').read())\n"
        "panel.predict()\npanel"
    )
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nbformat.write(notebook, lab.root / "predict.ipynb")
    page.set_viewport_size({"width": 1400, "height": 1500})

    open_notebook(page, lab, "predict.ipynb")
    run_code_cell(page, 0, timeout=600)  # the first request starts the worker
    page.wait_for_function(
        "(s) => { const p = document.querySelector(s);"
        " return !!p && !!p.layout && !!p.layout.meta && p.layout.meta.redraw >= 1; }",
        arg=FIGURE,
        timeout=120_000,
    )
    jobs_before = len(lab.request("GET", "/yolo/jobs")["jobs"])
    client = YoloClient(lab.url, lab.token)
    page.evaluate(WATCH, FIGURE)
    panel_screenshot(page, PANEL, "panel-predict-service-first")

    measured: list[float] = []
    seen: list[dict[str, Any]] = []
    for threshold in THRESHOLDS:
        since = page.evaluate(TYPE_CONF, [PANEL, threshold])
        page.wait_for_function(REDRAWN, arg=since, timeout=120_000)
        redraw = page.evaluate(REDRAWN, since)
        measured.append(redraw["at"] - since)
        seen.append(redraw)
        expected = client.predict_images(paths=[image], model=MODEL, conf=redraw["conf"])
        assert redraw["shown"] == len(expected["images"][0]["detections"]), (threshold, redraw)
        assert abs(redraw["conf"] - threshold) < 1e-6, redraw

    counts = {r["conf"]: r["shown"] for r in seen}
    assert counts[0.01] > counts[0.9], counts  # a low threshold shows more than a high one
    assert len(lab.request("GET", "/yolo/jobs")["jobs"]) == jobs_before, "a job was created"
    text = page.locator(PANEL).inner_text()
    assert "inference" in text and "total" in text and "backend" in text
    panel_screenshot(page, PANEL, "panel-predict-service")
    median = statistics.median(measured)
    record_property("redraw_ms", [round(m, 1) for m in measured])
    record_property("redraw_ms_median", round(median, 1))
    print(f"slider input -> redrawn figure: {[round(m) for m in measured]} ms, median {median:.0f}")
    print(f"objects shown per threshold: {counts}")
