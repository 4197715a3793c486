"""The dataset panel's sample grid: thumbnails with their labels drawn for any task.

Boxes come from ``xywhn``; where a sample's labels carry them, segment polygons, oriented-box
corners and pose keypoints (with a skeleton) are drawn too, a semantic or depth sample's
``overlay`` lies translucent over its thumbnail, and a classification sample's class is in its
title. Points may be normalised (0-1) or pixels of the original image.
"""

from __future__ import annotations

import posixpath
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .drawing import PALETTE, halo_traces, rgba, skeleton_pairs

SAMPLE_COLUMNS = 4


def _thumbnail_points(
    points: Any, sample: dict[str, Any], width: float, height: float
) -> list[tuple[float, float, float | None]]:
    """Label points ([x, y] or [x, y, v]) in thumbnail pixels.

    Normalised points (every coordinate within 0-1) scale by the thumbnail size, pixel points by
    the thumbnail's share of the original image.
    """
    rows = [p for p in points or [] if isinstance(p, list | tuple) and len(p) >= 2]
    if not rows:
        return []
    normalised = all(0.0 <= float(p[0]) <= 1.0 and 0.0 <= float(p[1]) <= 1.0 for p in rows)
    sx = width if normalised else width / float(sample.get("width") or width)
    sy = height if normalised else height / float(sample.get("height") or height)
    return [(float(p[0]) * sx, float(p[1]) * sy, float(p[2]) if len(p) > 2 else None) for p in rows]


def _shape_traces(
    box: dict[str, Any], sample: dict[str, Any], width: float, height: float
) -> list[go.Scatter]:
    """A label's polygon, corners or keypoints (skeleton and points), when the sample has them."""
    color = PALETTE[int(box.get("class_id") or 0) % len(PALETTE)]
    name = str(box.get("class_name"))
    traces = []
    for key in ("polygon", "corners"):
        points = _thumbnail_points(box.get(key), sample, width, height)
        if len(points) >= 3:
            closed = [*points, points[0]]
            traces.append(
                go.Scatter(
                    x=[p[0] for p in closed],
                    y=[p[1] for p in closed],
                    mode="lines",
                    fill="toself",
                    fillcolor=rgba(color, 0.35 if key == "polygon" else 0.1),
                    line={"color": color, "width": 2},
                    text=name,
                    hoverinfo="text",
                    showlegend=False,
                    meta={"label": key},
                )
            )
    points = _thumbnail_points(box.get("keypoints"), sample, width, height)
    if points:
        seen = [v is None or v > 0 for _, _, v in points]
        xs: list[float | None] = []
        ys: list[float | None] = []
        for a, b in skeleton_pairs(len(points)):
            if seen[a] and seen[b]:
                xs += [points[a][0], points[b][0], None]
                ys += [points[a][1], points[b][1], None]
        traces.append(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines",
                line={"color": color, "width": 2},
                hoverinfo="skip",
                showlegend=False,
                meta={"label": "skeleton"},
            )
        )
        traces.append(
            go.Scatter(
                x=[p[0] for p, ok in zip(points, seen, strict=True) if ok],
                y=[p[1] for p, ok in zip(points, seen, strict=True) if ok],
                mode="markers",
                marker={"size": 5, "color": color, "line": {"color": "#ffffff", "width": 1}},
                text=name,
                hoverinfo="text",
                showlegend=False,
                meta={"label": "keypoints"},
            )
        )
    return traces


def _sample_title(sample: dict[str, Any]) -> str:
    """The thumbnail's title: its file name, and its class for a classification sample."""
    title = posixpath.basename(str(sample["path"]))
    label = sample.get("class_name") or sample.get("class")
    return f"{label}: {title}" if label else title


def samples_figure(samples: dict[str, Any], columns: int = SAMPLE_COLUMNS) -> go.Figure:
    """Thumbnails in a grid with their labels drawn (hover shows the class).

    Boxes, and the polygons, rotated corners or keypoint skeletons the samples carry.
    """
    items = samples.get("samples") or []
    rows = max(1, -(-len(items) // columns))
    fig = make_subplots(
        rows=rows,
        cols=columns,
        horizontal_spacing=0.01,
        vertical_spacing=0.03,
        subplot_titles=[_sample_title(s) for s in items],
    )
    for index, sample in enumerate(items):
        row, col = index // columns + 1, index % columns + 1
        width, height = sample.get("thumbnail_size") or [sample["width"], sample["height"]]
        if sample.get("thumbnail"):
            fig.add_trace(go.Image(source=sample["thumbnail"], hoverinfo="skip"), row=row, col=col)
        if isinstance(sample.get("overlay"), str):  # semantic class map or depth map, translucent
            fig.add_trace(
                go.Image(source=sample["overlay"], opacity=0.5, hoverinfo="skip", name="overlay"),
                row=row,
                col=col,
            )
        shapes: list[go.Scatter] = []
        for box in sample.get("boxes") or []:
            shapes.extend(_shape_traces(box, sample, width, height))
            if not box.get("xywhn"):
                continue
            cx, cy, w, h = box["xywhn"]
            x0, x1 = (cx - w / 2) * width, (cx + w / 2) * width
            y0, y1 = (cy - h / 2) * height, (cy + h / 2) * height
            color = PALETTE[int(box.get("class_id") or 0) % len(PALETTE)]
            shapes.append(
                go.Scatter(
                    x=[x0, x1, x1, x0, x0],
                    y=[y0, y0, y1, y1, y0],
                    mode="lines",
                    line={"color": color, "width": 2},
                    text=str(box.get("class_name")),
                    hoverinfo="text",
                    hoveron="points+fills",
                    fill="toself",
                    fillcolor="rgba(0,0,0,0)",
                    showlegend=False,
                    meta={"label": "box"},
                )
            )
        for trace in halo_traces(shapes) + shapes:  # halos first: under the lines
            fig.add_trace(trace, row=row, col=col)
        fig.update_xaxes(visible=False, range=[0, width], row=row, col=col)
        fig.update_yaxes(
            visible=False,
            range=[height, 0],
            scaleanchor=f"x{index + 1}" if index else "x",
            row=row,
            col=col,
        )
    fig.update_layout(
        height=max(220, 200 * rows),
        template="plotly_white",
        margin={"l": 5, "r": 5, "t": 30, "b": 5},
    )
    fig.update_annotations(font_size=10)
    return fig
