"""Panels follow the server's state: a stop, resume or restart made elsewhere shows in the panel.

A real jupyter server in a child process (it is restarted on the same port in one test) and a
``TrainingPanel`` built in the pytest process (panels never import ultralytics). Changes are made
through the REST API, as the sidebar or another notebook would; the panel is never told.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from jupyter_yolo.client import BadRequestError, YoloClient
from jupyter_yolo.contract.actions import job_actions
from jupyter_yolo.widgets import TrainingPanel
from jupyter_yolo.workspace import Workspace

from .conftest import install_dataset
from .server_process import ServerProcess, serving

# tiny CPU training; enough epochs that the job still runs when it is stopped
TRAIN = {
    "model": "yolov8n.yaml",
    "data": "shapes",
    "epochs": 40,
    "imgsz": 64,
    "batch": 8,
    "device": "cpu",
    "workers": 0,
    "plots": False,
}
SLOW = 240.0


def wait_for(check: Callable[[], Any], what: str, timeout: float = SLOW) -> Any:
    """Poll ``check`` until it is truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def test_actions_follow_the_status_and_the_kind() -> None:
    assert job_actions("train", "running") == {"stop": True, "resume": False}
    assert job_actions("train", "queued") == {"stop": True, "resume": False}
    assert job_actions("train", "stopping") == {"stop": False, "resume": False}
    assert job_actions("train", "stopped") == {"stop": False, "resume": True}
    assert job_actions("train", "interrupted") == {"stop": False, "resume": True}
    assert job_actions("train", "succeeded") == {"stop": False, "resume": False}
    assert job_actions("predict", "stopped") == {"stop": False, "resume": False}
    assert job_actions("train", "stopped", supervising=False) == {"stop": False, "resume": False}


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, shapes_template: Path
) -> Iterator[ServerProcess]:
    workspace = tmp_path_factory.mktemp("follows") / "workspace"
    install_dataset(shapes_template, workspace / "datasets" / "shapes")
    with serving(workspace) as process:
        yield process


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> YoloClient:
    return YoloClient(server.url, server.token)


def buttons(panel: TrainingPanel) -> dict[str, bool]:
    """Which of Stop and Resume are enabled, as the panel shows them."""
    return {"stop": not panel.stop_button.disabled, "resume": not panel.resume_button.disabled}


def shows(panel: TrainingPanel, *statuses: str) -> bool:
    """Whether the panel's status line shows one of ``statuses``."""
    return any(f"<b>{s}</b>" in panel.status_w.value for s in statuses)


@pytest.mark.slow
def test_panel_follows_a_stop_and_a_resume_made_elsewhere(
    client: YoloClient, server: ServerProcess
) -> None:
    form = {k: TRAIN[k] for k in ("model", "data", "epochs", "imgsz", "batch", "device")}
    panel = TrainingPanel(client, **form, extra={"plots": False, "workers": 0})
    try:
        job_id = panel.start()
        wait_for(lambda: panel.status == "running" and panel.history.batch_points, "batches")
        wait_for(lambda: buttons(panel) == {"stop": True, "resume": False}, "Stop enabled")
        assert panel.stop_button.button_style == "danger"
        assert panel.resume_button.button_style == ""  # grey while disabled
        assert "yolo-button" in panel.resume_button._dom_classes

        # stopped through the REST API: the panel shows it without Attach or a click
        server.request("POST", f"/yolo/jobs/{job_id}/stop")
        wait_for(lambda: shows(panel, "stopping", "stopped"), "the stop to show")
        wait_for(lambda: panel.status == "stopped" and shows(panel, "stopped"), "stopped")
        job = client.job(job_id)
        assert job["actions"] == {"stop": False, "resume": True}
        wait_for(lambda: buttons(panel) == job["actions"], "Resume enabled, Stop disabled")
        assert panel.resume_button.button_style == "info"
        assert panel.stop_button.button_style == ""

        # resumed through the REST API: the panel follows the same job again
        server.request("POST", f"/yolo/jobs/{job_id}/resume")
        resumed = time.monotonic()
        wait_for(lambda: shows(panel, "queued", "running"), "the resume to show", timeout=60)
        latency = time.monotonic() - resumed
        print(f"resume made elsewhere shown after {latency:.2f} s")
        wait_for(lambda: buttons(panel) == {"stop": True, "resume": False}, "Stop enabled")
        seq = panel.history.last_seq
        wait_for(lambda: panel.history.last_seq > seq, "events of the resumed run")

        # a click the server no longer accepts (Resume of a running job): a readable message,
        # the state as the server has it, no traceback
        panel.resume_button.click()
        wait_for(lambda: "only a stopped or interrupted" in panel.message_w.value, "the 409")
        assert "Traceback" not in panel.message_w.value
        assert "yolo-note-warning" in panel.message_w.value
        assert panel.status in ("queued", "running")

        # and the panel's own Stop still works
        panel.stop_button.click()
        assert panel.wait(timeout=SLOW) == "stopped"
        assert buttons(panel) == {"stop": False, "resume": True}
    finally:
        panel.close()
    follower = panel._follower
    assert follower is not None
    follower.join(15)
    assert not follower.alive


@pytest.mark.slow
def test_panel_rides_out_a_server_restart_and_names_a_deleted_job(
    client: YoloClient, server: ServerProcess
) -> None:
    job = client.train(**{**TRAIN, "epochs": 1})
    job_id = job["id"]
    client.stop(job_id)  # stopped before or just after it started: stopped either way
    assert client.wait(job_id, timeout=SLOW)["status"] == "stopped"

    # the long poll with the status last seen: an ended job is waited on; another status, or
    # a bad one, answers at once
    last = client.events(job_id)["last_seq"]
    asked = time.monotonic()
    page = client.events(job_id, after=last, timeout=2, status="stopped")
    assert page["events"] == [] and page["status"] == "stopped"
    assert time.monotonic() - asked >= 1.9
    asked = time.monotonic()
    page = client.events(job_id, after=last, timeout=30, status="running")
    assert page["status"] == "stopped" and time.monotonic() - asked < 25
    assert page["actions"] == {"stop": False, "resume": True}
    with pytest.raises(BadRequestError, match="status must be one of"):
        client.events(job_id, after=last, status="asleep")

    panel = TrainingPanel.attach(job_id, client)
    try:
        wait_for(lambda: panel.status == "stopped" and panel.actions["resume"], "stopped")
        wait_for(lambda: buttons(panel) == {"stop": False, "resume": True}, "Resume enabled")

        server.stop()
        wait_for(lambda: "Server unreachable, retrying" in panel.message_w.value, "the notice")
        server.start()
        wait_for(lambda: panel.message_w.value == "", "the notice to go after the restart")
        assert panel.status == "stopped"

        # resumed after the restart: the panel (still the same one) shows it
        client.resume(job_id)
        wait_for(lambda: shows(panel, "queued", "running", "succeeded"), "the resume to show")
        wait_for(lambda: panel.status in ("succeeded", "stopped", "failed"), "the end")
        assert panel.status == "succeeded", client.log(job_id)[-2000:]

        # the job deleted while the server was down: the panel says so and offers nothing
        server.stop()
        shutil.rmtree(server.workspace / "jobs" / job_id)
        with sqlite3.connect(Workspace(server.workspace).registry) as db:
            db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
        server.start()
        wait_for(lambda: "no longer exists on the server" in panel.message_w.value, "the 404")
        assert buttons(panel) == {"stop": False, "resume": False}
    finally:
        panel.close()
