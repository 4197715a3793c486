"""``job.json``: the server's request to a runner, written once and read by the runner."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .files import DEFAULT_LOG_MAX_BYTES, JOB_FILE, write_json_atomic
from .status import KINDS
from .tasks import DEFAULT_TASK, TASKS


class JobFileError(ValueError):
    """``job.json`` is missing or malformed."""


@dataclass(frozen=True)
class JobFile:
    """The content of one job's ``job.json``."""

    id: str
    kind: str
    params: dict[str, Any]
    workspace: Path
    task: str = DEFAULT_TASK
    name: str | None = None
    request: dict[str, Any] = field(default_factory=dict)
    devices: tuple[str, ...] = ()
    resume: bool = False
    log_max_bytes: int = DEFAULT_LOG_MAX_BYTES

    def as_dict(self) -> dict[str, Any]:
        """The JSON body of ``job.json``."""
        return {
            "id": self.id,
            "kind": self.kind,
            "task": self.task,
            "name": self.name,
            "params": self.params,
            "request": self.request,
            "devices": list(self.devices),
            "workspace": str(self.workspace),
            "resume": self.resume,
            "log_max_bytes": self.log_max_bytes,
        }

    def write(self, job_dir: Path) -> None:
        """Write ``job_dir/job.json`` atomically."""
        write_json_atomic(job_dir / JOB_FILE, self.as_dict())

    @classmethod
    def load(cls, job_dir: Path) -> JobFile:
        """Read and check ``job_dir/job.json``."""
        path = job_dir / JOB_FILE
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise JobFileError(f"{path} does not exist") from exc
        except (OSError, ValueError) as exc:
            raise JobFileError(f"{path} is not readable JSON: {exc}") from exc
        return cls.from_dict(raw, default_id=job_dir.name, shown=str(path))

    @classmethod
    def from_dict(cls, raw: Any, *, default_id: str, shown: str = JOB_FILE) -> JobFile:
        """Check a decoded ``job.json``; :class:`JobFileError` says what is wrong with it."""
        problem = problem_of(raw)
        if problem:
            raise JobFileError(f"{shown} {problem}")
        params = raw.get("params") or {}
        request = raw.get("request") or {}
        devices = raw.get("devices") or []
        log_max = raw.get("log_max_bytes", DEFAULT_LOG_MAX_BYTES)
        if not isinstance(log_max, int) or isinstance(log_max, bool) or log_max < 1024:
            log_max = DEFAULT_LOG_MAX_BYTES
        name = raw.get("name")
        return cls(
            id=str(raw.get("id") or default_id),
            kind=raw["kind"],
            params=dict(params),
            workspace=Path(raw["workspace"]),
            task=raw.get("task") or DEFAULT_TASK,
            name=name if isinstance(name, str) else None,
            request=dict(request) if isinstance(request, dict) else {},
            devices=tuple(str(d) for d in devices) if isinstance(devices, list) else (),
            resume=bool(raw.get("resume", False)),
            log_max_bytes=log_max,
        )


def problem_of(raw: Any) -> str | None:
    """What makes a decoded ``job.json`` unusable, or None."""
    if not isinstance(raw, dict):
        return "must hold a JSON object"
    kind = raw.get("kind")
    if kind not in KINDS:
        return f"has job kind {kind!r}, not one of {', '.join(KINDS)}"
    if not isinstance(raw.get("params") or {}, dict):
        return "has params that are not a JSON object"
    workspace = raw.get("workspace")
    if not isinstance(workspace, str) or not os.path.isabs(workspace):
        return "has no absolute workspace path"
    task = raw.get("task")
    if task is not None and task not in TASKS:
        return f"has task {task!r}, not one of {', '.join(TASKS)}"
    return None
