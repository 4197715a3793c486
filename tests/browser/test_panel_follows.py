"""A training panel in a JupyterLab notebook follows its job when the jobs sidebar acts on it.

The job is stopped through the REST API (as another notebook would) and resumed by clicking the
sidebar's Resume button; the panel, never clicked, shows each status, and its Stop and Resume
buttons are enabled exactly when the server accepts them, disabled ones grey and faded. Everything
is read from the page.
"""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

import nbformat
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import expect

from ..server_process import ServerProcess
from .notebook_ui import (
    dismiss_news,
    open_notebook,
    panel_screenshot,
    run_code_cell,
    trace_points,
    wait_until,
)

TRAINING = ".yolo-training-panel"
STATUS = f"{TRAINING} .yolo-status"
BATCH_TRACE = "box loss / batch"
PANEL_CELL = """from jupyter_yolo.widgets import TrainingPanel

panel = TrainingPanel(data="shapes", epochs=40, imgsz=64, batch=8, device="cpu",
                      extra={"plots": False, "workers": 0})
panel"""
SHOWN_WITHIN_S = 3.0

BUTTON_LOOK = """([panel, label]) => {
    const root = document.querySelector(panel);
    const button = [...root.querySelectorAll('button')].find(
        b => (b.textContent || '').trim() === label);
    if (!button) return null;
    const style = getComputedStyle(button);
    return {disabled: button.disabled, opacity: parseFloat(style.opacity),
            cursor: style.cursor, background: style.backgroundColor};
}"""


def api(lab: ServerProcess, method: str, path: str) -> Any:
    """A REST call with the lab's token."""
    request = urllib.request.Request(
        lab.url + path, method=method, data=b"" if method == "POST" else None
    )
    request.add_header("Authorization", f"token {lab.token}")
    with urllib.request.urlopen(request, timeout=150) as response:
        return json.loads(response.read() or b"null")


def status_text(page: Any) -> str:
    """The panel's status line as the page shows it."""
    return str(page.evaluate(f"() => document.querySelector('{STATUS}')?.textContent || ''"))


def shows(page: Any, *statuses: str) -> bool:
    """Whether the status line names one of ``statuses`` (its second part)."""
    parts = [p.strip() for p in status_text(page).split("\u00b7")]
    return len(parts) > 1 and parts[1] in statuses


def look(page: Any, label: str) -> dict[str, Any]:
    """A panel button's disabled flag and computed look."""
    value: dict[str, Any] | None = page.evaluate(BUTTON_LOOK, [TRAINING, label])
    assert value is not None, f"no {label} button in the panel"
    return value


def open_jobs_sidebar(page: Any) -> None:
    """Show the jobs sidebar (again if the restored layout hides it right after a click)."""
    tab = page.locator('.jp-SideBar li[data-id="jupyter-yolo-jobs"]')
    panel = page.locator("#jupyter-yolo-jobs")
    expect(tab).to_be_visible()

    def shown() -> bool:
        if not panel.is_visible() and "lm-mod-current" not in (tab.get_attribute("class") or ""):
            tab.click()
            try:
                panel.wait_for(state="visible", timeout=3000)
            except PlaywrightTimeoutError:
                return False
        return bool(panel.is_visible())

    wait_until(shown, 60, "the jobs sidebar did not show")


@pytest.mark.slow
def test_panel_shows_a_resume_made_in_the_sidebar(page: Any, lab: ServerProcess) -> None:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(PANEL_CELL)])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nbformat.write(notebook, lab.root / "follows.ipynb")
    page.set_viewport_size({"width": 1400, "height": 1300})
    open_notebook(page, lab, "follows.ipynb")
    run_code_cell(page, 0)
    page.wait_for_selector(f"{TRAINING} .js-plotly-plot", timeout=60_000)
    assert look(page, "Stop")["disabled"] and look(page, "Resume")["disabled"]
    enabled = look(page, "Start")
    assert not enabled["disabled"]

    page.locator(f"{TRAINING} button:has-text('Start')").click()
    wait_until(lambda: shows(page, "running"), 180, "the panel never showed the job running")
    job_id = next(j["id"] for j in api(lab, "GET", "/yolo/jobs")["jobs"] if j["kind"] == "train")
    assert job_id in status_text(page)
    wait_until(lambda: not look(page, "Stop")["disabled"], 30, "Stop stayed disabled")
    wait_until(lambda: trace_points(page, TRAINING, BATCH_TRACE) >= 2, 180, "no loss points")

    # stopped elsewhere (the REST API): the panel shows it and only Resume is enabled
    api(lab, "POST", f"/yolo/jobs/{job_id}/stop")
    wait_until(lambda: shows(page, "stopped"), 180, "the panel never showed the stop")
    wait_until(lambda: not look(page, "Resume")["disabled"], 30, "Resume stayed disabled")
    stop = look(page, "Stop")
    resume = look(page, "Resume")
    assert stop["disabled"] and not resume["disabled"]
    # a disabled button looks disabled: faded and grey, with the not-allowed cursor
    assert stop["opacity"] < 0.5 < resume["opacity"], (stop, resume)
    assert stop["cursor"] == "not-allowed", stop
    assert stop["background"] != enabled["background"], (stop, enabled)
    panel_screenshot(page, TRAINING, "panel-follows-stopped-buttons")
    stopped_points = trace_points(page, TRAINING, BATCH_TRACE)

    # resumed from the sidebar: the panel shows it running again, never touched
    open_jobs_sidebar(page)
    dismiss_news(page)
    row = page.locator(f'li.jp-yolo-JobRow[data-job-id="{job_id}"]')
    expect(row).to_have_attribute("data-status", "stopped", timeout=60_000)
    row.locator("button.jp-yolo-JobRow-resume").click()
    clicked = time.monotonic()
    wait_until(lambda: shows(page, "queued", "running"), 60, "the panel never showed the resume")
    seen = time.monotonic() - clicked
    wait_until(lambda: shows(page, "running"), 60, "the panel never showed the job running")
    running = time.monotonic() - clicked
    print(f"sidebar resume: panel showed it after {seen:.2f} s, running after {running:.2f} s")
    assert seen <= SHOWN_WITHIN_S, f"the panel showed the resume after {seen:.1f} s"
    wait_until(lambda: not look(page, "Stop")["disabled"], 30, "Stop stayed disabled")
    assert look(page, "Resume")["disabled"]
    wait_until(
        lambda: trace_points(page, TRAINING, BATCH_TRACE) > stopped_points,
        180,
        "the curve did not go on after the sidebar's resume",
    )
    panel_screenshot(page, TRAINING, "panel-follows-resumed-from-sidebar")

    api(lab, "POST", f"/yolo/jobs/{job_id}/stop")
    wait_until(lambda: shows(page, "stopped"), 180, "the final stop never showed")
