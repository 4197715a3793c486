"""The training figure: the task's losses (left) and its validation metrics (right).

Which curves there are comes from the task table (``loss_keys``, ``metric_keys``,
``headline_metric``) plus whatever the events carry beyond it, so a task never seen before draws
its own curves. Trace names are what the legend shows and what tests look for:
``"{loss} loss / batch"``, ``"{loss} loss / epoch"``, ``"{loss} val loss"`` and the metric's
short label (``"mask mAP50-95"``).
"""

from __future__ import annotations

from dataclasses import dataclass

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..contract.tasks import metric_label
from .figure import LiveFigure, live_figure
from .history import LOSS_KEYS

LOSS_COLORS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#e377c2",
    "#bcbd22",
    "#7f7f7f",
    "#17becf",
    "#8c564b",
)
METRIC_COLORS = (
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#17becf",
    "#1f77b4",
    "#2ca02c",
    "#ff7f0e",
    "#e377c2",
)


def batch_trace(key: str) -> str:
    """The legend name of loss ``key``'s per-batch curve."""
    return f"{key} loss / batch"


def epoch_trace(key: str) -> str:
    """The legend name of loss ``key``'s per-epoch (training mean) curve."""
    return f"{key} loss / epoch"


def val_trace(key: str) -> str:
    """The legend name of loss ``key``'s validation curve."""
    return f"{key} val loss"


@dataclass(frozen=True)
class FigureSpec:
    """Which curves the figure has: loss names, metric keys (headline first)."""

    losses: tuple[str, ...] = LOSS_KEYS
    metrics: tuple[str, ...] = ()
    headline: str | None = None

    @property
    def batch_traces(self) -> tuple[str, ...]:
        """Per-batch loss trace names, in figure order (they come first)."""
        return tuple(batch_trace(k) for k in self.losses)

    @property
    def metric_traces(self) -> tuple[str, ...]:
        """Metric trace names (short labels), in figure order (they come last)."""
        return tuple(metric_label(k) for k in self.metrics)

    def visible(self, key: str) -> bool:
        """Whether metric ``key`` is drawn at first (others wait in the legend).

        The headline is, and the mAP50 / top-5 companions of its own kind (mask for mask ...);
        a task with two metrics or fewer shows them all.
        """
        if key == self.headline or len(self.metrics) <= 2:
            return True
        head = metric_label(self.headline or "")
        kind = head.split(" ")[0] if " " in head else ""
        label = metric_label(key)
        return bool(kind) and label.startswith(kind + " ") and "mAP" in label


def _add_losses(fig: go.Figure, spec: FigureSpec) -> None:
    colors = {k: LOSS_COLORS[i % len(LOSS_COLORS)] for i, k in enumerate(spec.losses)}
    for key in spec.losses:
        fig.add_trace(
            go.Scatter(
                name=batch_trace(key),
                mode="lines",
                x=[],
                y=[],
                legendgroup=key,
                opacity=0.45,
                line={"width": 1, "color": colors[key]},
            ),
            row=1,
            col=1,
        )
    for key in spec.losses:
        fig.add_trace(
            go.Scatter(
                name=epoch_trace(key),
                mode="lines+markers",
                x=[],
                y=[],
                legendgroup=key,
                line={"width": 2, "color": colors[key]},
                marker={"size": 6},
            ),
            row=1,
            col=1,
        )
    for key in spec.losses:
        fig.add_trace(
            go.Scatter(
                name=val_trace(key),
                mode="lines+markers",
                x=[],
                y=[],
                legendgroup=key,
                line={"width": 2, "dash": "dash", "color": colors[key]},
                marker={"size": 6, "symbol": "diamond"},
            ),
            row=1,
            col=1,
        )


def metric_colors(spec: FigureSpec) -> dict[str, str]:
    """Each metric's colour; the ones drawn at first take the first colours.

    The headline is red and its companion purple, colours none of the first five losses has (a
    mask mAP50 curve drawn in the dfl loss's pink read as a loss before).
    """
    drawn = sorted(spec.metrics, key=lambda k: not spec.visible(k))  # stable: drawn ones first
    return {key: METRIC_COLORS[i % len(METRIC_COLORS)] for i, key in enumerate(drawn)}


def _add_metrics(fig: go.Figure, spec: FigureSpec) -> None:
    colors = metric_colors(spec)
    for key in spec.metrics:
        head = key == spec.headline
        fig.add_trace(
            go.Scatter(
                name=metric_label(key),
                mode="lines+markers",
                x=[],
                y=[],
                line={"width": 4 if head else 2, "color": colors[key]},
                marker={"size": 8 if head else 6},
                visible=True if spec.visible(key) else "legendonly",
                meta={"metric": key, "headline": head},
            ),
            row=1,
            col=2,
        )


def spec_traces(spec: FigureSpec) -> list[go.Scatter]:
    """The figure's traces for ``spec``, in order: batch, epoch, val losses, metrics."""
    fig = make_subplots(rows=1, cols=2)
    _add_losses(fig, spec)
    _add_metrics(fig, spec)
    return list(fig.data)


def validation_title(spec: FigureSpec) -> str:
    """The right subplot's title: the headline metric emphasised."""
    if spec.headline:
        return f"Validation: <b>{metric_label(spec.headline)}</b>"
    return "Validation"


def training_figure(spec: FigureSpec | None = None) -> LiveFigure:
    """The empty figure for ``spec`` (detection's curves by default)."""
    spec = spec or FigureSpec()
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("Loss", validation_title(spec)),
        horizontal_spacing=0.08,
    )
    _add_losses(fig, spec)
    _add_metrics(fig, spec)
    fig.update_xaxes(title_text="epoch", rangemode="tozero")
    fig.update_yaxes(rangemode="tozero", row=1, col=1)
    fig.update_yaxes(range=[0, 1.02], row=1, col=2)
    fig.update_layout(
        height=400,
        template="plotly_white",
        uirevision="keep",
        margin={"l": 50, "r": 20, "t": 40, "b": 40},
        legend={"orientation": "v", "x": 1.02, "y": 1, "font": {"size": 11}},
    )
    return live_figure(fig)


def apply_spec(figure: go.FigureWidget, spec: FigureSpec) -> None:
    """Replace ``figure``'s curves by empty ones for ``spec`` (a new task, or new keys)."""
    figure.data = ()
    figure.add_traces(spec_traces(spec))
    if len(figure.layout.annotations) > 1:
        figure.layout.annotations[1].text = validation_title(spec)
