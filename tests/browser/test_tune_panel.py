"""The tune panel and the tune job's results view in a real JupyterLab and Chromium.

A ``TunePanel`` in a notebook runs a real small search (4 trials of 2 epochs on the embedded
``shapes`` dataset, imgsz 64, the local executor) started with its Start button: the trials table
shows the 4 trials with one best row starred, the chart draws each parameter against the metric
with the best starred, and "Train with the best" starts a train job with the best trial's
parameters. Then the jobs sidebar opens the tune job's results view: the same trials, the star,
and its own "Train with the best". Everything on the page is checked against the server's answer.
"""

from __future__ import annotations

import re
from typing import Any

import nbformat
import pytest
from playwright.sync_api import expect

from ..server_process import ServerProcess
from .conftest import SCREENSHOTS, screenshot
from .notebook_ui import (
    dismiss_news,
    open_notebook,
    panel_screenshot,
    plot_summary,
    run_code_cell,
    trace_points,
    wait_for_text,
    wait_until,
)
from .test_labextension import job_row, open_jobs_sidebar

PANEL = ".yolo-tune-panel"
TRIALS = 4
CELL = f"""from jupyter_yolo.widgets import TunePanel

panel = TunePanel(imgsz=64, batch=8, device="cpu", iterations={TRIALS}, epochs=2,
                  train_epochs=3, executor="local", extra={{"plots": False, "workers": 0}})
panel"""


def stop_job(lab: ServerProcess, job_id: str) -> None:
    """The full training started by the test is not needed: stop it (CPU is shared)."""
    job = lab.request("GET", f"/yolo/jobs/{job_id}")
    if job["actions"]["stop"]:
        lab.request("POST", f"/yolo/jobs/{job_id}/stop")


@pytest.mark.slow
def test_tune_panel_runs_a_search_and_trains_the_best(page: Any, lab: ServerProcess) -> None:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(CELL)])
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(notebook, lab.root / "tune.ipynb")
    page.set_viewport_size({"width": 1400, "height": 1800})
    open_notebook(page, lab, "tune.ipynb")
    run_code_cell(page, 0)
    page.wait_for_selector(f"{PANEL} .js-plotly-plot", timeout=60_000)
    panel_screenshot(page, PANEL, "panel-tune-form")

    page.locator(f"{PANEL} button:has-text('Start')").click()
    wait_for_text(page, f"{PANEL} .yolo-status", "running", timeout=120)
    tune_id = wait_until(
        lambda: next(
            (j["id"] for j in lab.request("GET", "/yolo/jobs")["jobs"] if j["kind"] == "tune"),
            None,
        ),
        30,
        "no tune job was created",
    )
    job = lab.request("GET", f"/yolo/jobs/{tune_id}")
    assert job["kind"] == "tune"
    page.wait_for_selector(f"{PANEL} table.yolo-trials tr[data-trial]", timeout=300_000)
    panel_screenshot(page, PANEL, "panel-tune-running")  # live: the first trials' rows
    wait_for_text(page, f"{PANEL} .yolo-status", "succeeded", timeout=400)
    wait_for_text(page, f"{PANEL} .yolo-status", f"{TRIALS} of {TRIALS} trials done", timeout=30)

    # the table: the server's trials, one best row starred
    result = lab.request("GET", f"/yolo/jobs/{tune_id}/results")["tune"]
    assert len(result["trials"]) == TRIALS and result["best"] is not None
    best = result["best"]["trial"]
    rows = page.locator(f"{PANEL} table.yolo-trials tr[data-trial]")
    expect(rows).to_have_count(TRIALS)
    starred = page.locator(f"{PANEL} table.yolo-trials tr.yolo-best")
    expect(starred).to_have_count(1)
    assert starred.get_attribute("data-trial") == str(best)
    expect(starred).to_contain_text("\u2605 best")

    # the chart: every trial with a metric a point, the best a star, in each parameter's panel
    scored = [t for t in result["trials"] if t["metrics"].get(result["metric"]) is not None]
    summary = wait_until(
        lambda: (s := plot_summary(page, PANEL)) and s["traces"] >= 2 and s,
        30,
        "the tune chart was not drawn",
    )
    assert summary["traces"] == 2 * len(result["space"]), summary
    for param in result["space"]:
        assert trace_points(page, PANEL, f"trials \u00b7 {param}") == len(scored)
        assert trace_points(page, PANEL, f"best \u00b7 {param}") == 1
    assert summary["drawn"] >= 2, summary
    panel_screenshot(page, PANEL, "panel-tune-finished")

    # Train with the best: a train job with the best trial's parameters
    page.locator(f"{PANEL} button:has-text('Train with the best')").click()
    note = page.locator(f"{PANEL} .yolo-train-best-note")
    expect(note).to_contain_text("Started training job", timeout=60_000)
    train_id = str(note.inner_text()).split("training job ", 1)[1].split(" ", 1)[0]
    try:
        train = lab.request("GET", f"/yolo/jobs/{train_id}")
        assert train["kind"] == "train" and train["request"]["epochs"] == 3  # the full training
        for name, value in result["best"]["params"].items():
            assert train["request"][name] == pytest.approx(value), name
        page.wait_for_selector(f"{PANEL} .yolo-training-panel", timeout=60_000)
        dismiss_news(page)
        screenshot(page, "lab-tune-train-best")
    finally:
        stop_job(lab, train_id)

    # the JupyterLab results view of the tune job
    open_jobs_sidebar(page)
    results = job_row(page, tune_id).locator(".jp-yolo-JobRow-results")
    expect(results).to_be_visible(timeout=60_000)
    results.click()
    view = page.locator(f'.jp-yolo-Results[data-job-id="{tune_id}"]')
    trials = view.locator(".jp-yolo-Tune")
    expect(trials).to_have_attribute("data-trials", str(TRIALS), timeout=60_000)
    expect(trials).to_have_attribute("data-best", str(best))
    expect(view.locator(".jp-yolo-Tune-trials tbody tr")).to_have_count(TRIALS)
    expect(view.locator(".jp-yolo-Tune-trials tr.jp-yolo-mod-best")).to_have_count(1)
    charts = view.locator(".jp-yolo-Tune-charts figure")
    expect(charts).to_have_count(len(result["space"]))
    expect(view.locator("polygon.jp-yolo-Tune-best")).to_have_count(len(result["space"]))
    section = view.locator('[data-section="tune"]')
    section.scroll_into_view_if_needed()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    section.screenshot(path=str(SCREENSHOTS / "lab-tune-results-view.png"))
    screenshot(page, "lab-tune-results-page")

    view.locator("button.jp-yolo-Tune-trainBest").click()
    expect(trials).to_have_attribute("data-train-job", re.compile(".+"), timeout=60_000)
    second = str(trials.get_attribute("data-train-job"))
    try:
        assert lab.request("GET", f"/yolo/jobs/{second}")["kind"] == "train"
        expect(view.locator(".jp-yolo-Tune-message")).to_contain_text(second)
    finally:
        stop_job(lab, second)
