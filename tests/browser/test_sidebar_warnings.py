"""The jobs sidebar tells what was skipped at start-up and when another server owns the jobs.

A workspace poisoned with a damaged job folder (``job.json`` is ``not json``) and a stopped job
that can be resumed: the supervising lab lists the damaged folder in a folded notice; a second
real lab on the same workspace is read-only (the first one holds the lock), shows a banner naming
the first server's pid and locks Resume, saying why. Both labs share a private settings folder,
so switching the first to the dark theme shows the second in dark too.
"""

from __future__ import annotations

import json
import re
import urllib.error
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from ..conftest import install_dataset
from ..server_process import ServerProcess
from .conftest import SCREENSHOTS, screenshot
from .test_labextension import api, job_row, open_jobs_sidebar

DAMAGED = "0123456789ab"
STOPPED = "5a1e5a1e5a1e"
THEME_SETTINGS = "/lab/api/settings/@jupyterlab/apputils-extension:themes"


@pytest.fixture
def poisoned(tmp_path: Path, shapes_template: Path) -> Path:
    """A workspace with ``shapes``, a damaged job folder and a stopped, resumable train job."""
    workspace = tmp_path / "workspace"
    install_dataset(shapes_template, workspace / "datasets" / "shapes")
    damaged = workspace / "jobs" / DAMAGED
    damaged.mkdir(parents=True)
    (damaged / "job.json").write_text("not json")
    stopped = workspace / "jobs" / STOPPED
    stopped.mkdir()
    job = {
        "kind": "train",
        "name": "restored run",
        "request": {"kind": "train", "model": "yolov8n.yaml", "data": "shapes", "epochs": 3},
        "params": {},
        "devices": ["cpu"],
    }
    (stopped / "job.json").write_text(json.dumps(job))
    (stopped / "status.json").write_text(json.dumps({"status": "stopped"}))
    return workspace


@contextmanager
def lab_on(workspace: Path, settings: Path) -> Iterator[ServerProcess]:
    """A real ``jupyter lab`` on the workspace, with its settings in a private folder."""
    server = ServerProcess(
        workspace,
        workspace,
        module="jupyterlab",
        extra_args=(
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            f"--LabApp.user_settings_dir={settings / 'settings'}",
            f"--LabApp.workspaces_dir={settings / 'workspaces'}",
        ),
    )
    server.start(timeout=120)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def owner(poisoned: Path, tmp_path: Path) -> Iterator[ServerProcess]:
    """The first lab: it takes the workspace's lock and supervises the jobs."""
    with lab_on(poisoned, tmp_path / "lab-settings") as server:
        yield server


@pytest.fixture
def reader(owner: ServerProcess, tmp_path: Path) -> Iterator[ServerProcess]:
    """A second lab on the same workspace, started while the first holds the lock."""
    with lab_on(owner.workspace, tmp_path / "lab-settings") as server:
        yield server


@contextmanager
def lab_page(browser: Any, server: ServerProcess, name: str) -> Iterator[Any]:
    """A logged-in page on a lab with the jobs sidebar open; a screenshot if the block fails."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        page.goto(f"{server.url}/lab?token={server.token}")
        page.wait_for_selector("#jp-main-dock-panel", timeout=120_000)
        open_jobs_sidebar(page)
        yield page
    except BaseException:
        screenshot(page, f"FAILED-{name}")
        raise
    finally:
        context.close()


def sidebar_shot(page: Any, name: str) -> Path:
    """A screenshot of the jobs sidebar alone (the full page is saved as well)."""
    screenshot(page, name)
    path = SCREENSHOTS / f"{name}-sidebar.png"
    page.locator("#jupyter-yolo-jobs").screenshot(path=str(path))
    return path


def test_sidebar_shows_skipped_folders_and_a_read_only_server(
    browser: Any, owner: ServerProcess, reader: ServerProcess
) -> None:
    listed = api(owner, "GET", "/yolo/jobs")
    assert listed["supervising"] is True
    skipped = [w for w in listed["warnings"] if DAMAGED in w["message"]]
    assert [w["code"] for w in skipped] == ["job_folder"]
    message = skipped[0]["message"]

    with lab_page(browser, owner, "sidebar-warnings") as page:
        panel = page.locator("#jupyter-yolo-jobs")
        notice = panel.locator("details.jp-yolo-JobsPanel-skipped")
        summary = notice.locator("summary")
        count = len(listed["warnings"])
        were = "item was" if count == 1 else "items were"
        expect(summary).to_have_text(f"{count} {were} skipped at start-up", timeout=60_000)
        item = notice.locator('li[data-code="job_folder"]', has_text=DAMAGED)
        expect(item).to_be_hidden()  # folded to one line until opened
        summary.click()
        expect(item).to_have_text(message)
        expect(panel.locator(".jp-yolo-JobsPanel-readOnly")).to_be_hidden()
        resume = job_row(page, STOPPED).locator("button.jp-yolo-JobRow-resume")
        expect(resume).to_be_enabled()
        expect(resume).to_have_attribute("title", "Continue the training from last.pt")
        sidebar_shot(page, "sidebar-warnings-light")

        # the dark theme (saved in the labs' shared settings folder): the notice stays readable
        api(owner, "PUT", THEME_SETTINGS, {"raw": json.dumps({"theme": "JupyterLab Dark"})})
        page.reload()
        expect(page.locator("body")).to_have_attribute(
            "data-jp-theme-light", "false", timeout=120_000
        )
        open_jobs_sidebar(page)
        summary.click()
        expect(item).to_be_visible()
        sidebar_shot(page, "sidebar-warnings-dark")

    # the second lab shows the jobs but may not touch them: a banner and a locked Resume
    read = api(reader, "GET", "/yolo/jobs")
    assert read["supervising"] is False
    assert read["warnings"][0]["code"] == "not_supervising"
    assert owner.proc is not None
    assert f"(pid {owner.proc.pid} on " in read["warnings"][0]["message"]
    with lab_page(browser, reader, "sidebar-read-only") as page:
        panel = page.locator("#jupyter-yolo-jobs")
        banner = panel.locator(".jp-yolo-JobsPanel-readOnly")
        expect(banner).to_have_text(
            f"Read-only: {read['warnings'][0]['message']}. Stop and resume its jobs there.",
            timeout=60_000,
        )
        expect(banner).to_contain_text(re.compile(r"\(pid \d+ on "))
        expect(panel.locator("details.jp-yolo-JobsPanel-skipped")).to_be_hidden()
        row = job_row(page, STOPPED)
        expect(row).to_have_attribute("data-status", "stopped")
        resume = row.locator("button.jp-yolo-JobRow-resume")
        expect(resume).to_be_visible()
        expect(resume).to_be_disabled()
        expect(resume).to_have_attribute(
            "title", f"Read-only: {read['warnings'][0]['message']}. Resume the job there."
        )
        assert resume.evaluate("node => getComputedStyle(node).cursor") == "not-allowed"
        assert float(resume.evaluate("node => getComputedStyle(node).opacity")) < 1
        sidebar_shot(page, "sidebar-read-only-dark")

        # a click on the locked button sends nothing; the server itself would refuse with 409
        resume.click(force=True)
        page.wait_for_timeout(1500)
        expect(page.locator(".Toastify__toast", has_text="Resuming job")).to_have_count(0)
        with pytest.raises(urllib.error.HTTPError) as refused:
            api(reader, "POST", f"/yolo/jobs/{STOPPED}/resume")
        assert refused.value.code == 409
        assert api(owner, "GET", f"/yolo/jobs/{STOPPED}")["status"] == "stopped"
