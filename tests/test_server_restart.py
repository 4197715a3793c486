"""A job survives ``kill -9`` of the jupyter server, and the restarted server re-attaches to it."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from jupyter_yolo.jobs.process import is_same_process_alive

from .conftest import install_dataset
from .server_process import ServerProcess


@pytest.mark.slow
def test_job_survives_server_kill9_and_is_reattached(tmp_path: Path, shapes_template: Path) -> None:
    workspace = tmp_path / "workspace"
    install_dataset(shapes_template, workspace / "datasets" / "shapes")
    server = ServerProcess(tmp_path, workspace)
    server.start()
    try:
        job = server.request(
            "POST",
            "/yolo/jobs",
            {
                "kind": "train",
                "model": "yolov8n.yaml",
                "data": "datasets/shapes/data.yaml",
                "epochs": 3,
                "imgsz": 64,
                "batch": 2,
                "device": "cpu",
                "workers": 0,
                "plots": False,
            },
        )
        job_id = job["id"]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            page = server.request("GET", f"/yolo/jobs/{job_id}/events?after=0&timeout=5")
            if any(e["type"] == "batch" for e in page["events"]):
                break
        else:
            pytest.fail("training never started")

        status = (workspace / "jobs" / job_id / "status.json").read_text()
        pid = json.loads(status)["pid"]
        server.kill9()
        assert is_same_process_alive(pid, None), "the job must outlive the server"
        time.sleep(1.0)

        server.start()
        again = server.request("GET", f"/yolo/jobs/{job_id}")
        assert again["status"] in ("running", "succeeded")
        listed = server.request("GET", "/yolo/jobs")
        assert job_id in {j["id"] for j in listed["jobs"]}

        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            final = server.request("GET", f"/yolo/jobs/{job_id}")
            if final["status"] not in ("running", "stopping", "queued"):
                break
            time.sleep(0.5)
        assert final["status"] == "succeeded", final

        events: list[dict] = []
        while True:
            after = events[-1]["seq"] if events else 0
            page = server.request("GET", f"/yolo/jobs/{job_id}/events?after={after}")
            events.extend(page["events"])
            if not page["more"]:
                break
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        assert [e["epoch"] for e in events if e["type"] == "epoch"] == [1, 2, 3]
        terminal = [e for e in events if e["type"] == "status" and e["status"] == "succeeded"]
        assert len(terminal) == 1 and events[-1] is terminal[0]
    finally:
        server.stop()
