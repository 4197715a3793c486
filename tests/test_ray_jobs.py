"""Jobs on Ray (issue 16): a real jupyter server process and a real Ray cluster on this machine.

The slow scenarios share one server (executor=ray at the session's Ray head) and one tiny
dataset; the fast tests at the top check placement, the entrypoint's marker and the registry's
migration without Ray.
"""

from __future__ import annotations

import http.server
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jupyter_yolo.contract.executors import (
    SHARED_MARKER_FILE,
    WORKSPACE_NOT_SHARED,
    WORKSPACE_NOT_SHARED_EXIT,
    RayJobInfo,
)
from jupyter_yolo.errors import InvalidRequest
from jupyter_yolo.jobs.executor_ray import lost_by_ray, ray_environment
from jupyter_yolo.jobs.placement import Placement, ray_device, ray_resources, split_placement
from jupyter_yolo.jobs.ray_api import RayJobsApi, RayUnavailable
from jupyter_yolo.jobs.registry import JobRegistry
from jupyter_yolo.runner.ray_entry import marker_matches

from .conftest import install_dataset
from .ray_cluster import RayCluster
from .server_process import ServerProcess

# ---------------------------------------------------------------------------------- fast


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"executor": "ray"}, "YoloApp.ray_address"),
        ({"executor": "gpu-farm"}, "'executor' must be one of local, ray"),
        ({"executor": "local", "resources": {"a": 1}}, "only apply to Ray jobs"),
        ({"executor": "ray", "resources": ["a"]}, "must be an object"),
        ({"executor": "ray", "resources": {"bad name!": 1}}, "is not a Ray resource name"),
        ({"executor": "ray", "resources": {"GPU": 1}}, "Ray's own resource"),
        ({"executor": "ray", "resources": {"a": 0}}, "above 0"),
        ({"executor": "ray", "resources": {"a": True}}, "above 0"),
        ({"executor": "ray", "resources": {f"r{i}": 1 for i in range(17)}}, "at most 16"),
        ({"executor": "ray", "accelerator_type": "A100; rm"}, "'accelerator_type'"),
    ],
)
def test_placement_refusals(body: dict[str, Any], needle: str) -> None:
    configured = "YoloApp.ray_address" not in needle
    with pytest.raises(InvalidRequest) as caught:
        split_placement(body, default="local", ray_configured=configured)
    assert needle in caught.value.message


def test_placement_and_resources() -> None:
    rest, placement = split_placement(
        {
            "kind": "train",
            "executor": "ray",
            "resources": {"jy_worker": 1},
            "accelerator_type": "A100",
        },
        default="local",
        ray_configured=True,
    )
    assert rest == {"kind": "train"}
    assert placement.resources == {"jy_worker": 1.0, "accelerator_type:A100": 0.001}
    assert placement.shown() == {
        "executor": "ray",
        "resources": {"jy_worker": 1.0},
        "accelerator_type": "A100",
    }
    # the server's default applies when the request names no executor
    assert split_placement({"kind": "val"}, default="ray", ray_configured=True)[1].executor == "ray"
    assert ray_device("0,1") == (2, "0,1")
    assert ray_device("2,5") == (2, "0,1")
    assert ray_device("3") == (1, "0")
    assert ray_device("cuda:2") == (1, "0")
    assert ray_device("cpu") == (0, "cpu")
    assert ray_device(None) == (0, None)
    with pytest.raises(InvalidRequest, match="CUDA GPUs or the CPU"):
        ray_device("mps")
    params: dict[str, Any] = {"device": "4,6", "workers": 3}
    asked = ray_resources(params, Placement("ray", {"x": 2.0}), workers=3)
    assert asked == {"num_cpus": 4.0, "num_gpus": 2.0, "resources": {"x": 2.0}}
    assert params["device"] == "0,1"  # Ray's CUDA_VISIBLE_DEVICES on the node: re-indexed
    assert ray_resources({}, Placement("ray"))["num_cpus"] == 1.0


def test_only_the_products_switches_travel_to_a_ray_node(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YOLO_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("LD_LIBRARY_PATH", "/opt/cpu-only/lib")  # the JupyterLab image's
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    monkeypatch.setenv("YOLO_API_TOKEN", "s3cret")
    env = ray_environment()
    assert env["YOLO_OFFLINE"] == "1" and env["HF_HUB_OFFLINE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    for name in ("PATH", "HOME", "LD_LIBRARY_PATH", "CUDA_VISIBLE_DEVICES", "YOLO_API_TOKEN"):
        assert name not in env, name


def _info(status: str, error_type: str | None, message: str) -> RayJobInfo:
    return {
        "submission_id": "s",
        "status": status,  # type: ignore[typeddict-item]
        "message": message,
        "error_type": error_type,
        "driver_exit_code": None,
        "driver_node_id": None,
        "start_time": None,
        "end_time": None,
    }


def test_what_counts_as_lost_by_ray() -> None:
    assert lost_by_ray(_info("FAILED", "JOB_SUPERVISOR_ACTOR_DIED", "Job supervisor actor died"))
    assert lost_by_ray(_info("FAILED", None, "The node died unexpectedly"))
    # the entrypoint's own failure quotes its log, which may say anything
    assert not lost_by_ray(
        _info("FAILED", "JOB_ENTRYPOINT_COMMAND_ERROR", "RuntimeError: the node died")
    )
    assert not lost_by_ray(_info("SUCCEEDED", None, "node died"))


class _Answer(http.server.BaseHTTPRequestHandler):
    status = 503

    def do_GET(self) -> None:
        self.send_response(self.status)
        self.end_headers()
        self.wfile.write(b"upstream connect error")

    do_POST = do_GET

    def log_message(self, *args: Any) -> None:
        pass


@pytest.mark.parametrize("status", [500, 502, 503])
def test_a_5xx_from_the_head_is_transient(status: int) -> None:
    """A head reconnecting to its control store, or a proxy, answers 5xx: jobs are kept."""
    handler = type("Handler", (_Answer,), {"status": status})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        api = RayJobsApi(f"http://127.0.0.1:{server.server_address[1]}", timeout=5)
        for call in (lambda: api.info("s"), lambda: api.stop("s"), api.ray_version):
            with pytest.raises(RayUnavailable):
                call()
    finally:
        server.shutdown()
        server.server_close()


def test_ray_entry_refuses_a_node_without_the_marker(tmp_path: Path) -> None:
    job = tmp_path / "job"
    job.mkdir()
    (job / SHARED_MARKER_FILE).write_text("right-token")
    assert marker_matches(job, "right-token")
    assert not marker_matches(job, "other-token")
    assert not marker_matches(tmp_path / "absent", "right-token")
    done = subprocess.run(
        [sys.executable, "-m", "jupyter_yolo.runner.ray_entry", str(job), "other-token"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == WORKSPACE_NOT_SHARED_EXIT
    assert WORKSPACE_NOT_SHARED in done.stdout
    assert not (job / "log.txt").exists() and not (job / "status.json").exists()


def test_old_registry_migrates(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite"
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE jobs (id TEXT PRIMARY KEY, kind TEXT NOT NULL, name TEXT,
            status TEXT NOT NULL, request TEXT NOT NULL, params TEXT NOT NULL,
            devices TEXT NOT NULL, created REAL NOT NULL, queued REAL NOT NULL, started REAL,
            ended REAL, pid INTEGER, pid_start INTEGER, exit_reason TEXT, error TEXT,
            result TEXT, attempts INTEGER NOT NULL DEFAULT 0);
        INSERT INTO jobs (id, kind, status, request, params, devices, created, queued)
            VALUES ('0123456789ab', 'train', 'succeeded', '{}', '{}', '["cpu"]', 1.0, 1.0);
        """
    )
    db.commit()
    db.close()
    registry = JobRegistry(path)
    try:
        (record,) = registry.all()
        assert (record.id, record.status, record.executor, record.ray) == (
            "0123456789ab",
            "succeeded",
            "local",
            None,
        )
        assert not registry.problems
        registry.insert(
            job_id="ba9876543210",
            kind="train",
            name=None,
            request={},
            params={},
            devices=["cuda:0"],
            executor="ray",
            ray={"num_gpus": 1.0},
        )
        assert registry.require("ba9876543210").ray == {"num_gpus": 1.0}
    finally:
        registry.close()


async def test_ray_executor_needs_an_address(jp_fetch: Any) -> None:
    from tornado.httpclient import HTTPClientError

    with pytest.raises(HTTPClientError) as caught:
        await jp_fetch(
            "yolo",
            "jobs",
            method="POST",
            body=json.dumps({"kind": "val", "model": "yolov8n.yaml", "executor": "ray"}),
        )
    assert caught.value.code == 400
    assert "YoloApp.ray_address" in json.loads(caught.value.response.body)["message"]


# ---------------------------------------------------------------------------------- real Ray

TRAIN = {
    "kind": "train",
    "model": "yolov8n.yaml",
    "data": "datasets/shapes/data.yaml",
    "imgsz": 64,
    "batch": 8,
    "device": "cpu",
    "workers": 0,
    "plots": False,
    "val": False,
}
ACTIVE = ("queued", "running", "stopping")


@pytest.fixture(scope="module")
def ray_server(
    ray_cluster: RayCluster, tmp_path_factory: pytest.TempPathFactory, shapes_template: Path
) -> Iterator[ServerProcess]:
    """One jupyter server with executor=ray at the session's cluster, for every scenario."""
    root = tmp_path_factory.mktemp("ray-server")
    workspace = root / "workspace"
    install_dataset(shapes_template, workspace / "datasets" / "shapes")
    server = ServerProcess(
        root,
        workspace,
        extra_args=(
            "--YoloApp.executor=ray",
            f"--YoloApp.ray_address={ray_cluster.address}",
            f"--YoloApp.ray_python={sys.executable}",
            "--YoloApp.stop_grace_period=60",
        ),
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def wait_for(what: str, check: Any, timeout: float = 300.0, every: float = 0.5) -> Any:
    """Poll ``check()`` until it returns something truthy (the timeout only catches hangs)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(every)
    pytest.fail(f"timed out waiting for {what}")


def job(server: ServerProcess, job_id: str) -> dict[str, Any]:
    answer: dict[str, Any] = server.request("GET", f"/yolo/jobs/{job_id}")
    return answer


def job_when(
    server: ServerProcess, job_id: str, ok: Any, what: str, timeout: float = 300.0
) -> dict[str, Any]:
    """The job once ``ok(job)`` holds."""

    def check() -> dict[str, Any] | None:
        found = job(server, job_id)
        return found if ok(found) else None

    return wait_for(what, check, timeout)  # type: ignore[no-any-return]


def ended(server: ServerProcess, job_id: str, timeout: float = 300.0) -> dict[str, Any]:
    """The job once it left queued/running/stopping."""
    return job_when(server, job_id, lambda j: j["status"] not in ACTIVE, "the end", timeout)


def all_events(server: ServerProcess, job_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    while True:
        after = events[-1]["seq"] if events else 0
        page = server.request("GET", f"/yolo/jobs/{job_id}/events?after={after}")
        events.extend(page["events"])
        if not page["more"]:
            return events


def first_event(server: ServerProcess, job_id: str, kind: str) -> dict[str, Any]:
    """Long-poll the job's events until one of ``kind`` arrives (while the job runs)."""
    seen: list[dict[str, Any]] = []

    def poll() -> dict[str, Any] | None:
        after = seen[-1]["seq"] if seen else 0
        page = server.request("GET", f"/yolo/jobs/{job_id}/events?after={after}&timeout=5")
        seen.extend(page["events"])
        found = [e for e in page["events"] if e["type"] == kind]
        if not found and page["status"] not in ACTIVE:
            pytest.fail(f"job {job_id} ended {page['status']} before a {kind} event: {seen[-3:]}")
        return found[0] if found else None

    return wait_for(f"a {kind} event of job {job_id}", poll, every=0.0)  # type: ignore[no-any-return]


def ray_status(cluster: RayCluster, submission: str) -> str:
    answer = cluster.get(f"/api/jobs/{submission}")
    assert isinstance(answer, dict)
    return str(answer["status"])


def processes_naming(folder: Path) -> list[str]:
    """Live processes whose command line or working folder names ``folder``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            cwd = os.readlink(entry / "cwd")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and (str(folder) in cmdline or cwd.startswith(str(folder))):
            found.append(f"{entry.name}: {cmdline[:200]}")
    return found


def node_id_of(cluster: RayCluster, resource: str) -> str:
    for row in cluster.alive_nodes():
        if resource in (row.get("resources_total") or {}):  # type: ignore[operator]
            return str(row["node_id"])
    raise AssertionError(f"no alive node has {resource}")


@pytest.mark.slow
def test_training_on_a_ray_worker_streams_events(
    ray_cluster: RayCluster, ray_server: ServerProcess
) -> None:
    """Live events, success, placement on the worker with the custom resource; and, meanwhile,
    a job that asks for a GPU the cluster lacks stays queued with Ray's reason until cancelled."""
    node = ray_cluster.worker("jy_worker")
    try:
        _train_on_the_worker_and_cancel_a_gpu_job(ray_cluster, ray_server)
    finally:
        node.stop()  # later jobs without resources must not land on a test's node


def _train_on_the_worker_and_cancel_a_gpu_job(
    ray_cluster: RayCluster, ray_server: ServerProcess
) -> None:
    worker_node = node_id_of(ray_cluster, "jy_worker")
    created = ray_server.request(
        "POST", "/yolo/jobs", {**TRAIN, "epochs": 2, "resources": {"jy_worker": 1}}
    )
    assert created["executor"] == "ray" and created["status"] == "queued"
    gpu = ray_server.request(
        "POST", "/yolo/jobs", {**TRAIN, "epochs": 1, "device": "0", "name": "no-gpu-here"}
    )
    job_id = created["id"]

    batch = first_event(ray_server, job_id, "batch")
    running = job(ray_server, job_id)
    # events arrive while it runs (the server may not have polled Ray since it started)
    assert running["status"] in ("queued", "running"), running
    assert batch["epoch"] == 1

    waiting = job_when(
        ray_server,
        gpu["id"],
        lambda j: "waiting for resources" in (j["queue_reason"] or ""),
        "Ray's placement message",
        timeout=120,
    )
    assert waiting["status"] == "queued" and waiting["ray"]["status"] == "PENDING"
    cancelled = ray_server.request("POST", f"/yolo/jobs/{gpu['id']}/stop", {})
    assert cancelled["status"] == "stopped"
    # Ray was asked to stop it (Ray 2.60 keeps a submission whose supervisor was never placed
    # PENDING after its stop); the stop file makes a runner that starts anyway stop at once
    assert (ray_server.workspace / "jobs" / gpu["id"] / "stop").is_file()
    assert ray_status(ray_cluster, waiting["ray"]["submission_id"]) in ("PENDING", "STOPPED")

    final = ended(ray_server, job_id)
    assert final["status"] == "succeeded", final
    assert final["ray"]["node_id"] == worker_node
    assert ray_status(ray_cluster, final["ray"]["submission_id"]) == "SUCCEEDED"
    events = all_events(ray_server, job_id)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert [e["epoch"] for e in events if e["type"] == "epoch"] == [1, 2]


@pytest.mark.slow
def test_server_kill9_reattaches_then_stop_leaves_nothing(
    ray_cluster: RayCluster, ray_server: ServerProcess
) -> None:
    created = ray_server.request("POST", "/yolo/jobs", {**TRAIN, "epochs": 40})
    job_id = created["id"]
    folder = ray_server.workspace / "jobs" / job_id
    first_event(ray_server, job_id, "batch")

    ray_server.kill9()
    ray_server.start()
    again = job(ray_server, job_id)
    assert again["status"] == "running" and again["executor"] == "ray", again
    before = all_events(ray_server, job_id)[-1]["seq"]
    wait_for(  # re-attached: the job goes on and its new events are served
        "events after the restart",
        lambda: all_events(ray_server, job_id)[-1]["seq"] > before,
    )

    stopping = ray_server.request("POST", f"/yolo/jobs/{job_id}/stop", {})
    assert stopping["status"] in ("stopping", "stopped")
    final = ended(ray_server, job_id)
    assert final["status"] == "stopped", final
    sid = final["ray"]["submission_id"]
    wait_for("Ray to report the job stopped", lambda: ray_status(ray_cluster, sid) == "STOPPED")
    assert processes_naming(folder) == []
    events = all_events(ray_server, job_id)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["type"] == "status" and events[-1]["status"] == "stopped"


@pytest.mark.slow
def test_unshared_workspace_fails_fast(ray_cluster: RayCluster, ray_server: ServerProcess) -> None:
    node = ray_cluster.worker("jy_unshared", unshare_mount=ray_server.workspace)
    try:
        created = ray_server.request(
            "POST", "/yolo/jobs", {**TRAIN, "epochs": 1, "resources": {"jy_unshared": 1}}
        )
        final = ended(ray_server, created["id"], timeout=180)
    finally:
        node.stop()  # a node that does not see the workspace must not take later jobs
    assert final["status"] == "failed", final
    assert WORKSPACE_NOT_SHARED in final["error"]


@pytest.mark.slow
def test_worker_killed_mid_job_interrupts_and_resume_finishes(
    ray_cluster: RayCluster, ray_server: ServerProcess
) -> None:
    node = ray_cluster.worker("jy_doomed")
    created = ray_server.request(
        "POST", "/yolo/jobs", {**TRAIN, "epochs": 5, "resources": {"jy_doomed": 1}}
    )
    job_id = created["id"]
    first_event(ray_server, job_id, "epoch")  # last.pt exists: there is something to resume
    node.kill()
    final = ended(ray_server, job_id, timeout=180)
    assert final["status"] == "interrupted", final
    assert "Ray lost the job" in final["exit_reason"]
    assert final["resumable"]

    replacement = ray_cluster.worker("jy_doomed")  # a new node with the same resource
    try:
        resumed = ray_server.request("POST", f"/yolo/jobs/{job_id}/resume", {})
        assert resumed["status"] == "queued"
        done = ended(ray_server, job_id)
    finally:
        replacement.stop()
    assert done["status"] == "succeeded", done
    assert done["ray"]["submission_id"].endswith("-2")  # a new attempt, a new submission
    events = all_events(ray_server, job_id)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert [e["epoch"] for e in events if e["type"] == "epoch"][-1] == 5
