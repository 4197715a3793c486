"""``job.json``: the server's request to a runner, written once and read by the runner."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .files import DEFAULT_LOG_MAX_BYTES, JOB_FILE, write_json_atomic
from .status import KINDS
from .tasks import DEFAULT_TASK, TASKS

MAX_NAME_BYTES = 1024
"""A job's ``name`` is at most this long in UTF-8."""
_NOT_TEXT = re.compile(r"[\ud800-\udfff\x00-\x1f\x7f-\x9f]")  # lone surrogates, controls


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
    def load(
        cls, job_dir: Path, *, shown: str | None = None, workspace: Path | None = None
    ) -> JobFile:
        """Read and check ``job_dir/job.json``.

        :class:`JobFileError` messages start with ``shown`` (the file's path by default).
        ``workspace`` stands in for a missing or relative ``workspace`` entry: the server adopts a
        folder restored into its own workspace whatever workspace the file was written in.
        """
        path = job_dir / JOB_FILE
        shown = shown or str(path)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise JobFileError(f"{shown} does not exist") from exc
        except (OSError, ValueError, RecursionError) as exc:
            raise JobFileError(f"{shown} is not readable JSON: {exc}") from exc
        if workspace is not None and isinstance(raw, dict):
            named = raw.get("workspace")
            if not isinstance(named, str) or not os.path.isabs(named):
                raw = {**raw, "workspace": str(workspace)}
        return cls.from_dict(raw, default_id=job_dir.name, shown=shown)

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
    for key, kind in (("params", dict), ("request", dict), ("devices", list)):
        if raw.get(key) is not None and not isinstance(raw[key], kind):
            return f"has a {key!r} that is not a JSON {'object' if kind is dict else 'list'}"
    if not all(isinstance(d, str) for d in raw.get("devices") or []):
        return "has devices that are not text"
    name = raw.get("name")
    if name is not None and not _plain_text(name):
        return f"has a name that is not plain text (at most {MAX_NAME_BYTES} bytes)"
    workspace = raw.get("workspace")
    if not isinstance(workspace, str) or not os.path.isabs(workspace):
        return "has no absolute workspace path"
    task = raw.get("task")
    if task is not None and task not in TASKS:
        return f"has task {task!r}, not one of {', '.join(TASKS)}"
    return None


def _plain_text(value: Any) -> bool:
    """A string without lone surrogates or control characters, within MAX_NAME_BYTES."""
    if not isinstance(value, str) or _NOT_TEXT.search(value):
        return False
    return len(value.encode("utf-8")) <= MAX_NAME_BYTES
