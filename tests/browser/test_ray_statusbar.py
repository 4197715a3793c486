"""The Ray cluster in real JupyterLab: status bar item, hardware report, a queued Ray job's row.

A real ``jupyter lab`` with ``executor=ray`` at the suite's real Ray cluster (a head with 2 CPUs
joined by a worker with a custom resource): the status bar shows "Ray N nodes · CPU free/total ·
GPU free/total free" with every node in its tooltip, the report opened from it has a "Ray
cluster" section listing the nodes, and a job asking for a GPU the cluster lacks shows in the jobs
sidebar as a Ray job waiting with Ray's reason, until it is stopped. A lab pointed at a closed
port shows "Ray unreachable" as a warning.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from ..conftest import install_dataset
from ..ray_cluster import RayCluster, free_port
from ..server_process import ServerProcess
from .conftest import SCREENSHOTS, screenshot
from .test_labextension import SLOW_MS, api, job_row, open_jobs_sidebar, wait_until

CUSTOM = "jy_statusbar"
LABEL = re.compile(r"^Ray \d+ nodes? · CPU [\d.]+/[\d.]+ · GPU [\d.]+/[\d.]+ free$")


@pytest.fixture
def lab(
    request: pytest.FixtureRequest, tmp_path: Path, shapes_template: Path
) -> Iterator[ServerProcess]:
    """A real lab with executor=ray: at the real cluster, or (param "closed") at a closed port."""
    if getattr(request, "param", "cluster") == "closed":
        address = f"http://127.0.0.1:{free_port()}"
    else:
        cluster: RayCluster = request.getfixturevalue("ray_cluster")
        if not any(CUSTOM in node.resources for node in cluster.workers):
            cluster.worker(CUSTOM)
        address = cluster.address
    workspace = tmp_path / "workspace"
    install_dataset(shapes_template, workspace / "datasets" / "shapes")
    server = ServerProcess(
        workspace,
        workspace,
        module="jupyterlab",
        extra_args=(
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--YoloApp.executor=ray",
            f"--YoloApp.ray_address={address}",
            f"--YoloApp.ray_python={sys.executable}",
        ),
    )
    server.start(timeout=120)
    try:
        yield server
    finally:
        server.stop()


def status_bar_shot(page: Any, name: str) -> Path:
    """A screenshot of the status bar alone (the full page is saved as well)."""
    screenshot(page, f"{name}-page")
    path = SCREENSHOTS / f"{name}.png"
    page.locator("#jp-main-statusbar").screenshot(path=str(path))
    return path


def test_status_bar_report_and_job_row_show_the_cluster(page: Any, lab: ServerProcess) -> None:
    cluster = api(lab, "GET", "/yolo/accelerators")["cluster"]
    assert cluster["error"] is None, cluster
    alive = [node for node in cluster["nodes"] if node["state"] == "ALIVE"]

    item = page.locator("#jp-yolo-status .jp-yolo-StatusItem-cluster")
    expect(item).to_have_text(LABEL, timeout=SLOW_MS)
    expect(item).to_contain_text(f"Ray {len(alive)} nodes")
    assert "jp-yolo-mod-warning" not in (item.get_attribute("class") or "")
    title = item.get_attribute("title") or ""
    assert f"Ray cluster at {cluster['address']}" in title
    assert "(head), 2 CPU" in title and f"{CUSTOM} 1" in title, title
    status_bar_shot(page, "ray-status-bar")

    page.locator("#jp-yolo-status .jp-yolo-StatusItem-label").click()
    report = page.locator("#jp-yolo-report")
    section = report.locator(".jp-yolo-Report-cluster")
    expect(section).to_be_visible(timeout=SLOW_MS)
    expect(report.locator("h3", has_text="Ray cluster")).to_be_visible()
    expect(section.locator(".jp-yolo-Report-nodes tr[data-state='ALIVE']")).to_have_count(
        len(alive)
    )
    expect(section).to_contain_text(f"{CUSTOM} 1")
    expect(section).to_contain_text("local, ray (default ray)")
    section.scroll_into_view_if_needed()
    screenshot(page, "ray-accelerator-report")

    # a Ray job that asks for a GPU the cluster lacks: queued, with Ray's reason in its row
    created = api(
        lab,
        "POST",
        "/yolo/jobs",
        {"kind": "train", "model": "yolov8n.yaml", "data": "datasets/shapes/data.yaml",
         "imgsz": 64, "epochs": 1, "workers": 0, "device": "0", "name": "needs a GPU"},
    )  # fmt: skip
    assert created["executor"] == "ray"
    job_id = created["id"]
    waiting = wait_until(
        lambda: (
            (j := api(lab, "GET", f"/yolo/jobs/{job_id}"))["ray"]
            and "waiting for resources" in (j["queue_reason"] or "")
            and j
        ),
        "Ray's placement message",
    )
    open_jobs_sidebar(page)
    row = job_row(page, job_id)
    expect(row).to_have_attribute("data-status", "queued", timeout=60_000)
    expect(row.locator(".jp-yolo-JobRow-placement")).to_have_text(" · Ray")
    reason = row.locator(".jp-yolo-JobRow-queueReason")
    expect(reason).to_contain_text("waiting for resources", timeout=60_000)
    assert waiting["status"] == "queued"
    screenshot(page, "ray-queued-job-row")
    stopped = api(lab, "POST", f"/yolo/jobs/{job_id}/stop", {})
    assert stopped["status"] == "stopped"
    expect(row).to_have_attribute("data-status", "stopped", timeout=60_000)
    expect(reason).to_be_hidden()


@pytest.mark.parametrize("lab", ["closed"], indirect=True)
def test_an_unreachable_cluster_is_a_warning(page: Any, lab: ServerProcess) -> None:
    item = page.locator("#jp-yolo-status .jp-yolo-StatusItem-cluster")
    expect(item).to_have_text("Ray unreachable", timeout=SLOW_MS)
    expect(item).to_have_class(re.compile("jp-yolo-mod-warning"))
    assert "cannot be reached" in (item.get_attribute("title") or "")
    status_bar_shot(page, "ray-status-bar-unreachable")
