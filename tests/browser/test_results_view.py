"""The run results and run comparison views of the JupyterLab extension, in Chromium.

Two real tiny trainings (the shapes dataset, imgsz 64, 2 epochs, different batch sizes) run through
the REST API of the test's JupyterLab. The second one's results view, opened before it ends, says
what is still missing and fills in when it ends; then the sidebar opens the first one's (per-class
rows, a confusion matrix with cells, a PR curve with points, validation images with boxes, the
summary's name, start and duration) and compares both (one line per run on the metric chart, the
differing ``batch`` highlighted in the table). Everything checked on the page is also checked
against the server's own answer (``GET /yolo/jobs/{id}/results``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from ..server_process import ServerProcess
from .conftest import SCREENSHOTS, screenshot
from .test_labextension import api, job_row, open_jobs_sidebar, wait_until

TRAIN = {
    "kind": "train",
    "model": "yolov8n.yaml",
    "data": "shapes",
    "epochs": 2,
    "imgsz": 64,
    "device": "cpu",
    "workers": 0,
    "plots": False,
}
RUNS = {"run A": 8, "run B": 4}
"""Each run's batch size: the loss curves of the two differ (``lr0`` would not show in two
warm-up epochs)."""
SLOW_MS = 180_000


def element_shot(page: Any, selector: str, name: str) -> Path:
    """A screenshot of one element (scrolled into view) as an artifact."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    element = page.locator(selector).first
    element.scroll_into_view_if_needed()
    element.screenshot(path=str(path))
    return path


def start_two_runs(lab: ServerProcess) -> dict[str, str]:
    """Start both trainings; return each job's id by run name."""
    return {
        name: api(lab, "POST", "/yolo/jobs", {**TRAIN, "name": name, "batch": batch})["id"]
        for name, batch in RUNS.items()
    }


def wait_for_runs(lab: ServerProcess, started: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Wait for both trainings to succeed; return each run's results answer by name."""
    answers = {}
    for name, job_id in started.items():

        def ended(job_id: str = job_id) -> Any:
            body = api(lab, "GET", f"/yolo/jobs/{job_id}")
            return body if body["status"] in {"succeeded", "failed", "stopped"} else None

        done = wait_until(ended, f"training {name} to end", timeout=900)
        assert done["status"] == "succeeded", done.get("error")
        answers[name] = api(lab, "GET", f"/yolo/jobs/{job_id}/results")
    return answers


@pytest.mark.slow
def test_results_view_and_comparison_of_two_runs(browser: Any, lab: ServerProcess) -> None:
    started = start_two_runs(lab)
    # a tall window, so a whole section fits in one screenshot
    context = browser.new_context(viewport={"width": 1500, "height": 1400})
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        page.goto(f"{lab.url}/lab?token={lab.token}")
        page.wait_for_selector("#jp-main-dock-panel", timeout=120_000)
        open_jobs_sidebar(page)

        # ---- run B's view opened before it ends: it says what is missing, then fills in
        results_b = job_row(page, started["run B"]).locator(".jp-yolo-JobRow-results")
        expect(results_b).to_be_visible(timeout=SLOW_MS)
        results_b.click()
        view_b = page.locator(f'.jp-yolo-Results[data-job-id="{started["run B"]}"]')
        expect(view_b).to_have_attribute("data-status", re.compile(".+"), timeout=SLOW_MS)
        # status and message read at once, from the same render
        status, hidden, message = view_b.evaluate(
            """node => {
              const message = node.querySelector('.jp-yolo-Results-message');
              return [node.dataset.status, message.hidden, message.textContent];
            }"""
        )
        if status in {"queued", "running"}:
            assert not hidden and re.search("No results yet|going on", message), message
            element_shot(
                page,
                f'.jp-yolo-Results[data-job-id="{started["run B"]}"]',
                "results-view-unfinished",
            )
        runs = wait_for_runs(lab, started)
        final_b = runs["run B"]["final"]
        assert final_b is not None
        rows_b = view_b.locator(".jp-yolo-Results-classes tbody tr")
        expect(rows_b).to_have_count(len(final_b["per_class"]), timeout=SLOW_MS)
        expect(view_b).to_have_attribute("data-status", "succeeded")
        expect(view_b.locator(".jp-yolo-Results-message")).to_be_hidden()

        first = runs["run A"]
        final = first["final"]
        assert final is not None and final["per_class"] and final["confusion"], first
        pr = next(c for c in final["curves"] if c["name"] == "PR")
        row = job_row(page, first["job_id"])
        expect(row.locator(".jp-yolo-JobRow-title")).to_have_text("run A", timeout=SLOW_MS)
        # the row: name, start time and duration, the headline metric by its short label
        expect(row.locator(".jp-yolo-JobRow-time")).to_contain_text("started")
        expect(row.locator(".jp-yolo-JobRow-time")).to_contain_text("took")
        expect(row.locator(".jp-yolo-JobRow-progress")).to_contain_text("box mAP50-95")

        # ---- the results view of run A
        row.locator(".jp-yolo-JobRow-results").click()
        view_a = f'.jp-yolo-Results[data-job-id="{first["job_id"]}"]'
        view = page.locator(view_a)
        expect(view).to_be_visible()
        expect(view.locator(".jp-yolo-Results-title")).to_contain_text("run A")
        summary = view.locator(".jp-yolo-Results-summary")
        expect(summary.locator('tr[data-key="best epoch"]')).to_contain_text(
            f"{first['best']['epoch']} of 2"
        )
        expect(summary.locator('tr[data-key="dataset"]')).to_contain_text("shapes")
        classes = view.locator(".jp-yolo-Results-classes tbody tr")
        expect(classes).to_have_count(len(final["per_class"]))
        for item in final["per_class"]:
            cls = view.locator(f'.jp-yolo-Results-classes tr[data-class="{item["name"]}"]')
            expect(cls).to_have_count(1)
        heatmap = view.locator(".jp-yolo-Heatmap")
        n = len(final["confusion"]["names"])
        expect(heatmap).to_have_attribute("data-cells", str(n * n))
        expect(heatmap.locator(".jp-yolo-Heatmap-count").first).to_be_visible()
        pr_chart = view.locator('.jp-yolo-Chart[data-curve="PR"]')
        # every class's line and the bold mean, each with the curve's points
        expect(pr_chart).to_have_attribute("data-series", str(len(pr["per_class"]) + 1))
        mean = pr_chart.locator('polyline[data-series="all classes (mean)"]')
        expect(mean).to_have_attribute("data-points", str(len(pr["x"])))
        # hovering the curve shows values
        box = pr_chart.locator("svg").bounding_box()
        assert box is not None
        page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
        expect(pr_chart.locator(".jp-yolo-Chart-tip")).to_contain_text("all classes (mean)")
        # validation images: truth and prediction side by side, the truth's boxes drawn
        images = view.locator(".jp-yolo-ValImage")
        expect(images).to_have_count(len(final["val_images"]))
        shown = final["val_images"][0]
        truth = images.first.locator('[data-side="truth"] .jp-yolo-ValImage-overlay')
        expect(truth).to_have_attribute("data-boxes", str(len(shown["truth"])))
        wait_until(
            lambda: images.first.locator("img").first.evaluate("i => i.naturalWidth") > 0,
            "the validation image to load",
            timeout=60,
        )
        # the epoch charts and the console
        metrics = view.locator('.jp-yolo-Chart[data-chart="metrics"]')
        headline = metrics.locator('polyline[data-series="box mAP50-95"]')
        expect(headline).to_have_attribute("data-points", "2")
        console = view.locator("pre.jp-yolo-Results-console")
        expect(console).to_contain_text("epoch", ignore_case=True)
        # clean lines: workspace-relative paths, no glyph that needs an emoji font
        expect(console).to_contain_text(f"jobs/{first['job_id']}/")
        text = console.text_content() or ""
        assert str(lab.workspace) not in text
        assert not any(ord(c) >= 0x1F000 for c in text), text
        element_shot(page, view_a, "results-view")
        view.locator('[data-section="confusion"] .jp-yolo-Results-normalize').check()
        expect(heatmap.locator(".jp-yolo-Heatmap-count").first).to_contain_text(".")
        element_shot(page, f'{view_a} [data-section="classes"]', "results-view-classes")
        element_shot(page, f'{view_a} [data-section="curves"]', "results-view-curves")
        element_shot(page, f'{view_a} [data-section="confusion"]', "results-view-confusion")
        element_shot(page, f'{view_a} [data-section="images"]', "results-view-images")
        # system usage over the run: one CPU point per sample that knows it
        cpu = [u for u in first["usage"] if u["cpu_percent"] is not None]
        if cpu:
            usage = view.locator('.jp-yolo-Chart[data-chart="usage-percent"]')
            line = usage.locator('polyline[data-series="CPU %"]')
            expect(line).to_have_attribute("data-points", str(len(cpu)))
            element_shot(page, f'{view_a} [data-section="usage"]', "results-view-usage")
        element_shot(page, f'{view_a} [data-section="console"]', "results-view-console")

        # ---- compare both runs
        compare = page.locator(".jp-yolo-JobsPanel-compare")
        expect(compare).to_be_disabled()
        for answer in runs.values():
            job_row(page, answer["job_id"]).locator(".jp-yolo-JobRow-select").check()
        expect(compare).to_have_text("Compare (2)")
        compare.click()
        chart = page.locator('.jp-yolo-Compare .jp-yolo-Chart[data-chart="compare-metric"]')
        expect(chart).to_have_attribute("data-series", "2")
        for answer in runs.values():
            line = chart.locator(f'polyline[data-series="{answer["name"]} ({answer["job_id"]})"]')
            expect(line).to_have_attribute("data-points", "2")
        table = page.locator(".jp-yolo-Compare-table")
        expect(table.locator('tr[data-row="batch"]')).to_have_class(
            "jp-yolo-mod-param jp-yolo-mod-differs"
        )
        expect(table.locator('tr[data-row="epochs"]')).to_have_class("jp-yolo-mod-param")
        expect(table.locator("thead th")).to_have_count(3)
        element_shot(page, ".jp-yolo-Compare", "results-compare")
        screenshot(page, "results-compare-lab")
    except BaseException:
        screenshot(page, "FAILED-results-view")
        raise
    finally:
        context.close()
