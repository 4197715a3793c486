"""The results view's figures: validator curves, confusion matrix, usage, validation images.

A validation image shows its ground truth beside the final model's predictions.

Figures are built as plain ``go.Figure`` by pure functions of the contract's shapes (tests read
them without a browser); :class:`FigureSlot` shows one in the panel (a reconnect-safe widget,
replaced as a whole when the content changes). Trace ``meta`` says what a trace is
(``{"curve": "PR", "kind": "B", "class": "all"}``, ``{"confusion": true}``...), which is what
the browser test reads from the page.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ipywidgets as widgets
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..contract.payloads import Detection
from ..contract.results import ConfusionMatrix, Curve, UsageFields, ValImage
from .drawing import (
    PALETTE,
    box_traces,
    halo_traces,
    keypoint_traces,
    label_annotations,
    polygon_traces,
    rotated_traces,
)
from .figure import live_figure
from .results_data import confusion_cells, kind_label, usage_series

MEAN_COLOR = "#111111"
MAX_CLASS_CURVES = 30
"""Per-class curves drawn at most (the mean is always drawn); more would be unreadable."""


def live(figure: go.Figure) -> go.FigureWidget:
    """The widget that shows ``figure``: one that renders fully whenever a view (re)connects."""
    return live_figure(figure)


class FigureSlot(widgets.Box):  # type: ignore[misc]
    """A place for one figure whose content is replaced as a whole.

    :meth:`show` puts a new widget built from the figure in the slot and closes the old one: a
    new widget's views draw its whole state when they are created, which a wholesale change of
    an existing figure's layout and traces (subplots added, traces replaced) does not do
    reliably in plotly's widget front end. The results view changes a figure's content a few
    times per run (status changes, the final validation, new usage samples), so this costs
    little.
    """

    def __init__(self, figure: go.Figure) -> None:
        super().__init__(children=[live(figure)], layout=widgets.Layout(width="100%"))
        self.shown = 1

    @property
    def figure(self) -> go.FigureWidget:
        """The figure widget shown now."""
        children: tuple[go.FigureWidget, ...] = tuple(getattr(self, "children", ()))
        return children[0]

    def show(self, figure: go.Figure) -> go.FigureWidget:
        """Show ``figure`` instead of what the slot shows now; returns its widget."""
        old: tuple[Any, ...] = tuple(getattr(self, "children", ()))
        widget = live(figure)
        self.children = [widget]
        self.shown += 1
        for child in old:
            child.close()
        return widget

    def close(self) -> None:
        """Close the figure and the slot."""
        for child in tuple(getattr(self, "children", ())):
            child.close()
        super().close()


def _base_layout(fig: go.Figure, height: int) -> None:
    fig.update_layout(
        height=height,
        template="plotly_white",
        margin={"l": 55, "r": 20, "t": 50, "b": 45},
        legend={"font": {"size": 11}},
    )


# ----------------------------------------------------------------------------- curves


def curves_figure(curves: Sequence[Curve], kind: str) -> go.Figure:
    """The validator's curves of one kind (PR, F1, Precision, Recall) as a 2 x 2 grid.

    Each panel has a thin line per class (coloured as the prediction panel colours the class)
    and a thick black line for the mean over classes ("all classes"). The PR panel's mean is
    labelled with its area (mAP50 of that kind). Clicking a class in the legend hides it in
    every panel at once.
    """
    chosen = [c for c in curves if str(c.get("kind") or "B") == kind][:4]
    titles = [_curve_title(c) for c in chosen] or ["no curves"]
    rows = 2 if len(chosen) > 2 else 1
    cols = 2 if len(chosen) > 1 else 1
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=titles,
        horizontal_spacing=0.1,
        vertical_spacing=0.16,
    )
    for index, curve in enumerate(chosen):
        row, col = index // 2 + 1, index % 2 + 1
        name = str(curve.get("name"))
        x = list(curve.get("x") or [])
        for cls_index, (cls_name, ys) in enumerate(
            list((curve.get("per_class") or {}).items())[:MAX_CLASS_CURVES]
        ):
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=list(ys),
                    mode="lines",
                    name=cls_name,
                    legendgroup=cls_name,
                    showlegend=index == 0,
                    line={"width": 1.2, "color": PALETTE[cls_index % len(PALETTE)]},
                    opacity=0.75,
                    meta={"curve": name, "kind": kind, "class": cls_name},
                ),
                row=row,
                col=col,
            )
        mean = list(curve.get("mean") or [])
        label = "all classes"
        if name == "PR" and len(mean) == len(x) and len(x) > 1:
            label = f"all classes (area {_area(x, mean):.3f})"
        fig.add_trace(
            go.Scatter(
                x=x,
                y=mean,
                mode="lines",
                name=label,
                legendgroup="all classes",
                showlegend=index == 0,
                line={"width": 3, "color": MEAN_COLOR},
                meta={"curve": name, "kind": kind, "class": "all"},
            ),
            row=row,
            col=col,
        )
        fig.update_xaxes(title_text=str(curve.get("x_label") or ""), range=[0, 1], row=row, col=col)
        fig.update_yaxes(
            title_text=str(curve.get("y_label") or ""), range=[0, 1.02], row=row, col=col
        )
    _base_layout(fig, 330 * rows + 40)
    fig.update_layout(title={"text": f"Validation curves ({kind_label(kind)})", "x": 0.01})
    return fig


def _curve_title(curve: Curve) -> str:
    name = str(curve.get("name"))
    long = {"PR": "Precision-Recall", "F1": "F1-Confidence"}.get(name)
    return f"{long or name} ({kind_label(str(curve.get('kind') or 'B'))})"


def _area(x: Sequence[float], y: Sequence[float]) -> float:
    total = 0.0
    for i in range(1, len(x)):
        total += (x[i] - x[i - 1]) * (float(y[i] or 0) + float(y[i - 1] or 0)) / 2
    return abs(total)


# ----------------------------------------------------------------------------- confusion


def confusion_figure(matrix: ConfusionMatrix | None, normalized: bool) -> go.Figure:
    """The confusion matrix as a heatmap: true class across, predicted class down.

    The cells show counts (shares of the true class when ``normalized``).
    """
    fig = go.Figure()
    if matrix and matrix.get("names"):
        names, values, texts = confusion_cells(matrix, normalized)
        fig.add_trace(
            go.Heatmap(
                z=values,
                x=names,
                y=names,
                text=texts,
                texttemplate="%{text}",
                colorscale="Blues",
                zmin=0,
                zmax=1 if normalized else None,
                hovertemplate=(
                    "true %{x}<br>predicted %{y}<br>"
                    + ("share %{z:.2f}" if normalized else "count %{z:.0f}")
                    + "<extra></extra>"
                ),
                colorbar={"title": {"text": "share" if normalized else "count"}},
                meta={"confusion": True, "normalized": normalized},
            )
        )
        size = max(360, min(760, 40 * len(names) + 160))
    else:
        size = 200
    fig.update_xaxes(title_text="true", side="bottom", type="category")
    fig.update_yaxes(title_text="predicted", autorange="reversed", type="category")
    _base_layout(fig, size)
    title = "Confusion matrix" + (" (normalized per true class)" if normalized else " (counts)")
    fig.update_layout(title={"text": title, "x": 0.01}, width=size + 120)
    return fig


# ----------------------------------------------------------------------------- usage


def usage_figure(usage: Sequence[UsageFields]) -> go.Figure:
    """CPU and GPU utilisation (%) above, RAM and GPU memory (GiB) below, over the run."""
    series = usage_series(usage)
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        subplot_titles=("Utilisation", "Memory"),
        vertical_spacing=0.12,
    )
    t = series["t"]
    fig.add_trace(
        go.Scatter(x=t, y=series["cpu"], name="CPU %", mode="lines", meta={"usage": "cpu"}),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Scatter(x=t, y=series["ram_gib"], name="RAM GiB", mode="lines", meta={"usage": "ram"}),
        row=2,
        col=1,
    )
    for key, values in series.items():
        if key.endswith(" util"):
            gpu = key.removesuffix(" util")
            fig.add_trace(
                go.Scatter(x=t, y=values, name=f"{gpu.upper()} %", mode="lines"), row=1, col=1
            )
        elif key.endswith(" mem_gib"):
            gpu = key.removesuffix(" mem_gib")
            fig.add_trace(
                go.Scatter(x=t, y=values, name=f"{gpu.upper()} memory GiB", mode="lines"),
                row=2,
                col=1,
            )
    fig.update_yaxes(title_text="%", range=[0, 101], row=1, col=1)
    fig.update_yaxes(title_text="GiB", rangemode="tozero", row=2, col=1)
    fig.update_xaxes(title_text="seconds since the first sample", row=2, col=1)
    _base_layout(fig, 460)
    return fig


# ----------------------------------------------------------------------------- images


def _object_traces(detections: Sequence[Detection], geometry: str) -> list[go.Scatter]:
    if geometry == "polygon":
        traces = polygon_traces(detections, filled=True)
    elif geometry == "keypoints":
        traces = keypoint_traces(detections)
    elif geometry == "rotated-box":
        traces = rotated_traces(detections)
    else:
        traces = box_traces(detections)
    return halo_traces(traces) + traces


def _truth_labels(detections: Sequence[Detection]) -> list[Detection]:
    """Ground truth has no score: its label is the class name alone."""
    return [{**det, "conf": None} for det in detections]


def _annotations(detections: Sequence[Detection], axis: str, truth: bool) -> list[dict[str, Any]]:
    notes = label_annotations(detections)
    for note in notes:
        note["xref"], note["yref"] = f"x{axis}", f"y{axis}"
        if truth:
            note["text"] = str(note["text"]).rsplit(" ", 1)[0]
    return notes


def val_image_figure(image: ValImage, uri: str | None, geometry: str) -> go.Figure:
    """One validation image twice: ground truth (left), the final model's predictions (right).

    Drawn as the prediction panel draws them (labels on a box of the class colour).

    Classification shows the true class and the top-5 predicted classes in the titles.
    """
    width, height = int(image.get("width") or 0), int(image.get("height") or 0)
    truth, predicted = list(image.get("truth") or []), list(image.get("predicted") or [])
    if "truth_class" in image:
        left = f"truth: {image.get('truth_class')}"
        right = "predicted: " + ", ".join(image.get("predicted_classes") or [])
    else:
        left = f"ground truth ({len(truth)})"
        right = f"predictions ({len(predicted)})"
    fig = make_subplots(rows=1, cols=2, subplot_titles=(left, right), horizontal_spacing=0.03)
    for col in (1, 2):
        fig.add_trace(
            go.Image(source=uri, hoverinfo="skip", name="image", meta={"side": col}),
            row=1,
            col=col,
        )
    for det_list, col in ((_truth_labels(truth), 1), (predicted, 2)):
        for trace in _object_traces(det_list, geometry):
            trace.meta = {**(trace.meta or {}), "side": "truth" if col == 1 else "predicted"}
            fig.add_trace(trace, row=1, col=col)
    notes = _annotations(_truth_labels(truth), "", True) + _annotations(predicted, "2", False)
    fig.update_layout(annotations=[*fig.layout.annotations, *notes])
    for col in (1, 2):
        fig.update_xaxes(visible=False, constrain="domain", row=1, col=col)
        fig.update_yaxes(visible=False, autorange="reversed", row=1, col=col)
        if width and height:
            fig.update_xaxes(range=[0, width], row=1, col=col)
            fig.update_yaxes(range=[height, 0], autorange=False, row=1, col=col)
    fig.update_yaxes(scaleanchor="x", row=1, col=1)
    fig.update_yaxes(scaleanchor="x2", row=1, col=2)
    _base_layout(fig, 420)
    fig.update_layout(margin={"l": 10, "r": 10, "t": 40, "b": 10}, title=None)
    return fig
