"""A runner that finds another one at work on its job leaves it; the server follows the live one."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

from jupyter_yolo.jobs.manager import JobManager
from jupyter_yolo.runner.job import ALREADY_RUNNING_EXIT
from jupyter_yolo.workspace import Workspace


def test_a_guard_exit_is_followed_by_the_live_runner_not_recorded_as_failed(
    tmp_path: Path,
) -> None:
    workspace = Workspace(tmp_path / "ws")
    manager = JobManager(
        workspace,
        python=sys.executable,
        max_jobs_per_device=1,
        stop_grace_period=5,
        kill_grace_period=1,
        log_max_bytes=1 << 20,
        log=logging.getLogger("test"),
    )
    job_id = "0123456789ab"
    folder = workspace.jobs / job_id
    folder.mkdir()
    manager.registry.insert(
        job_id=job_id, kind="train", name=None, request={}, params={}, devices=["cpu"]
    )
    assert manager.registry.claim(job_id)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    guard = subprocess.Popen([sys.executable, "-c", f"raise SystemExit({ALREADY_RUNNING_EXIT})"])
    try:
        (folder / "status.json").write_text(json.dumps({"status": "running", "pid": live.pid}))
        manager.registry.set_process(job_id, guard.pid, None)
        manager._children[job_id] = guard  # the runner this server started
        guard.wait(timeout=60)
        manager.tick()
        record = manager.registry.require(job_id)
        assert record.status == "running"
        assert record.pid == live.pid
        live.kill()
        live.wait(timeout=30)
        manager.tick()  # now the live runner is gone without a final status
        assert manager.registry.require(job_id).status == "interrupted"
    finally:
        live.kill()
        manager.registry.close()
