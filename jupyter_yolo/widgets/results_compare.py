"""What the run comparison shows, as plain data, HTML and figures (no widgets).

A compared run is a :class:`ComparedRun`: its :class:`RunResults` (best epoch, parameters, the
metric history) and its per-epoch total training loss, folded from its ``epoch`` events.
:func:`compare_figure` overlays the runs' headline metric and total loss per epoch (one colour
per run); :func:`best_table_html` and :func:`params_table_html` table them side by side.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..contract.results import EpochSummary, RunResults
from ..contract.tasks import metric_label
from .common import Raw, esc, table
from .results_data import dataset_of, metric_keys, number, run_title, shown_params, when

RUN_COLORS = (
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#9467bd",
    "#ff7f0e",
    "#17becf",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
)
RUN_DASHES = ("solid", "dash", "dot", "dashdot", "longdash")
RUN_SYMBOLS = ("circle", "square", "diamond", "triangle-up", "x")
"""Runs whose curves coincide (the same values) stay apart by their dash and marker."""
DIFFERS = "background: #fff4c2;"
"""Style of a parameter row whose value differs between the compared runs."""
HIDDEN_PARAMS = frozenset({"workers", "device", "exist_ok", "project", "name", "verbose"})
"""Parameters that say where a run ran, not what it learned: listed last, never highlighted."""


@dataclass
class ComparedRun:
    """One run in a comparison: its results and total training loss per epoch."""

    results: RunResults
    job: dict[str, Any] | None = None
    """The job as ``GET /yolo/jobs`` lists it (the dataset's name is in its request)."""
    loss_epochs: list[int] = field(default_factory=list)
    loss_totals: list[float | None] = field(default_factory=list)

    @property
    def job_id(self) -> str:
        """The run's job id."""
        return str(self.results.get("job_id"))

    @property
    def title(self) -> str:
        """The run's name (or ``train job <id>``)."""
        return run_title(self.results)

    def headline_curve(self, key: str | None = None) -> tuple[list[int], list[float | None]]:
        """The run's headline metric per epoch (from its history; best and last otherwise)."""
        head = key or self.results.get("headline") or ""
        history: list[EpochSummary] = list(self.results.get("history") or [])
        if not history:
            history = [s for s in (self.results.get("best"), self.results.get("last")) if s]
        points = sorted({int(s["epoch"]): s for s in history}.items())
        return [e for e, _ in points], [
            _finite((s.get("metrics") or {}).get(head)) for _, s in points
        ]


def _finite(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def fold_losses(events: Sequence[dict[str, Any]]) -> tuple[list[int], list[float | None]]:
    """Total training loss per epoch (the sum of the task's losses) from ``epoch`` events.

    A later event for the same epoch (an epoch done again after a resume) replaces the earlier.
    """
    by_epoch: dict[int, float | None] = {}
    for event in events:
        if event.get("type") != "epoch" or not isinstance(event.get("epoch"), int):
            continue
        loss = event.get("loss")
        values = [_finite(v) for v in loss.values()] if isinstance(loss, dict) else []
        total = (
            sum(v for v in values if v is not None) if any(v is not None for v in values) else None
        )
        by_epoch[int(event["epoch"])] = total
    epochs = sorted(by_epoch)
    return epochs, [by_epoch[e] for e in epochs]


def job_label(job: dict[str, Any]) -> str:
    """A train job as the picker lists it: name, task, dataset, date, best headline metric."""
    name = job.get("name") or f"job {job.get('id')}"
    progress = job.get("progress") or {}
    headline = progress.get("headline") if isinstance(progress, dict) else None
    best = ""
    if isinstance(headline, dict) and headline.get("key"):
        best = f" \u00b7 {metric_label(str(headline['key']))} {number(headline.get('best'))}"
    date = when(job.get("started") or job.get("created"))
    return (
        f"{name} \u00b7 {job.get('task') or 'detect'} \u00b7 {job.get('data') or '?'} "
        f"\u00b7 {date} \u00b7 {job.get('status')}{best}"
    )


def same_headline(runs: Sequence[ComparedRun]) -> str | None:
    """The headline metric key every run shares (None when they differ or there are none)."""
    keys = {r.results.get("headline") for r in runs}
    return str(next(iter(keys))) if len(keys) == 1 and None not in keys else None


def metric_choices(runs: Sequence[ComparedRun]) -> list[str]:
    """The metric keys every compared run has epochs of (the shared headline first)."""
    keys: list[str] | None = None
    for run in runs:
        own = metric_keys(run.results)
        for summary in run.results.get("history") or []:
            own += [k for k in summary.get("metrics") or {} if k not in own]
        keys = own if keys is None else [k for k in keys if k in own]
    return keys or []


def compare_figure(runs: Sequence[ComparedRun], metric: str | None = None) -> go.Figure:
    """Each run's ``metric`` (its headline by default, left) and total training loss (right)."""
    head = metric or same_headline(runs)
    left = f"Validation: <b>{metric_label(head)}</b>" if head else "Validation: headline metric"
    fig = make_subplots(
        rows=1, cols=2, subplot_titles=(left, "Total training loss"), horizontal_spacing=0.1
    )
    for index, run in enumerate(runs):
        hue = RUN_COLORS[index % len(RUN_COLORS)]
        dash = RUN_DASHES[index % len(RUN_DASHES)]
        marker = {"symbol": RUN_SYMBOLS[index % len(RUN_SYMBOLS)], "size": 8}
        epochs, values = run.headline_curve(metric)
        label = run.title if head else f"{run.title} ({metric_label(run.results['headline'])})"
        fig.add_trace(
            go.Scatter(
                x=epochs,
                y=values,
                mode="lines+markers",
                name=label,
                legendgroup=run.job_id,
                line={"color": hue, "width": 3, "dash": dash},
                marker=marker,
                meta={"run": run.job_id, "series": "headline"},
            ),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                x=run.loss_epochs,
                y=run.loss_totals,
                mode="lines+markers",
                name=f"{run.title} loss",
                legendgroup=run.job_id,
                showlegend=False,
                line={"color": hue, "width": 2, "dash": dash},
                marker=marker,
                meta={"run": run.job_id, "series": "loss"},
            ),
            row=1,
            col=2,
        )
    fig.update_xaxes(title_text="epoch", rangemode="tozero")
    fig.update_yaxes(range=[0, 1.02], row=1, col=1)
    fig.update_yaxes(rangemode="tozero", row=1, col=2)
    fig.update_layout(
        height=400,
        template="plotly_white",
        margin={"l": 50, "r": 20, "t": 40, "b": 40},
        legend={"font": {"size": 11}},
    )
    return fig


def best_table_html(runs: Sequence[ComparedRun]) -> str:
    """One row per run: its best epoch and that epoch's metrics (headline first, bold)."""
    if not runs:
        return '<div class="yolo-muted">Pick runs to compare.</div>'
    keys: dict[str, None] = {}
    for run in runs:
        keys.update(dict.fromkeys(metric_keys(run.results)))
    head = same_headline(runs)
    header = ["run", "task", "dataset", "status", "best epoch", *[metric_label(k) for k in keys]]
    rows = []
    for run in runs:
        best = run.results.get("best")
        metrics = best["metrics"] if best else {}
        own = run.results.get("headline")
        cells: list[Any] = [
            run.title,
            run.results.get("task"),
            dataset_of(run.results, run.job),
            run.results.get("status"),
            f"{best['epoch']} of {run.results.get('epochs')}" if best else None,
        ]
        for key in keys:
            text = number(metrics.get(key))
            cells.append(Raw(f"<b>{esc(text)}</b>") if key in (head, own) else text)
        rows.append(cells)
    return table(rows, header).replace('class="yolo-table"', 'class="yolo-table yolo-best"', 1)


def params_table_html(runs: Sequence[ComparedRun]) -> str:
    """The runs' parameters side by side; rows whose values differ come first, highlighted."""
    if not runs:
        return ""
    params = [shown_params(run.results, run.job) for run in runs]
    keys = sorted({k for p in params for k in p})
    differing = [k for k in keys if len({_shown(p.get(k)) for p in params}) > 1]
    ordered = sorted(keys, key=lambda k: (k in HIDDEN_PARAMS, k not in differing, k))
    out = ['<table class="yolo-table yolo-params">']
    out.append(
        "<tr><th>parameter</th>" + "".join(f"<th>{esc(r.title)}</th>" for r in runs) + "</tr>"
    )
    for key in ordered:
        marked = key in differing and key not in HIDDEN_PARAMS
        style = f' style="{DIFFERS}"' if marked else ""
        cls = ' class="yolo-differs"' if marked else ""
        cells = "".join(f"<td>{esc(_shown(p.get(key)))}</td>" for p in params)
        out.append(f"<tr{cls}{style}><td>{esc(key)}</td>{cells}</tr>")
    out.append("</table>")
    note = (
        f"{len([k for k in differing if k not in HIDDEN_PARAMS])} parameter(s) differ (highlighted)"
    )
    return f'<div class="yolo-muted">{esc(note)}</div>' + "".join(out)


def _shown(value: Any) -> str:
    return "\u2014" if value is None else str(value)
