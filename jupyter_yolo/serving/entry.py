"""One entry of the worker pool: a worker process, what the pool knows about it, its answers."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Sequence
from typing import Any

from ..contract.payloads import ImagePrediction
from ..contract.serving import (
    BackendChoice,
    PredictResponse,
    PredictTiming,
    WorkerInfo,
    WorkerKey,
)
from ..errors import YoloError
from .process import WorkerProcess


class PoolEntry:
    """A pool entry: the process plus the pool's bookkeeping."""

    def __init__(self, key: WorkerKey, model: str, process: WorkerProcess) -> None:
        self.key = key
        self.model = model
        self.process = process
        self.lock = asyncio.Lock()
        self.waiting = 0
        self.requests = 0
        self.busy = False
        self.ready: dict[str, Any] | None = None
        self.failure: YoloError | None = None
        self.gone = False
        self.last_used = time.monotonic()
        self.started = time.time()

    @property
    def idle(self) -> bool:
        """Started, not in use and nobody waiting for it: it may be evicted."""
        return self.ready is not None and not self.lock.locked() and self.waiting == 0

    def info(self) -> WorkerInfo:
        """What ``GET /yolo/predict/workers`` shows of it."""
        ready = self.ready or {}
        backend = ready.get("backend")
        name = backend.get("name") if isinstance(backend, dict) else None
        state = (
            "stopped" if self.gone else "busy" if self.busy else "ready" if ready else "starting"
        )
        return WorkerInfo(
            key=self.key.label(),
            model=self.model,
            task=str(ready.get("task") or ""),
            backend=str(name or self.key.backend),
            imgsz=int(ready.get("imgsz") or self.key.imgsz),
            device=self.key.device,
            pid=self.process.pid,
            state=state,
            requests=self.requests,
            queued=self.waiting,
            rss_bytes=self.process.rss if self.process.alive else None,
            idle_s=0.0 if self.busy else round(time.monotonic() - self.last_used, 3),
            started=self.started,
        )


def file_label(key: WorkerKey) -> str:
    """The key as a file name (the worker's log file)."""
    text = f"{key.digest[:16]}-{key.backend}-{key.imgsz}-{key.device}"
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)


def build_response(
    worker: PoolEntry,
    *,
    model_ref: str,
    arrived: float,
    images: Sequence[ImagePrediction],
    worker_timing: dict[str, Any],
    queue_ms: float,
    start_ms: float | None,
) -> PredictResponse:
    """The ``PredictResponse`` for a worker's ``result`` (``arrived``: ``time.monotonic()``)."""
    ready = worker.ready or {}
    timing = PredictTiming(
        queue_ms=round(max(queue_ms, 0.0), 3),
        preprocess_ms=float(worker_timing.get("preprocess_ms") or 0.0),
        inference_ms=float(worker_timing.get("inference_ms") or 0.0),
        postprocess_ms=float(worker_timing.get("postprocess_ms") or 0.0),
        total_ms=round((time.monotonic() - arrived) * 1000, 3),
    )
    if start_ms is not None:
        timing["worker_start_ms"] = round(start_ms, 3)
    backend = ready.get("backend")
    choice = (
        BackendChoice(**backend)  # type: ignore[typeddict-item]
        if isinstance(backend, dict)
        else BackendChoice(name=worker.key.backend, requested=worker.key.backend)
    )
    return PredictResponse(
        task=str(ready.get("task") or ""),
        model=model_ref,
        backend=choice,
        imgsz=int(ready.get("imgsz") or worker.key.imgsz),
        images=list(images),
        timing=timing,
        worker=worker.info(),
    )
