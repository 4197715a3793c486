"""The job manager: validates, queues, spawns, watches, stops, resumes and re-attaches jobs.

One runner per job (``python -m jupyter_yolo.runner JOB_DIR``): a process of this machine in
its own session (:mod:`.executor_local`), or a Ray job on a cluster node with the workspace on
shared storage (:mod:`.executor_ray`); either way a job outlives the server. The runner owns its
folder's ``status.json`` and ``events.jsonl``; the server appends to the event file only while
no runner is alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from ..contract.actions import job_actions
from ..contract.files import (
    ALREADY_RUNNING_EXIT,
    EVENTS_FILE,
    JOB_FILE,
    STATUS_FILE,
    write_atomic,
)
from ..contract.jobfile import JobFile, JobFileError
from ..contract.status import ACTIVE, TERMINAL
from ..contract.tasks import DEFAULT_TASK
from ..contract.tune import TUNE_KIND
from ..errors import Conflict, InvalidRequest, NotFound
from ..strict import describe_text, dumps
from ..workspace import Workspace, private_folder
from .events import EventIndex, append_event
from .executor_local import LocalExecutor
from .executor_ray import RayExecutor
from .filewatch import FolderWatcher
from .manager_files import JobFilesMixin
from .placement import Placement, ray_resources, split_placement
from .process import (
    is_same_process_alive,
    process_start_time,
    signal_process,
)
from .progress import Progress
from .registry import JobRecord, JobRegistry
from .schema import HardwareView, JobValidator, ValidatedJob

RESUMABLE = frozenset({"stopped", "interrupted"})
POLL_INTERVAL = 0.25
#: The supervisor's pause when no job is queued or active (requests that add work wake it).
IDLE_TICK_S = 5.0
#: A long poll re-checks this often whatever it is told: a change no notification reports (a
#: registry row changed by another process, a filesystem whose writes inotify does not see).
RECHECK_S = 5.0
#: A Ray job's runner writes on another node over shared storage (NFS writes made elsewhere are
#: invisible to inotify): its long polls re-check this often.
RAY_RECHECK_S = 1.0
#: The job folder's files whose changes end a long poll (not the log written line by line; the
#: stop file: a stop asked by the server that supervises the jobs, seen by one that shows them).
WATCHED_FILES = (EVENTS_FILE, STATUS_FILE, "stop")
#: After a notification a long poll waits this long before it reads: what is written together
#: (a batch then an epoch event) is answered together, and a client that follows a fast training
#: (many batches a second) gets at most about 1/COALESCE_S answers a second, not one per batch.
COALESCE_S = 0.02
LOG_TAIL_LINES = 30


class JobManager(JobFilesMixin):
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
        hardware: Callable[[], HardwareView] | None = None,
        owner: str | None = None,
        allowed_stream_sources: tuple[str, ...] = (),
        executor: str = "local",
        ray_address: str = "",
        ray_python: str = "python3",
        event_notification: str = "auto",
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
            hardware=hardware,
            allowed_stream_sources=allowed_stream_sources,
        )
        # a Ray job's device is not this server's: checked syntactically (placement.py) only
        self.ray_validator = JobValidator(
            workspace,
            cuda_available=cuda_available,
            dataset_check=dataset_check,
            allowed_stream_sources=allowed_stream_sources,
        )
        self.default_executor = executor
        self.local = LocalExecutor(
            python,
            stop_grace_period=stop_grace_period,
            kill_grace_period=kill_grace_period,
            log=log,
        )
        self.ray = RayExecutor(self, ray_address, ray_python) if ray_address else None
        workspace.create()
        private_folder(workspace.jobs)
        self.owner = owner
        self.supervising = owner is None
        self.registry = JobRegistry(workspace.registry, log=log, repair=self.supervising)
        # long polls wait on their job folder; a status change made here wakes them at once
        self.watcher = FolderWatcher(use_inotify=event_notification != "poll", log=log)
        self.registry.on_status = self._status_changed
        self.recheck_s = RECHECK_S
        self._lock = threading.RLock()
        self._busy = True  # until the first tick has looked
        self._progress_lock = threading.Lock()
        self._problems: dict[str, str] = {}
        self._extra_problems: list[dict[str, str]] = []
        self._children: dict[str, subprocess.Popen[bytes]] = {}
        self._stop_requested: dict[str, float] = {}
        self._indexes: dict[str, EventIndex] = {}
        self._progress: dict[str, Progress] = {}
        self._tasks: dict[str, str] = {}
        self._views: dict[str, tuple[JobRecord, int, dict[str, Any]]] = {}
        self._jobs_relative: str | None = None
        self._encoded_views: dict[str, tuple[dict[str, Any], str]] = {}
        self._supervisor: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False
        self._no_new_starts = False
        self.on_finished: Callable[[str, str, str], None] | None = None
        """Called with (id, terminal status, kind) once a job's end is recorded (any thread)."""
        self.on_started: Callable[[str, str], None] | None = None
        """Called with (id, kind) once a local job's runner is started (any thread)."""
        if self.supervising:
            self.reconcile()
        else:
            self.log.warning(
                "jupyter_yolo: %s; this server shows its jobs but does not start, stop or "
                "re-attach them.",
                owner,
            )

    def _refuse_unless_supervising(self) -> None:
        if not self.supervising:
            raise Conflict(
                f"This server does not supervise the jobs of this workspace: {self.owner}. "
                f"Start, stop and resume jobs there, or stop that server and restart this one."
            )

    def report_problem(self, code: str, message: str) -> None:
        """Add something found at start to :meth:`problems` (shown in GET /yolo/jobs)."""
        self._extra_problems.append({"code": code, "message": message})

    def problems(self) -> list[dict[str, str]]:
        """What was skipped or refused at start (damaged folders, registry rows, the lock)."""
        found = [{"code": "job_folder", "message": m} for m in list(self._problems.values())]
        found += [{"code": "registry", "message": m} for m in list(self.registry.problems.values())]
        found += self._extra_problems
        if self.ray is not None and self.ray.problem:
            found.append({"code": "ray", "message": self.ray.problem})
        if not self.supervising:
            found.insert(0, {"code": "not_supervising", "message": str(self.owner)})
        return found

    # ------------------------------------------------------------------ lifecycle

    def reconcile(self) -> None:
        """Bring the registry in line with job folders and live processes (at server start).

        A folder or row that cannot be read is skipped and reported (:meth:`problems`); nothing
        here may keep the extension from loading.
        """
        known = {record.id for record in self.registry.all()} | set(self.registry.problems)
        for folder in self._job_folders():
            if folder.name in known:
                continue
            try:
                self._adopt_folder(folder)
            except Exception as exc:  # a damaged folder must not stop the server
                self._skip_folder(folder, f"it could not be read ({type(exc).__name__}: {exc})")
        for record in self.registry.with_status(*ACTIVE, "queued"):
            if record.executor == "ray":
                self._reattach_ray(record)
                continue
            try:
                self._reattach(record)
            except Exception as exc:  # one job's damaged files must not stop the server
                self._problems[record.id] = (
                    f"Job {record.id} could not be checked at start ({type(exc).__name__}: "
                    f"{exc}); it is shown as it was."
                )
                self.log.exception("jupyter_yolo: %s", self._problems[record.id])

    def _reattach_ray(self, record: JobRecord) -> None:
        """At start: a Ray job is followed again by asking Ray (the supervisor's next steps)."""
        if self.ray is None:
            self._problems[record.id] = (
                f"Job {record.id} runs on Ray, but this server has no YoloApp.ray_address: it "
                f"is shown as it was until a server with the Ray cluster follows it."
            )
        else:
            self.log.info("jupyter_yolo: following Ray job %s again", record.id)

    def _reattach(self, record: JobRecord) -> None:
        """At start: follow a live runner again, or record the end of one that is gone."""
        if record.status == "queued":
            status = self._read_status(record.id)
            if status and status.get("status") == "running":
                self._adopt_live_runner(record.id, status)
            return
        if is_same_process_alive(record.pid, record.pid_start):
            self.log.info("jupyter_yolo: re-attached to job %s (pid %s)", record.id, record.pid)
            if record.status == "stopping":
                self._stop_requested[record.id] = time.monotonic()
        elif not self._adopt_live_runner(record.id, self._read_status(record.id) or {}):
            self._finalize(record, returncode=None)

    def _adopt_live_runner(self, job_id: str, status: dict[str, Any]) -> bool:
        """Follow the runner ``status.json`` names when it still runs; return whether it does."""
        pid = status.get("pid")
        if status.get("status") not in ("running", "stopping") or not isinstance(pid, int):
            return False
        if isinstance(pid, bool) or not is_same_process_alive(pid, None):
            return False
        start = process_start_time(pid)
        if not self.registry.mark_running(job_id, pid, start):
            self.registry.set_process(job_id, pid, start)
        self.log.info("jupyter_yolo: re-attached to job %s (runner pid %s)", job_id, pid)
        return True

    def _job_folders(self) -> list[Path]:
        try:
            return sorted(self.workspace.jobs.iterdir())
        except OSError as exc:
            self._problems["jobs"] = f"The jobs folder cannot be listed: {exc}."
            self.log.error("jupyter_yolo: %s", self._problems["jobs"])
            return []

    def _skip_folder(self, folder: Path, why: str) -> None:
        message = f"The job folder jobs/{describe_text(folder.name)[1:-1]} was skipped: {why}."
        self._problems[folder.name] = message
        self.log.warning("jupyter_yolo: %s", message)

    def _adopt_folder(self, folder: Path) -> None:
        """Register a job folder the registry does not know (a restored or re-made registry)."""
        if not _looks_like_id(folder.name) or not folder.is_dir() or folder.is_symlink():
            self._skip_folder(folder, "it is not a job folder (a job id is 12 hex digits)")
            return
        if not (folder / JOB_FILE).is_file():
            self._skip_folder(folder, "it has no job.json (a job whose creation was cut short?)")
            return
        try:  # the contract's reader and rules, as the runner reads it
            job = JobFile.load(folder, shown=f"its {JOB_FILE}", workspace=self.workspace.root)
        except JobFileError as exc:
            self._skip_folder(folder, str(exc))
            return
        self.registry.insert(
            job_id=folder.name,
            kind=job.kind,
            name=job.name,
            request=job.request,
            params=job.params,
            devices=list(job.devices) or ["default"],
        )
        self._tasks[folder.name] = job.task
        status = self._read_status(folder.name) or {}
        if not status and (folder / STATUS_FILE).exists():
            # a runner wrote something once: never start such a job again on its own
            self._skip_folder(folder, "its status.json cannot be read; it is shown as interrupted")
            status = {"status": "running"}
        pid = status.get("pid")
        if status.get("status") in TERMINAL:
            self._finish_from_status(folder.name, status)
        elif isinstance(pid, int) and is_same_process_alive(pid, None):
            self.registry.mark_running(folder.name, pid, process_start_time(pid))
        elif status:
            self.registry.mark_running(folder.name, 0, None)
            self._finalize(self.registry.require(folder.name), returncode=None)

    def ensure_started(self) -> None:
        """Start the supervisor task on the running event loop, once (when supervising)."""
        if not self.supervising:
            return
        if self._supervisor is None or self._supervisor.done():
            self._wakeup = asyncio.Event()
            self._loop = asyncio.get_running_loop()
            self._supervisor = self._loop.create_task(self._supervise())

    def _wake(self) -> None:
        """Wake the supervisor now; safe from the loop and from worker threads."""
        if self._wakeup is not None and self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                self._loop.call_soon_threadsafe(self._wakeup.set)

    async def _supervise(self) -> None:
        while not self._closing:
            try:
                await asyncio.to_thread(self.tick)
            except Exception:
                self.log.exception("jupyter_yolo: job supervisor step failed")
            assert self._wakeup is not None
            # nothing queued, running or stopping: nothing to notice until a request wakes it
            pause = POLL_INTERVAL if self._busy else IDLE_TICK_S
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), timeout=pause)
            self._wakeup.clear()

    def tick(self) -> None:
        """One supervision step: notice ended runners, escalate stops, start queued jobs.

        Runs in a worker thread (it reads /proc and job folders); the manager's lock keeps it
        apart from requests that change jobs.
        """
        with self._lock:
            self._tick()
        pending = self.registry.with_status("queued", *ACTIVE)
        self._busy = bool(pending)
        if self.ray is not None:
            ray_jobs = [r for r in pending if r.executor == "ray"]
            if ray_jobs or self.ray.stops_pending():
                self._busy = True
                self.ray.follow_all(ray_jobs)

    def _tick(self) -> None:
        for record in self.registry.with_status(*ACTIVE):
            if record.executor == "ray":
                continue  # followed through Ray (tick)
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
        if not self._closing and not self._no_new_starts:
            self._start_queued()

    async def shutdown(self, stop_jobs: bool) -> None:
        """Stop the supervisor; with ``stop_jobs`` stop running jobs gracefully first."""
        self._no_new_starts = True
        if stop_jobs and self.supervising:
            active = self.registry.with_status(*ACTIVE)
            for record in active:
                with contextlib.suppress(Conflict):
                    await asyncio.to_thread(self.stop, record.id)
            deadline = time.monotonic() + self.stop_grace_period + self.kill_grace_period + 5
            while self.registry.with_status(*ACTIVE) and time.monotonic() < deadline:
                await asyncio.to_thread(self.tick)
                await asyncio.sleep(POLL_INTERVAL)
        self._closing = True
        self._wake()
        if self._supervisor is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._supervisor, timeout=5)
        self.watcher.close()
        self.registry.close()

    # ------------------------------------------------------------------ create, list, get

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        """Validate a request, write the job folder and register the job: all or nothing.

        The folder is built under ``.tmp/``; the registry row is added, then the folder renamed
        into ``jobs/``. If either step fails, neither is left behind.
        """
        self._refuse_unless_supervising()
        spec, placement, ray = self._validate(body)
        job_id = secrets.token_hex(6)
        final = self.workspace.jobs / job_id
        staging = Path(os.path.realpath(self.workspace.tmp)) / f"job-{job_id}"
        staging.mkdir(parents=True, mode=0o700)
        try:
            if spec.dataset_yaml is not None:
                write_atomic(
                    staging / "data.yaml", yaml.safe_dump(spec.dataset_yaml, sort_keys=False)
                )
                spec.params["data"] = str(final / "data.yaml")
            self._write_job_file(staging, job_id, spec, resume=False)
            append_event(staging / EVENTS_FILE, "status", status="queued")
            private_folder(staging)
            with self._lock:
                record = self.registry.insert(
                    job_id=job_id,
                    kind=spec.kind,
                    name=spec.name,
                    request=spec.request,
                    params=spec.params,
                    devices=list(spec.devices),
                    executor=placement.executor,
                    ray=ray,
                )
                try:
                    os.rename(staging, final)
                except BaseException:
                    self.registry.delete(job_id)
                    raise
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        self.log.info("jupyter_yolo: job %s (%s) queued", job_id, spec.kind)
        self._wake()
        return self.describe(record)

    def _validate(
        self, body: dict[str, Any]
    ) -> tuple[ValidatedJob, Placement, dict[str, Any] | None]:
        """Validate a request: where it runs (``executor``, Ray resources), then what it runs.

        A Ray job's device is checked for its syntax only (the GPUs are the node's, not this
        server's) and re-indexed for the node; the cluster's Ray version is checked (409).
        """
        rest, placement = split_placement(
            body, default=self.default_executor, ray_configured=self.ray is not None
        )
        ray: dict[str, Any] | None = None
        if placement.executor == "ray":
            spec = self.ray_validator.validate(rest)
            ray = ray_resources(spec.params, placement, rest.get("workers"))
            if spec.kind == TUNE_KIND:  # the Tune driver: each trial asks Ray for its own GPU
                ray["num_gpus"] = 0.0
            assert self.ray is not None
            self.ray.check_version()
        else:
            spec = self.validator.validate(rest)
        if placement.executor == "ray" or "executor" in body:
            spec.request.update(placement.shown())
        return spec, placement, ray

    def _write_job_file(
        self, folder: Path, job_id: str, spec: ValidatedJob, *, resume: bool
    ) -> None:
        JobFile(
            id=job_id,
            kind=spec.kind,
            task=spec.task,
            name=spec.name,
            params=spec.params,
            request=spec.request,
            devices=tuple(spec.devices),
            workspace=self.workspace.root,
            resume=resume,
            log_max_bytes=self.log_max_bytes,
        ).write(folder)

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

    def list_jobs(self, limit: int | None = None) -> dict[str, Any]:
        """Describe the jobs, newest first, and the queue in start order.

        ``limit``: the newest ``limit`` jobs and every job that has not ended (so a long
        history costs a client what it shows); ``total`` counts them all.
        """
        records = self.registry.all()
        waiting = sorted((r for r in records if r.status == "queued"), key=_queue_order)
        queued = [r.id for r in waiting]
        shown = (
            records
            if limit is None
            else [r for i, r in enumerate(records) if i < limit or not r.terminal]
        )
        return {
            "jobs": [self.describe(r, queue=queued) for r in shown],
            "total": len(records),
            "queue": queued,
            "max_jobs_per_device": self.max_jobs_per_device,
            "supervising": self.supervising,
            "warnings": self.problems(),
        }

    def waiting_or_running(self) -> list[str]:
        """Ids of the jobs queued or running (any executor): blocking, call in a thread."""
        return [r.id for r in self.registry.with_status("queued", *ACTIVE)]

    def training_ending(self, job_id: str) -> bool:
        """Whether a training job's runner wrote ``succeeded`` that is not recorded yet.

        The moment between the runner's last event and the supervisor noticing its exit (the
        end-of-job hook then runs). Blocking: call in a thread.
        """
        record = self.registry.get(job_id)
        if record is None or record.kind != "train" or record.status not in ACTIVE:
            return False
        return (self._read_status(job_id) or {}).get("status") == "succeeded"

    def list_jobs_json(self, limit: int | None = None) -> str:
        """:meth:`list_jobs` as strict JSON text; an ended job's part is encoded only once.

        Encoding is most of the cost of a long list, and it is done here (in the caller's
        worker thread), not on the event loop.
        """
        listing = self.list_jobs(limit)
        parts = [self._encoded(view) for view in listing.pop("jobs")]
        return '{"jobs": [' + ", ".join(parts) + "], " + dumps(listing)[1:]

    def _encoded(self, view: dict[str, Any]) -> str:
        """A job's view as JSON, kept with the view of an ended job (see :meth:`describe`)."""
        job_id = view["id"]
        cached = self._encoded_views.get(job_id)
        if cached is not None and cached[0] is view:
            return cached[1]
        text = dumps(view)
        kept = self._views.get(job_id)
        if kept is not None and kept[2] is view:
            self._encoded_views[job_id] = (view, text)
        return text

    def describe(self, record: JobRecord, queue: list[str] | None = None) -> dict[str, Any]:
        """The public view of a job.

        An ended job's view is kept while its registry row (the registry hands out the same
        record while the row is unchanged) and its event count stay the same: listing many
        finished jobs builds nothing again and reads no job file (one ``stat`` of each event
        file tells whether events were appended).
        """
        if record.terminal:
            progress = self.progress(record.id)
            cached = self._views.get(record.id)
            if cached is not None and cached[0] is record and cached[1] == progress.last_seq:
                return cached[2]
            view = self._describe(record, None)
            self._views[record.id] = (record, progress.last_seq, view)
            return view
        return self._describe(record, queue)

    def _describe(self, record: JobRecord, queue: list[str] | None) -> dict[str, Any]:
        if queue is None and record.status == "queued":
            queue = [r.id for r in self.registry.with_status("queued")]
        position = queue.index(record.id) + 1 if queue and record.id in queue else None
        return {
            "id": record.id,
            "kind": record.kind,
            "task": self.task_of(record.id),
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
            "executor": record.executor,
            "ray": self.ray.view(record) if self.ray is not None and record.ray else None,
            "queue_reason": self._queue_reason(record, position),
            "resumable": record.kind == "train" and record.status in RESUMABLE,
            "actions": job_actions(record.kind, record.status, self.supervising),
            "folder": f"{self._jobs_folder}/{record.id}",
        }

    @property
    def _jobs_folder(self) -> str:
        """The jobs folder, workspace-relative (resolved once, not once per job listed)."""
        if self._jobs_relative is None:
            self._jobs_relative = self.workspace.relative(self.workspace.jobs)
        return self._jobs_relative

    def _queue_reason(self, record: JobRecord, position: int | None) -> str | None:
        """What a queued job waits for: Ray's placement message, or its turn on its devices."""
        if record.status != "queued":
            return None
        if record.executor == "ray":
            message = (record.ray or {}).get("message")
            return str(message) if message else "waiting to be submitted to Ray"
        devices = ", ".join(record.devices or ["default"])
        if position is not None and position > 1:
            return f"waiting for {position - 1} job(s) queued before it ({devices})"
        return (
            f"waiting for a free slot on {devices} (at most {self.max_jobs_per_device} job(s) "
            f"per device)"
        )

    def task_of(self, job_id: str) -> str:
        """The task of a job, from its job.json (read once; detect when it cannot be read)."""
        task = self._tasks.get(job_id)
        if task is None:
            try:
                task = JobFile.load(self.workspace.jobs / job_id).task
            except (JobFileError, OSError):
                return DEFAULT_TASK
            self._tasks[job_id] = task
        return task

    def progress(self, job_id: str) -> Progress:
        """The job's progress, brought up to date with events appended since the last call."""
        with self._progress_lock:
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

    async def events(
        self, job_id: str, after: int, limit: int, timeout: float, status: str | None = None
    ) -> dict[str, Any]:
        """Events after ``after``; waits up to ``timeout`` seconds for new ones (long poll).

        The wait also ends when the job's status changes (a stop asked elsewhere marks it
        ``stopping`` without an event). ``status`` is the status the caller last saw: the wait
        ends at once when the job's differs, and an ended job is waited on too (a follower of an
        ended job learns of a resume made elsewhere at once, one request per ``timeout``);
        without it an ended job answers at once.

        The wait ends as soon as the runner appends (inotify on the job folder, see
        :mod:`.filewatch`; polling every 0.25 s where inotify cannot be used or the
        ``event_notification`` setting says ``poll``) or this server changes the job's status.
        """
        record = self.record(job_id)
        known = record.status if status is None else status
        index = self._index(job_id)
        deadline = time.monotonic() + timeout

        def answered() -> bool:
            return bool(events) or record.status != known or (record.terminal and status is None)

        events = index.read_after(after, limit)
        if timeout > 0 and not answered():
            # woken by a change of the job folder's files (inotify) or of the job's status in
            # this server (the registry's on_status), or the re-check; never a busy loop
            with self.watcher.watch(self.workspace.jobs / job_id, WATCHED_FILES) as change:
                while True:
                    record = self.record(job_id)
                    events = index.read_after(after, limit)
                    remaining = deadline - time.monotonic()
                    if answered() or remaining <= 0:
                        break
                    recheck = RAY_RECHECK_S if record.executor == "ray" else self.recheck_s
                    if await change.wait(min(remaining, recheck)):
                        await asyncio.sleep(min(COALESCE_S, max(0.0, remaining)))
        return {
            "id": job_id,
            "events": events,
            "last_seq": index.last_seq,
            "status": record.status,
            "actions": job_actions(record.kind, record.status, self.supervising),
            "more": bool(events) and events[-1]["seq"] < index.last_seq,
        }

    def _status_changed(self, job_id: str) -> None:
        """The registry changed a job's status (any thread): its long polls answer now."""
        self.watcher.notify(self.workspace.jobs / job_id)

    # ------------------------------------------------------------------ stop, resume

    def stop(self, job_id: str) -> dict[str, Any]:
        """Ask a job to stop: queued jobs stop at once, running ones finish their batch first."""
        self._refuse_unless_supervising()
        with self._lock:
            self._stop(job_id)
        self._wake()
        return self.get(job_id)

    def _stop(self, job_id: str) -> None:
        record = self.record(job_id)
        if record.status == "queued":
            if record.executor == "ray" and self.ray is not None:
                write_atomic(self.workspace.jobs / job_id / "stop", str(time.time()))
                self.ray.cancel(record)
            if self.registry.finish(job_id, "stopped", exit_reason="stopped before it started"):
                self._append(job_id, "status", status="stopped")
        elif record.status == "running":
            if self.registry.mark_stopping(job_id):
                folder = self.workspace.jobs / job_id
                write_atomic(folder / "stop", str(time.time()))
                self._stop_requested[job_id] = time.monotonic()
                # SIGUSR1 reaches a local runner only (a Ray runner polls the stop file between
                # batches). Before it writes status.json the runner may not handle SIGUSR1 yet
                # (the default action would kill it); it reads the stop file when it starts.
                local = record.executor == "local"
                if local and record.pid and (folder / STATUS_FILE).exists():
                    signal_process(record.pid, signal.SIGUSR1)
                self.log.info("jupyter_yolo: stop requested for %s job %s", record.executor, job_id)
        elif record.status != "stopping":
            raise Conflict(
                f"Job {job_id} has already ended ({record.status}); there is nothing to stop."
            )

    def _escalate_stop(self, record: JobRecord) -> None:
        asked = self._stop_requested.setdefault(record.id, time.monotonic())
        self.local.escalate(record.pid, asked)

    def resume(self, job_id: str) -> dict[str, Any]:
        """Queue a stopped or interrupted training again; it continues from ``last.pt``.

        The request is validated again as if it were new (the dataset may have changed since),
        and the job's data.yaml copy and job.json are written anew from it.
        """
        self._refuse_unless_supervising()
        record = self._resumable(job_id)
        body = {**record.request}
        body.setdefault("executor", record.executor)
        try:  # outside the lock: it may compute a dataset report or probe the hardware
            spec, placement, ray = self._validate(body)
        except InvalidRequest as exc:
            raise Conflict(
                f"Job {job_id} cannot be resumed: its request is no longer valid: {exc.message}"
            ) from None
        with self._lock:
            current = self._resumable(job_id)  # still stopped or interrupted
            if placement.executor != current.executor:
                raise Conflict(f"Job {job_id} ran on {current.executor}; it resumes there.")
            if self.ray is not None and ray is not None:
                self.ray.prepare_resume(current, ray)
            self._requeue(job_id, spec)
        self._wake()
        return self.get(job_id)

    def _resumable(self, job_id: str) -> JobRecord:
        record = self.record(job_id)
        if record.kind != "train":
            raise Conflict(f"Job {job_id} is a {record.kind} job; only training can be resumed.")
        if record.status not in RESUMABLE:
            raise Conflict(
                f"Job {job_id} is {record.status}; only a stopped or interrupted training can "
                f"be resumed."
            )
        return record

    def _requeue(self, job_id: str, spec: ValidatedJob) -> None:
        folder = self.workspace.jobs / job_id
        if spec.dataset_yaml is not None:
            write_atomic(folder / "data.yaml", yaml.safe_dump(spec.dataset_yaml, sort_keys=False))
            spec.params["data"] = str(folder / "data.yaml")
        self._write_job_file(folder, job_id, spec, resume=True)
        (folder / "stop").unlink(missing_ok=True)
        if self.registry.requeue(job_id, RESUMABLE):
            self._append(job_id, "status", status="queued", resume=True)

    # ------------------------------------------------------------------ models

    # ------------------------------------------------------------------ internals

    def _start_queued(self) -> None:
        active = [r for r in self.registry.with_status(*ACTIVE) if r.executor == "local"]
        busy: Counter[str] = Counter(device for r in active for device in r.devices)
        blocked: set[str] = set()
        for record in self.registry.with_status("queued"):
            if record.executor != "local":
                continue  # Ray queues Ray jobs
            devices = record.devices or ["default"]
            if any(d in blocked or busy[d] >= self.max_jobs_per_device for d in devices):
                blocked.update(devices)
                continue
            if not self.registry.claim(record.id):
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
        child, start = self.local.spawn(self.workspace.jobs / record.id)
        self._children[record.id] = child
        self.registry.set_process(record.id, child.pid, start)
        self.log.info("jupyter_yolo: job %s started (pid %s)", record.id, child.pid)
        if self.on_started is not None:
            try:
                self.on_started(record.id, record.kind)
            except Exception:  # a hook must never break supervision
                self.log.exception(
                    "jupyter_yolo: the start-of-job hook of job %s failed", record.id
                )

    def _finalize(self, record: JobRecord, returncode: int | None) -> None:
        """Record the end of a runner process; the runner's own terminal status wins."""
        self._children.pop(record.id, None)
        if returncode == ALREADY_RUNNING_EXIT and self._adopt_live_runner(
            record.id, self._read_status(record.id) or {}
        ):
            return  # that runner found another one at work on the job: follow that one
        stopping = record.status == "stopping"
        self._stop_requested.pop(record.id, None)
        self.local.kill_leftovers(record.id, record.pid)
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
            self._job_ended(record.id, final)  # a killed training's spare worker goes too
        self._wake()

    def _finish_from_status(self, job_id: str, status: dict[str, Any]) -> bool:
        """Record the runner's own terminal status, if it wrote one; return whether it did."""
        if status.get("status") not in TERMINAL:
            return False
        recorded = self.registry.finish(
            job_id,
            status["status"],
            exit_reason=status.get("exit_reason"),
            error=status.get("error"),
            result=status.get("result"),
        )
        if recorded:
            self._job_ended(job_id, status["status"])
        return True

    def _job_ended(self, job_id: str, status: str) -> None:
        """Call the end-of-job hook (prepare a trained model, drop the spare worker)."""
        if self.on_finished is None:
            return
        try:
            self.on_finished(job_id, status, self.registry.require(job_id).kind)
        except Exception:  # a hook must never break supervision
            self.log.exception("jupyter_yolo: the end-of-job hook of job %s failed", job_id)

    def _append(self, job_id: str, event_type: str, **fields: Any) -> None:
        folder = self.workspace.jobs / job_id
        if not folder.is_dir():
            self.log.warning(
                "jupyter_yolo: job %s has no folder; not recording %s", job_id, event_type
            )
            return
        append_event(folder / EVENTS_FILE, event_type, **fields)

    def _read_status(self, job_id: str) -> dict[str, Any] | None:
        try:
            status = json.loads((self.workspace.jobs / job_id / STATUS_FILE).read_text())
        except (OSError, ValueError, RecursionError):
            return None
        return status if isinstance(status, dict) else None

    def _log_tail_lines(self, job_id: str) -> str:
        text = self.log_tail(job_id, 16384)
        return "\n".join(text.splitlines()[-LOG_TAIL_LINES:])


def _queue_order(record: JobRecord) -> tuple[float, float]:
    return (record.queued, record.created)


def _looks_like_id(job_id: str) -> bool:
    return len(job_id) == 12 and all(c in "0123456789abcdef" for c in job_id)
