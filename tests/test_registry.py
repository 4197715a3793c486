"""The SQLite registry: terminal statuses are never overwritten; resume re-queues."""

from __future__ import annotations

from pathlib import Path

from jupyter_yolo.jobs.registry import JobRegistry


def make(registry: JobRegistry, job_id: str) -> None:
    registry.insert(
        job_id=job_id,
        kind="train",
        name=None,
        request={"kind": "train"},
        params={},
        devices=["cpu"],
    )


def test_terminal_status_is_never_overwritten(tmp_path: Path) -> None:
    registry = JobRegistry(tmp_path / "jobs.sqlite")
    make(registry, "a" * 12)
    assert registry.mark_running("a" * 12, 123, 456)
    assert registry.finish("a" * 12, "succeeded", result={"ok": True})
    assert not registry.finish("a" * 12, "interrupted", exit_reason="late")
    assert not registry.mark_stopping("a" * 12)
    record = registry.require("a" * 12)
    assert record.status == "succeeded" and record.result == {"ok": True}
    registry.close()


def test_resume_requeues_only_resumable_jobs_at_the_end(tmp_path: Path) -> None:
    registry = JobRegistry(tmp_path / "jobs.sqlite")
    for job_id in ("a" * 12, "b" * 12):
        make(registry, job_id)
    registry.mark_running("a" * 12, 1, None)
    registry.finish("a" * 12, "stopped")
    assert registry.requeue("a" * 12, frozenset({"stopped", "interrupted"}))
    assert [r.id for r in registry.with_status("queued")] == ["b" * 12, "a" * 12]
    assert not registry.requeue("b" * 12, frozenset({"stopped"}))
    registry.close()
    reopened = JobRegistry(tmp_path / "jobs.sqlite")
    assert reopened.require("a" * 12).status == "queued"
    reopened.close()
