"""Warm inference workers for ``POST /yolo/predict``: one per :class:`WorkerKey`, reused, evicted.

A worker is a process (:mod:`jupyter_yolo.serving.process`), never the server: it holds one
model on one backend at one image size on one device. The pool

* starts a worker on the first request for its key (the request waits, and its timing says
  ``worker_start_ms``) and reuses it while it is warm;
* lets one request at a time use a worker, the others wait in FIFO order (``asyncio.Lock``
  wakes waiters in order) in a queue of at most ``queue_size``; one more is refused with
  :class:`~jupyter_yolo.errors.TooManyRequests` (429, ``Retry-After``);
* stops workers idle longer than ``idle_timeout`` (a periodic task), and the least recently used
  idle ones when starting another would exceed ``max_workers`` or the workers' summed resident
  memory is over ``memory_limit`` (a busy worker is never evicted; when all are busy and no more
  may start, the request gets 503 with ``Retry-After``);
* kills a worker that dies mid-request (end of its output, a broken frame) or takes longer than
  ``timeout`` on one request: that request gets
  :class:`~jupyter_yolo.errors.WorkerUnavailable` (503, ``Retry-After``) saying so, and the next
  request starts a fresh worker. Requests queued behind it move to the fresh worker.

A worker that cannot start: when it says why (its ``failed`` message) and gives a 4xx
``status``, the model itself is unusable (not loadable, wrong format): the request gets that
status with the worker's message, since retrying cannot help. Without a status, or when it exits
without a word or overruns ``start_timeout``, the request gets 503 with the worker's last stderr
lines. Requests queued behind a failed start get the same answer (no start storm).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..contract.serving import (
    PredictResponse,
    WorkerInfo,
    WorkerKey,
)
from ..errors import TooManyRequests, WorkerUnavailable, YoloError
from .entry import PoolEntry, build_response, file_label
from .process import WorkerGone, WorkerProcess
from .spare import LOG_NAME as SPARE_LOG
from .spare import Spare, spare_command

LOG_FOLDER = ".predict-workers"
WORKER_MODULE = "jupyter_yolo.serving.worker"


class WorkerRefused(YoloError):
    """The worker could not use the model (its ``failed`` or ``error`` message, its status)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class PoolSettings:
    """The pool's limits (the app's ``predict_*`` traits) and how to start a worker."""

    workspace: Path
    python: str = sys.executable
    cpus: int = 1
    max_workers: int = 2
    idle_timeout: float = 600.0
    memory_limit: int = 4 * 1024**3
    queue_size: int = 32
    timeout: float = 120.0
    start_timeout: float = 300.0
    kill_grace: float = 5.0
    log_max_bytes: int = 1024 * 1024
    max_pixels: int = 40_000_000


@dataclass
class PredictCall:
    """One request, checked and ready for a worker."""

    key: WorkerKey
    model_path: Path
    model_ref: str
    """The reference as the request gave it."""
    blobs: list[bytes]
    names: list[str]
    conf: float
    iou: float
    classes: list[int] | None
    arrived: float = field(default_factory=time.monotonic)
    """``time.monotonic()`` when the request reached the server."""
    spare_ok: bool = False
    """A new worker for it may be the spare (a stand-in while its model is prepared)."""


class WorkerPool:
    """Warm inference workers keyed by :class:`WorkerKey` (see the module docstring)."""

    def __init__(self, settings: PoolSettings, log: logging.Logger | None = None) -> None:
        self.settings = settings
        self.log = log or logging.getLogger(__name__)
        self._workers: dict[WorkerKey, PoolEntry] = {}
        self._ids = itertools.count(1)
        self._reaper: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()
        """Closes of evicted workers (each bounded by ``kill_grace``)."""
        self._watchers: set[asyncio.Task[None]] = set()
        """One per started worker, waiting for its exit (cancelled at shutdown)."""
        self._shut = False
        self.spare = Spare(
            spare_command(
                settings.python,
                WORKER_MODULE,
                workspace=settings.workspace,
                cpus=settings.cpus,
                max_pixels=settings.max_pixels,
            ),
            settings.workspace / LOG_FOLDER / SPARE_LOG,
            log_max_bytes=settings.log_max_bytes,
            start_timeout=settings.start_timeout,
            kill_grace=settings.kill_grace,
            log=self.log,
        )
        """Libraries imported ahead for the stand-in after a training (:mod:`.spare`)."""

    # ------------------------------------------------------------------ public

    def workers(self) -> list[WorkerInfo]:
        """Every worker the pool holds, oldest first."""
        return [w.info() for w in self._workers.values()]

    def has_worker(self, key: WorkerKey) -> bool:
        """Whether a worker for ``key`` is ready or starting (a request would join it)."""
        worker = self._workers.get(key)
        return worker is not None and not worker.gone and worker.failure is None

    async def prewarm(self, call: PredictCall) -> str | None:
        """Start the worker for ``call.key`` ahead of any request (its ``blobs`` are unused).

        Within the pool's limits, like a request: the least recently used idle workers make
        room; when every worker is busy nothing starts. Returns None when the worker is ready
        (or already was), else why it was not started; a failed start raises like a request.
        Requests that come meanwhile wait for this start in the worker's queue.
        """
        self._ensure_reaper()
        if self.has_worker(call.key):
            return None
        if self._shut:
            return "the server is shutting down"
        self._make_room(extra=1)
        if len(self._workers) >= self.settings.max_workers:
            return (
                f"all {len(self._workers)} inference workers are busy (max_predict_workers = "
                f"{self.settings.max_workers}); the first request starts it"
            )
        worker = self._worker_for(call)
        async with worker.lock:
            if worker.failure is not None:
                raise worker.failure
            if worker.ready is None and not worker.gone:
                await self._start(worker)
        return None

    def stop_idle(self, key: WorkerKey, why: str) -> bool:
        """Stop the worker for ``key`` if it is idle; whether it was."""
        worker = self._workers.get(key)
        if worker is None or worker.gone or not worker.idle:
            return False
        self._evict(worker, why)
        return True

    async def predict(self, call: PredictCall) -> PredictResponse:
        """Run ``call`` on its warm worker (starting one if needed) and build the answer."""
        self._ensure_reaper()
        entered = time.monotonic()
        for attempt in range(3):
            worker = self._worker_for(call)
            in_use = worker.lock.locked() or worker.waiting > 0
            if in_use and worker.waiting >= self.settings.queue_size:
                raise TooManyRequests(
                    f"{worker.waiting} requests already wait for the inference worker of this "
                    f"model (predict_queue_size = {self.settings.queue_size}); retry shortly."
                )
            worker.waiting += 1
            try:
                await worker.lock.acquire()
            finally:
                worker.waiting -= 1
            try:
                if worker.failure is not None:
                    raise worker.failure
                if worker.gone:  # it crashed or was stopped while this request waited
                    if attempt < 2:
                        continue  # go to a fresh one
                    raise WorkerUnavailable(
                        "The inference workers for this model keep stopping; retry later."
                    )
                start_ms = await self._start(worker) if worker.ready is None else None
                queue_ms = (time.monotonic() - entered) * 1000 - (start_ms or 0.0)
                return await self._run(worker, call, start_ms, queue_ms)
            finally:
                worker.lock.release()
        raise WorkerUnavailable("The inference workers for this model keep failing; retry later.")

    async def start_spare(self) -> None:
        """Start the spare worker (when a training starts), unless the pool is shut."""
        if not self._shut:
            await self.spare.start()

    def drop_spare(self) -> None:
        """Stop the spare worker, if any."""
        self.spare.drop()

    async def stop_all(self) -> int:
        """Stop every worker (in flight requests get 503); how many there were."""
        workers = list(self._workers.values())
        self._workers.clear()
        for worker in workers:
            worker.gone = True
        await asyncio.gather(*(w.process.close(self.settings.kill_grace) for w in workers))
        return len(workers)

    async def shutdown(self) -> None:
        """Stop the reaper and close every worker (stdin, then SIGTERM, then SIGKILL)."""
        self._shut = True
        await self.spare.close()
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        await self.stop_all()
        for watcher in list(self._watchers):  # its worker is closed; never wait on its exit
            watcher.cancel()
        await asyncio.gather(*self._watchers, *self._closing, return_exceptions=True)

    # ------------------------------------------------------------------ workers

    def _worker_for(self, call: PredictCall) -> PoolEntry:
        """The key's live worker, or a new (not yet started) one after making room.

        Synchronous from lookup to insertion, so concurrent requests share one new worker.
        """
        worker = self._workers.get(call.key)
        if worker is not None and not worker.gone:
            return worker
        if self._shut:
            raise WorkerUnavailable("The server is shutting down.")
        self._make_room(extra=1)
        if len(self._workers) >= self.settings.max_workers:
            raise WorkerUnavailable(
                f"All {len(self._workers)} inference workers are busy (max_predict_workers = "
                f"{self.settings.max_workers}); retry shortly."
            )
        key = call.key
        log_path = self.settings.workspace / LOG_FOLDER / f"{file_label(key)}.log"
        command = self.worker_command(key, call.model_path)
        spare = self.spare.take(command[3:]) if call.spare_ok else None  # no start, no imports
        process = spare or WorkerProcess(command, log_path, self.settings.log_max_bytes)
        worker = PoolEntry(key, self._relative(call.model_path), process)
        self._workers[key] = worker
        return worker

    def worker_command(self, key: WorkerKey, model_path: Path) -> list[str]:
        """The command line of a worker for ``key`` on ``model_path``."""
        return [
            self.settings.python,
            "-m",
            WORKER_MODULE,
            "--workspace",
            str(self.settings.workspace),
            "--model",
            str(model_path),
            "--backend",
            key.backend,
            "--imgsz",
            str(key.imgsz),
            "--device",
            key.device,
            "--cpus",
            str(self.settings.cpus),
            "--max-pixels",
            str(self.settings.max_pixels),
        ]

    def _relative(self, path: Path) -> str:
        root = self.settings.workspace.resolve()
        resolved = path.resolve()
        return resolved.relative_to(root).as_posix() if resolved.is_relative_to(root) else str(path)

    def _make_room(self, extra: int) -> None:
        """Evict least recently used idle workers over the count or memory budget."""
        idle = sorted((w for w in self._workers.values() if w.idle), key=lambda w: w.last_used)
        while idle and len(self._workers) + extra > self.settings.max_workers:
            self._evict(idle.pop(0), "to make room for another model (max_predict_workers)")
        if idle and self._rss_total() > self.settings.memory_limit:
            while idle and self._rss_total() > self.settings.memory_limit:
                self._evict(idle.pop(0), "over predict_memory_limit")

    def _rss_total(self) -> int:
        """The workers' summed resident memory as last measured (after start, by the reaper)."""
        return sum(w.process.rss or 0 for w in self._workers.values() if w.process.alive)

    def _evict(self, worker: PoolEntry, why: str) -> None:
        self.log.info("jupyter_yolo: stopping inference worker %s: %s", worker.key.label(), why)
        self._drop(worker)
        task = asyncio.ensure_future(worker.process.close(self.settings.kill_grace))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _drop(self, worker: PoolEntry) -> None:
        worker.gone = True
        if self._workers.get(worker.key) is worker:
            del self._workers[worker.key]

    async def _start(self, worker: PoolEntry) -> float:
        """Start the worker's process; on failure remember why for the requests queued on it."""
        began = time.monotonic()
        try:
            ready = await worker.process.start(self.settings.start_timeout)
        except WorkerGone as exc:
            if worker.gone or self._shut:  # stopped (stop_all, shutdown) while it started
                self._drop(worker)
                with contextlib.suppress(Exception):
                    await worker.process.close(self.settings.kill_grace)
                raise self._stopped_while_starting(worker) from None
            worker.failure = self._start_error(worker, exc)
            self._drop(worker)
            with contextlib.suppress(Exception):
                await worker.process.close(self.settings.kill_grace)
            raise worker.failure from None
        except BaseException:
            worker.process.kill()
            self._drop(worker)
            raise
        if worker.gone or self._shut:  # stopped while it started: it was nobody's to close
            self._drop(worker)
            await worker.process.close(self.settings.kill_grace)
            raise self._stopped_while_starting(worker)
        worker.ready = ready
        started_ms = (time.monotonic() - began) * 1000
        await worker.process.measure_rss()
        self.log.info(
            "jupyter_yolo: inference worker %s ready (pid %s) in %.0f ms",
            worker.key.label(),
            worker.process.pid,
            started_ms,
        )
        watcher = asyncio.ensure_future(self._watch(worker))
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)
        return started_ms

    def _stopped_while_starting(self, worker: PoolEntry) -> WorkerUnavailable:
        why = "the server is shutting down" if self._shut else "the workers were stopped"
        return WorkerUnavailable(
            f"The inference worker for {worker.model!r} was stopped while it started ({why}); "
            f"retry shortly."
        )

    def _start_error(self, worker: PoolEntry, exc: WorkerGone) -> YoloError:
        if exc.status is not None and 400 <= exc.status < 500:
            return WorkerRefused(f"Model {worker.model!r}: {exc.message}.", exc.status)
        log = self._relative(worker.process.log_path)
        return WorkerUnavailable(
            f"Model {worker.model!r}: {exc.message}. Last lines of its log ({log}):\n"
            f"{worker.process.stderr_tail()}"
        )

    async def _watch(self, worker: PoolEntry) -> None:
        """Forget a worker whose process exits while idle, so the next request starts anew."""
        process = worker.process.process
        if process is None:
            return
        await process.wait()
        if not worker.gone:
            self.log.warning(
                "jupyter_yolo: inference worker %s (pid %s) exited with code %s",
                worker.key.label(),
                process.pid,
                process.returncode,
            )
            self._drop(worker)

    async def _run(
        self, worker: PoolEntry, call: PredictCall, start_ms: float | None, queue_ms: float
    ) -> PredictResponse:
        """One exchange with the worker; ``queue_ms``: the wait for it, its start not counted."""
        request_id = next(self._ids)
        header = {
            "op": "predict",
            "id": request_id,
            "conf": call.conf,
            "iou": call.iou,
            "classes": call.classes,
            "names": call.names,
        }
        worker.busy = True
        try:
            answer = await worker.process.exchange(header, call.blobs, self.settings.timeout)
        except WorkerGone as exc:
            self._drop(worker)
            what = "hung" if exc.hung else "crashed"
            raise WorkerUnavailable(
                f"The inference worker for {worker.model!r} {what} on this request "
                f"({exc.message}) and was stopped; the next request starts a fresh one. Last "
                f"lines of its log:\n{worker.process.stderr_tail()}"
            ) from None
        finally:
            worker.busy = False
            worker.last_used = time.monotonic()
        worker.requests += 1
        return self._response(
            worker, call, request_id=request_id, answer=answer, queue_ms=queue_ms, start_ms=start_ms
        )

    def _response(
        self,
        worker: PoolEntry,
        call: PredictCall,
        *,
        request_id: int,
        answer: dict[str, Any],
        queue_ms: float,
        start_ms: float | None,
    ) -> PredictResponse:
        op = answer.get("op")
        if op == "error" and answer.get("id") == request_id:
            status = answer.get("status")
            code = status if isinstance(status, int) and 400 <= status < 600 else 500
            raise WorkerRefused(
                str(answer.get("message") or "the worker refused the request"), code
            )
        images = answer.get("images")
        if op != "result" or answer.get("id") != request_id or not isinstance(images, list):
            worker.process.kill()
            self._drop(worker)
            raise WorkerUnavailable(
                f"The inference worker for {worker.model!r} answered out of step ({op!r}) and "
                f"was stopped; the next request starts a fresh one."
            )
        timing = answer.get("timing")
        return build_response(
            worker,
            model_ref=call.model_ref,
            arrived=call.arrived,
            images=images,
            worker_timing=timing if isinstance(timing, dict) else {},
            queue_ms=queue_ms,
            start_ms=start_ms,
        )

    # ------------------------------------------------------------------ eviction

    def _ensure_reaper(self) -> None:
        if self._shut:  # never outlive shutdown()
            return
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.ensure_future(self._reap_forever())

    async def _reap_forever(self) -> None:
        interval = max(0.1, min(self.settings.idle_timeout / 4, 30.0))
        while True:
            await asyncio.sleep(interval)
            try:
                for worker in list(self._workers.values()):
                    if worker.ready is not None and not worker.gone:
                        await worker.process.measure_rss()
                self.reap()
            except Exception:  # the reaper must outlive any one bad worker
                self.log.exception("jupyter_yolo: inference worker eviction failed")

    def reap(self) -> None:
        """Evict workers idle past ``idle_timeout`` and idle ones over the memory budget."""
        now = time.monotonic()
        for worker in list(self._workers.values()):
            if worker.idle and now - worker.last_used > self.settings.idle_timeout:
                self._evict(worker, f"idle for over {self.settings.idle_timeout:g} s")
        self._make_room(extra=0)
