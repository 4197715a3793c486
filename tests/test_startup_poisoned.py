"""No file on disk can stop the extension from loading: poisoned workspaces, then a real start.

Each case damages a workspace the way a crash, a hand edit, another version or a hostile user
could, then starts a real jupyter server on it (a subprocess, as after a restart) and checks that
every route answers strict JSON, the healthy job is still listed and the damage is reported.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from jupyter_yolo.jobs.registry import JobRegistry
from tests.conftest import install_dataset
from tests.route_check import assert_routes_answer
from tests.server_process import ServerProcess, serving

GOOD = "0123456789ab"
POISON = "ba9876543210"


def job_folder(
    workspace: Path, job_id: str, *, name: str = "good", status: str = "succeeded"
) -> Path:
    """A finished job's folder as the server and runner write it."""
    folder = workspace / "jobs" / job_id
    folder.mkdir(parents=True)
    job = {
        "id": job_id,
        "kind": "train",
        "name": name,
        "params": {"model": "yolov8n.yaml", "epochs": 1},
        "request": {"kind": "train", "data": "shapes", "epochs": 1},
        "devices": ["cpu"],
        "workspace": str(workspace),
        "resume": False,
    }
    (folder / "job.json").write_text(json.dumps(job))
    (folder / "status.json").write_text(json.dumps({"status": status, "exit_reason": "done"}))
    (folder / "events.jsonl").write_text(
        '{"seq": 1, "time": 1.0, "type": "status", "status": "queued"}\n'
        f'{{"seq": 2, "time": 2.0, "type": "status", "status": "{status}"}}\n'
    )
    return folder


def poison_surrogate_name(workspace: Path) -> None:
    folder = job_folder(workspace, POISON)
    job = json.loads((folder / "job.json").read_text())
    job["name"] = "\ud800"
    (folder / "job.json").write_text(json.dumps(job))  # escaped as \\ud800, as before the fix


def poison_garbage_job_file(workspace: Path) -> None:
    (job_folder(workspace, POISON) / "job.json").write_bytes(b"\x00\xff{not json")


def poison_job_file_not_an_object(workspace: Path) -> None:
    (job_folder(workspace, POISON) / "job.json").write_text('["train"]')


def poison_job_file_wrong_types(workspace: Path) -> None:
    folder = job_folder(workspace, POISON)
    job = json.loads((folder / "job.json").read_text())
    job.update(kind="teleport", request="x", devices=[1, 2])
    (folder / "job.json").write_text(json.dumps(job))


def poison_half_written_folder(workspace: Path) -> None:
    folder = workspace / "jobs" / POISON
    folder.mkdir(parents=True)
    (folder / ".job.json.tmp123").write_text('{"id": "ba98')


def poison_foreign_entries(workspace: Path) -> None:
    (workspace / "jobs" / "notes").mkdir(parents=True)
    (workspace / "jobs" / "notes" / "job.json").write_text("{}")
    (workspace / "jobs" / "README.txt").write_text("hello")
    outside = workspace.parent / "outside-job"
    job_folder(outside.parent / "outside-ws", POISON)
    (workspace / "jobs" / "deadbeef0000").symlink_to(
        outside.parent / "outside-ws" / "jobs" / POISON
    )


def poison_unreadable_event_and_status_files(workspace: Path) -> None:
    folder = job_folder(workspace, POISON, status="stopped")
    (folder / "status.json").write_text('{"status": "succeeded", "result": {"mAP50": NaN}')
    with (folder / "events.jsonl").open("a") as handle:
        handle.write("\x00\x00garbage\n")
        handle.write('{"seq": "three", "type": "epoch"}\n')
        handle.write('{"seq": 4, "time": 4, "type": "epoch", "epoch": "x", "mAP50": NaN}\n')
        handle.write('{"seq": 5, "time": 5, "type": "batch", "loss": [1, 2], "epoch": -3}\n')


def poison_registry_rows(workspace: Path) -> None:
    registry = JobRegistry(workspace / "jobs.sqlite")
    registry.close()
    db = sqlite3.connect(workspace / "jobs.sqlite")
    columns = "id, kind, name, status, request, params, devices, created, queued"
    db.execute(
        f"INSERT INTO jobs ({columns}) VALUES (?, 'train', 'x', 'queued', ?, '{{}}', '[]', 1, 1)",
        (POISON, "{"),
    )
    db.execute(
        f"INSERT INTO jobs ({columns}) VALUES ('cafecafecafe', 'train', 'y', 'teleported',"
        " '{}', '{}', '[]', 1, 1)"
    )
    nested = "[" * 100_000 + "]" * 100_000
    db.execute(
        f"INSERT INTO jobs ({columns}, attempts) VALUES"
        " ('beefbeefbeef', 'train', 'z', 'stopped', ?, '{}', '[]', 1, 1, 9e999)",
        (nested,),
    )
    db.execute(
        f"INSERT INTO jobs ({columns}) VALUES ('f00df00df00d', 'train', CAST(? AS TEXT),"
        " 'stopped', '{}', '{}', '[]', 1, 1)",
        (b"\xff\xfe broken utf-8",),
    )
    # a running job whose folder was deleted by hand
    db.execute(
        f"INSERT INTO jobs ({columns}, pid) VALUES ('d00dd00dd00d', 'train', 'gone', 'running',"
        " '{}', '{}', '[\"cpu\"]', 1, 1, 999999)"
    )
    db.commit()
    db.close()
    job_folder(workspace, POISON)
    deep = job_folder(workspace, "abcabcabcabc", status="stopped")
    (deep / "status.json").write_text("[" * 100_000 + "]" * 100_000)
    with (deep / "events.jsonl").open("a") as handle:
        handle.write('{"seq": 3, "x": ' + "[" * 100_000 + "]" * 100_000 + "}\n")


def poison_registry_file(workspace: Path) -> None:
    (workspace / "jobs.sqlite").write_bytes(b"this is not a database\n" * 100)


def poison_registry_other_schema(workspace: Path) -> None:
    db = sqlite3.connect(workspace / "jobs.sqlite")
    db.execute("CREATE TABLE jobs (id TEXT PRIMARY KEY, colour TEXT)")
    db.execute("INSERT INTO jobs VALUES ('x', 'blue')")
    db.commit()
    db.close()


FOLDER_POISONS: dict[str, Callable[[Path], None]] = {
    "surrogate_name": poison_surrogate_name,
    "garbage_job_file": poison_garbage_job_file,
    "job_file_not_an_object": poison_job_file_not_an_object,
    "job_file_wrong_types": poison_job_file_wrong_types,
    "half_written_folder": poison_half_written_folder,
    "foreign_entries": poison_foreign_entries,
}
"""Damaged job folders, each reported in GET /yolo/jobs 'warnings' by its folder name."""


def poison_every_job_folder(workspace: Path) -> list[str]:
    """Every folder poison at once, each in a job folder of its own; returns their names."""
    names = []
    for index, poison in enumerate(FOLDER_POISONS.values()):
        staging = workspace.parent / f"staging-{index}"
        poison(staging)
        for entry in sorted((staging / "jobs").iterdir()):
            name = entry.name if entry.name != POISON else f"{index:02d}{POISON[2:]}"
            entry.rename(workspace / "jobs" / name)
            names.append(name)
    return names


def poison_layout(workspace: Path) -> None:
    (workspace / "weights").write_text("a file where the weights folder belongs")
    (workspace / "elsewhere").mkdir()
    (workspace / ".tmp").symlink_to(workspace / "elsewhere")
    (workspace / ".jupyter-yolo").write_text("a file where the server's state folder belongs")
    (workspace / "jobs.sqlite").mkdir()


REGISTRY_POISONS: dict[str, tuple[Callable[[Path], None], str]] = {
    "layout": (poison_layout, "weights was not a folder"),
    "rows": (poison_registry_rows, POISON),
    "file": (poison_registry_file, "moved to"),
    "other_schema": (poison_registry_other_schema, "moved to"),
}


def test_damaged_job_folders_are_skipped_and_reported_at_every_start(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    job_folder(workspace, GOOD)
    poisoned = poison_every_job_folder(workspace)
    poison_unreadable_event_and_status_files(workspace)
    for _start in range(2):  # the surrogate name once kept the extension off at every start
        with serving(workspace) as server:
            listing = assert_routes_answer(server.request)["/yolo/jobs"]
            assert {job["id"] for job in listing["jobs"]} == {GOOD, POISON}
            assert server.request("GET", f"/yolo/jobs/{GOOD}")["status"] == "succeeded"
            messages = " ".join(w["message"] for w in listing["warnings"])
            for name in poisoned:
                if name not in ("README.txt", "deadbeef0000") and name != "notes":
                    assert name in messages, (name, listing["warnings"])
            assert "notes" in messages and "deadbeef0000" in messages
            damaged = server.request("GET", f"/yolo/jobs/{POISON}")
            assert damaged["progress"]["epoch"] is None
            events = server.request("GET", f"/yolo/jobs/{POISON}/events")["events"]
            assert [e["seq"] for e in events][:4] == [1, 2, 4, 5]
            assert events[-1]["status"] == damaged["status"] == "interrupted"  # never restarted
            assert "Traceback" not in server.log_path.read_text()


@pytest.mark.parametrize("case", sorted(REGISTRY_POISONS))
def test_a_damaged_registry_or_layout_is_reported_and_the_jobs_kept(
    tmp_path: Path, case: str
) -> None:
    workspace = tmp_path / "ws"
    job_folder(workspace, GOOD)
    poison, reported = REGISTRY_POISONS[case]
    poison(workspace)
    with serving(workspace) as server:
        listing = assert_routes_answer(server.request)["/yolo/jobs"]
        assert GOOD in {job["id"] for job in listing["jobs"]}
        assert server.request("GET", f"/yolo/jobs/{GOOD}")["status"] == "succeeded"
        assert reported in " ".join(w["message"] for w in listing["warnings"])
        assert listing["supervising"] is True
        assert "Traceback" not in server.log_path.read_text()


def test_a_second_server_on_the_workspace_supervises_nothing(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    job_folder(workspace, GOOD, status="stopped")
    first = ServerProcess(workspace, workspace)
    first.start()
    try:
        with serving(workspace) as second:
            listing = second.request("GET", "/yolo/jobs")
            assert listing["supervising"] is False
            assert "another jupyter server" in listing["warnings"][0]["message"]
            assert f"pid {first.proc.pid if first.proc else 0}" in listing["warnings"][0]["message"]
            for method, path in (
                ("POST", "/yolo/jobs"),
                ("POST", f"/yolo/jobs/{GOOD}/resume"),
                ("POST", f"/yolo/jobs/{GOOD}/stop"),
            ):
                with pytest.raises(Exception) as info:
                    second.request(method, path, body={"kind": "train", "data": "x"})
                assert getattr(info.value, "code", None) == 409, (method, path, info.value)
                answer = json.loads(info.value.read())  # type: ignore[attr-defined]
                assert "does not supervise" in answer["message"]
            assert_routes_answer(second.request)
        assert first.request("GET", "/yolo/jobs")["supervising"] is True
        first.kill9()
        # the lock dies with its process: the next server supervises again
        with serving(workspace) as third:
            assert third.request("GET", "/yolo/jobs")["supervising"] is True
    finally:
        first.stop()


def test_a_second_runner_on_a_job_leaves_it_alone(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    folder = job_folder(workspace, GOOD, status="running")
    fd = os.open(folder / ".runner.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "jupyter_yolo.runner", str(folder)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        os.close(fd)
    assert done.returncode == 3, done.stderr
    assert "another runner" in done.stderr
    after = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    assert after == before


def test_a_queued_job_is_claimed_once(tmp_path: Path) -> None:
    registry = JobRegistry(tmp_path / "jobs.sqlite")
    registry.insert(job_id=GOOD, kind="train", name=None, request={}, params={}, devices=["cpu"])
    assert registry.claim(GOOD) is True
    assert registry.claim(GOOD) is False
    assert registry.require(GOOD).status == "running"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.slow
def test_job_files_are_private_whatever_the_umask(tmp_path: Path, shapes_template: Path) -> None:
    workspace = tmp_path / "ws"
    install_dataset(shapes_template, workspace / "datasets" / "shapes")
    old = os.umask(0)
    try:
        server = ServerProcess(workspace, workspace)
        server.start()
    finally:
        os.umask(old)
    try:
        job: dict[str, Any] = server.request(
            "POST",
            "/yolo/jobs",
            body={
                "kind": "train",
                "data": "shapes",
                "epochs": 1,
                "imgsz": 64,
                "batch": 8,
                "device": "cpu",
                "workers": 0,
                "plots": False,
            },
        )
        deadline = time.monotonic() + 300
        while job["status"] not in ("succeeded", "failed", "stopped", "interrupted"):
            assert time.monotonic() < deadline, job
            time.sleep(0.5)
            job = server.request("GET", f"/yolo/jobs/{job['id']}")
        assert job["status"] == "succeeded", job
    finally:
        server.stop()
    folder = workspace / "jobs" / job["id"]
    assert mode(workspace / "jobs") == 0o700
    assert mode(workspace / ".jupyter-yolo" / "jobs.sqlite") == 0o600
    for wal in (
        workspace / ".jupyter-yolo" / "jobs.sqlite-wal",
        workspace / ".jupyter-yolo" / "jobs.sqlite-shm",
    ):
        if wal.exists():
            assert mode(wal) == 0o600
    for path in [folder, *folder.rglob("*")]:
        if path.is_symlink():
            continue
        allowed = 0o700 if path.is_dir() else 0o600
        assert mode(path) & ~allowed == 0, f"{path.relative_to(workspace)} is {oct(mode(path))}"
