"""What the results view shows, computed from a :class:`~jupyter_yolo.contract.results.RunResults`.

No widgets and no plotly here: the header, the per-class table, the confusion matrix's cells,
the usage series and the console text as plain data and HTML, so they can be tested from
constructed payloads. The figures are in :mod:`.results_figures`, the panel in :mod:`.results`.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from collections.abc import Sequence
from typing import Any

from ..client import YoloClient
from ..contract.results import (
    USAGE_INTERVAL_S,
    ClassMetrics,
    ConfusionMatrix,
    Curve,
    EpochSummary,
    GpuUsage,
    RunResults,
    UsageFields,
    ValImage,
)
from ..contract.tasks import metric_label
from .common import Raw, esc, fmt_bytes, fmt_seconds, table

TERMINAL = frozenset({"succeeded", "failed", "stopped", "interrupted"})
"""Statuses after which a job's results do not change any more."""
KIND_NAMES = {"B": "box", "M": "mask", "P": "pose"}
"""A curve's ``kind`` as a person reads it."""
CONSOLE_LINES = 400
"""The console shows at most this many of the log's last lines."""


def fetch_results(client: YoloClient, job_id: str) -> RunResults:
    """``GET /yolo/jobs/{id}/results``."""
    return client.results(job_id)


def number(value: Any, digits: int = 3) -> str:
    """A metric for people (``0.873``); missing or non-finite values show as an em dash."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "\u2014"
    if not math.isfinite(float(value)):
        return "\u2014"
    return f"{float(value):.{digits}f}"


def when(timestamp: Any) -> str:
    """A UNIX time as ``2026-12-01 23:44`` (UTC), or an em dash."""
    if not isinstance(timestamp, int | float) or timestamp <= 0:
        return "\u2014"
    moment = _dt.datetime.fromtimestamp(float(timestamp), tz=_dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def duration(results: RunResults, now: float | None = None) -> float | None:
    """Seconds the run took (until ``now`` while it runs); None before it started."""
    started = results.get("started")
    if not isinstance(started, int | float):
        return None
    ended = results.get("ended")
    if isinstance(ended, int | float):
        return max(0.0, float(ended) - float(started))
    if now is not None and results.get("status") not in TERMINAL:
        return max(0.0, now - float(started))
    return None


def metric_keys(results: RunResults, extra: Sequence[str] = ()) -> list[str]:
    """Every metric key the run reports, the headline first (then the task's order)."""
    keys: dict[str, None] = {}
    head = results.get("headline")
    if head:
        keys[head] = None
    keys.update(dict.fromkeys(extra))
    for summary in (results.get("best"), results.get("last")):
        if summary:
            keys.update(dict.fromkeys(summary.get("metrics") or {}))
    final = results.get("final")
    if final:
        keys.update(dict.fromkeys(final.get("metrics") or {}))
    return [k for k in keys if k.startswith("metrics/")]


def headline_text(results: RunResults, summary: EpochSummary | None) -> str:
    """``mAP50-95 0.712`` of one epoch: the task's headline metric, labelled."""
    head = results.get("headline") or ""
    value = (summary or {}).get("metrics", {}).get(head) if summary else None
    return f"{metric_label(head)} {number(value)}"


def run_title(results: RunResults) -> str:
    """The run's name, or ``train job <id>``."""
    name = results.get("name")
    return str(name) if name else f"{results.get('kind') or 'train'} job {results.get('job_id')}"


def dataset_of(results: RunResults, job: dict[str, Any] | None = None) -> str | None:
    """The dataset a run trained on, as the person named it (a registered name or a data.yaml).

    The job's request has the name; the parameters only the job's own data.yaml copy, shown
    workspace-relative when the request is not at hand.
    """
    if job and job.get("data"):
        return str(job["data"])
    value = (results.get("params") or {}).get("data")
    return _ABSOLUTE.sub(_relative, str(value)) if value else None


def shown_params(results: RunResults, job: dict[str, Any] | None = None) -> dict[str, Any]:
    """The run's parameters for people: the dataset by its name, paths workspace-relative."""
    shown: dict[str, Any] = {}
    for key, value in (results.get("params") or {}).items():
        shown[key] = _ABSOLUTE.sub(_relative, value) if isinstance(value, str) else value
    if "data" in shown:
        shown["data"] = dataset_of(results, job)
    return shown


def header_html(
    results: RunResults,
    task_title: str,
    now: float | None = None,
    job: dict[str, Any] | None = None,
) -> str:
    """The view's header: the run, its state and its headline figures (best, last, final).

    ``job`` (``GET /yolo/jobs/{id}``) names the dataset as the run's request did.
    """
    best, last = results.get("best"), results.get("last")
    epochs = results.get("epochs") or 0
    head = results.get("headline") or ""
    rows: list[list[Any]] = [
        ["Run", run_title(results)],
        ["Task", task_title],
        ["Dataset", dataset_of(results, job)],
        ["Model", shown_params(results).get("model")],
        ["Status", results.get("status")],
        ["Started", when(results.get("started") or results.get("created"))],
        ["Duration", fmt_seconds(duration(results, now))],
    ]
    if best:
        rows.append(
            [
                "Best epoch",
                Raw(
                    f"{esc(best.get('epoch'))} of {esc(epochs)}: "
                    f"<b>{esc(headline_text(results, best))}</b>"
                ),
            ]
        )
    if last:
        rows.append(
            ["Last epoch", f"{last.get('epoch')} of {epochs}: {headline_text(results, last)}"]
        )
    final = results.get("final")
    if final:
        shown = [k for k in metric_keys(results) if k in (final.get("metrics") or {})]
        parts = [
            (f"<b>{esc(metric_label(k))} {esc(number(final['metrics'][k]))}</b>")
            if k == head
            else f"{esc(metric_label(k))} {esc(number(final['metrics'][k]))}"
            for k in shown
        ]
        weights = final.get("weights")
        source = f" ({esc(weights)})" if weights else ""
        rows.append(["Final validation", Raw(", ".join(parts) + source)])
        speed = final.get("speed_ms") or {}
        if speed:
            rows.append(
                [
                    "Speed per image",
                    ", ".join(f"{k} {number(v, 1)} ms" for k, v in speed.items()),
                ]
            )
    elif results.get("status") in TERMINAL:
        rows.append(["Final validation", "none (the run ended before its final validation)"])
    else:
        rows.append(["Final validation", "after the last epoch"])
    title = f'<div class="yolo-h">Results of {esc(run_title(results))}</div>'
    note = (
        f'<div class="yolo-muted">headline metric: {esc(metric_label(head))} ({esc(head)})</div>'
        if head
        else ""
    )
    return title + note + table(rows)


# ----------------------------------------------------------------------------- per class

CLASS_SORTS = ("class", "instances", "headline")
"""Orders of the per-class table: class index, most instances, best headline metric."""


def class_columns(results: RunResults) -> list[str]:
    """The per-class table's metric keys: the headline first, then the others in task order."""
    final = results.get("final")
    seen: dict[str, None] = {}
    for row in final["per_class"] if final else []:
        seen.update(dict.fromkeys(row.get("metrics") or {}))
    order = metric_keys(results, list(seen))
    return [k for k in order if k in seen]


def sorted_classes(results: RunResults, order: str = "class") -> list[ClassMetrics]:
    """The per-class rows in ``order`` (see :data:`CLASS_SORTS`); missing values sort last."""
    final = results.get("final")
    rows = list(final["per_class"] if final else [])
    head = results.get("headline") or ""
    if order == "instances":
        rows.sort(key=lambda r: -(r.get("instances") or -1))
    elif order == "headline":

        def score(row: ClassMetrics) -> float:
            value = (row.get("metrics") or {}).get(head)
            return -float(value) if isinstance(value, int | float) else math.inf

        rows.sort(key=score)
    else:
        rows.sort(key=lambda r: int(r.get("cls") or 0))
    return rows


def class_table_html(results: RunResults, order: str = "class") -> str:
    """The per-class metrics as an HTML table (one row per class; the headline column bold)."""
    final = results.get("final")
    if not final:
        return '<div class="yolo-muted">Per-class metrics come with the final validation.</div>'
    rows = sorted_classes(results, order)
    if not rows:
        return '<div class="yolo-muted">This task reports no per-class metrics.</div>'
    columns = class_columns(results)
    head = results.get("headline") or ""
    header = ["class", "images", "instances", *[metric_label(k) for k in columns]]
    body = []
    for row in rows:
        metrics = row.get("metrics") or {}
        cells: list[Any] = [row.get("name"), row.get("images"), row.get("instances")]
        for key in columns:
            text = number(metrics.get(key))
            cells.append(Raw(f"<b>{esc(text)}</b>") if key == head else text)
        body.append(cells)
    return table(body, header).replace('class="yolo-table"', 'class="yolo-table yolo-classes"', 1)


def image_label(image: ValImage) -> str:
    """A validation image as the picker lists it: its name and what it holds."""
    name = str(image.get("image") or "").rsplit("/", 1)[-1]
    if "truth_class" in image:
        top = (image.get("predicted_classes") or ["\u2014"])[0]
        return f"{name} \u00b7 truth {image.get('truth_class')} \u00b7 predicted {top}"
    truth, predicted = len(image.get("truth") or []), len(image.get("predicted") or [])
    return f"{name} \u00b7 {truth} true \u00b7 {predicted} predicted"


# ----------------------------------------------------------------------------- curves


def curve_kinds(curves: Sequence[Curve]) -> list[str]:
    """The kinds (``B``, ``M``, ``P``) the curves come in, box first."""
    kinds = {str(c.get("kind") or "B") for c in curves}
    return sorted(kinds, key=lambda k: ("BMP".find(k) if k in "BMP" else 9, k))


def kind_label(kind: str) -> str:
    """``box``, ``mask``, ``pose`` (the kind itself otherwise)."""
    return KIND_NAMES.get(kind, kind)


def curves_of_kind(curves: Sequence[Curve], kind: str) -> list[Curve]:
    """The curves of one kind, in the order PR, F1, Precision, Recall (then any other)."""
    order = {"PR": 0, "F1": 1, "Precision": 2, "P": 2, "Recall": 3, "R": 3}
    chosen = [c for c in curves if str(c.get("kind") or "B") == kind]
    return sorted(chosen, key=lambda c: order.get(str(c.get("name")), 9))


# ----------------------------------------------------------------------------- confusion


def confusion_cells(
    matrix: ConfusionMatrix, normalized: bool
) -> tuple[list[str], list[list[float | None]], list[list[str]]]:
    """The heatmap's names, values and cell texts: ``matrix[predicted][true]``.

    Normalized divides each column (a true class) by its total, as ultralytics draws it, so a
    cell is the share of that class's objects predicted as the row's class; the text always
    keeps the count. An empty column stays empty (no invented shares).
    """
    names = [str(n) for n in matrix.get("names") or []]
    rows = [[float(v or 0) for v in row] for row in matrix.get("matrix") or []]
    totals = [sum(row[j] for row in rows if j < len(row)) for j in range(len(names))]
    values: list[list[float | None]] = []
    texts: list[list[str]] = []
    for row in rows:
        line: list[float | None] = []
        text: list[str] = []
        for j, count in enumerate(row):
            if normalized:
                line.append(count / totals[j] if j < len(totals) and totals[j] else None)
            else:
                line.append(count)
            text.append(f"{count:.0f}" if count else "")
        values.append(line)
        texts.append(text)
    return names, values, texts


# ----------------------------------------------------------------------------- usage


def usage_series(usage: Sequence[UsageFields]) -> dict[str, list[float | None]]:
    """Usage over the run as plot series, missing values None (gaps).

    ``t`` (seconds from the first sample), ``cpu`` (%), ``ram_gib`` and, per GPU,
    ``gpu{i} util`` (%) and ``gpu{i} mem_gib``.
    """
    series: dict[str, list[float | None]] = {"t": [], "cpu": [], "ram_gib": []}
    start: float | None = None
    gpus: set[int] = set()
    for sample in usage:
        gpus.update(int(g.get("index") or 0) for g in sample.get("gpus") or [])
    for index in sorted(gpus):
        series[f"gpu{index} util"] = []
        series[f"gpu{index} mem_gib"] = []
    for i, sample in enumerate(usage):
        moment = sample.get("time")  # the usage event's time, when the server gives it
        if isinstance(moment, int | float):
            start = float(moment) if start is None else start
            series["t"].append(float(moment) - start)
        else:
            series["t"].append(i * USAGE_INTERVAL_S)
        series["cpu"].append(_finite(sample.get("cpu_percent")))
        memory = sample.get("memory_bytes")
        series["ram_gib"].append(memory / 2**30 if isinstance(memory, int | float) else None)
        by_index = {int(g.get("index") or 0): g for g in sample.get("gpus") or []}
        for index in sorted(gpus):
            gpu: GpuUsage | None = by_index.get(index)
            used = gpu.get("memory_used_bytes") if gpu else None
            series[f"gpu{index} util"].append(_finite(gpu.get("util_percent")) if gpu else None)
            series[f"gpu{index} mem_gib"].append(
                used / 2**30 if isinstance(used, int | float) else None
            )
    return series


def usage_html(usage: Sequence[UsageFields]) -> str:
    """A line under the usage chart: samples, peaks and limits."""
    if not usage:
        return (
            '<div class="yolo-muted">No usage samples (they come every few seconds while '
            "the run trains).</div>"
        )
    series = usage_series(usage)
    cpu = [v for v in series["cpu"] if v is not None]
    ram = [s.get("memory_bytes") for s in usage if isinstance(s.get("memory_bytes"), int)]
    limit = next((s.get("memory_limit_bytes") for s in usage if s.get("memory_limit_bytes")), None)
    parts = [f"{len(usage)} samples"]
    if cpu:
        parts.append(f"CPU peak {max(cpu):.0f} %")
    if ram:
        parts.append(f"RAM peak {fmt_bytes(max(v for v in ram if v is not None))}")
    if limit:
        parts.append(f"memory limit {fmt_bytes(limit)}")
    names = {str(g.get("name")) for s in usage for g in s.get("gpus") or []}
    parts.append(f"GPU: {', '.join(sorted(names))}" if names else "no GPU seen")
    return f'<div class="yolo-muted">{esc(", ".join(parts))}</div>'


def _finite(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


# ----------------------------------------------------------------------------- console

_ABSOLUTE = re.compile(r"(?<![\w./:])/[^\s'\"(),:]+")
_WORKSPACE_PART = re.compile(r"/(?:jobs|datasets|weights)/")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_EMOJI = re.compile("[\U0001f000-\U0001faff\u2600-\u27bf\ufe0f]")


def console_text(log: str, lines: int = CONSOLE_LINES, job_id: str | None = None) -> str:
    """The log's last ``lines`` lines, cleaned for reading.

    No terminal colours, progress bars' carriage returns resolved to their last state, no emoji
    (Debian has no font for them), absolute workspace paths made workspace-relative: the
    workspace root is read off the job's own folder (``<root>/jobs/<job_id>/``) and any path
    into ``jobs/``, ``datasets/`` or ``weights/`` is cut there.
    """
    cleaned = _EMOJI.sub("", _ANSI.sub("", log))
    out = []
    for line in cleaned.split("\n"):
        out.append(line.rstrip("\r").rsplit("\r", 1)[-1])
    while out and not out[-1]:
        out.pop()
    text = "\n".join(out[-lines:])
    if job_id:
        found = re.search(r"(/[^\s'\"(),:]*?)/jobs/" + re.escape(job_id) + r"\b", cleaned)
        if found and found.group(1):
            text = text.replace(found.group(1) + "/", "")
    return _ABSOLUTE.sub(_relative, text)


def _relative(found: re.Match[str]) -> str:
    """An absolute path from its first ``jobs/``, ``datasets/`` or ``weights/`` folder on."""
    path = found.group(0)
    part = _WORKSPACE_PART.search(path)
    return path[part.start() + 1 :] if part else path
