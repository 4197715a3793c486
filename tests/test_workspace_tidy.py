"""A tidy workspace root: the job registry lives in the hidden state folder (an older
workspace's ``jobs.sqlite`` and its write-ahead log move there, nothing lost), and neither the
server nor a job's runner leaves an empty ``runs/`` at the root."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from jupyter_yolo.jobs.registry import JobRegistry
from jupyter_yolo.workspace import REGISTRY_NAME, Workspace

from .conftest import fetch_json


def old_registry_with_wal(root: Path) -> list[str]:
    """A registry at the root as an older version left it, its last rows only in the WAL."""
    registry = JobRegistry(root / REGISTRY_NAME)
    ids = [f"{i:012x}" for i in range(1, 4)]
    for job_id in ids:
        registry.insert(
            job_id=job_id, kind="train", name=f"run {job_id}", request={}, params={}, devices=[]
        )
    registry.close()
    # a server killed with rows not yet checkpointed: copy the files while a writer holds them
    writer = sqlite3.connect(root / REGISTRY_NAME, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("UPDATE jobs SET name = 'renamed in the wal' WHERE id = ?", (ids[0],))
    crashed = root.parent / "crashed"
    crashed.mkdir()
    for suffix in ("", "-wal", "-shm"):
        source = root / f"{REGISTRY_NAME}{suffix}"
        if source.exists():
            shutil.copy2(source, crashed / source.name)
    writer.close()
    for entry in root.glob(f"{REGISTRY_NAME}*"):
        entry.unlink()
    for entry in crashed.iterdir():
        shutil.move(str(entry), root / entry.name)
    assert (root / f"{REGISTRY_NAME}-wal").stat().st_size > 0
    return ids


def test_an_old_root_registry_moves_into_the_state_folder_with_its_wal(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    ids = old_registry_with_wal(root)
    workspace = Workspace(root)
    workspace.create()
    assert workspace.registry == root / ".jupyter-yolo" / REGISTRY_NAME
    assert not list(root.glob(f"{REGISTRY_NAME}*")), "the root still holds registry files"
    registry = JobRegistry(workspace.registry)
    try:
        records = {r.id: r for r in registry.all()}
        assert set(records) == set(ids)
        assert records[ids[0]].name == "renamed in the wal"  # the WAL's change was kept
    finally:
        registry.close()
    assert not workspace.migrate_registry()  # done once; a second start changes nothing


def test_a_registry_already_in_the_state_folder_wins(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    workspace = Workspace(root)
    workspace.create()
    current = JobRegistry(workspace.registry)
    current.insert(job_id="a" * 12, kind="train", name="new", request={}, params={}, devices=[])
    current.close()
    stale = JobRegistry(root / REGISTRY_NAME)
    stale.insert(job_id="b" * 12, kind="train", name="old", request={}, params={}, devices=[])
    stale.close()
    workspace.create()
    assert (root / REGISTRY_NAME).exists()  # left where it was, not written over the new one
    registry = JobRegistry(workspace.registry)
    try:
        assert [r.id for r in registry.all()] == ["a" * 12]
    finally:
        registry.close()


async def test_the_server_keeps_the_workspace_root_tidy(
    jp_fetch: Any, yolo_workspace: Path
) -> None:
    jobs = await fetch_json(jp_fetch, "yolo", "jobs")
    assert jobs["jobs"] == []
    root = sorted(p.name for p in yolo_workspace.iterdir())
    assert not [name for name in root if name.startswith(REGISTRY_NAME)], root
    assert "runs" not in root
    assert (yolo_workspace / ".jupyter-yolo" / REGISTRY_NAME).is_file()


def test_a_runner_leaves_no_runs_folder_at_the_root(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    code = (
        "import sys; from pathlib import Path; from jupyter_yolo.runner.offline import prepare\n"
        "settings = prepare(Path(sys.argv[1]), 1)['settings']\n"
        "print(settings['runs_dir'])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(root)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert not (root / "runs").exists()
    runs_dir = Path(done.stdout.strip().splitlines()[-1])
    assert runs_dir.is_relative_to(root) and runs_dir.relative_to(root).parts[0].startswith(".")


def test_a_registry_that_cannot_move_is_reported(tmp_path: Path, monkeypatch: Any) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    old_registry_with_wal(root)
    workspace = Workspace(root)

    def refuse(source: Any, target: Any) -> None:
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr("jupyter_yolo.workspace.os.replace", refuse)
    problems = workspace.create()

    assert len(problems) == 1 and "could not be moved" in problems[0]
    assert "cross-device" in problems[0]
    assert (root / REGISTRY_NAME).is_file()  # left where it was, nothing lost
