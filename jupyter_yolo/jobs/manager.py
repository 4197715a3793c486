"""The job manager: validates, queues, spawns, watches, stops, resumes and re-attaches jobs.

One runner process per job (``python -m jupyter_yolo.runner JOB_DIR``) in its own session, so a
job outlives the server. The runner owns its folder's ``status.json`` and ``events.jsonl``; the
server appends to the event file only while no runner is alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import mimetypes
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from ..errors import Conflict, NotFound
from ..inference.cache import exports_root, stored_choices, weights_digest
from ..workspace import Workspace, write_atomic
from .events import EVENTS_FILE, EventIndex, append_event
from .process import (
    is_same_process_alive,
    process_start_time,
    runner_environment,
    session_members,
    signal_process,
    signal_session,
)
from .progress import Progress
from .registry import ACTIVE, TERMINAL, JobRecord, JobRegistry
from .schema import ARCHITECTURES, JobSpec, JobValidator

RESUMABLE = frozenset({"stopped", "interrupted"})
POLL_INTERVAL = 0.25
LOG_TAIL_LINES = 30


class JobManager:
    """Everything the REST API does with jobs; no tornado in here."""

    def __init__(
        self,
        workspace: Workspace,
        *,
        python: str,
        max_jobs_per_device: int,
        stop_grace_period: float,
        kill_grace_period: float,
        log_max_bytes: int,
        log: logging.Logger,
        cuda_available: Callable[[], bool] = lambda: False,
        dataset_check: Callable[[Path], None] | None = None,
        default_device: str | None = None,
    ) -> None:
        self.workspace = workspace
        self.python = python
        self.max_jobs_per_device = max(1, max_jobs_per_device)
        self.stop_grace_period = stop_grace_period
        self.kill_grace_period = kill_grace_period
        self.log_max_bytes = log_max_bytes
        self.log = log
        self.validator = JobValidator(
            workspace,
            cuda_available=cuda_available,
            dataset_check=dataset_check,
            default_device=default_device,
        )
        workspace.create()
        self.registry = JobRegistry(workspace.registry)
        self._children: dict[str, subprocess.Popen[bytes]] = {}
        self._stop_requested: dict[str, float] = {}
        self._indexes: dict[str, EventIndex] = {}
        self._progress: dict[str, Progress] = {}
        self._supervisor: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Event | None = None
        self._closing = False
        self.reconcile()

    # ------------------------------------------------------------------ lifecycle

    def reconcile(self) -> None:
        """Bring the registry in line with job folders and live processes (at server start)."""
        known = {record.id for record in self.registry.all()}
        for folder in sorted(self.workspace.jobs.iterdir()) if self.workspace.jobs.is_dir() else []:
            if folder.name not in known and (folder / "job.json").is_file():
                self._adopt_folder(folder)
        for record in self.registry.with_status(*ACTIVE):
            if is_same_process_alive(record.pid, record.pid_start):
                self.log.info("jupyter_yolo: re-attached to job %s (pid %s)", record.id, record.pid)
                if record.status == "stopping":
                    self._stop_requested[record.id] = time.monotonic()
            else:
                self._finalize(record, returncode=None)
        for record in self.registry.with_status("queued"):
            status = self._read_status(record.id)
            if status and status.get("status") == "running":
                pid = status.get("pid")
                if isinstance(pid, int) and is_same_process_alive(pid, None):
                    self.registry.mark_running(record.id, pid, process_start_time(pid))

    def _adopt_folder(self, folder: Path) -> None:
        try:
            job = json.loads((folder / "job.json").read_text())
        except (OSError, ValueError):
            self.log.warning(
                "jupyter_yolo: ignoring job folder %s with an unreadable job.json", folder
            )
            return
        self.registry.insert(
            job_id=folder.name,
            kind=job.get("kind", "train"),
            name=job.get("name"),
            request=job.get("request", {}),
            params=job.get("params", {}),
            devices=job.get("devices", ["default"]),
        )
        status = self._read_status(folder.name) or {}
        pid = status.get("pid")
        if status.get("status") in TERMINAL:
            self._finish_from_status(folder.name, status)
        elif isinstance(pid, int) and is_same_process_alive(pid, None):
            self.registry.mark_running(folder.name, pid, process_start_time(pid))
        elif status:
            self.registry.mark_running(folder.name, 0, None)
            self._finalize(self.registry.require(folder.name), returncode=None)

    def ensure_started(self) -> None:
        """Start the supervisor task on the running event loop, once."""
        if self._supervisor is None or self._supervisor.done():
            self._wakeup = asyncio.Event()
            self._supervisor = asyncio.get_running_loop().create_task(self._supervise())

    def _wake(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()

    async def _supervise(self) -> None:
        while not self._closing:
            try:
                self.tick()
            except Exception:
                self.log.exception("jupyter_yolo: job supervisor step failed")
            assert self._wakeup is not None
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=POLL_INTERVAL)
            self._wakeup.clear()

    def tick(self) -> None:
        """One supervision step: notice ended runners, escalate stops, start queued jobs."""
        for record in self.registry.with_status(*ACTIVE):
            child = self._children.get(record.id)
            if child is not None:
                returncode = child.poll()
                if returncode is not None:
                    self._finalize(record, returncode=returncode)
                    continue
            elif not is_same_process_alive(record.pid, record.pid_start):
                self._finalize(record, returncode=None)
                continue
            if record.status == "stopping":
                self._escalate_stop(record)
        if not self._closing:
            self._start_queued()

    async def shutdown(self, stop_jobs: bool) -> None:
        """Stop the supervisor; with ``stop_jobs`` stop running jobs gracefully first."""
        if stop_jobs:
            active = self.registry.with_status(*ACTIVE)
            for record in active:
                with contextlib.suppress(Conflict):
                    self.stop(record.id)
            deadline = time.monotonic() + self.stop_grace_period + self.kill_grace_period + 5
            while self.registry.with_status(*ACTIVE) and time.monotonic() < deadline:
                self.tick()
                await asyncio.sleep(POLL_INTERVAL)
        self._closing = True
        self._wake()
        if self._supervisor is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._supervisor, timeout=5)
        self.registry.close()

    # ------------------------------------------------------------------ create, list, get

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        """Validate a request, write the job folder atomically, register and queue the job."""
        spec = self.validator.validate(body)
        job_id = secrets.token_hex(6)
        final = self.workspace.jobs / job_id
        staging = Path(os.path.realpath(self.workspace.tmp)) / f"job-{job_id}"
        staging.mkdir(parents=True)
        try:
            if spec.dataset_yaml is not None:
                write_atomic(
                    staging / "data.yaml", yaml.safe_dump(spec.dataset_yaml, sort_keys=False)
                )
                spec.params["data"] = str(final / "data.yaml")
            self._write_job_file(staging, job_id, spec, resume=False)
            append_event(staging / EVENTS_FILE, "status", status="queued")
            os.rename(staging, final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        record = self.registry.insert(
            job_id=job_id,
            kind=spec.kind,
            name=spec.name,
            request=spec.request,
            params=spec.params,
            devices=list(spec.devices),
        )
        self.log.info("jupyter_yolo: job %s (%s) queued", job_id, spec.kind)
        self._wake()
        return self.describe(record)

    def _write_job_file(self, folder: Path, job_id: str, spec: JobSpec, *, resume: bool) -> None:
        job = {
            "id": job_id,
            "kind": spec.kind,
            "name": spec.name,
            "params": spec.params,
            "request": spec.request,
            "devices": list(spec.devices),
            "workspace": str(self.workspace.root),
            "resume": resume,
            "log_max_bytes": self.log_max_bytes,
        }
        write_atomic(folder / "job.json", json.dumps(job, indent=2))

    def jobs_using(self, folder: Path) -> list[str]:
        """Ids of queued, running or stopping jobs whose dataset lies in ``folder``."""
        root = folder.resolve()
        users = []
        for record in self.registry.with_status("queued", *ACTIVE):
            candidates: list[Path] = []
            data = record.request.get("data")
            if isinstance(data, str):
                if data.endswith((".yaml", ".yml")):
                    candidates.append(self.workspace.root / data)
                else:
                    candidates.append(self.workspace.datasets / data)
            copy = record.params.get("data")
            if isinstance(copy, str) and copy.endswith((".yaml", ".yml")):
                with contextlib.suppress(OSError, yaml.YAMLError, AttributeError):
                    content = yaml.safe_load(Path(copy).read_text(encoding="utf-8"))
                    if isinstance(content, dict) and content.get("path"):
                        candidates.append(Path(str(content["path"])))
            if any(c.resolve().is_relative_to(root) for c in candidates):
                users.append(record.id)
        return users

    def record(self, job_id: str) -> JobRecord:
        """Return a job's registry row, or raise a 404."""
        record = self.registry.get(job_id) if _looks_like_id(job_id) else None
        if record is None:
            raise NotFound(f"There is no job {job_id!r}.")
        return record

    def get(self, job_id: str) -> dict[str, Any]:
        """Describe one job."""
        return self.describe(self.record(job_id))

    def list_jobs(self) -> dict[str, Any]:
        """Describe every job, newest first, and the queue in start order."""
        records = self.registry.all()
        queued = [
            r.id
            for r in sorted(records, key=lambda r: (r.queued, r.created))
            if r.status == "queued"
        ]
        return {
            "jobs": [self.describe(r, queue=queued) for r in records],
            "queue": queued,
            "max_jobs_per_device": self.max_jobs_per_device,
        }

    def describe(self, record: JobRecord, queue: list[str] | None = None) -> dict[str, Any]:
        """The public view of a job."""
        if queue is None and record.status == "queued":
            queue = [r.id for r in self.registry.with_status("queued")]
        position = queue.index(record.id) + 1 if queue and record.id in queue else None
        return {
            "id": record.id,
            "kind": record.kind,
            "name": record.name,
            "status": record.status,
            "request": record.request,
            "model": record.request.get("model", record.params.get("model")),
            "data": record.request.get("data"),
            "devices": record.devices,
            "created": record.created,
            "started": record.started,
            "ended": record.ended,
            "attempts": record.attempts,
            "queue_position": position,
            "progress": self.progress(record.id).summary(),
            "result": record.result,
            "error": record.error,
            "exit_reason": record.exit_reason,
            "resumable": record.kind == "train" and record.status in RESUMABLE,
            "folder": self.workspace.relative(self.workspace.jobs / record.id),
        }

    def progress(self, job_id: str) -> Progress:
        """The job's progress, brought up to date with events appended since the last call."""
        tracker = self._progress.setdefault(job_id, Progress())
        index = self._index(job_id)
        while True:
            events = index.read_after(tracker.last_seq, limit=5000)
            if not events:
                return tracker
            tracker.consume(events)

    def _index(self, job_id: str) -> EventIndex:
        index = self._indexes.get(job_id)
        if index is None:
            index = EventIndex(self.workspace.jobs / job_id / EVENTS_FILE)
            self._indexes[job_id] = index
        return index

    # ------------------------------------------------------------------ events, log, artifacts

    async def events(self, job_id: str, after: int, limit: int, timeout: float) -> dict[str, Any]:
        """Events after ``after``; waits up to ``timeout`` seconds for new ones (long poll)."""
        record = self.record(job_id)
        index = self._index(job_id)
        deadline = time.monotonic() + timeout
        while True:
            events = index.read_after(after, limit)
            if events or record.terminal or time.monotonic() >= deadline:
                break
            await asyncio.sleep(min(POLL_INTERVAL, max(0.0, deadline - time.monotonic())))
            record = self.record(job_id)
        return {
            "id": job_id,
            "events": events,
            "last_seq": index.last_seq,
            "status": record.status,
            "more": bool(events) and events[-1]["seq"] < index.last_seq,
        }

    def log_tail(self, job_id: str, max_bytes: int) -> str:
        """The end of a job's log (rotated part included when the current part is short)."""
        self.record(job_id)
        folder = self.workspace.jobs / job_id
        chunks: list[bytes] = []
        remaining = max_bytes
        for name in ("log.txt", "log.1.txt"):
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
        """Resolve an artifact path, confined to the job's folder."""
        self.record(job_id)
        folder = (self.workspace.jobs / job_id).resolve()
        jail = Workspace(folder)
        path = jail.resolve(relative, what="artifact")
        if not path.is_file():
            raise NotFound(f"The artifact {relative!r} is not a file of job {job_id}.")
        return path

    # ------------------------------------------------------------------ stop, resume

    def stop(self, job_id: str) -> dict[str, Any]:
        """Ask a job to stop: queued jobs stop at once, running ones finish their batch first."""
        record = self.record(job_id)
        if record.status == "queued":
            if self.registry.finish(job_id, "stopped", exit_reason="stopped before it started"):
                self._append(job_id, "status", status="stopped")
        elif record.status == "running":
            if self.registry.mark_stopping(job_id):
                folder = self.workspace.jobs / job_id
                (folder / "stop").write_text(str(time.time()))
                self._stop_requested[job_id] = time.monotonic()
                # Before it writes status.json the runner may not handle SIGUSR1 yet (the
                # default action would kill it); it reads the stop file when it starts.
                if record.pid and (folder / "status.json").exists():
                    signal_process(record.pid, signal.SIGUSR1)
                self.log.info("jupyter_yolo: stop requested for job %s", job_id)
        elif record.status != "stopping":
            raise Conflict(
                f"Job {job_id} has already ended ({record.status}); there is nothing to stop."
            )
        self._wake()
        return self.get(job_id)

    def _escalate_stop(self, record: JobRecord) -> None:
        asked = self._stop_requested.setdefault(record.id, time.monotonic())
        waited = time.monotonic() - asked
        if not record.pid:
            return
        if waited > self.stop_grace_period + self.kill_grace_period:
            signal_session(record.pid, signal.SIGKILL)
        elif waited > self.stop_grace_period:
            signal_session(record.pid, signal.SIGTERM)

    def resume(self, job_id: str) -> dict[str, Any]:
        """Queue a stopped or interrupted training again; it continues from ``last.pt``."""
        record = self.record(job_id)
        if record.kind != "train":
            raise Conflict(f"Job {job_id} is a {record.kind} job; only training can be resumed.")
        if record.status not in RESUMABLE:
            raise Conflict(
                f"Job {job_id} is {record.status}; only a stopped or interrupted training can "
                f"be resumed."
            )
        folder = self.workspace.jobs / job_id
        job = json.loads((folder / "job.json").read_text())
        job["resume"] = True
        write_atomic(folder / "job.json", json.dumps(job, indent=2))
        (folder / "stop").unlink(missing_ok=True)
        if self.registry.requeue(job_id, RESUMABLE):
            self._append(job_id, "status", status="queued", resume=True)
        self._wake()
        return self.get(job_id)

    # ------------------------------------------------------------------ models

    def models(self) -> dict[str, Any]:
        """Weights a job can start from: architectures, the weights folder, trained jobs.

        Each weights file carries the inference backends measured for it (``inference``: the
        ``auto`` choice and latencies per image size and device, from the export cache), and
        ``backends`` says which backends this server can run.
        """
        architectures = list(ARCHITECTURES)
        weights = []
        if self.workspace.weights.is_dir():
            for path in sorted(self.workspace.weights.glob("*.pt")):
                weights.append({"model": path.name, "size": path.stat().st_size,
                                "inference": self._inference_choices(path)})
        trained = []
        for record in self.registry.all():
            folder = self.workspace.jobs / record.id / "run" / "weights"
            for which in ("best", "last"):
                if (folder / f"{which}.pt").is_file():
                    trained.append(
                        {
                            "model": f"job:{record.id}:{which}",
                            "job": record.id,
                            "name": record.name,
                            "status": record.status,
                            "weights": which,
                            "inference": self._inference_choices(folder / f"{which}.pt"),
                        }
                    )
        return {"architectures": architectures, "weights": weights, "trained": trained,
                "backends": self.validator.backends()}

    def _inference_choices(self, weights: Path) -> list[dict[str, Any]]:
        """The measured backend choices kept for a weights file (none before its first predict)."""
        root = exports_root(self.workspace.root)
        if not root.is_dir():
            return []
        try:
            return stored_choices(root, weights_digest(weights))
        except OSError:
            return []

    # ------------------------------------------------------------------ internals

    def _start_queued(self) -> None:
        active = self.registry.with_status(*ACTIVE)
        busy: Counter[str] = Counter(device for r in active for device in r.devices)
        blocked: set[str] = set()
        for record in self.registry.with_status("queued"):
            devices = record.devices or ["default"]
            if any(d in blocked or busy[d] >= self.max_jobs_per_device for d in devices):
                blocked.update(devices)
                continue
            try:
                self._spawn(record)
            except OSError as exc:
                self.registry.finish(
                    record.id, "failed", error=f"Could not start the runner: {exc}"
                )
                self._append(record.id, "status", status="failed")
                continue
            busy.update(devices)

    def _spawn(self, record: JobRecord) -> None:
        folder = self.workspace.jobs / record.id
        (folder / "stop").unlink(missing_ok=True)
        with (folder / "log.txt").open("ab") as log_file:
            child = subprocess.Popen(
                [self.python, "-m", "jupyter_yolo.runner", str(folder)],
                cwd=folder,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
                env=runner_environment(os.environ),
            )
        self._children[record.id] = child
        self.registry.mark_running(record.id, child.pid, process_start_time(child.pid))
        self.log.info("jupyter_yolo: job %s started (pid %s)", record.id, child.pid)

    def _finalize(self, record: JobRecord, returncode: int | None) -> None:
        """Record the end of a runner process; the runner's own terminal status wins."""
        self._children.pop(record.id, None)
        stopping = record.status == "stopping"
        self._stop_requested.pop(record.id, None)
        if record.pid:
            leftovers = session_members(record.pid)
            if leftovers:
                self.log.warning(
                    "jupyter_yolo: killing %d leftover process(es) of job %s",
                    len(leftovers),
                    record.id,
                )
                signal_session(record.pid, signal.SIGKILL)
        if self._finish_from_status(record.id, self._read_status(record.id) or {}):
            self._wake()
            return
        if returncode is None:
            reason = "the runner process ended while the server was not watching it"
        elif returncode < 0:
            reason = f"the runner was killed by {signal.Signals(-returncode).name}"
        else:
            reason = f"the runner exited with code {returncode} without writing a final status"
        final = (
            "stopped"
            if stopping
            else ("failed" if returncode and returncode > 0 else "interrupted")
        )
        tail = self._log_tail_lines(record.id)
        error = None if final == "stopped" else f"Job {final}: {reason}."
        if self.registry.finish(
            record.id,
            final,
            exit_reason=reason,
            error=error,
            result={"log_tail": tail} if tail else None,
        ):
            if error:
                self._append(record.id, "error", message=error, log_tail=tail)
            self._append(record.id, "status", status=final, exit_reason=reason)
            self.log.warning("jupyter_yolo: job %s %s: %s", record.id, final, reason)
        self._wake()

    def _finish_from_status(self, job_id: str, status: dict[str, Any]) -> bool:
        """Record the runner's own terminal status, if it wrote one; return whether it did."""
        if status.get("status") not in TERMINAL:
            return False
        self.registry.finish(
            job_id,
            status["status"],
            exit_reason=status.get("exit_reason"),
            error=status.get("error"),
            result=status.get("result"),
        )
        return True

    def _append(self, job_id: str, event_type: str, **fields: Any) -> None:
        append_event(self.workspace.jobs / job_id / EVENTS_FILE, event_type, **fields)

    def _read_status(self, job_id: str) -> dict[str, Any] | None:
        try:
            status = json.loads((self.workspace.jobs / job_id / "status.json").read_text())
        except (OSError, ValueError):
            return None
        return status if isinstance(status, dict) else None

    def _log_tail_lines(self, job_id: str) -> str:
        text = self.log_tail(job_id, 16384)
        return "\n".join(text.splitlines()[-LOG_TAIL_LINES:])


def _looks_like_id(job_id: str) -> bool:
    return len(job_id) == 12 and all(c in "0123456789abcdef" for c in job_id)
