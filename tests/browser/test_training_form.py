"""The training form's Advanced section, its pretrained weights picker (best run first, with its
metric, dataset and date) and the readable hardware report, in a notebook and in JupyterLab's
report tab, in real Chromium. Screenshots: training-form-advanced, panel-accelerators-readable,
labextension-accelerator-report-readable."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from typing import Any

import nbformat
import pytest
from playwright.sync_api import expect

from jupyter_yolo.widgets.training_form import weights_choices

from ..server_process import ServerProcess
from .conftest import screenshot
from .notebook_ui import dismiss_news, open_notebook, panel_screenshot, run_code_cell, wait_until

TRAINING = ".yolo-training-panel"
ACCELERATORS = ".yolo-accelerators-panel"
# two tiny runs (3 epochs and 1), so the picker has runs to rank
RUN = {"kind": "train", "data": "shapes", "imgsz": 64, "batch": 8, "workers": 0, "device": "cpu"}
SETUP = """\
from jupyter_yolo.client import YoloClient
from jupyter_yolo.widgets import AcceleratorsPanel, TrainingPanel

client = YoloClient()
"""


def api(lab: ServerProcess, method: str, path: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(lab.url + path, data=data, method=method)
    request.add_header("Authorization", f"token {lab.token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=150) as response:
        return json.loads(response.read() or b"null")


def finished(lab: ServerProcess, job_id: str) -> bool:
    status = api(lab, "GET", f"/yolo/jobs/{job_id}")["status"]
    assert status not in ("failed", "stopped", "interrupted"), status
    return bool(status == "succeeded")


@pytest.mark.slow
def test_advanced_section_weights_picker_and_notebook_report(page: Any, lab: ServerProcess) -> None:
    jobs = [
        api(lab, "POST", "/yolo/jobs", {**RUN, "epochs": epochs, "name": f"run-{epochs}ep"})["id"]
        for epochs in (3, 1)
    ]
    for job_id in jobs:
        wait_until(lambda job_id=job_id: finished(lab, job_id), 600, f"job {job_id} never ended")
    # the picker's order is weights_choices' (tested on its own with distinct metrics): best
    # mAP50-95 first, the newest first among equal ones (tiny runs may all score 0.00)
    _, best = weights_choices(api(lab, "GET", "/yolo/models"), "detect")
    assert best is not None
    best_job = best.split(":")[1]

    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    notebook.cells = [
        nbformat.v4.new_code_cell(SETUP),
        nbformat.v4.new_code_cell("panel = TrainingPanel(client)\npanel"),
        nbformat.v4.new_code_cell("AcceleratorsPanel(client)"),
    ]
    nbformat.write(notebook, lab.root / "form.ipynb")
    page.set_viewport_size({"width": 1400, "height": 1600})
    open_notebook(page, lab, "form.ipynb")
    run_code_cell(page, 0)
    run_code_cell(page, 1)
    form = page.locator(TRAINING)
    form.wait_for(timeout=120_000)
    advanced = form.locator(".yolo-training-advanced")
    expect(advanced).to_contain_text("Advanced")
    optimizer = advanced.locator("select").nth(1)  # after the pretrained picker
    expect(optimizer).to_be_hidden()  # folded by default
    advanced.get_by_text("Advanced", exact=False).first.click()
    expect(optimizer).to_be_visible(timeout=30_000)
    expect(optimizer).to_have_value("AdamW")  # the embedded dataset's tuned recipe
    picker = advanced.locator("select").first
    # ipywidgets writes the options' spaces as no-break spaces
    labels = [str(t).replace("\xa0", " ") for t in picker.locator("option").all_text_contents()]
    # none first, then the best run (by mAP50-95), each with dataset, metric and date
    assert labels[0].startswith("none"), labels
    assert f"job {best_job[:4]}" in labels[1] and "mAP50-95" in labels[1], labels
    assert re.search(r"shapes · box mAP50-95 \d\.\d\d · \d{4}-\d\d-\d\d \d\d:\d\d", labels[1])
    picker.select_option(index=1)
    dismiss_news(page)
    panel_screenshot(page, TRAINING, "training-form-advanced")

    run_code_cell(page, 2)
    report = page.locator(ACCELERATORS)
    expect(report).to_contain_text("Recommended: device cpu", timeout=120_000)
    text = str(report.text_content())
    assert "memory_total_bytes" not in text and "tegra_release" not in text
    assert re.search(r"Memory\s*[\d.]+ GiB", text), text[:500]
    host = report.locator("details", has_text="Host").first
    expect(host.locator("td", has_text="CPUs usable")).to_be_hidden()  # details start folded
    host.locator("summary").click()
    expect(host.locator("td", has_text="CPUs usable")).to_be_visible()
    panel_screenshot(page, ACCELERATORS, "panel-accelerators-readable")


def test_jupyterlab_report_reads_as_a_report(page: Any, lab: ServerProcess) -> None:
    report = api(lab, "GET", "/yolo/accelerators")
    item = page.locator("#jp-yolo-status")
    expect(item.locator(".jp-yolo-StatusItem-label")).to_have_text(
        report["primary"]["label"], timeout=180_000
    )
    item.click()
    tab = page.locator("#jp-yolo-report")
    expect(tab).to_be_visible()
    recommendation = tab.locator(".jp-yolo-Report-recommendation")
    expect(recommendation).to_contain_text("Batch")
    expect(recommendation).to_contain_text("Image size")
    # the speed choices a training job makes on this machine, each with its reason
    speed = tab.locator(".jp-yolo-Report-speed")
    expect(speed).to_contain_text("threads =")
    expect(speed).to_contain_text("channels_last = true")
    expect(speed).to_contain_text("ultralytics would use")
    expect(tab.locator(".jp-yolo-Report-summary")).to_contain_text(re.compile(r"[\d.]+ GiB"))
    text = str(tab.text_content())
    for raw in ("memory_total_bytes", "tegra_release", "cpus_usable", "null"):
        assert raw not in text, raw
    # what matters first: recommendation, then the summary, then the folded details
    order = tab.evaluate(
        """node => [...node.querySelectorAll('h3, details > summary')].map(e => e.textContent)"""
    )
    assert order[0] == "Recommended for training" and "Host" in order, order
    assert order[1] == "Training jobs choose", order
    details = tab.locator("details.jp-yolo-Report-details")
    assert details.count() >= 2
    host = details.filter(has_text="Host").first
    expect(host.locator("td", has_text="CPUs usable")).to_be_hidden()
    host.locator("summary").click()
    expect(host.locator("td", has_text="CPUs usable").first).to_be_visible()
    time.sleep(0.3)
    dismiss_news(page)
    screenshot(page, "labextension-accelerator-report-readable")
