"""Listing many finished jobs stays cheap: no row decoded twice, no job file read per request.

The figures (``GET /yolo/jobs`` and event reads at 10, 100 and 1,000 jobs) are in
``python -m bench --only scaling``; here the behaviour behind them is checked by counting
decoded rows and opened files, never by timing.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from jupyter_yolo.contract.files import EVENTS_FILE
from jupyter_yolo.contract.jobfile import JobFile
from jupyter_yolo.jobs.events import append_event
from jupyter_yolo.jobs.manager import JobManager
from jupyter_yolo.jobs.registry import JobRegistry
from jupyter_yolo.strict import dumps
from jupyter_yolo.workspace import Workspace

JOBS = 30

_opened: list[str] | None = None
_owner: int | None = None


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "open" and _opened is not None and threading.get_ident() == _owner:
        _opened.append(str(args[0]))


sys.addaudithook(_audit)  # audit hooks cannot be removed: it counts only inside opened_files


@contextmanager
def opened_files() -> Iterator[list[str]]:
    """The files this thread opens inside the block (Python's ``open`` audit event)."""
    global _opened, _owner
    _opened, _owner = [], threading.get_ident()
    try:
        yield _opened
    finally:
        _opened, _owner = None, None


def finished_job(manager: JobManager, job_id: str) -> None:
    """A finished training job as the server and its runner leave it (folder, events, row)."""
    folder = manager.workspace.jobs / job_id
    folder.mkdir()
    params = {"model": "yolov8n.yaml", "epochs": 1, "imgsz": 64, "project": str(folder)}
    JobFile(
        id=job_id, kind="train", params=params, workspace=manager.workspace.root, devices=("cpu",)
    ).write(folder)
    events = folder / EVENTS_FILE
    append_event(events, "status", status="queued")
    append_event(events, "status", status="running")
    for batch in (1, 2):
        append_event(
            events, "batch", epoch=1, batch=batch, batches=2, loss={"box": 1.5}, images_per_s=9.0
        )
    append_event(events, "status", status="succeeded")
    manager.registry.insert(
        job_id=job_id, kind="train", name=None, request=params, params=params, devices=["cpu"]
    )
    assert manager.registry.claim(job_id)
    assert manager.registry.finish(job_id, "succeeded", result={"metrics": {"mAP50": 0.5}})


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[JobManager]:
    jobs = JobManager(
        Workspace(tmp_path / "ws"),
        python=sys.executable,
        max_jobs_per_device=1,
        stop_grace_period=5,
        kill_grace_period=1,
        log_max_bytes=1 << 20,
        log=logging.getLogger("test"),
    )
    for i in range(JOBS):
        finished_job(jobs, f"{i:012x}")
    try:
        yield jobs
    finally:
        jobs.registry.close()


def test_registry_decodes_a_row_once_until_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite"
    registry = JobRegistry(path)
    for job_id in ("000000000001", "000000000002"):
        registry.insert(job_id=job_id, kind="train", name=None, request={}, params={}, devices=[])
        registry.claim(job_id)
        registry.finish(job_id, "stopped")
    first = {r.id: r for r in registry.all()}
    again = {r.id: r for r in registry.all()}
    assert all(again[i] is first[i] for i in first)  # nothing changed: nothing decoded again
    assert registry.requeue("000000000001", frozenset({"stopped"}))
    changed = {r.id: r for r in registry.all()}
    assert changed["000000000001"].status == "queued"
    assert changed["000000000001"] is not first["000000000001"]
    assert changed["000000000002"] is first["000000000002"]
    # a change committed by another connection (another process) is seen too
    other = JobRegistry(path)
    try:
        assert other.claim("000000000001")
    finally:
        other.close()
    assert {r.id: r.status for r in registry.all()}["000000000001"] == "running"
    registry.delete("000000000002")
    assert [r.id for r in registry.all()] == ["000000000001"]
    registry.close()


def test_listing_finished_jobs_reads_no_job_file_once_known(manager: JobManager) -> None:
    first = manager.list_jobs_json()  # builds every view once (reads each event file)
    views = manager.list_jobs()["jobs"]
    with opened_files() as opened:
        again = manager.list_jobs_json()
    assert opened == []
    assert again == first
    assert all(a is b for a, b in zip(views, manager.list_jobs()["jobs"], strict=True))
    listing = json.loads(again)
    assert len(listing["jobs"]) == JOBS
    assert listing == json.loads(dumps(manager.list_jobs()))  # the same as the plain listing
    assert {job["status"] for job in listing["jobs"]} == {"succeeded"}
    assert listing["jobs"][0]["folder"] == f"jobs/{listing['jobs'][0]['id']}"
    assert listing["jobs"][0]["progress"]["last_seq"] == 5


def test_a_changed_job_is_described_again_and_only_it(manager: JobManager) -> None:
    manager.list_jobs_json()
    appended, resumed = f"{3:012x}", f"{7:012x}"
    append_event(manager.workspace.jobs / appended / EVENTS_FILE, "log", message="late line")
    assert manager.registry.requeue(resumed, frozenset({"succeeded"}))
    with opened_files() as opened:
        listing = json.loads(manager.list_jobs_json())
    assert {Path(p).parent.name for p in opened} == {appended}  # its new events only
    jobs = {job["id"]: job for job in listing["jobs"]}
    assert jobs[appended]["progress"]["last_seq"] == 6
    assert jobs[resumed]["status"] == "queued"
    assert jobs[resumed]["queue_position"] == 1
    assert listing["queue"] == [resumed]
    assert manager.get(resumed)["status"] == "queued"


def test_a_limited_list_shows_the_newest_and_every_job_not_ended(manager: JobManager) -> None:
    resumed = f"{2:012x}"  # an old job, far down the list
    assert manager.registry.requeue(resumed, frozenset({"succeeded"}))
    listing = json.loads(manager.list_jobs_json(limit=5))
    everything = manager.list_jobs()
    assert listing["total"] == everything["total"] == JOBS
    newest = [job["id"] for job in everything["jobs"][:5]]
    assert [job["id"] for job in listing["jobs"]] == [*newest, resumed]
    assert listing["queue"] == everything["queue"] == [resumed]


async def test_limit_over_rest(jp_fetch: Any, jp_serverapp: Any) -> None:
    from jupyter_yolo.app import YoloApp

    from .conftest import expect_error, fetch_json

    apps = jp_serverapp.extension_manager.extension_apps["jupyter_yolo"]
    (yolo,) = [a for a in apps if isinstance(a, YoloApp)]
    before = (await fetch_json(jp_fetch, "yolo", "jobs"))["total"]
    for i in range(3):
        finished_job(yolo.jobs, f"abcdef{i:06x}")
    listing = await fetch_json(jp_fetch, "yolo", "jobs", params={"limit": "2"})
    assert listing["total"] == before + 3
    assert [job["id"] for job in listing["jobs"]] == ["abcdef000002", "abcdef000001"]
    assert len((await fetch_json(jp_fetch, "yolo", "jobs"))["jobs"]) == before + 3
    for bad in ("0", "x", "-1"):
        error = await expect_error(jp_fetch, 400, "yolo", "jobs", params={"limit": bad})
        assert "limit" in error["message"]


def test_the_benchmark_copies_a_finished_job_as_the_server_adopts_it(tmp_path: Path) -> None:
    """``bench/scaling_jobs.py`` fills a registry with copies of a real job: check a copy."""
    from bench.scaling_jobs import clone_job, event_job

    source = tmp_path / "source"
    template = source / "jobs" / "0123456789ab"
    template.mkdir(parents=True)
    params = {"model": "yolov8n.yaml", "project": str(template), "data": str(source / "d.yaml")}
    JobFile(id=template.name, kind="train", params=params, workspace=source).write(template)
    append_event(template / EVENTS_FILE, "status", status="succeeded")
    (template / "status.json").write_text(
        json.dumps({"status": "succeeded", "result": {"weights": str(template / "run/best.pt")}})
    )
    (template / "run").mkdir()
    (template / "run" / "best.pt").write_bytes(b"weights")
    target = tmp_path / "target"
    (target / "jobs").mkdir(parents=True)
    copy = target / "jobs" / clone_job(template, source, target)
    job = JobFile.load(copy)
    assert job.id == copy.name != template.name
    assert job.params["project"] == str(copy)
    assert job.params["data"] == str(target / "d.yaml")
    assert json.loads((copy / "status.json").read_text())["result"]["weights"] == str(
        copy / "run/best.pt"
    )
    assert (copy / "run" / "best.pt").stat().st_ino == (template / "run" / "best.pt").stat().st_ino
    many = target / "jobs" / event_job(template, source, target, 1000)
    lines = (many / EVENTS_FILE).read_text().splitlines()
    assert [json.loads(line)["seq"] for line in lines] == list(range(1, 1001))
    assert json.loads(lines[-1])["status"] == "succeeded"
