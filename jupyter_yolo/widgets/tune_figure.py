"""The tune panel's chart: each searched parameter against the trials' metric, the best starred.

One panel per parameter (x: the parameter's value, y: the headline metric, shared), every trial a
point labelled with its number, the best trial a red star in every panel. A scatter per parameter
reads at any number of trials and parameters (a parallel-coordinates plot needs WebGL and says
little with four trials). Trace names are what tests look for: ``"trials · {param}"`` and
``"best · {param}"``.
"""

from __future__ import annotations

from plotly.subplots import make_subplots

from ..contract.tasks import metric_label
from .figure import LiveFigure, live_figure
from .tune_data import BEST_MARK, TrialBoard, number

TRIAL_COLOR = "#1f77b4"
BEST_COLOR = "#d62728"
MAX_PANELS = 6
"""At most this many parameters are drawn side by side (the table lists them all)."""


def trials_trace(param: str) -> str:
    """The name of the trials' points of ``param``'s panel."""
    return f"trials \u00b7 {param}"


def best_trace(param: str) -> str:
    """The name of the best trial's star in ``param``'s panel."""
    return f"best \u00b7 {param}"


def value_range(values: list[float]) -> list[float]:
    """The metric axis: from 0 for metrics that are never negative, with room for the labels.

    Equal values (every trial at 0 after two epochs from scratch) get a unit range instead of
    plotly's [-1, 1] around them.
    """
    if not values:
        return [0.0, 1.0]
    low, high = min(values), max(values)
    if low >= 0:
        low = 0.0
    span = high - low
    if span <= 0:
        unit = abs(high) or 1.0
        return [low - 0.05 * unit, high + unit]
    return [low - 0.05 * span, high + 0.15 * span]


def tune_figure(params: list[str], metric: str | None) -> LiveFigure:
    """An empty chart with one panel per parameter (the first :data:`MAX_PANELS`)."""
    shown = params[:MAX_PANELS] or ["parameter"]
    base = make_subplots(
        rows=1, cols=len(shown), shared_yaxes=True, horizontal_spacing=0.04, subplot_titles=shown
    )
    for col, param in enumerate(shown, start=1):
        first = col == 1
        base.add_scatter(
            x=[],
            y=[],
            mode="markers+text",
            name=trials_trace(param),
            legendgroup="trials",
            showlegend=first,
            marker={"color": TRIAL_COLOR, "size": 9, "opacity": 0.8},
            textposition="top center",
            textfont={"size": 9},
            row=1,
            col=col,
        )
        base.add_scatter(
            x=[],
            y=[],
            mode="markers",
            name=best_trace(param),
            legendgroup="best",
            showlegend=first,
            marker={"color": BEST_COLOR, "size": 18, "symbol": "star"},
            row=1,
            col=col,
        )
        base.update_xaxes(title_text=None, row=1, col=col, tickfont={"size": 9})
    base.update_yaxes(title_text=metric or "metric", row=1, col=1)
    base.update_layout(
        height=300,
        margin={"l": 60, "r": 10, "t": 40, "b": 40},
        title={"text": f"Trials: {metric or 'metric'} by parameter ({BEST_MARK} best)", "x": 0},
        legend={"orientation": "h", "y": -0.15},
        template="plotly_white",
    )
    return live_figure(base)


def draw(figure: LiveFigure, board: TrialBoard, params: list[str]) -> None:
    """Put the board's trials and its best into the figure's panels."""
    shown = params[:MAX_PANELS]
    best = board.best
    metric = board.metric or ""
    rows = [r for r in board.rows() if number((r.get("metrics") or {}).get(metric)) is not None]
    with figure.batch_update():
        for index, param in enumerate(shown):
            points = [r for r in rows if number(r["params"].get(param)) is not None]
            trials = figure.data[2 * index]
            trials.x = [r["params"][param] for r in points]
            trials.y = [r["metrics"][metric] for r in points]
            trials.text = [str(r["trial"]) for r in points]
            star = figure.data[2 * index + 1]
            value = number(best["params"].get(param)) if best else None
            score = number((best.get("metrics") or {}).get(metric)) if best else None
            if best is not None and value is not None and score is not None:
                star.x, star.y = [value], [score]
                star.hovertext = [f"best: trial {best['trial']}"]
            else:
                star.x, star.y = [], []
        scores = [float(r["metrics"][metric] or 0.0) for r in rows]
        figure.layout.yaxis.range = value_range(scores)
        label = metric_label(metric) if metric else "metric"
        figure.layout.yaxis.title.text = label
        figure.layout.title.text = f"Trials: {label} by parameter ({BEST_MARK} best)"
