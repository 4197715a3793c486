"""The jobs sidebar and the task table: a failed read is retried, and live statuses are served.

The page's clock is fixed (``Date.now``), so "a minute later" is set, not waited for; the
server's answers to ``/yolo/tasks`` and ``/yolo/jobs`` are shaped by Playwright routes (the
first read of the table fails as a restarting server's would; the job list holds one job in a
status only the served table knows).
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import Any

from ..server_process import ServerProcess
from .conftest import screenshot
from .test_labextension import job_row, open_jobs_sidebar

FAKE_ID = "feedc0ffee42"


def fake_job(epoch: int) -> dict[str, Any]:
    """A job in status ``paused``: unfinished by the served table, unknown to the fallback."""
    return {
        "id": FAKE_ID,
        "kind": "train",
        "name": "paused run",
        "status": "paused",
        "task": "segment",
        "model": "yolov8n-seg.yaml",
        "data": "shapes-seg",
        "created": 1.0,
        "started": 2.0,
        "ended": None,
        "queue_position": None,
        "progress": {
            "epoch": epoch,
            "epochs": 999,
            "epochs_done": epoch,
            "batch": 3,
            "batches": 10,
            "fraction": 0.1,
            "images_per_s": None,
            "eta_s": None,
            "loss": {},
            "metrics": {},
            "warnings": 0,
            "last_seq": 0,
        },
        "error": None,
        "resumable": False,
        "folder": f"runs/{FAKE_ID}",
    }


def pump_until(page: Any, check: Any, what: str, rounds: int = 1200) -> None:
    """Let the page run (and Playwright answer routes) until ``check()`` holds."""
    for _ in range(rounds):
        if check():
            return
        page.wait_for_timeout(100)
    raise AssertionError(f"never happened: {what}")


def test_sidebar_retries_a_failed_task_table_and_reads_live_statuses_from_it(
    browser: Any, lab: ServerProcess
) -> None:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(60_000)
    tasks_reads: list[int] = []
    jobs_reads: list[int] = []

    def on_tasks(route: Any) -> None:
        tasks_reads.append(1)
        if len(tasks_reads) == 1:
            route.fulfill(
                status=503,
                content_type="application/json",
                body=json.dumps({"message": "The server is restarting."}),
            )
            return
        response = route.fetch()
        table = response.json()
        table["statuses"]["all"].append("paused")
        table["statuses"]["unfinished"].append("paused")
        route.fulfill(response=response, json=table)

    def on_jobs(route: Any) -> None:
        jobs_reads.append(1)
        body = {
            "jobs": [fake_job(len(jobs_reads))],
            "queue": [],
            "max_jobs_per_device": 1,
            "supervising": True,
            "warnings": [],
        }
        route.fulfill(status=200, content_type="application/json", body=json.dumps(body))

    start = datetime(2030, 1, 1, 12, 0, 0)
    page.clock.set_fixed_time(start)
    page.route(re.compile(r".*/yolo/tasks(\?.*)?$"), on_tasks)
    page.route(re.compile(r".*/yolo/jobs(\?.*)?$"), on_jobs)
    try:
        page.goto(f"{lab.url}/lab?token={lab.token}")
        page.wait_for_selector("#jp-main-dock-panel", timeout=120_000)
        open_jobs_sidebar(page)
        progress = job_row(page, FAKE_ID).locator(".jp-yolo-JobRow-progress")
        progress.wait_for(timeout=120_000)

        def shown_epoch() -> int:
            found = re.search(r"epoch (\d+)/999", progress.text_content() or "")
            return int(found.group(1)) if found else 0

        def tick() -> str:
            """Refresh the list once; return the progress text its render wrote."""
            target = len(jobs_reads) + 1  # rendered after this tick's task table read
            page.locator(".jp-yolo-JobsPanel-refresh").click()
            pump_until(page, lambda: shown_epoch() >= target, f"a render of list {target}")
            return str(progress.text_content() or "")

        pump_until(page, lambda: len(tasks_reads) == 1, "the first read of the task table")
        # the table failed: the fallback statuses do not know 'paused' (no batch shown) ...
        for _ in range(3):
            text = tick()
            assert "batch" not in text, text
        # ... and within the minute the table is not asked again
        assert len(tasks_reads) == 1

        # a minute on, the next use asks again; the served statuses make 'paused' live
        page.clock.set_fixed_time(start + timedelta(seconds=61))
        text = tick()
        assert len(tasks_reads) == 2
        assert "batch 3/10" in text, text
        screenshot(page, "sidebar-task-table-retried")

        # a table read is kept: no more requests, even much later
        page.clock.set_fixed_time(start + timedelta(minutes=30))
        for _ in range(3):
            assert "batch 3/10" in tick()
        assert len(tasks_reads) == 2
    finally:
        context.close()
