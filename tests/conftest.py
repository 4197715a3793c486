"""Shared fixtures: a real jupyter server with the extension loaded and a temporary workspace."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

# tests.ray_cluster: the session fixture ``ray_cluster`` (a real Ray head, workers on demand)
pytest_plugins = ["pytest_jupyter.jupyter_server", "tests.ray_cluster"]

REPO_ROOT = Path(__file__).resolve().parent.parent
COCO8 = REPO_ROOT.parent / "shared" / "datasets" / "coco8"


@pytest.fixture
def yolo_workspace(tmp_path: Path) -> Path:
    """An empty workspace folder for one test's server."""
    path = tmp_path / "workspace"
    path.mkdir()
    return path


@pytest.fixture
def yolo_config() -> dict[str, Any]:
    """Extra ``YoloApp`` settings a test may override before the server starts."""
    return {}


@pytest.fixture
def server_app_config() -> dict[str, Any]:
    """Extra ``ServerApp`` settings a test may override (e.g. an authorizer class)."""
    return {}


@pytest.fixture
def jp_server_config(
    yolo_workspace: Path, yolo_config: dict[str, Any], server_app_config: dict[str, Any]
) -> dict[str, Any]:
    """Server config with the extension enabled and its workspace in a temporary folder.

    The built-in shapes dataset is not generated, and a training job that succeeds is not
    prepared for prediction in the background, unless a test asks for it in ``yolo_config``
    (the preparation's own tests do).
    """
    return {
        "ServerApp": {"jpserver_extensions": {"jupyter_yolo": True}, **server_app_config},
        "YoloApp": {
            "workspace": str(yolo_workspace),
            "builtin_dataset": False,
            "prepare_after_training": False,
            **yolo_config,
        },
    }


async def fetch_json(jp_fetch: Any, *parts: str, **kwargs: Any) -> Any:
    """Fetch a URL and decode its JSON body."""
    response = await jp_fetch(*parts, **kwargs)
    return json.loads(response.body)


async def post_json(jp_fetch: Any, *parts: str, body: Any, **kwargs: Any) -> Any:
    """POST a JSON body and decode the JSON answer."""
    response = await jp_fetch(*parts, method="POST", body=json.dumps(body), **kwargs)
    return json.loads(response.body)


async def wait_for_job(
    jp_fetch: Any, job_id: str, statuses: set[str], timeout: float = 300.0
) -> dict[str, Any]:
    """Poll a job until its status is one of ``statuses``; fail with its log on timeout."""
    import asyncio
    import time

    deadline = time.monotonic() + timeout
    while True:
        job = await fetch_json(jp_fetch, "yolo", "jobs", job_id)
        if job["status"] in statuses:
            return job
        if time.monotonic() > deadline:
            log = (await jp_fetch("yolo", "jobs", job_id, "log")).body.decode()
            raise AssertionError(
                f"job {job_id} still {job['status']} after {timeout}s\n{log[-3000:]}"
            )
        await asyncio.sleep(0.3)


async def run_job(jp_fetch: Any, body: dict[str, Any], status: str = "succeeded") -> dict[str, Any]:
    """Create a job, wait until it ends, and fail with its log unless it ended in ``status``."""
    job = await post_json(jp_fetch, "yolo", "jobs", body=body)
    final = await wait_for_job(jp_fetch, job["id"], {"succeeded", "failed", "stopped"}, 400)
    if final["status"] != status:
        log = (await jp_fetch("yolo", "jobs", job["id"], "log")).body.decode()[-4000:]
        raise AssertionError(f"{final}\n{log}")
    return final


async def all_events(jp_fetch: Any, job_id: str) -> list[dict[str, Any]]:
    """Every event of a job, read page by page through the REST API."""
    events: list[dict[str, Any]] = []
    while True:
        page = await fetch_json(
            jp_fetch,
            "yolo",
            "jobs",
            job_id,
            "events",
            params={"after": str(len(events) and events[-1]["seq"])},
        )
        events.extend(page["events"])
        if not page["more"]:
            return events


@pytest.fixture(scope="session")
def shapes_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny generated shapes dataset, made once per session and copied by tests."""
    from jupyter_yolo.datasets.synthetic import generate_shapes

    dest = tmp_path_factory.mktemp("template") / "shapes"
    generate_shapes(dest, train=32, val=8, imgsz=64, seed=0)
    return dest


@pytest.fixture
def shapes_dataset(shapes_template: Path, yolo_workspace: Path) -> str:
    """The tiny shapes dataset registered in the test's workspace; returns its name."""
    install_dataset(shapes_template, yolo_workspace / "datasets" / "shapes")
    return "shapes"


def install_dataset(source: Path, dest: Path) -> Path:
    """Copy a dataset folder and point its data.yaml at the copy."""
    import shutil

    import yaml

    shutil.copytree(source, dest)
    data = yaml.safe_load((dest / "data.yaml").read_text())
    data["path"] = str(dest)
    (dest / "data.yaml").write_text(yaml.safe_dump(data))
    return dest


async def expect_error(jp_fetch: Any, code: int, *parts: str, **kwargs: Any) -> dict[str, Any]:
    """Fetch, expect an HTTP error ``code`` with a JSON message, return the body."""
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch(*parts, **kwargs)
    assert info.value.code == code, info.value.response.body if info.value.response else info.value
    assert info.value.response is not None
    body: dict[str, Any] = json.loads(info.value.response.body)
    assert body["message"]
    return body
