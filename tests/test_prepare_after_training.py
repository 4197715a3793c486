"""The first prediction after training is warm (issue 17): preparation in the background.

A real server trains tiny detectors (shapes at 64 px, one epoch) through its job runner; when a
training job succeeds, the server exports its ``best.pt`` and measures the backends for the
prediction panel's default request (``model=job:<id>:best``, backend ``auto``) in a low-priority
process, then starts the warm worker. What is asserted is behaviour and order, never a duration:

* the choice is stored and the worker warm without any predict request; the first predict of
  the panel's default request reuses the stored choice on the warm worker;
* a queued job goes first: the preparation waits while jobs are queued or running, runs at
  nice 19, and yields to a job that starts while it runs;
* a click before the preparation is done is answered by PyTorch, and says so;
* shutdown during the preparation kills its process and leaves no half-written export;
* with ``prepare_after_training`` off nothing is prepared.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from jupyter_yolo.jobs.process import session_members
from tests.conftest import fetch_json, post_json, wait_for_job

TRAIN = {
    "kind": "train",
    "model": "yolov8n.yaml",
    "data": "shapes",
    "epochs": 1,
    "imgsz": 64,
    "batch": 8,
    "device": "cpu",
    "workers": 0,
    "plots": False,
}
IMAGE = "datasets/shapes/images/val"
ENDED = ("done", "failed", "cancelled", "dropped")


@pytest.fixture
def yolo_config() -> dict[str, Any]:
    """The setting is on here (the test servers of other files run without it)."""
    return {"prepare_after_training": True}


async def listing(jp_fetch: Any) -> dict[str, Any]:
    """``GET /yolo/predict/workers``: workers and preparations."""
    answer: dict[str, Any] = await fetch_json(jp_fetch, "yolo", "predict", "workers")
    return answer


async def preparation(jp_fetch: Any, model: str) -> dict[str, Any] | None:
    """The preparation of ``model``, if listed."""
    for info in (await listing(jp_fetch))["preparations"]:
        if info["model"] == model:
            return dict(info)
    return None


async def until_preparation(
    jp_fetch: Any, model: str, states: tuple[str, ...], timeout: float = 400.0
) -> dict[str, Any]:
    """Poll until the preparation of ``model`` is in one of ``states``."""
    deadline = time.monotonic() + timeout
    while True:
        info = await preparation(jp_fetch, model)
        if info is not None and info["state"] in states:
            return info
        assert time.monotonic() < deadline, f"{model}: {info}"
        await asyncio.sleep(0.3)


def val_image(workspace: Path) -> str:
    """A workspace-relative image of the shapes dataset."""
    return sorted((workspace / IMAGE).glob("*.jpg"))[0].relative_to(workspace).as_posix()


async def panel_predict(jp_fetch: Any, model: str, workspace: Path) -> dict[str, Any]:
    """The prediction panel's default request: the model and an image, nothing else."""
    response = await jp_fetch(
        "yolo",
        "predict",
        method="POST",
        body=json.dumps({"paths": [val_image(workspace)]}),
        headers={"Content-Type": "application/json"},
        params={"model": model},
        request_timeout=600,
    )
    answer: dict[str, Any] = json.loads(response.body)
    return answer


def exports(workspace: Path) -> Path:
    return workspace / "weights" / ".exports"


@pytest.mark.slow
async def test_after_training_the_choice_is_stored_and_the_first_predict_is_warm(
    jp_fetch: Any, shapes_dataset: str, yolo_workspace: Path
) -> None:
    job = await post_json(jp_fetch, "yolo", "jobs", body=TRAIN)
    final = await wait_for_job(jp_fetch, job["id"], {"succeeded", "failed", "stopped"})
    assert final["status"] == "succeeded", final
    model = f"job:{job['id']}:best"
    prepared = await until_preparation(jp_fetch, model, ENDED)
    assert prepared["state"] == "done" and prepared["message"] is None, prepared
    assert prepared["reason"] == f"training job {job['id']} succeeded"
    assert prepared["started_at"] >= final["ended"]  # it took no job slot from the job

    # the choice for the panel's key (the model's own 64 px, cpu), stored without any predict
    (choice,) = exports(yolo_workspace).glob("*/auto-64-cpu.json")
    assert json.loads(choice.read_text())["choice"] == prepared["choice"]
    assert not list(exports(yolo_workspace).glob("*/.tmp-*"))
    logs = (yolo_workspace / ".predict-workers").glob("prepare-*.log")
    assert any("low priority: nice 19" in p.read_text() for p in logs)

    # its warm worker waits: the panel's first request runs inference only, on the choice
    (warm,) = (await listing(jp_fetch))["workers"]
    assert warm["model"] == f"jobs/{job['id']}/run/weights/best.pt"
    assert (warm["state"], warm["backend"]) == ("ready", prepared["choice"])
    answer = await panel_predict(jp_fetch, model, yolo_workspace)
    backend = answer["backend"]
    assert backend["name"] == prepared["choice"] and backend["requested"] == "auto"
    assert backend["report"]["cached"] is True  # the stored choice, reused: not measured
    assert "standin" not in backend["report"]
    assert "worker_start_ms" not in answer["timing"]
    assert answer["worker"]["pid"] == warm["pid"]


@pytest.mark.slow
async def test_a_queued_job_goes_first_a_click_gets_pytorch_and_shutdown_leaves_nothing(
    jp_fetch: Any, jp_serverapp: Any, shapes_dataset: str, yolo_workspace: Path
) -> None:
    from jupyter_yolo.app import YoloApp

    trained = await post_json(jp_fetch, "yolo", "jobs", body=TRAIN)
    busy = await post_json(jp_fetch, "yolo", "jobs", body={**TRAIN, "epochs": 200})  # queued
    final = await wait_for_job(jp_fetch, trained["id"], {"succeeded", "failed", "stopped"})
    assert final["status"] == "succeeded", final
    model = f"job:{trained['id']}:best"
    await until_preparation(jp_fetch, model, ("waiting",))

    # the queued job starts; the preparation waits for it; a click meanwhile gets PyTorch and
    # its answer says so
    answer = await panel_predict(jp_fetch, model, yolo_workspace)
    backend = answer["backend"]
    assert (backend["name"], backend["requested"]) == ("pytorch", "auto")
    assert backend["report"]["standin"] is True
    assert "waits for the running or queued jobs" in backend["report"]["note"]
    assert answer["images"][0]["file"] == val_image(yolo_workspace)
    waiting = await preparation(jp_fetch, model)
    assert waiting is not None and waiting["state"] == "waiting", waiting
    assert busy["id"] in waiting["yielded_to"] and waiting["pid"] is None

    await post_json(jp_fetch, "yolo", "jobs", busy["id"], "stop", body={})
    stopped = await wait_for_job(jp_fetch, busy["id"], {"stopped", "succeeded", "failed"})
    running = await until_preparation(jp_fetch, model, ("running", *ENDED))
    assert running["state"] == "running" and running["pid"], running
    assert stopped["started"] <= stopped["ended"] <= running["started_at"]
    pid = int(running["pid"])
    while psutil.Process(pid).nice() != 19:  # it lowers its own priority first thing
        assert psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        await asyncio.sleep(0.05)

    # a job that starts meanwhile: the preparation yields (its process killed, nothing
    # half-written left) and waits again, then runs once that job is over
    other = await post_json(jp_fetch, "yolo", "jobs", body={**TRAIN, "epochs": 200})
    again = await until_preparation(jp_fetch, model, ("waiting", *ENDED))
    assert again["state"] == "waiting" and other["id"] in again["yielded_to"], again
    assert not session_members(pid)
    assert not list(exports(yolo_workspace).glob("*/.tmp-*"))
    await post_json(jp_fetch, "yolo", "jobs", other["id"], "stop", body={})
    await wait_for_job(jp_fetch, other["id"], {"stopped", "succeeded", "failed"})
    running = await until_preparation(jp_fetch, model, ("running", *ENDED))
    assert running["state"] == "running" and running["pid"], running
    pid = int(running["pid"])

    apps = jp_serverapp.extension_manager.extension_apps["jupyter_yolo"]
    (yolo,) = [a for a in apps if isinstance(a, YoloApp)]
    await yolo.predict_service.shutdown()  # what stop_extension does first

    cancelled = yolo.predict_service.preparations()
    assert [p["state"] for p in cancelled if p["model"] == model] == ["cancelled"]
    assert not session_members(pid)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    for folder in exports(yolo_workspace).glob("*"):
        if not folder.is_dir():
            continue
        assert not list(folder.glob(".tmp-*")), list(folder.iterdir())
        for entry in folder.iterdir():  # every published export is complete
            if entry.is_dir() and not entry.name.startswith("."):
                assert (entry / "export.json").is_file(), entry
        for choice in folder.glob("auto-*.json"):
            assert json.loads(choice.read_text())["choice"]


class TestDisabled:
    @pytest.fixture
    def yolo_config(self) -> dict[str, Any]:
        return {"prepare_after_training": False}

    @pytest.mark.slow
    async def test_nothing_is_prepared(
        self, jp_fetch: Any, shapes_dataset: str, yolo_workspace: Path
    ) -> None:
        job = await post_json(jp_fetch, "yolo", "jobs", body=TRAIN)
        final = await wait_for_job(jp_fetch, job["id"], {"succeeded", "failed", "stopped"})
        assert final["status"] == "succeeded", final
        listed = await listing(jp_fetch)
        assert listed == {"workers": [], "preparations": []}
        assert not list(exports(yolo_workspace).glob("*/auto-*.json"))


# ------------------------------------------------------------------ fast: no server, no model


def preparer(workspace: Path) -> Any:
    """A Preparer on a pool that never starts a worker."""
    from jupyter_yolo.serving.pool import PoolSettings, WorkerPool
    from jupyter_yolo.serving.prepare import Preparer, PrepareSettings

    async def call_for(model: str) -> Any:
        raise AssertionError(model)

    return Preparer(
        WorkerPool(PoolSettings(workspace=workspace)),
        PrepareSettings(workspace=workspace),
        call_for=call_for,
        jobs_active=list,
    )


def test_only_a_jobs_best_weights_are_a_training_output(tmp_path: Path) -> None:
    prep = preparer(tmp_path)
    weights = tmp_path / "jobs" / "0123456789ab" / "run" / "weights"
    assert prep._job_of(weights / "best.pt") == "0123456789ab"
    assert prep._job_of(weights / "last.pt") is None
    assert prep._job_of(tmp_path / "weights" / "best.pt") is None
    assert prep._job_of(tmp_path / "elsewhere" / "x" / "run" / "weights" / "best.pt") is None


def test_scratch_left_by_a_killed_export_goes_unless_an_export_holds_its_lock(
    tmp_path: Path,
) -> None:
    import fcntl

    from jupyter_yolo.contract.serving import WorkerKey

    prep = preparer(tmp_path)
    key = WorkerKey("ab" * 32, "auto", 0, "cpu")
    folder = exports(tmp_path) / key.digest[:16]
    left = folder / ".tmp-onnx-64-fp32-b1-abcd1234"
    busy = folder / ".tmp-openvino-64-fp32-b1-efgh5678"
    done = folder / "onnx-64-fp32-b1"
    for path in (left, busy, done):
        path.mkdir(parents=True)
    with (folder / ".openvino-64-fp32-b1.lock").open("a+") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)  # another process is exporting this one
        prep._tidy(key)
    assert not left.exists() and busy.is_dir() and done.is_dir()


def test_a_stand_in_answer_says_what_ran_and_why() -> None:
    from jupyter_yolo.serving.prepare import standin_backend
    from jupyter_yolo.widgets.detection_views import backend_html

    backend = standin_backend(
        {"name": "pytorch", "requested": "pytorch", "report": {"cached": True}},
        "the background preparation of this model is exporting and measuring the backends",
    )
    assert (backend["name"], backend["requested"]) == ("pytorch", "auto")
    report = backend.get("report") or {}
    assert report["standin"] is True and "exporting" in str(report["note"])
    html = backend_html({**report, "name": "pytorch"})
    assert "backend <b>pytorch</b> (stand-in for auto: the background preparation" in html
    assert "reused the stored measurement" not in html
