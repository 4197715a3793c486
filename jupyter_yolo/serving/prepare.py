"""A trained model prepared ahead of its first prediction (``YoloApp.prepare_after_training``).

``backend=auto`` exports a model (ONNX, OpenVINO) and measures each backend the first time a
worker starts for it: 27-35 s on a 2-CPU box, paid by the person's first click in the
prediction panel. The server does that work ahead, in the background, once a training job
succeeds:

1. **What.** The prediction panel's default request on the job's weights: ``model=job:<id>:best``,
   ``backend=auto``, the model's own image size, the server's default device; the service turns
   it into the same :class:`~jupyter_yolo.contract.serving.WorkerKey` the click asks for.
2. **When.** It is not a job and takes no job slot: it waits while any job is queued or running
   (the jobs it waited for are listed in ``yielded_to``) and starts once none is. When a job
   starts while it runs, it yields: its process is killed (never paused with SIGSTOP, which
   could leave the export cache's lock held while a predict job on the same weights waits for
   it) and it waits again; the exports it finished stay in the cache, so the next run redoes
   only the rest. While it runs it is at nice 19 in the idle I/O class.
3. **How.** One process at a time, the inference worker's own start with ``--prepare --nice``
   (:mod:`.worker`): load, export into the cache (each export built in a scratch folder and
   renamed into place under its lock, the choice file replaced atomically), measure, store the
   choice, exit. Bounded by ``predict_start_timeout``; on a timeout or at shutdown its whole
   session is killed and the scratch folders it left are removed under their locks, so nothing
   half-written stays. Then the pool starts the warm worker for the key at normal priority
   (:meth:`~.pool.WorkerPool.prewarm`: it reuses the stored choice, loads, warms up), within
   the pool's limits (idle workers evicted least recently used first, as for a request; nothing
   started when every worker is busy).
4. **Queue.** Newest first; at most :data:`MAX_WAITING` wait (an older one is ``dropped``); one
   runs. A key prepared (``done``) or ``failed`` is not prepared again: a failure is logged and
   listed with its message, and requests then go the usual way (the worker measures when it
   starts and says why it cannot).

A click before the preparation is done (:meth:`Preparer.route`): a ``backend=auto`` request for
a key whose preparation is pending (waiting, running, or starting the warm worker) and with no
``auto`` worker ready or starting is answered by a PyTorch worker of the same weights (a
*stand-in*: no export, no measurement), and its answer's ``backend`` says so
truthfully: ``name`` ``pytorch``, ``requested`` ``auto``, ``report.standin`` true with the reason
in ``report.note``. A click that comes in the instant between the runner writing ``succeeded``
and the manager recording it (the hook has not run yet) schedules the preparation itself. A
request that comes while the warm worker starts joins it (it waits for that start, seconds, not
for a measurement). Once the ``auto`` worker is warm, the idle stand-in is stopped. Any other
request (weights never trained here, a server restarted since) goes the usual way: its worker
measures when it starts.

The stand-in's start is mostly importing torch and ultralytics (about 4 CPU-seconds). So when a
training job starts, the pool starts one *spare* worker (:meth:`~.pool.WorkerPool.start_spare`,
``--spare --nice``): at nice 19 it imports the libraries and runs one prediction on an untrained
model while the training runs (it only gets CPU the training leaves), then waits. The stand-in
becomes that spare when no job is queued or running (beside one, a nice-19 process would
hardly get the CPU: the stand-in then starts at normal priority): it only loads the weights and
warms up. The spare is stopped once no preparation is pending (or the training did not succeed,
or its runner died); it never becomes a lasting worker, so its nice 19 never slows the measured
backend's answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path

from ..contract.serving import BackendChoice, PreparationInfo, WorkerKey
from ..errors import YoloError
from ..inference.backends import AUTO
from ..inference.cache import exports_root, stored_choices
from .pool import LOG_FOLDER, PredictCall, WorkerPool
from .process import WorkerGone, WorkerProcess

MAX_WAITING = 3
"""Preparations that may wait; a newer one pushes the oldest waiting out (``dropped``)."""
HISTORY = 16
"""Finished preparations kept for the listing."""
JOBS_POLL_S = 1.0
"""How often a waiting preparation asks whether jobs are still queued or running."""
STANDIN_BACKEND = "pytorch"
PENDING = ("waiting", "running", "warming")


@dataclass(frozen=True)
class PrepareSettings:
    """Whether to prepare, and its bounds (the app's settings)."""

    workspace: Path
    enabled: bool = True
    timeout: float = 300.0
    kill_grace: float = 5.0
    log_max_bytes: int = 1024 * 1024


@dataclass
class _Item:
    call: PredictCall
    info: PreparationInfo


def standin_backend(backend: BackendChoice, note: str) -> BackendChoice:
    """The ``backend`` of a stand-in answer: what ran (PyTorch), what was asked, and why."""
    report = dict(backend.get("report") or {})
    report.update(standin=True, note=note, requested="auto")
    return BackendChoice(name=backend["name"], requested=AUTO, report=report)


class Preparer:
    """Background preparation of trained models for ``backend=auto`` (module docstring)."""

    def __init__(
        self,
        pool: WorkerPool,
        settings: PrepareSettings,
        *,
        call_for: Callable[[str], Awaitable[PredictCall]],
        jobs_active: Callable[[], list[str]],
        training_ending: Callable[[str], bool] = lambda job_id: False,
        loop: Callable[[], asyncio.AbstractEventLoop | None] = lambda: None,
        log: logging.Logger | None = None,
    ) -> None:
        """Prepare with ``pool``'s workers.

        ``call_for(model_ref)``: the panel's default request on it (no images);
        ``jobs_active()``: ids of queued or running jobs; ``training_ending(job_id)``: whether
        a training job's runner wrote ``succeeded`` before the manager recorded it (both
        blocking: run in a thread); ``loop()``: the server's event loop once it runs (the
        job supervisor's), where the end-of-job hook hands its work over.
        """
        self.pool = pool
        self.settings = settings
        self._call_for = call_for
        self._jobs_active = jobs_active
        self._training_ending = training_ending
        self.log = log or logging.getLogger(__name__)
        self._items: dict[WorkerKey, _Item] = {}
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server_loop = loop
        self._runner: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._process: WorkerProcess | None = None
        self._shut = False
        self._yield_to: str | None = None
        """The job a running preparation was stopped for (it then waits again)."""
        self._announced: set[str] = set()
        """Jobs whose end the hook reported, until their preparation is scheduled."""

    # ------------------------------------------------------------------ public

    def attach_loop(self) -> None:
        """Remember the server's event loop (call on it once it runs)."""
        self._loop = asyncio.get_running_loop()

    def preparations(self) -> list[PreparationInfo]:
        """Every preparation known, oldest first (copies)."""
        listed = []
        for item in self._items.values():
            info = item.info.copy()
            if info["state"] == "running" and self._process is not None:
                info["pid"] = self._process.pid
            listed.append(info)
        return listed

    def job_finished(self, job_id: str, status: str, kind: str) -> None:
        """The job manager's end-of-job hook (any thread): prepare a training's ``best.pt``."""
        if not self.settings.enabled or self._shut or kind != "train":
            return
        loop = self._loop or self._server_loop()
        if loop is not None and status != "succeeded":  # nothing to prepare: no spare needed
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._drop_spare_unless_pending)
        if status != "succeeded":
            return
        if loop is None:
            self.log.warning("jupyter_yolo: not preparing job %s: no event loop yet", job_id)
            return
        reason = f"training job {job_id} succeeded"
        self._announced.add(job_id)
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(self._spawn, self._schedule_ref(f"job:{job_id}:best", reason))

    def job_started(self, job_id: str, kind: str) -> None:
        """The job manager's start-of-job hook (any thread).

        A running preparation yields: its process is killed and it waits again (the exports it
        finished are kept in the cache; the next run redoes only the rest). A training starts
        the spare.
        """
        if not self.settings.enabled or self._shut:
            return
        loop = self._loop or self._server_loop()
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._job_started, job_id, kind)

    def _job_started(self, job_id: str, kind: str) -> None:
        process = self._process
        if process is not None:
            self._yield_to = job_id
            process.kill()
        if kind == "train":
            self._spawn(self.pool.start_spare())

    def schedule(self, call: PredictCall, reason: str) -> PreparationInfo | None:
        """Queue a preparation for ``call.key`` (on the loop); None when it is not wanted."""
        if not self.settings.enabled or self._shut or call.key.backend != AUTO:
            return None
        known = self._items.get(call.key)
        if known is not None and known.info["state"] not in ("dropped", "cancelled"):
            return known.info  # waiting, running, done or failed: nothing more to do
        self._items.pop(call.key, None)
        info = PreparationInfo(
            model=call.model_ref,
            key=call.key.label(),
            reason=reason,
            state="waiting",
            message=None,
            pid=None,
            queued_at=time.time(),
            started_at=None,
            finished_at=None,
            yielded_to=[],
            choice=None,
        )
        self._items[call.key] = _Item(replace(call, blobs=[], names=[]), info)
        waiting = [i for i in self._items.values() if i.info["state"] == "waiting"]
        for old in waiting[:-MAX_WAITING]:
            self._end(old, "dropped", "a newer preparation came first")
        self._trim()
        self.log.info("jupyter_yolo: preparing %s for backend=auto (%s)", call.model_ref, reason)
        self._ensure_runner()
        self._wake.set()
        return info

    async def route(self, call: PredictCall) -> tuple[PredictCall, str | None]:
        """The call to run for a request, and the stand-in note when PyTorch answers for auto."""
        if (
            not self.settings.enabled
            or self._shut
            or call.key.backend != AUTO
            or call.model_path.suffix != ".pt"
            or self.pool.has_worker(call.key)
        ):
            return call, None
        item = self._items.get(call.key)
        state = item.info["state"] if item is not None else None
        if state is None:  # the end-of-job hook may not have run yet: this job just ended
            job_id = self._job_of(call.model_path)
            if (
                job_id is not None
                and (
                    job_id in self._announced
                    or await asyncio.to_thread(self._training_ending, job_id)
                )
                and not await asyncio.to_thread(self._measured, call.key)
            ):
                self.schedule(call, f"training job {job_id} succeeded")
                item = self._items.get(call.key)
                state = item.info["state"] if item is not None else None
        if state not in PENDING:
            return call, None  # never prepared here, prepared, or failed: the usual way
        doing = {
            "waiting": "waits for the running or queued jobs to end",
            "running": "is exporting and measuring the backends",
            "warming": "is starting the chosen backend",
        }[str(state)]
        note = (
            f"the background preparation of this model {doing}; the measured backend answers "
            f"once it is ready"
        )
        key = replace(call.key, backend=STANDIN_BACKEND)
        # the spare runs at nice 19: beside a running job it would hardly get the CPU, so the
        # stand-in then starts as a worker of normal priority
        idle = not await asyncio.to_thread(self._jobs_active)
        return replace(call, key=key, spare_ok=idle), note

    async def shutdown(self) -> None:
        """Cancel everything: the running preparation's process is killed, scratch removed."""
        self._shut = True
        process = self._process
        if process is not None:
            process.kill()
        tasks = [t for t in (self._runner, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for item in self._items.values():
            if item.info["state"] in PENDING:
                self._end(item, "cancelled", "the server shut down")

    # ------------------------------------------------------------------ the queue

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _schedule_ref(self, model_ref: str, reason: str) -> None:
        try:
            call = await self._call_for(model_ref)
        except YoloError as exc:
            self.log.warning("jupyter_yolo: not preparing %s: %s", model_ref, exc)
            return
        finally:
            self._announced.discard(model_ref.split(":")[1])
        self.schedule(call, reason)

    def _ensure_runner(self) -> None:
        if not self._shut and (self._runner is None or self._runner.done()):
            self._runner = asyncio.ensure_future(self._run_forever())

    async def _run_forever(self) -> None:
        while not self._shut:
            waiting = [i for i in self._items.values() if i.info["state"] == "waiting"]
            if not waiting:
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                active = await asyncio.to_thread(self._jobs_active)
            except Exception:  # the registry could not be read: try again shortly
                self.log.exception("jupyter_yolo: could not list the jobs before preparing")
                active = ["?"]
            if active:  # jobs first: wait, and say for which
                for item in waiting:
                    item.info["yielded_to"] = sorted({*item.info["yielded_to"], *active} - {"?"})
                await asyncio.sleep(JOBS_POLL_S)
                continue
            item = max(waiting, key=lambda i: i.info["queued_at"])  # newest first
            try:
                await self._prepare(item)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # never let one preparation stop the queue
                self.log.exception("jupyter_yolo: preparing %s failed", item.info["model"])
                self._end(item, "failed", f"unexpected error: {exc}")
            self._drop_spare_unless_pending()

    def _drop_spare_unless_pending(self) -> None:
        """Stop the spare once nothing it could stand in for is pending (a training restarts it)."""
        if not any(i.info["state"] in PENDING for i in self._items.values()):
            self.pool.drop_spare()

    async def _prepare(self, item: _Item) -> None:
        call = item.call
        item.info["state"] = "running"
        item.info["started_at"] = time.time()
        self._yield_to = None
        command = [*self.pool.worker_command(call.key, call.model_path), "--prepare", "--nice"]
        log_path = self.settings.workspace / LOG_FOLDER / f"prepare-{call.key.digest[:16]}.log"
        process = WorkerProcess(command, log_path, self.settings.log_max_bytes)
        self._process = process
        failure: str | None = None
        ready: dict[str, object] = {}
        finished = False
        try:
            ready = await process.start(self.settings.timeout)
            finished = True
        except WorkerGone as exc:
            failure = f"{exc.message}. Last lines of its log:\n{process.stderr_tail()}"
        finally:
            item.info["pid"] = process.pid
            if not finished:  # failed, timed out or cancelled: its whole session goes
                process.kill()
            with contextlib.suppress(Exception):  # it exits by itself after `ready`
                await asyncio.shield(process.close(self.settings.kill_grace))
            self._process = None
            if not finished:
                await asyncio.to_thread(self._tidy, call.key)
        if failure is not None and self._yield_to is not None:  # a job started: wait again
            self.log.info(
                "jupyter_yolo: preparing %s yields to job %s", item.info["model"], self._yield_to
            )
            item.info["yielded_to"] = sorted({*item.info["yielded_to"], self._yield_to})
            item.info.update(state="waiting", pid=None, started_at=None)
            return
        if failure is not None:
            self.log.warning("jupyter_yolo: preparing %s failed: %s", item.info["model"], failure)
            self._end(item, "failed", failure)
            return
        backend = ready.get("backend")
        item.info["choice"] = str(backend.get("name")) if isinstance(backend, dict) else None
        item.info["state"] = "warming"
        try:
            note = await self.pool.prewarm(call)
        except YoloError as exc:
            note = f"measured, but the warm worker did not start: {exc}"
        if note is None:
            stand_in = replace(call.key, backend=STANDIN_BACKEND)
            self.pool.stop_idle(stand_in, "the measured backend for 'auto' is warm")
        self.log.info(
            "jupyter_yolo: prepared %s: auto chose %s%s",
            item.info["model"],
            item.info["choice"],
            f" ({note})" if note else ", its worker is warm",
        )
        self._end(item, "done", note)

    def _end(self, item: _Item, state: str, message: str | None) -> None:
        item.info["state"] = state
        item.info["message"] = message
        item.info["finished_at"] = time.time()

    def _trim(self) -> None:
        ended = [k for k, i in self._items.items() if i.info["state"] not in PENDING]
        for key in ended[: max(0, len(ended) - HISTORY)]:
            del self._items[key]

    # ------------------------------------------------------------------ the export cache

    def _job_of(self, path: Path) -> str | None:
        """The job whose ``best.pt`` ``path`` is (``jobs/<id>/run/weights/best.pt``), if any."""
        weights = path.parent
        if path.name != "best.pt" or weights.name != "weights" or weights.parent.name != "run":
            return None
        folder = weights.parent.parent
        jobs = (self.settings.workspace / "jobs").resolve()
        return folder.name if folder.parent.resolve() == jobs else None

    def _measured(self, key: WorkerKey) -> bool:
        """Whether a measured ``auto`` choice for the key's weights and device is stored."""
        devices = {key.device, f"cuda:{key.device}"}
        for choice in stored_choices(exports_root(self.settings.workspace), key.digest[:16]):
            if str(choice.get("device")) in devices and key.imgsz in (0, choice.get("imgsz")):
                return True
        return False

    def _tidy(self, key: WorkerKey) -> None:
        """Remove scratch folders a killed export left (under their locks: never another's)."""
        folder = exports_root(self.settings.workspace) / key.digest[:16]
        for scratch in folder.glob(".tmp-*"):
            export_key = scratch.name[len(".tmp-") :].rsplit("-", 1)[0]
            lock = folder / f".{export_key}.lock"
            try:
                with lock.open("a+") as handle:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    try:
                        shutil.rmtree(scratch, ignore_errors=True)
                    finally:
                        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            except OSError:  # BlockingIOError: an export is at work there
                continue
