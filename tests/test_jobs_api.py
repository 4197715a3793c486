"""The jobs REST API against a real jupyter server: validation, auth, queue, stop, kill, resume.

Training here is real ultralytics on a tiny generated dataset at imgsz 64 on the CPU.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from jupyter_yolo.jobs.process import session_members

from .conftest import COCO8, all_events, expect_error, fetch_json, post_json, wait_for_job

TRAIN = {
    "kind": "train",
    "model": "yolov8n.yaml",
    "epochs": 2,
    "imgsz": 64,
    "batch": 8,
    "device": "cpu",
    "workers": 0,
    "plots": False,
}


def job_pid(workspace: Path, job_id: str) -> int:
    """The runner's pid, from the status file it writes as it starts."""
    path = workspace / "jobs" / job_id / "status.json"
    deadline = time.monotonic() + 60
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    return int(json.loads(path.read_text())["pid"])


async def wait_for_event(
    jp_fetch: Any, job_id: str, predicate: Any, timeout: float = 300.0
) -> dict[str, Any]:
    """Long-poll a job's events until one matches ``predicate``; return the page it came in."""
    after = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        page: dict[str, Any] = await fetch_json(
            jp_fetch,
            "yolo",
            "jobs",
            job_id,
            "events",
            params={"after": str(after), "timeout": "10"},
        )
        after = page["last_seq"]
        if any(predicate(e) for e in page["events"]):
            return page
        assert page["status"] in ("queued", "running", "stopping"), page
    raise AssertionError(f"no matching event of job {job_id} within {timeout}s")


def load_weights_in_subprocess(path: Path) -> str:
    """Load weights with ultralytics in a child process (the test process must stay torch-free)."""
    code = (
        "import sys; from ultralytics import YOLO; m = YOLO(sys.argv[1]); "
        "print(type(m.model).__name__, m.ckpt.get('epoch'))"
    )
    env = {**os.environ, "YOLO_OFFLINE": "1", "YOLO_CONFIG_DIR": str(path.parent)}
    done = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=True,
    )
    return done.stdout.strip()


# --------------------------------------------------------------------------- fast checks


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({**TRAIN, "data": "shapes", "colour": "red"}, "Unknown key"),
        ({**TRAIN, "data": "shapes", "epochs": -1}, "'epochs' must be at least 1"),
        ({**TRAIN, "data": "shapes", "epochs": "3"}, "'epochs' must be int"),
        ({**TRAIN, "data": "shapes", "amp": 1}, "'amp' must be bool"),
        ({**TRAIN, "data": "shapes", "imgsz": 50}, "multiple of 32"),
        ({**TRAIN, "data": "../outside/data.yaml"}, "stay inside"),
        ({**TRAIN, "data": "/etc/data.yaml"}, "stay inside"),
        ({**TRAIN, "data": "nope"}, "no dataset named 'nope'"),
        ({**TRAIN, "data": "shapes", "model": "yolov9z.yaml"}, "Unknown model"),
        ({**TRAIN, "data": "shapes", "model": "yolov8n.pt"}, "not in the workspace weights"),
        ({**TRAIN, "data": "shapes", "device": "gpu please"}, "not a device"),
        ({"kind": "dance"}, "'kind' must be one of"),
        ({"kind": "predict", "model": "yolov8n.yaml", "source": "x.jpg"}, "untrained"),
        ({"kind": "export", "model": "job:0123456789ab"}, "no trained weights"),
    ],
)
async def test_bad_job_requests_get_400_and_create_nothing(
    jp_fetch: Any, shapes_dataset: str, yolo_workspace: Path, body: dict[str, Any], fragment: str
) -> None:
    error = await expect_error(jp_fetch, 400, "yolo", "jobs", method="POST", body=json.dumps(body))
    assert fragment in error["message"]
    assert list((yolo_workspace / "jobs").iterdir()) == []
    assert (await fetch_json(jp_fetch, "yolo", "jobs"))["jobs"] == []


async def test_dataset_yaml_pointing_outside_is_refused(
    jp_fetch: Any, yolo_workspace: Path, tmp_path: Path
) -> None:
    evil = yolo_workspace / "evil.yaml"
    evil.write_text(f"path: {tmp_path}\ntrain: .\nval: .\nnames: {{0: a}}\n")
    error = await expect_error(
        jp_fetch,
        400,
        "yolo",
        "jobs",
        method="POST",
        body=json.dumps({**TRAIN, "data": "evil.yaml"}),
    )
    assert "outside the workspace" in error["message"]


async def test_body_that_is_not_json_is_400(jp_fetch: Any) -> None:
    error = await expect_error(jp_fetch, 400, "yolo", "jobs", method="POST", body="{nope")
    assert "not valid JSON" in error["message"]


async def test_jobs_api_requires_authentication(jp_fetch: Any) -> None:
    for parts, method, body in [
        (("yolo", "jobs"), "GET", None),
        (("yolo", "jobs"), "POST", json.dumps(TRAIN)),
        (("yolo", "jobs", "0123456789ab", "stop"), "POST", "{}"),
        (("yolo", "models"), "GET", None),
    ]:
        with pytest.raises(HTTPClientError) as info:
            await jp_fetch(
                *parts, method=method, body=body, headers={"Authorization": "token wrong"}
            )
        assert info.value.code == 403


async def test_unknown_job_is_404(jp_fetch: Any) -> None:
    await expect_error(jp_fetch, 404, "yolo", "jobs", "0123456789ab")
    await expect_error(jp_fetch, 404, "yolo", "jobs", "nonsense", "events")


async def test_event_polls_are_no_activity_of_the_person(jp_fetch: Any, jp_serverapp: Any) -> None:
    """Open panels poll events: that must not keep an idle server from being culled."""
    settings = jp_serverapp.web_app.settings
    await fetch_json(jp_fetch, "yolo", "jobs")
    before = settings["api_last_activity"]
    await expect_error(jp_fetch, 404, "yolo", "jobs", "0123456789ab", "events")
    assert settings["api_last_activity"] == before
    await fetch_json(jp_fetch, "yolo", "jobs")  # any other request still counts
    assert settings["api_last_activity"] > before


# --------------------------------------------------------------------------- real training


@pytest.mark.slow
async def test_training_streams_events_and_succeeds(
    jp_fetch: Any, shapes_dataset: str, yolo_workspace: Path
) -> None:
    job = await post_json(jp_fetch, "yolo", "jobs", body={**TRAIN, "data": shapes_dataset})
    assert job["status"] in ("queued", "running")
    job_id = job["id"]

    seen: list[dict[str, Any]] = []
    status_when_first_batch = None
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        after = seen[-1]["seq"] if seen else 0
        page = await fetch_json(
            jp_fetch,
            "yolo",
            "jobs",
            job_id,
            "events",
            params={"after": str(after), "timeout": "10"},
        )
        seen.extend(page["events"])
        if status_when_first_batch is None and any(e["type"] == "batch" for e in seen):
            status_when_first_batch = page["status"]
        if page["status"] in ("succeeded", "failed") and not page["more"]:
            break
    assert status_when_first_batch == "running", "batch events must arrive while the job runs"

    final = await wait_for_job(jp_fetch, job_id, {"succeeded", "failed"})
    assert final["status"] == "succeeded", final
    seqs = [e["seq"] for e in seen]
    assert seqs == list(range(1, len(seqs) + 1))
    assert [e["status"] for e in seen if e["type"] == "status"][:2] == ["queued", "running"]
    assert seen[-1]["type"] == "status" and seen[-1]["status"] == "succeeded"
    batch = next(e for e in seen if e["type"] == "batch")
    assert set(batch["loss"]) == {"box", "cls", "dfl"} and batch["batches"] >= 1
    epochs = [e for e in seen if e["type"] == "epoch"]
    assert [e["epoch"] for e in epochs] == [1, 2]
    assert "mAP50" in epochs[-1] and "mAP50-95" in epochs[-1]
    assert final["progress"]["epochs_done"] == 2 and final["progress"]["fraction"] == 1.0

    artifacts = (await fetch_json(jp_fetch, "yolo", "jobs", job_id, "artifacts"))["artifacts"]
    paths = {a["path"] for a in artifacts}
    assert {"run/weights/best.pt", "run/weights/last.pt", "run/results.csv"} <= paths
    csv = (await jp_fetch("yolo", "jobs", job_id, "artifacts", "run/results.csv")).body.decode()
    assert len(csv.strip().splitlines()) == 3
    await expect_error(
        jp_fetch, 400, "yolo", "jobs", job_id, "artifacts", "run/../../../jobs.sqlite"
    )

    log = (await jp_fetch("yolo", "jobs", job_id, "log")).body.decode()
    assert log.strip()
    models = await fetch_json(jp_fetch, "yolo", "models")
    assert f"job:{job_id}:best" in {m["model"] for m in models["trained"]}
    assert "yolov8n.yaml" in models["architectures"]
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("yolo", "jobs", job_id, "stop", method="POST", body="{}")
    assert info.value.code == 409


@pytest.mark.slow
@pytest.mark.skipif(not COCO8.is_dir(), reason="../shared/datasets/coco8 is not present")
async def test_training_on_coco8(jp_fetch: Any, yolo_workspace: Path) -> None:
    import shutil

    shutil.copytree(COCO8, yolo_workspace / "datasets" / "coco8")
    job = await post_json(
        jp_fetch,
        "yolo",
        "jobs",
        body={**TRAIN, "data": "datasets/coco8/data.yaml", "epochs": 1, "batch": 4},
    )
    final = await wait_for_job(jp_fetch, job["id"], {"succeeded", "failed"})
    assert final["status"] == "succeeded", final
    assert (yolo_workspace / "jobs" / job["id"] / "run" / "weights" / "best.pt").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("yolo_config", [{"max_jobs_per_device": 1}])
async def test_queue_stop_mid_epoch_resume(
    jp_fetch: Any, shapes_dataset: str, yolo_workspace: Path
) -> None:
    body = {**TRAIN, "data": shapes_dataset, "epochs": 3, "batch": 2}
    first = await post_json(jp_fetch, "yolo", "jobs", body=body)
    second = await post_json(jp_fetch, "yolo", "jobs", body={**body, "epochs": 1})
    listing = await fetch_json(jp_fetch, "yolo", "jobs")
    assert listing["queue"][-1] == second["id"]
    assert (await fetch_json(jp_fetch, "yolo", "jobs", second["id"]))["queue_position"] >= 1

    # wait until the first job is inside its second epoch, then stop it
    await wait_for_event(
        jp_fetch,
        first["id"],
        lambda e: e["type"] == "batch" and e["epoch"] == 2 and e["batch"] >= 2,
    )
    pid = job_pid(yolo_workspace, first["id"])
    stopping = await post_json(jp_fetch, "yolo", "jobs", first["id"], "stop", body={})
    assert stopping["status"] in ("stopping", "stopped")
    stopped = await wait_for_job(jp_fetch, first["id"], {"stopped", "failed", "succeeded"}, 120)
    assert stopped["status"] == "stopped", stopped
    assert stopped["resumable"]
    assert session_members(pid) == [], "no process of the stopped job may survive"
    last = yolo_workspace / "jobs" / first["id"] / "run" / "weights" / "last.pt"
    assert "DetectionModel" in load_weights_in_subprocess(last)

    # the queued job ran once the device was free
    done = await wait_for_job(jp_fetch, second["id"], {"succeeded", "failed"})
    assert done["status"] == "succeeded", done

    resumed = await post_json(jp_fetch, "yolo", "jobs", first["id"], "resume", body={})
    assert resumed["status"] in ("queued", "running")
    final = await wait_for_job(jp_fetch, first["id"], {"succeeded", "failed", "stopped"})
    assert final["status"] == "succeeded", final
    events = await all_events(jp_fetch, first["id"])
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert [e["epoch"] for e in events if e["type"] == "epoch"] == [1, 2, 3]
    csv = (yolo_workspace / "jobs" / first["id"] / "run" / "results.csv").read_text()
    assert len(csv.strip().splitlines()) == 1 + 3
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("yolo", "jobs", first["id"], "resume", method="POST", body="{}")
    assert info.value.code == 409


@pytest.mark.slow
async def test_sigkilled_runner_is_never_left_running(
    jp_fetch: Any, shapes_dataset: str, yolo_workspace: Path
) -> None:
    job = await post_json(
        jp_fetch, "yolo", "jobs", body={**TRAIN, "data": shapes_dataset, "epochs": 5, "batch": 2}
    )
    await wait_for_event(jp_fetch, job["id"], lambda e: e["type"] == "batch")
    os.kill(job_pid(yolo_workspace, job["id"]), signal.SIGKILL)
    final = await wait_for_job(
        jp_fetch, job["id"], {"failed", "interrupted", "succeeded", "stopped"}, 60
    )
    assert final["status"] == "interrupted"
    assert "SIGKILL" in final["exit_reason"]
    assert final["result"]["log_tail"]
    assert final["resumable"]
    events = await all_events(jp_fetch, job["id"])
    assert events[-1]["type"] == "status" and events[-1]["status"] == "interrupted"


@pytest.mark.slow
async def test_job_environment_and_log_carry_no_token(
    jp_fetch: Any,
    jp_serverapp: Any,
    shapes_dataset: str,
    yolo_workspace: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JUPYTER_TOKEN", "env-token-must-not-leak")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "hub-token-must-not-leak")
    job = await post_json(
        jp_fetch, "yolo", "jobs", body={**TRAIN, "data": shapes_dataset, "epochs": 1}
    )
    await wait_for_job(jp_fetch, job["id"], {"running", "succeeded", "failed"})
    environ = Path(f"/proc/{job_pid(yolo_workspace, job['id'])}/environ").read_bytes()
    final = await wait_for_job(jp_fetch, job["id"], {"succeeded", "failed"})
    assert final["status"] == "succeeded"
    assert b"must-not-leak" not in environ and b"JUPYTER_TOKEN" not in environ
    server_token = jp_serverapp.identity_provider.token
    folder = yolo_workspace / "jobs" / job["id"]
    for path in folder.rglob("*"):
        if path.is_file() and path.suffix in (".txt", ".json", ".jsonl", ".yaml", ".csv"):
            text = path.read_text(errors="replace")
            assert server_token not in text and "must-not-leak" not in text, path


# --------------------------------------------------------------------------- artifacts: run/ only

SECRET_JOB = "5ec4e75ec4e7"
SECRET_SOURCE = "rtsp://admin:s3cret@cam.local/live?pwd=t0ken"


class TestArtifactsServeOnlyResults:
    """The artifacts route serves what the artifacts listing lists (run/), nothing else."""

    @pytest.fixture
    def secret_job(self, yolo_workspace: Path) -> Path:
        """A finished stream predict job (adopted at start) whose request holds credentials."""
        folder = yolo_workspace / "jobs" / SECRET_JOB
        (folder / "run").mkdir(parents=True)
        request = {"kind": "predict", "model": "best.pt", "source": SECRET_SOURCE}
        job = {
            "id": SECRET_JOB,
            "kind": "predict",
            "params": {"model": "best.pt", "source": SECRET_SOURCE},
            "request": request,
            "workspace": str(yolo_workspace),
        }
        (folder / "job.json").write_text(json.dumps(job))
        status = {"status": "succeeded", "pid": 0, "started": 1.0, "ended": 2.0}
        (folder / "status.json").write_text(json.dumps({**status, "exit_reason": "finished"}))
        (folder / "events.jsonl").write_text(json.dumps({"seq": 1, "type": "log"}) + "\n")
        (folder / "log.txt").write_text(f"opening {SECRET_SOURCE}\n")
        (folder / "run" / "predictions.jsonl").write_text("{}\n")
        (folder / "run" / "leak.json").symlink_to("../job.json")
        return folder

    @pytest.fixture
    def yolo_config(self, secret_job: Path) -> dict[str, Any]:
        """The job folder exists before the server starts."""
        return {}

    async def test_job_records_are_not_artifacts(self, jp_fetch: Any, secret_job: Path) -> None:
        listing = await fetch_json(jp_fetch, "yolo", "jobs", SECRET_JOB, "artifacts")
        assert [a["path"] for a in listing["artifacts"]] == ["run/predictions.jsonl"]
        served = await jp_fetch("yolo", "jobs", SECRET_JOB, "artifacts", "run/predictions.jsonl")
        assert served.body == b"{}\n"
        for name in ("job.json", "status.json", "events.jsonl", "log.txt", "run"):
            error = await expect_error(jp_fetch, 404, "yolo", "jobs", SECRET_JOB, "artifacts", name)
            assert "only files under run/" in error["message"], name
        # a link under run/ to the job's records is no way around it
        response = await jp_fetch(
            "yolo", "jobs", SECRET_JOB, "artifacts", "run/leak.json", raise_error=False
        )
        assert 400 <= response.code < 500 and b"s3cret" not in response.body

    @pytest.mark.parametrize(
        "header",
        [
            "bytes=\u00b2-",
            "bytes=0-\u00b3",
            "bytes=" + "9" * 5000 + "-",
            "bytes=0-1,3-4",
            "bytes=-",
        ],
    )
    async def test_an_unreadable_range_gets_the_whole_file(
        self, jp_fetch: Any, secret_job: Path, header: str
    ) -> None:
        response = await jp_fetch(
            "yolo", "jobs", SECRET_JOB, "artifacts", "run/predictions.jsonl",
            headers={"Range": header},
        )  # fmt: skip
        assert response.code == 200 and response.body == b"{}\n"


# ----------------------------------------------------------------- long polls wake at once

RUNNING_JOB = "11ae11ae11ae"


class TestLongPollsWakeAtOnce:
    """A long poll answers when another process appends an event or when the job is stopped.

    The job is a running one adopted at start: its "runner" is a process of the test that only
    sleeps (it ignores the stop signal), so nothing trains. The server's safety re-check is set
    far beyond the request's timeout: only a notification can end the wait before it.
    """

    @pytest.fixture
    def runner(self, yolo_workspace: Path) -> Any:
        """A sleeping stand-in runner and its job folder (status running), made before start."""
        code = "import signal, time; signal.signal(signal.SIGUSR1, signal.SIG_IGN); time.sleep(600)"
        process = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
        folder = yolo_workspace / "jobs" / RUNNING_JOB
        folder.mkdir(parents=True)
        request = {"kind": "predict", "model": "best.pt", "source": "images"}
        job = {
            "id": RUNNING_JOB,
            "kind": "predict",
            "params": {"model": "best.pt", "source": "images"},
            "request": request,
            "workspace": str(yolo_workspace),
        }
        (folder / "job.json").write_text(json.dumps(job))
        status = {"status": "running", "pid": process.pid, "started": time.time()}
        (folder / "status.json").write_text(json.dumps(status))
        first = {"seq": 1, "time": time.time(), "type": "status", "status": "running"}
        (folder / "events.jsonl").write_text(json.dumps(first) + "\n")
        yield process
        process.kill()
        process.wait(timeout=30)

    @pytest.fixture(params=["auto", "poll"])
    def yolo_config(self, runner: Any, request: pytest.FixtureRequest) -> dict[str, Any]:
        """The job folder exists before the server starts; jobs are left running at shutdown."""
        return {
            "stop_jobs_on_shutdown": False,
            "stop_grace_period": 600.0,
            "event_notification": request.param,
        }

    @staticmethod
    def manager(jp_serverapp: Any) -> Any:
        from jupyter_yolo.app import YoloApp

        apps = jp_serverapp.extension_manager.extension_apps["jupyter_yolo"]
        (yolo,) = [a for a in apps if isinstance(a, YoloApp)]
        yolo.jobs.recheck_s = 3600.0  # no safety re-check within a request's 60 s
        return yolo.jobs

    @staticmethod
    async def long_poll(jp_fetch: Any, manager: Any, **params: str) -> Any:
        """Start a long poll of the job and return once the server waits on its folder."""
        task = asyncio.ensure_future(
            fetch_json(jp_fetch, "yolo", "jobs", RUNNING_JOB, "events", params=params)
        )
        while not manager.watcher.waiting(manager.workspace.jobs / RUNNING_JOB):
            assert not task.done(), task.result()
            await asyncio.sleep(0.02)
        return task

    async def test_an_event_appended_by_another_process_is_served(
        self, jp_fetch: Any, jp_serverapp: Any, yolo_workspace: Path
    ) -> None:
        manager = self.manager(jp_serverapp)
        task = await self.long_poll(jp_fetch, manager, after="1", timeout="60")
        event = {"seq": 2, "time": time.time(), "type": "log", "message": "from the runner"}
        code = "import sys; open(sys.argv[1], 'a').write(sys.argv[2] + '\\n')"
        path = yolo_workspace / "jobs" / RUNNING_JOB / "events.jsonl"
        subprocess.run([sys.executable, "-c", code, str(path), json.dumps(event)], check=True)
        done, _ = await asyncio.wait({task}, timeout=45)  # the request's own timeout is 60 s
        assert task in done, "the long poll did not answer the appended event"
        page = task.result()
        assert [e["message"] for e in page["events"]] == ["from the runner"]
        assert page["status"] == "running" and page["last_seq"] == 2
        assert manager.watcher.watched_folders == 0  # the watch left with the request

    async def test_a_stop_answers_a_waiting_long_poll(
        self, jp_fetch: Any, jp_serverapp: Any
    ) -> None:
        manager = self.manager(jp_serverapp)
        task = await self.long_poll(jp_fetch, manager, after="1", timeout="60", status="running")
        stopped = await post_json(jp_fetch, "yolo", "jobs", RUNNING_JOB, "stop", body={})
        assert stopped["status"] == "stopping"
        done, _ = await asyncio.wait({task}, timeout=45)  # the request's own timeout is 60 s
        assert task in done, "the long poll did not answer the stop"
        page = task.result()
        assert page["status"] == "stopping" and page["events"] == []
        assert page["actions"]["stop"] is False  # a stopping job cannot be stopped again
