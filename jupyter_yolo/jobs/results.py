"""A job's results as far as they exist now (``GET /yolo/jobs/{id}/results``).

Merges three sources of the job folder: the registry row (kind, status, times, parameters), the
event file (``epoch`` events give the best and last epoch and the metric history, ``usage``
events the system usage over the run) and the runner's :data:`RESULTS_FILE` (its final
validation; ``final`` stays None until it exists). Everything here is blocking file work: call it
in a thread. No tornado.
"""

from __future__ import annotations

import json
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from ..contract.files import EVENTS_FILE
from ..contract.results import (
    RESULTS_FILE,
    USAGE_EVENT,
    EpochSummary,
    GpuUsage,
    Number,
    RunResults,
    UsageFields,
    ValidatorResults,
)
from ..contract.tasks import headline, higher_is_better
from ..contract.tune import TUNE_KIND
from .media_source import mask_url
from .tune_results import tune_table

if TYPE_CHECKING:
    from .manager import JobManager
    from .registry import JobRecord

MAX_USAGE_SAMPLES = 500
"""Usage samples answered at most (a long run's are decimated evenly, the last one kept)."""
MAX_SCANS = 32
"""Event files whose reading position is kept (the most recently asked for)."""
READ_CHUNK = 4 * 1024 * 1024
MAX_RESULTS_BYTES = 32 * 1024 * 1024
"""A results file larger than this is not read (the runner writes a few hundred KiB)."""

_EPOCH_MARK = b'"type": "epoch"'
_USAGE_MARK = b'"type": "' + USAGE_EVENT.encode() + b'"'


def _finite(value: Any) -> float | None:
    """A finite float, or None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    result = float(value)
    return result if math.isfinite(result) else None


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _event(line: bytes) -> dict[str, Any] | None:
    """An ``epoch`` or ``usage`` event line parsed; None for any other line (not parsed)."""
    if _EPOCH_MARK not in line and _USAGE_MARK not in line:
        return None
    try:
        event = json.loads(line)
    except (ValueError, RecursionError):
        return None  # a damaged line
    if isinstance(event, dict) and event.get("type") in ("epoch", USAGE_EVENT):
        return event
    return None


@dataclass
class EventScan:
    """What a job's results need from its event file, read incrementally.

    Each :meth:`refresh` reads only the bytes appended since the last one (complete lines), so
    a results view polling a long run does not re-read its whole event file.
    """

    inode: int | None = None
    offset: int = 0
    history: list[EpochSummary] = field(default_factory=list)
    usage: list[UsageFields] = field(default_factory=list)
    planned: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _add(self, event: dict[str, Any]) -> None:
        if event["type"] != "epoch":
            self.usage.append(usage_sample(event))
            if len(self.usage) > 4 * MAX_USAGE_SAMPLES:  # a long run: memory stays bounded
                self.usage = decimate(self.usage, 2 * MAX_USAGE_SAMPLES)
            return
        summary = epoch_summary(event)
        if summary is None:
            return
        if self.history and summary["epoch"] <= self.history[-1]["epoch"]:
            # a resumed run redoes the interrupted epoch: the later event replaces it
            self.history = [h for h in self.history if h["epoch"] < summary["epoch"]]
        self.history.append(summary)
        self.planned = _int_or_none(event.get("epochs")) or self.planned

    def refresh(self, path: Path) -> None:
        """Read the lines appended to ``path`` since the last call (from the start if replaced)."""
        try:
            stat = path.stat()
        except FileNotFoundError:
            return
        if self.inode is not None and (stat.st_ino != self.inode or stat.st_size < self.offset):
            self.offset, self.history, self.usage, self.planned = 0, [], [], 0
        self.inode = stat.st_ino
        if stat.st_size <= self.offset:
            return
        with path.open("rb") as handle:
            handle.seek(self.offset)
            pending = b""
            while chunk := handle.read(min(READ_CHUNK, stat.st_size - self.offset - len(pending))):
                data = pending + chunk
                end = data.rfind(b"\n")
                if end < 0:
                    pending = data
                    continue
                for line in data[:end].split(b"\n"):
                    event = _event(line)
                    if event is not None:
                        self._add(event)
                self.offset += end + 1
                pending = data[end + 1 :]


_scans: OrderedDict[Path, EventScan] = OrderedDict()
_scans_lock = threading.Lock()


def scan_events(path: Path) -> tuple[list[EpochSummary], list[UsageFields], int]:
    """(epoch history, usage samples, planned epochs) of an event file, as of now."""
    with _scans_lock:
        scan = _scans.pop(path, None) or EventScan()
        _scans[path] = scan  # most recently used last
        while len(_scans) > MAX_SCANS:
            _scans.popitem(last=False)
    with scan.lock:
        scan.refresh(path)
        return list(scan.history), list(scan.usage), scan.planned


def epoch_summary(event: dict[str, Any]) -> EpochSummary | None:
    """The headline figures of one ``epoch`` event (None when it has no epoch number)."""
    epoch = _int_or_none(event.get("epoch"))
    if epoch is None:
        return None
    return {
        "epoch": epoch,
        "metrics": _numbers(event.get("metrics")) or {},
        "fitness": _finite(event.get("fitness")),
        "time": _finite(event.get("time")) or 0.0,
        "loss": _numbers(event.get("loss")) or {},
        "val_loss": _numbers(event.get("val_loss")),
    }


def _numbers(raw: Any) -> dict[str, Number] | None:
    """A ``{name: number}`` of an event (non-finite values None), or None when it is not one."""
    if not isinstance(raw, dict):
        return None
    return {str(k): _finite(v) for k, v in raw.items() if isinstance(k, str)}


def usage_sample(event: dict[str, Any]) -> UsageFields:
    """The usage fields of one ``usage`` event (anything malformed becomes None)."""
    gpus: list[GpuUsage] = []
    raw = event.get("gpus")
    for gpu in raw if isinstance(raw, list) else []:
        if not isinstance(gpu, dict):
            continue
        gpus.append(
            {
                "index": _int_or_none(gpu.get("index")) or 0,
                "name": str(gpu.get("name") or ""),
                "util_percent": _finite(gpu.get("util_percent")),
                "memory_used_bytes": _int_or_none(gpu.get("memory_used_bytes")),
                "memory_total_bytes": _int_or_none(gpu.get("memory_total_bytes")),
            }
        )
    sample: UsageFields = {
        "cpu_percent": _finite(event.get("cpu_percent")),
        "memory_bytes": _int_or_none(event.get("memory_bytes")),
        "memory_limit_bytes": _int_or_none(event.get("memory_limit_bytes")),
        "gpus": gpus,
    }
    when = _finite(event.get("time"))
    if when is not None:
        sample["time"] = when  # the sample's moment: the x axis of a usage chart
    return sample


def decimate(items: list[Any], limit: int = MAX_USAGE_SAMPLES) -> list[Any]:
    """At most ``limit`` items, evenly spaced, always with the first and the last."""
    if len(items) <= limit:
        return items
    if limit < 2:
        return items[-limit:] if limit > 0 else []
    step = (len(items) - 1) / (limit - 1)
    return [items[round(i * step)] for i in range(limit)]


def best_epoch(history: list[EpochSummary], task: str) -> EpochSummary | None:
    """The epoch ultralytics keeps as ``best.pt``: highest fitness (else the headline metric)."""
    if not history:
        return None
    if all(item["fitness"] is not None for item in history):
        return max(history, key=lambda item: (item["fitness"] or 0.0, -item["epoch"]))
    key = headline(task)
    scored = [item for item in history if item["metrics"].get(key) is not None]
    if not scored:
        return None
    sign = 1.0 if higher_is_better(key) else -1.0
    return max(scored, key=lambda item: (sign * (item["metrics"][key] or 0.0), -item["epoch"]))


def read_validator_results(folder: Path) -> ValidatorResults | None:
    """The runner's :data:`RESULTS_FILE` in ``folder``, or None when absent or unreadable."""
    path = folder / RESULTS_FILE
    try:
        if path.stat().st_size > MAX_RESULTS_BYTES:
            return None
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None

    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    try:
        data = json.loads(text, parse_constant=refuse)
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("names"), list):
        return None
    return cast(ValidatorResults, data)


def shown_params(params: dict[str, Any], workspace: Path) -> dict[str, object]:
    """A job's parameters as the results show them: no credentials, no server paths.

    A stream URL's credentials are masked (as job descriptions mask the request), and absolute
    paths inside the workspace become workspace-relative.
    """
    root = str(workspace).rstrip("/") + "/"
    shown: dict[str, object] = dict(params)
    for key, value in params.items():
        if isinstance(value, str) and key == "source":
            shown[key] = mask_url(value)
        elif isinstance(value, str) and value.startswith(root):
            shown[key] = value[len(root) :]
    return shown


def build_results(record: JobRecord, folder: Path, task: str, workspace: Path) -> RunResults:
    """A job's :class:`RunResults` from its registry row and its folder."""
    history, usage, planned = scan_events(folder / EVENTS_FILE)
    if not planned:
        planned = _int_or_none(record.params.get("epochs")) or 0
    final = read_validator_results(folder)
    results: RunResults = {
        "job_id": record.id,
        "kind": record.kind,
        "status": record.status,
        "task": task,
        "name": record.name,
        "created": record.created,
        "started": record.started,
        "ended": record.ended,
        "params": shown_params(record.params, workspace),
        "headline": headline(task),
        "best": best_epoch(history, task),
        "last": history[-1] if history else None,
        "epochs": planned,
        "final": final,
        "usage": decimate(usage),
        "history": history,
    }
    if record.kind == TUNE_KIND:
        results["tune"] = tune_table(folder, task, record.params, record.result, record.executor)
    return results


def run_results(jobs: JobManager, job_id: str) -> RunResults:
    """The results of job ``job_id`` (a :class:`~jupyter_yolo.errors.NotFound` when unknown)."""
    record = jobs.record(job_id)
    place = jobs.workspace
    return build_results(record, place.jobs / record.id, jobs.task_of(record.id), place.root)
