"""The job manager's read-only views of job folders: log tail, artifacts, weights to start from.

A mixin of :class:`~.manager.JobManager` (kept apart so that the manager stays about
supervision); it only reads the workspace and the registry.
"""

from __future__ import annotations

import mimetypes
import os
from pathlib import Path
from typing import Any

from ..contract.architectures import architectures
from ..contract.files import LOG_FILE, LOG_OLD_FILE
from ..errors import NotFound
from ..inference.cache import digest_cache, exports_root, stored_choices, weights_digest
from ..workspace import Workspace
from .registry import JobRecord, JobRegistry
from .schema import JobValidator
from .trained_weights import trained_entry
from .weights_task import task_of_weights


class JobFilesMixin:
    """Log tails, result files and the weights a job can start from."""

    workspace: Workspace
    registry: JobRegistry
    validator: JobValidator

    def record(self, job_id: str) -> JobRecord:  # pragma: no cover - the manager's
        """Return a job's registry row, or raise a 404."""
        raise NotImplementedError

    def task_of(self, job_id: str) -> str:  # pragma: no cover - the manager's
        """The task of a job."""
        raise NotImplementedError

    def log_tail(self, job_id: str, max_bytes: int) -> str:
        """The end of a job's log (rotated part included when the current part is short)."""
        self.record(job_id)
        folder = self.workspace.jobs / job_id
        chunks: list[bytes] = []
        remaining = max_bytes
        for name in (LOG_FILE, LOG_OLD_FILE):
            path = folder / name
            if remaining <= 0 or not path.is_file():
                continue
            with path.open("rb") as handle:
                size = handle.seek(0, os.SEEK_END)
                handle.seek(max(0, size - remaining))
                data = handle.read()
            chunks.insert(0, data)
            remaining -= len(data)
        return b"".join(chunks).decode("utf-8", errors="replace")

    def artifacts(self, job_id: str) -> list[dict[str, Any]]:
        """Result files of a job, relative to its folder."""
        self.record(job_id)
        run = self.workspace.jobs / job_id / "run"
        files = []
        if run.is_dir():
            for path in sorted(run.rglob("*")):
                if path.is_file() and not path.is_symlink():
                    stat = path.stat()
                    files.append(
                        {
                            "path": path.relative_to(run.parent).as_posix(),
                            "size": stat.st_size,
                            "modified": stat.st_mtime,
                            "type": mimetypes.guess_type(path.name)[0]
                            or "application/octet-stream",
                        }
                    )
        return files

    def artifact_path(self, job_id: str, relative: str) -> Path:
        """Resolve an artifact path, confined to the job's result folder ``run/``.

        Only what :meth:`artifacts` lists is served: the job's own records (``job.json`` with
        the request, which may hold a stream URL's credentials, ``status.json``, the events
        and the log) have routes of their own that show them masked or paged.
        """
        self.record(job_id)
        folder = (self.workspace.jobs / job_id).resolve()
        jail = Workspace(folder)
        path = jail.resolve(relative, what="artifact")
        if not path.is_relative_to(folder / "run") or path == folder / "run":
            raise NotFound(
                f"The artifact {relative!r} is not a result file of job {job_id}: only files "
                f"under run/ (those GET /yolo/jobs/{job_id}/artifacts lists) are served here; "
                f"the job's request, status, events and log have routes of their own."
            )
        if not path.is_file():
            raise NotFound(f"The artifact {relative!r} is not a file of job {job_id}.")
        return path

    def models(self) -> dict[str, Any]:
        """Weights a job can start from: architectures, the weights folder, trained jobs.

        Each weights file carries the inference backends measured for it (``inference``: the
        ``auto`` choice and latencies per image size and device, from the export cache), and
        ``backends`` says which backends this server can run.
        """
        names = [arch.name for arch in architectures()]
        weights = []
        if self.workspace.weights.is_dir():
            for path in sorted(self.workspace.weights.glob("*.pt")):
                weights.append(
                    {
                        "model": path.name,
                        "task": task_of_weights(path),
                        "size": path.stat().st_size,
                        "inference": self._inference_choices(path),
                    }
                )
        trained = []
        for record in self.registry.all():
            folder = self.workspace.jobs / record.id / "run" / "weights"
            for which in ("best", "last"):
                if (folder / f"{which}.pt").is_file():
                    entry = trained_entry(record, which, self.task_of(record.id))
                    entry["inference"] = self._inference_choices(folder / f"{which}.pt")
                    trained.append(entry)
        return {
            "architectures": names,
            "architecture_tasks": {arch.name: arch.task for arch in architectures()},
            "weights": weights,
            "trained": trained,
            "backends": self.validator.backends(),
        }

    def _inference_choices(self, weights: Path) -> list[dict[str, Any]]:
        """The measured backend choices kept for a weights file (none before its first predict)."""
        root = exports_root(self.workspace.root)
        if not root.is_dir():
            return []
        try:
            return stored_choices(root, weights_digest(weights, digest_cache(root)))
        except OSError:
            return []
