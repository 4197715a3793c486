"""The training panel's status texts, from a run's folded history (no widgets here)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .common import esc, fmt_seconds, note
from .history import TrainingHistory
from .results_data import console_text
from .tasks import metric_label


def fraction(history: TrainingHistory) -> float:
    """How far the run is (0-1): epochs done plus the share of the running epoch."""
    epochs = history.epoch_total
    if not epochs:
        return 0.0
    done = float(max(history.epochs, default=0))
    batch = history.last_batch
    if batch and int(batch.get("epoch") or 0) > done:
        done = (
            int(batch["epoch"])
            - 1
            + int(batch.get("batch") or 0) / max(int(batch.get("batches") or 1), 1)
        )
    return max(0.0, min(1.0, done / epochs))


def placement(job: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """Where a job runs ("on Ray node 1a2b3c4d", "on Ray") and Ray's reason while it is queued.

    (None, None) for a local job or a server without executors: nothing to say.
    """
    reason = job.get("queue_reason") if job.get("status") == "queued" else None
    if job.get("executor") != "ray":
        return None, None
    ray = job.get("ray") or {}
    node = ray.get("node_id") if isinstance(ray, dict) else None
    where = f"on Ray node {str(node)[:8]}" if node else "on Ray"
    return where, str(reason) if reason else None


def status_html(
    history: TrainingHistory,
    job_id: str | None,
    job_status: str | None,
    head: str | None,
    where: tuple[str | None, str | None] = (None, None),
) -> str:
    """The status line: job, status, where it runs, epoch and batch, speed, ETA, headline metric.

    For a job Ray has not placed yet, Ray's reason comes below it.
    """
    status = job_status or history.status or "unknown"
    parts = [f"job <b>{esc(job_id)}</b>", f"<b>{esc(status)}</b>"]
    if where[0]:
        parts.append(esc(where[0]))
    epochs = history.epoch_total
    batch = history.last_batch
    if batch is not None:
        parts.append(f"epoch {esc(batch.get('epoch'))}/{esc(epochs)}")
        parts.append(f"batch {esc(batch.get('batch'))}/{esc(batch.get('batches'))}")
        speed = batch.get("images_per_s")
        if isinstance(speed, int | float):
            parts.append(f"{speed:.1f} images/s")
    elif history.epochs:
        parts.append(f"epoch {max(history.epochs)}/{esc(epochs)}")
    eta = history.eta_seconds() if status in ("running", "stopping") else None
    if eta is not None:
        parts.append(f"ETA {fmt_seconds(eta)}")
    last = history.last_epoch
    value = history.metric_value(last, head) if last is not None and head else None
    if head and value is not None:
        parts.append(f"<b>{esc(metric_label(head))} {value:.3f}</b>")
    elif last is not None and isinstance(last.get("mAP50"), int | float):
        parts.append(f"mAP50 {last['mAP50']:.3f}")
    if history.phase == "validation" and status == "running":
        parts.append("validating")
    line = " \u00b7 ".join(parts)
    extra = f'<div class="yolo-muted">{esc(history.last_log)}</div>' if history.last_log else ""
    if where[1] and status == "queued":
        extra = f'<div class="yolo-muted">waiting: {esc(where[1])}</div>' + extra
    return f'<div class="yolo-status">{line}</div>{extra}{speed_html(history.speed)}'


def speed_html(speed: Mapping[str, Any] | None) -> str:
    """The job's speed choices folded: the values in the summary, each reason inside."""
    choices = [c for c in (speed or {}).get("choices") or [] if isinstance(c, Mapping)]
    if not choices:
        return ""
    summary = " \u00b7 ".join(f"{esc(c.get('name'))} {esc(c.get('value'))}" for c in choices)
    items = "".join(
        f"<li><b>{esc(c.get('name'))}</b> = {esc(c.get('value'))} "
        f"({esc(c.get('source'))}): {esc(c.get('reason'))}</li>"
        for c in choices
    )
    facts = esc((speed or {}).get("facts"))
    return (
        f'<details class="yolo-speed yolo-muted"><summary>speed choices: {summary}</summary>'
        f"<div>from {facts}</div><ul>{items}</ul></details>"
    )


def warnings_html(history: TrainingHistory) -> str:
    """The run's latest warnings and errors (with their log tail) as notes."""
    boxes = [
        note("warning", f"{console_text(str(w.get('message')))} ({w.get('code')})")
        for w in history.warnings[-5:]
    ]
    for error in history.errors[-2:]:
        tail = error.get("log_tail")
        clean = esc(console_text(str(tail))) if tail else ""  # bars resolved, relative paths
        detail = f"<details><summary>log</summary><pre>{clean}</pre></details>" if tail else ""
        boxes.append(note("error", f"{esc(error.get('message'))}{detail}", raw=True))
    return "".join(boxes)
