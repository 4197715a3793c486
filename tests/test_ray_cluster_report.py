"""The Ray cluster in the hardware report (``GET /yolo/accelerators``) and its usage route.

A real jupyter server against the suite's real Ray cluster (``ray_cluster``: a head with 2 CPUs,
here joined by a worker with a custom resource); a head at a closed port; and a stand-in head
(a stdlib HTTP server answering Ray's version route with another version) for the version check.
The hardware probe is a recorded report (tests/fixtures/accelerators), so no torch is imported.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jupyter_yolo.accelerators.cluster import ClusterService, live_usage, offered_executors
from jupyter_yolo.contract.executors import RAY_VERSION, ClusterReport
from jupyter_yolo.jobs.ray_api import RayJobsApi, RayVersionMismatch

from .conftest import fetch_json
from .ray_cluster import RayCluster, free_port

FIXTURE = Path(__file__).parent / "fixtures" / "accelerators" / "nvidia_h100_x8.json"
CUSTOM = "jy_report"


class _OtherRay(http.server.BaseHTTPRequestHandler):
    """A head that runs another Ray version (only the routes the report reads)."""

    def do_GET(self) -> None:
        answers: dict[str, Any] = {
            "/api/version": {"ray_version": "2.9.3", "version": "4"},
            "/api/v0/nodes?limit=1000": {"data": {"result": {"result": []}}},
            "/api/cluster_status": {"data": {"clusterStatus": {"loadMetricsReport": {}}}},
        }
        body = json.dumps(answers.get(self.path, {})).encode()
        self.send_response(200 if self.path in answers else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def other_ray() -> Iterator[str]:
    """The address of a stand-in head that answers another Ray version."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OtherRay)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def yolo_config(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """A recorded hardware probe and the Ray address the test names (indirect parameter)."""
    script = tmp_path / "probe.sh"
    script.write_text(f"#!/bin/sh\ncat {FIXTURE}\n")
    script.chmod(0o755)
    config: dict[str, Any] = {"probe_python": str(script), "probe_timeout": 30.0}
    address = getattr(request, "param", None)
    if address == "cluster":
        cluster: RayCluster = request.getfixturevalue("ray_cluster")
        if not any(CUSTOM in node.resources for node in cluster.workers):
            cluster.worker(CUSTOM)
        address = cluster.address
    elif address == "other":
        address = request.getfixturevalue("other_ray")
    elif address == "closed":
        address = f"http://127.0.0.1:{free_port()}"
    if address:
        config.update(ray_address=address, executor="ray")
    return config


# ---------------------------------------------------------------------- without a server


def _report(**changes: Any) -> ClusterReport:
    report: ClusterReport = {
        "address": "http://ray-head:8265",
        "reachable": True,
        "ray_version": RAY_VERSION,
        "version_ok": True,
        "error": None,
        "nodes": [],
        "usage": {
            "CPU": {"total": 3.0, "used": 2.0},
            "GPU": {"total": 8.0, "used": 8.0},
            "memory": {"total": 1e9, "used": 0.0},
            "accelerator_type:H100": {"total": 1.0, "used": 0.0},
            "jy_x": {"total": 1.0, "used": 0.0},
        },
        "gpu_types": {"H100": 8},
    }
    return {**report, **changes}  # type: ignore[typeddict-item]


def test_executors_offered() -> None:
    assert offered_executors("local", "") == {"available": ["local"], "default": "local"}
    assert offered_executors("local", "http://h:8265") == {
        "available": ["local", "ray"],
        "default": "local",
    }
    assert offered_executors("ray", "http://h:8265")["default"] == "ray"


def test_live_usage_counts_free_and_keeps_custom_resources_only() -> None:
    usage = live_usage(_report())
    assert usage["cpu"] == {"total": 3.0, "used": 2.0, "free": 1.0}
    assert usage["gpu"]["free"] == 0.0
    assert usage["gpu_types"] == {"H100": 8}
    assert list(usage["resources"]) == ["jy_x"]  # not memory, not accelerator_type:*


async def test_the_service_caches_and_refresh_asks_again() -> None:
    calls: list[int] = []

    def fetch() -> ClusterReport:
        calls.append(1)
        return _report()

    service = ClusterService("http://ray-head:8265", "ray", fetch=fetch, max_age=3600)
    first = await service.report()
    assert first is not None and await service.report() is first
    assert len(calls) == 1
    await service.report(refresh=True)
    assert len(calls) == 2
    assert await ClusterService("", "local").report() is None


async def test_an_unreadable_answer_is_an_error_not_an_exception() -> None:
    def fetch() -> ClusterReport:
        raise AttributeError("'list' object has no attribute 'get'")

    report = await ClusterService("http://ray-head:8265", "ray", fetch=fetch).report()
    assert report is not None and not report["reachable"]
    assert "unreadable" in (report["error"] or "")


def test_a_cluster_of_another_version_is_refused_with_the_fix(other_ray: str) -> None:
    with pytest.raises(RayVersionMismatch) as info:
        RayJobsApi(other_ray).check_version()
    message = str(info.value)
    assert "2.9.3" in message and RAY_VERSION in message and f"ray=={RAY_VERSION}" in message


# ---------------------------------------------------------------------- through the server


async def test_no_cluster_configured(jp_fetch: Any) -> None:
    report = await fetch_json(jp_fetch, "yolo", "accelerators")
    assert report["cluster"] is None
    assert report["executors"] == {"available": ["local"], "default": "local"}
    assert (await fetch_json(jp_fetch, "yolo", "accelerators", "usage"))["cluster"] is None


@pytest.mark.parametrize("yolo_config", ["cluster"], indirect=True)
async def test_the_report_shows_the_real_cluster(jp_fetch: Any, ray_cluster: RayCluster) -> None:
    # Ray's resource totals (the autoscaler's report) count a node that just joined a few
    # seconds after its node list does: ask again until they do (the deadline catches hangs)
    deadline = time.monotonic() + 180
    while True:
        report = await fetch_json(jp_fetch, "yolo", "accelerators", params={"refresh": "1"})
        if CUSTOM in report["cluster"]["usage"] or time.monotonic() > deadline:
            break
        await asyncio.sleep(1)
    assert report["primary"]["label"]  # the hardware report is still there
    assert report["executors"] == {"available": ["local", "ray"], "default": "ray"}
    cluster = report["cluster"]
    assert cluster["error"] is None and cluster["reachable"] and cluster["version_ok"]
    assert cluster["address"] == ray_cluster.address
    assert cluster["ray_version"] == RAY_VERSION
    alive = [node for node in cluster["nodes"] if node["state"] == "ALIVE"]
    head = [node for node in alive if node["head"]]
    assert len(head) == 1 and head[0]["cpus"] == 2.0 and head[0]["resources"] == {}
    workers = [node for node in alive if node["resources"].get(CUSTOM) == 1.0]
    assert len(workers) == 1 and not workers[0]["head"]
    assert cluster["usage"][CUSTOM]["total"] == 1.0
    assert cluster["usage"]["CPU"]["total"] == sum(node["cpus"] for node in alive)

    usage = await fetch_json(jp_fetch, "yolo", "accelerators", "usage")
    live = usage["cluster"]
    assert live["error"] is None and live["nodes"] == len(alive)
    assert live["cpu"]["total"] == cluster["usage"]["CPU"]["total"]
    assert live["cpu"]["free"] == live["cpu"]["total"] - live["cpu"]["used"]
    assert live["resources"][CUSTOM]["total"] == 1.0
    assert usage["cpu"] and usage["memory"]  # this machine's reading is still there


@pytest.mark.parametrize("yolo_config", ["closed"], indirect=True)
async def test_an_unreachable_cluster_is_an_error_in_a_200(jp_fetch: Any) -> None:
    response = await jp_fetch("yolo", "accelerators")
    assert response.code == 200
    report = json.loads(response.body)
    assert report["primary"]["label"]
    cluster = report["cluster"]
    assert not cluster["reachable"] and cluster["nodes"] == []
    assert "cannot be reached" in cluster["error"]
    usage = await fetch_json(jp_fetch, "yolo", "accelerators", "usage")
    assert usage["cluster"]["reachable"] is False and usage["cluster"]["error"]


@pytest.mark.parametrize("yolo_config", ["other"], indirect=True)
async def test_a_cluster_of_another_version_shows_why(jp_fetch: Any) -> None:
    cluster = (await fetch_json(jp_fetch, "yolo", "accelerators"))["cluster"]
    assert cluster["reachable"] and not cluster["version_ok"]
    assert cluster["ray_version"] == "2.9.3"
    assert "2.9.3" in cluster["error"] and RAY_VERSION in cluster["error"]


def test_the_readable_report_has_a_ray_cluster_section() -> None:
    from jupyter_yolo.widgets.accelerators import cluster_html, cluster_usage_text, report_html

    head = {"node_id": "a" * 56, "address": "10.0.0.7", "head": True, "state": "ALIVE",
            "cpus": 2.0, "gpus": 8.0, "gpu_type": "H100", "resources": {}}  # fmt: skip
    worker = {**head, "address": "10.0.0.8", "head": False, "gpus": 0.0, "gpu_type": None,
              "resources": {"jy_x": 1.0}}  # fmt: skip
    report = {"cluster": _report(nodes=[head, worker]), "executors": offered_executors("ray", "x")}
    html = report_html({"primary": {"label": "CPU"}, **report})
    assert "Ray cluster" in html and "10.0.0.7 (head)" in html and "8 H100" in html
    assert "jy_x 1" in html and "2 alive of 2" in html and "local, ray (default ray)" in html
    assert "1e+09" not in html and "1000000000" not in html  # memory shown as a size
    broken = cluster_html({"cluster": _report(reachable=False, error="cannot <be> reached")})
    assert "cannot &lt;be&gt; reached" in broken and "yolo-note-warning" in broken
    assert cluster_html({"cluster": None}) == ""
    line = cluster_usage_text({"cluster": live_usage(_report())})
    assert line is not None and "CPU <b>1</b>/3" in line and "GPU <b>0</b>/8" in line
    assert cluster_usage_text({"cluster": live_usage(_report(reachable=False))}) == (
        "Ray <b>unreachable</b>"
    )


def test_the_training_status_line_says_where_a_job_runs() -> None:
    from jupyter_yolo.widgets.history import TrainingHistory
    from jupyter_yolo.widgets.training_status import placement, status_html

    queued = {"status": "queued", "executor": "ray", "queue_reason": "no node has a free GPU",
              "ray": {"submission_id": "s", "status": "PENDING", "node_id": None}}  # fmt: skip
    where = placement(queued)
    assert where == ("on Ray", "no node has a free GPU")
    html = status_html(TrainingHistory(), "abc", "queued", None, where)
    assert "on Ray" in html and "waiting: no node has a free GPU" in html
    running = {**queued, "status": "running", "ray": {"node_id": "0123456789abcdef"}}
    assert placement(running) == ("on Ray node 01234567", None)
    assert placement({"status": "queued", "executor": "local", "queue_reason": "x"}) == (
        None,
        None,
    )
