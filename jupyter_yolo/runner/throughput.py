"""The frame loop of a predict job: batched inference, tracking, results as they come, progress.

Frames from a :mod:`.media` source go through the model ``batch`` at a time
(``model.predict(list_of_frames)``: one batched call, what the backend's batched API makes of
it), or one by one through ``model.track(..., persist=True)`` when the job tracks. Each frame's
entry is appended to ``run/predictions.jsonl`` (flushed as it goes, within a byte budget after
which frames are only counted), kept in ``predictions.json``'s prefix, and its annotated image
goes to the mp4 (:mod:`.video_out`) or beside the results. A ``progress`` event at most once a
second says how far it is. The stop request is checked between batches.

What "throughput mode" is on each backend (ultralytics 8.4): PyTorch runs the batch as one
tensor (the gain is on a GPU, where the default batch is larger). ultralytics' OpenVINO backend
is synchronous only (its ``AsyncInferQueue`` path was removed because it can hang on Intel and
AMD CPUs, ultralytics issue 25923) and ``AutoBackend`` splits a batch for static batch-1
exports (what the export cache makes), so there the batch saves per-call overhead and the
pre/post-processing is vectorised; the ``THROUGHPUT`` hint is not set, because with one
synchronous request at a time it would split the CPU into streams and slow each request.
"""

from __future__ import annotations

import collections
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ..contract.payloads import ImagePrediction
from .media import Frame, FrameSource

PREDICTIONS_LINES = "predictions.jsonl"
MAX_LINES_BYTES = 256 * 2**20
"""JSON text ``predictions.jsonl`` may hold; frames after that are counted, not written."""
PROGRESS_EVERY_S = 1.0
FPS_WINDOW_S = 5.0


class JsonLines:
    """``predictions.jsonl``: one entry per line, flushed per batch, within a byte budget."""

    def __init__(self, path: Path, max_bytes: int = MAX_LINES_BYTES) -> None:
        self.path = path
        self.lines = 0
        self.left_out = 0
        self._bytes = 0
        self._max = max_bytes
        self._file: IO[str] | None = path.open("w", encoding="utf-8")

    def add(self, entry: ImagePrediction) -> None:
        """Append the entry, or count it once the budget is spent."""
        text = json.dumps(entry, allow_nan=False, separators=(",", ":")) + "\n"
        if self._file is None or self.left_out or self._bytes + len(text) > self._max:
            self.left_out += 1
            return
        self._file.write(text)
        self._bytes += len(text)
        self.lines += 1

    def flush(self) -> None:
        """Make what was written readable by others (the server, a person tailing it)."""
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        """Flush and close."""
        if self._file is not None:
            file, self._file = self._file, None
            file.close()


@dataclass
class ProgressMeter:
    """Frames per second over the last seconds, ETA, and when a ``progress`` event is due."""

    emit: Callable[..., Any]
    unit: str
    total: int | None
    source: str
    clock: Callable[[], float] = time.monotonic
    done: int = 0
    started: float = field(default=0.0)
    _window: collections.deque[tuple[float, int]] = field(default_factory=collections.deque)
    _last_emit: float | None = None

    def __post_init__(self) -> None:
        self.started = self.clock()
        self._window.append((self.started, 0))

    def fps(self) -> float | None:
        """Frames per second over the last :data:`FPS_WINDOW_S` seconds (None before any)."""
        now = self.clock()
        while len(self._window) > 1 and now - self._window[0][0] > FPS_WINDOW_S:
            self._window.popleft()
        first_time, first_done = self._window[0]
        elapsed = now - first_time
        if elapsed <= 0 or self.done <= first_done:
            return None
        return round((self.done - first_done) / elapsed, 3)

    def overall_fps(self) -> float | None:
        """Frames per second since the start."""
        elapsed = self.clock() - self.started
        return round(self.done / elapsed, 3) if elapsed > 0 and self.done else None

    def update(self, done: int, *, reconnects: int = 0, final: bool = False) -> None:
        """Record progress; emit a ``progress`` event when a second has passed (or ``final``)."""
        self.done = done
        now = self.clock()
        self._window.append((now, done))
        if not final and self._last_emit is not None and now - self._last_emit < PROGRESS_EVERY_S:
            return
        self._last_emit = now
        fps = self.fps()
        eta = None
        if self.total is not None and fps:
            eta = round(max(0, self.total - done) / fps, 1)
        extra: dict[str, Any] = {"source": self.source}
        if reconnects:
            extra["reconnects"] = reconnects
        self.emit(unit=self.unit, done=done, total=self.total, fps=fps, eta_s=eta, **extra)


def batches(frames: Iterator[Frame], size: int, check: Callable[[], None]) -> Iterator[list[Frame]]:
    """Frames grouped ``size`` at a time (the last group may be shorter); ``check`` per frame."""
    group: list[Frame] = []
    for frame in frames:
        check()
        group.append(frame)
        if len(group) >= size:
            yield group
            group = []
    if group:
        yield group


def track_ids(result: Any) -> list[int | None]:
    """The tracker's id per detection of ``result`` (boxes or rotated boxes), else None."""
    for attribute in ("boxes", "obb"):
        found = getattr(result, attribute, None)
        if found is None or not len(found):
            continue
        ids = getattr(found, "id", None)
        if ids is None:
            return [None] * len(found)
        values = ids.cpu().numpy() if hasattr(ids, "cpu") else ids
        return [int(v) for v in values]
    return []


def infer(model: Any, frames: list[Frame], args: dict[str, Any], tracker: str | None) -> list[Any]:
    """The model's results for ``frames``: one batched predict call, or tracked one by one."""
    if tracker is None:
        return list(model.predict([f.image for f in frames], stream=False, **args))
    results = []
    for frame in frames:
        results.extend(model.track(frame.image, persist=True, tracker=f"{tracker}.yaml", **args))
    return results


@dataclass
class LoopCounts:
    """What the loop saw, for the job's result."""

    frames: int = 0
    per_class: collections.Counter[str] = field(default_factory=collections.Counter)
    tracks: set[int] = field(default_factory=set)


def count_entry(counts: LoopCounts, entry: ImagePrediction) -> None:
    """Add one frame's detections to the counts."""
    counts.frames += 1
    for detection in entry["detections"]:
        counts.per_class[detection["name"]] += 1
        if "track_id" in detection:
            counts.tracks.add(detection["track_id"])


def source_summary(source: FrameSource) -> dict[str, Any]:
    """What the result says about the source."""
    summary: dict[str, Any] = {"source": source.shown, "unit": source.unit}
    if source.video:
        summary["source_fps"] = source.fps
        summary["reconnects"] = source.reconnects
    if source.unreadable:
        summary["unreadable"] = source.unreadable[:20]
        summary["unreadable_count"] = len(source.unreadable)
    return summary


DEFAULT_CPU_BATCH = 4
DEFAULT_GPU_BATCH = 16


@dataclass
class MediaOptions:
    """A predict job's media parameters (taken out of the model's arguments)."""

    batch: int | None = None
    track: bool = False
    tracker: str = "bytetrack"
    save: bool = True
    vid_stride: int = 1
    max_frames: int | None = None
    reconnects: int = 5

    @classmethod
    def take(cls, params: dict[str, Any]) -> MediaOptions:
        """The options in ``params``, removed from it (validated by the server already)."""
        options = cls()
        for name in ("batch", "track", "tracker", "save", "vid_stride", "max_frames", "reconnects"):
            if name in params:
                setattr(options, name, params.pop(name))
        return options


def default_batch(backend: Any, device: Any, track: bool) -> int:
    """Frames per inference call when the job does not say: 1 when tracking, more on a GPU."""
    from .common import is_cpu_device

    if track:
        return 1
    if backend in ("pytorch", "tensorrt", None) and not is_cpu_device(device):
        return DEFAULT_GPU_BATCH
    return DEFAULT_CPU_BATCH


MAX_LANES = 4


def throughput_lanes(backend: Any, device: Any, batch: int, cpus: int) -> int:
    """Parallel OpenVINO infer requests for a job's batches on the CPU (1: none).

    Two on a 2-CPU box (one thread each), one per two CPUs beyond that, at most
    :data:`MAX_LANES`; none for other backends, a GPU, batch 1 (latency mode) or tracking
    (whose batch is 1).
    """
    from .common import is_cpu_device

    if batch < 2 or not str(backend or "").startswith("openvino") or not is_cpu_device(device):
        return 1
    if cpus < 2:
        return 1
    return max(2, min(MAX_LANES, cpus // 2, batch))
