"""The notebook's run results view and run comparison in a real JupyterLab and Chromium.

Two real tiny trainings (the shapes dataset, imgsz 64, 2 epochs, different ``lr0``) run through
the lab's REST API; then a notebook cell shows ``ResultsPanel(a)`` and another
``CompareRuns([a, b])``. Read from the page (plotly's own ``gd.data`` of the rendered plots and
the widgets' HTML): the per-class table has a row per class, the confusion matrix heatmap has
cells, the PR curve has its points, the validation image is drawn with its boxes, and the
comparison chart has both runs' traces. Screenshots of every tab and of the comparison.
"""

from __future__ import annotations

import time
from typing import Any

import nbformat
import pytest

from ..server_process import ServerProcess
from .notebook_ui import open_notebook, panel_screenshot, run_code_cell, wait_until

RESULTS = ".yolo-results-panel"
COMPARE = ".yolo-compare-runs"
TRAIN = {
    "kind": "train",
    "model": "yolov8n.yaml",
    "data": "shapes",
    "epochs": 2,
    "imgsz": 64,
    "batch": 8,
    "device": "cpu",
    "workers": 0,
    "plots": False,
}
TALL = {"width": 1400, "height": 1500}

PLOTS = """([panel]) => {
    const root = document.querySelector(panel);
    if (!root) return null;
    const plots = [...root.querySelectorAll('.js-plotly-plot')].filter(p => p.data);
    return plots.map(p => ({
        visible: p.offsetParent !== null,
        traces: p.data.map(t => ({
            type: t.type || 'scatter',
            name: t.name,
            meta: t.meta || null,
            points: t.x ? t.x.length : (t.z ? t.z.length : 0),
            cells: t.z ? t.z.flat().filter(v => v !== null).length : 0,
            source: typeof t.source === 'string' ? t.source.slice(0, 16) : null,
        })),
        drawn: p.querySelectorAll('.scatterlayer .trace path').length,
        heatmaps: p.querySelectorAll('.heatmaplayer image, .hm image, image').length,
    }));
}"""


def _train_two(lab: ServerProcess) -> list[str]:
    ids = [
        lab.request("POST", "/yolo/jobs", {**TRAIN, "name": f"run {n}", "lr0": lr0})["id"]
        for n, lr0 in (("A", 0.01), ("B", 0.003))
    ]
    deadline = time.monotonic() + 600
    for job_id in ids:
        while lab.request("GET", f"/yolo/jobs/{job_id}")["status"] not in {
            "succeeded",
            "failed",
            "stopped",
        }:
            assert time.monotonic() < deadline, "the tiny trainings took over 10 minutes"
            time.sleep(1)
        assert lab.request("GET", f"/yolo/jobs/{job_id}")["status"] == "succeeded"
    return ids


def _plots(page: Any, panel: str) -> list[dict[str, Any]]:
    return list(page.evaluate(PLOTS, [panel]) or [])


def _traces(page: Any, panel: str, visible_only: bool = True) -> list[dict[str, Any]]:
    return [t for p in _plots(page, panel) if p["visible"] or not visible_only for t in p["traces"]]


def _tab(page: Any, title: str) -> None:
    """Select the results view's tab ``title`` (clicked again until Lumino shows it current)."""
    tab = page.locator(f"{RESULTS} .lm-TabBar-tab", has_text=title).first

    def current() -> bool:
        if "lm-mod-current" in (tab.get_attribute("class") or ""):
            return True
        tab.scroll_into_view_if_needed()
        tab.click()
        return False

    wait_until(current, 30, f"the {title} tab could not be selected", interval=1.0)


@pytest.mark.slow
def test_results_panel_and_comparison_in_the_notebook(page: Any, lab: ServerProcess) -> None:
    a, b = _train_two(lab)
    answer = lab.request("GET", f"/yolo/jobs/{a}/results")
    final = answer["final"]
    assert final is not None and final["per_class"] and final["val_images"]
    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(
                f"from jupyter_yolo.widgets import CompareRuns, ResultsPanel\n\n"
                f"panel = ResultsPanel({a!r})\npanel"
            ),
            nbformat.v4.new_code_cell(f"compare = CompareRuns([{a!r}, {b!r}])\ncompare"),
        ]
    )
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(notebook, lab.root / "results.ipynb")
    page.set_viewport_size(TALL)
    open_notebook(page, lab, "results.ipynb")

    run_code_cell(page, 0)
    page.wait_for_selector(f"{RESULTS} .yolo-classes", timeout=120_000)
    rows = page.locator(f"{RESULTS} .yolo-classes tr").count() - 1
    assert rows == len(final["per_class"]) > 0
    header = page.locator(f"{RESULTS}").first.inner_text()
    assert "run A" in header and "box mAP50-95" in header and "2 of 2" in header
    panel_screenshot(page, RESULTS, "notebook-results-metrics")

    _tab(page, "Curves")
    pr = wait_until(
        lambda: [
            t
            for t in _traces(page, RESULTS)
            if (t["meta"] or {}).get("curve") == "PR" and t["points"] == 101
        ],
        60,
        "no PR curve with points on the page",
    )
    assert {t["meta"]["class"] for t in pr} == {*final["curves"][0]["per_class"], "all"}
    panel_screenshot(page, RESULTS, "notebook-results-curves")

    _tab(page, "Confusion matrix")
    heat = wait_until(
        lambda: [t for t in _traces(page, RESULTS) if t["type"] == "heatmap" and t["cells"]],
        60,
        "no confusion matrix heatmap with cells on the page",
    )
    names = len(final["confusion"]["names"])
    assert heat[0]["points"] == names and heat[0]["cells"] == names * names
    panel_screenshot(page, RESULTS, "notebook-results-confusion")

    _tab(page, "Validation images")
    images = wait_until(
        lambda: [
            t
            for t in _traces(page, RESULTS)
            if t["type"] == "image" and (t["source"] or "").startswith("data:image/")
        ],
        60,
        "the validation image was not drawn",
    )
    assert len(images) == 2  # truth and predictions side by side
    truth = [
        t
        for t in _traces(page, RESULTS)
        if (t["meta"] or {}).get("side") == "truth" and t["name"] != "halo"
    ]
    assert len(truth) == len(final["val_images"][0]["truth"])
    panel_screenshot(page, RESULTS, "notebook-results-images")

    _tab(page, "Console")
    console = page.locator(f"{RESULTS} .yolo-console").first.inner_text()
    assert console.strip() and str(lab.workspace) not in console
    panel_screenshot(page, RESULTS, "notebook-results-console")
    _tab(page, "System")
    usage = wait_until(
        lambda: [t for t in _traces(page, RESULTS) if (t["meta"] or {}).get("usage") == "cpu"],
        60,
        "no usage chart",
    )
    assert usage[0]["points"] == len(answer["usage"]) >= 1
    panel_screenshot(page, RESULTS, "notebook-results-system")

    run_code_cell(page, 1)
    heads = wait_until(
        lambda: [
            t
            for t in _traces(page, COMPARE)
            if (t["meta"] or {}).get("series") == "headline" and t["points"] == 2
        ],
        120,
        "the comparison chart never had the runs' curves",
    )
    assert [t["meta"]["run"] for t in heads] == [a, b]
    wait_until(
        lambda: page.locator(f"{COMPARE} .yolo-differs").count() == 1,
        30,
        "the differing lr0 is not highlighted",
    )
    assert "lr0" in page.locator(f"{COMPARE} .yolo-differs").first.inner_text()
    assert page.locator(f"{COMPARE} .yolo-best tr").count() == 3
    panel_screenshot(page, COMPARE, "notebook-compare-runs")

    # a browser reload: the views are drawn again from the kernel's state, figures included
    # (saved first: the notebook's outputs hold the widget views)
    page.locator(".jp-Notebook .jp-Cell").first.click()
    page.keyboard.press("Escape")
    page.keyboard.press("Control+s")
    page.wait_for_function(
        "() => !document.querySelector('.lm-TabBar-tab.jp-mod-current.jp-mod-dirty')",
        timeout=30_000,
    )
    page.reload()
    # attached, maybe hidden: the tab chosen last (System) is still the one shown
    page.wait_for_selector(f"{RESULTS} .yolo-classes", state="attached", timeout=120_000)
    wait_until(
        lambda: (
            len(
                [t for t in _traces(page, COMPARE) if (t["meta"] or {}).get("series") == "headline"]
            )
            == 2
        ),
        60,
        "the comparison chart came back empty after a reload",
    )
    _tab(page, "Confusion matrix")
    wait_until(
        lambda: [t for t in _traces(page, RESULTS) if t["type"] == "heatmap" and t["cells"]],
        60,
        "the confusion matrix came back empty after a reload",
    )
    panel_screenshot(page, RESULTS, "notebook-results-after-reload")
