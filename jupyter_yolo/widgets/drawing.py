"""What one image's predictions look like in plotly, for every task.

Boxes and rotated boxes are outlines, instance masks are a translucent overlay image (decoded
from the run-length encoding, or the polygon filled when there is no mask) with their outline,
keypoints are points joined by a skeleton, classification is top-5 horizontal bars, semantic and
depth maps are a coloured overlay image. Labels are text on a box of the class colour with a
white or black font, whichever contrasts, so they read on any background.

Plain functions of the :class:`~jupyter_yolo.contract.payloads.ImagePrediction` shapes; only
numpy, plotly and (for overlays) Pillow.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from ..contract.payloads import ClassScore, Detection, EncodedMask
from ..rle import decode as _decode_checked
from .figure import LiveFigure, live_figure

PALETTE = (
    "#e6194b",
    "#3cb44b",
    "#4363d8",
    "#f58231",
    "#911eb4",
    "#46f0f0",
    "#f032e6",
    "#bcf60c",
    "#008080",
    "#9a6324",
    "#800000",
    "#000075",
)
MAX_BOXES_DRAWN = 200
MAX_LABELS = 40
MASK_ALPHA = 0.45
KEYPOINT_MIN_CONF = 0.5
COCO_SKELETON = (
    (15, 13),
    (13, 11),
    (16, 14),
    (14, 12),
    (11, 12),
    (5, 11),
    (6, 12),
    (5, 6),
    (5, 7),
    (6, 8),
    (7, 9),
    (8, 10),
    (1, 2),
    (0, 1),
    (0, 2),
    (1, 3),
    (2, 4),
    (3, 5),
    (4, 6),
)
"""COCO-17's limbs (0-based keypoint indices), as ultralytics draws them."""


def color(cls: Any) -> str:
    """The colour of class index ``cls``."""
    return PALETTE[int(cls or 0) % len(PALETTE)]


def rgba(hex_color: str, alpha: float) -> str:
    """``#rrggbb`` with an alpha, as a CSS ``rgba()`` string."""
    red, green, blue = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},{alpha})"


def text_color(hex_color: str) -> str:
    """Black or white: whichever reads better on ``hex_color`` (WCAG relative luminance)."""
    channels = []
    for i in (1, 3, 5):
        c = int(hex_color[i : i + 2], 16) / 255
        channels.append(c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4)
    luminance = 0.2126 * channels[0] + 0.7152 * channels[1] + 0.0722 * channels[2]
    return "#000000" if luminance > 0.179 else "#ffffff"


HALO_KINDS = frozenset({"box", "polygon", "rotated-box", "corners", "skeleton"})
"""The drawn lines that get a contrasting halo under them (see :func:`halo_traces`)."""


def halo_traces(traces: Sequence[go.Scatter]) -> list[go.Scatter]:
    """A wider line in the contrasting colour (black or white) under each outline and limb.

    A class colour on a background of about the same colour (a red box around a circle on a red
    image) would vanish; its halo still shows. Draw these before the traces they go under.
    """
    halos = []
    for trace in traces:
        meta = trace.meta if isinstance(trace.meta, dict) else {}
        hue = trace.line.color if trace.line is not None else None
        kind = meta.get("kind") or meta.get("label")  # a prediction's, a dataset sample's
        if kind not in HALO_KINDS or not isinstance(hue, str) or len(hue) != 7:
            continue
        halos.append(
            go.Scatter(
                x=trace.x,
                y=trace.y,
                mode="lines",
                line={"color": text_color(hue), "width": float(trace.line.width or 2) + 3},
                opacity=0.6,
                hoverinfo="skip",
                showlegend=False,
                name="halo",
                meta={"detection": meta.get("detection"), "kind": "halo"},
            )
        )
    return halos


def label_of(det: Detection) -> str:
    """``name conf`` of a detection."""
    return f"{det.get('name')} {float(det.get('conf') or 0):.3g}"


# --------------------------------------------------------------------------- outlines


def _outline(
    xs: list[Any], ys: list[Any], det: Detection, index: int, *, fill: float, kind: str
) -> go.Scatter:
    hue = color(det.get("cls"))
    label = label_of(det)
    return go.Scatter(
        x=xs,
        y=ys,
        mode="lines",
        fill="toself",
        fillcolor=rgba(hue, fill),
        line={"color": hue, "width": 2},
        name=label,
        text=label,
        hoveron="fills+points",
        hoverinfo="text",
        showlegend=False,
        meta={"detection": index, "kind": kind},
    )


def box_traces(detections: Sequence[Detection]) -> list[go.Scatter]:
    """One filled, hoverable outline per detection (class colour, label in the hover)."""
    traces = []
    for index, det in enumerate(detections[:MAX_BOXES_DRAWN]):
        x0, y0, x1, y1 = det["box_xyxy"]
        traces.append(
            _outline([x0, x1, x1, x0, x0], [y0, y0, y1, y1, y0], det, index, fill=0.05, kind="box")
        )
    return traces


def rotated_traces(detections: Sequence[Detection]) -> list[go.Scatter]:
    """Oriented boxes as closed four-corner polygons (axis-aligned box when corners are missing)."""
    traces = []
    for index, det in enumerate(detections[:MAX_BOXES_DRAWN]):
        corners = det.get("corners") or []
        if len(corners) < 3:
            traces.extend(box_traces([det]))
            continue
        xs = [float(p[0]) for p in corners] + [float(corners[0][0])]
        ys = [float(p[1]) for p in corners] + [float(corners[0][1])]
        traces.append(_outline(xs, ys, det, index, fill=0.08, kind="rotated-box"))
    return traces


def polygon_traces(detections: Sequence[Detection], *, filled: bool) -> list[go.Scatter]:
    """Instance outlines; filled translucent when no mask image is drawn under them."""
    traces = []
    for index, det in enumerate(detections[:MAX_BOXES_DRAWN]):
        points = det.get("polygon") or []
        if len(points) < 3:
            traces.extend(box_traces([det]))
            continue
        xs = [float(p[0]) for p in points] + [float(points[0][0])]
        ys = [float(p[1]) for p in points] + [float(points[0][1])]
        traces.append(
            _outline(xs, ys, det, index, fill=MASK_ALPHA if filled else 0.0, kind="polygon")
        )
    return traces


def skeleton_pairs(count: int) -> tuple[tuple[int, int], ...]:
    """The limbs joining ``count`` keypoints: COCO's for 17, otherwise each to the next."""
    if count == 17:
        return COCO_SKELETON
    return tuple((i, i + 1) for i in range(count - 1))


def keypoint_traces(
    detections: Sequence[Detection], skeleton: Sequence[Sequence[int]] | None = None
) -> list[go.Scatter]:
    """Per detection, its box, its skeleton's limbs and its visible keypoints.

    A keypoint is drawn when its confidence is at least 0.5 (or it has none); a limb when both
    its ends are drawn. ``skeleton`` (pairs of 0-based indices) overrides the default.
    """
    traces = box_traces(detections)
    for index, det in enumerate(detections[:MAX_BOXES_DRAWN]):
        points = det.get("keypoints") or []
        if not points:
            continue
        seen = [len(p) < 3 or float(p[2]) >= KEYPOINT_MIN_CONF for p in points]
        hue = color(det.get("cls"))
        pairs = skeleton if skeleton is not None else skeleton_pairs(len(points))
        xs: list[float | None] = []
        ys: list[float | None] = []
        for a, b in pairs:
            if a < len(points) and b < len(points) and seen[a] and seen[b]:
                xs += [float(points[a][0]), float(points[b][0]), None]
                ys += [float(points[a][1]), float(points[b][1]), None]
        traces.append(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines",
                line={"color": hue, "width": 3},
                hoverinfo="skip",
                showlegend=False,
                name=f"skeleton {index}",
                meta={"detection": index, "kind": "skeleton"},
            )
        )
        visible = [(i, p) for i, p in enumerate(points) if seen[i]]
        traces.append(
            go.Scatter(
                x=[float(p[0]) for _, p in visible],
                y=[float(p[1]) for _, p in visible],
                mode="markers",
                marker={"size": 7, "color": hue, "line": {"color": "#ffffff", "width": 1.5}},
                text=[f"keypoint {i}" for i, _ in visible],
                hoverinfo="text",
                showlegend=False,
                name=f"keypoints {index}",
                meta={"detection": index, "kind": "keypoints"},
            )
        )
    return traces


def label_annotations(detections: Sequence[Detection]) -> list[dict[str, Any]]:
    """Labels at each object's top-left corner: class-coloured box, contrasting text.

    ``detections`` come best first; where several objects share a corner only the best is
    labelled, and labels are listed worst first so the best are drawn on top.
    """
    notes = []
    corners: set[tuple[int, int]] = set()
    for det in detections[:MAX_BOXES_DRAWN]:
        box = det.get("box_xyxy") or []
        if len(box) != 4 or box[0] is None or box[1] is None:
            continue
        corner = (round(float(box[0]) / 4), round(float(box[1]) / 4))
        if corner in corners:
            continue
        corners.add(corner)
        hue = color(det.get("cls"))
        notes.append(
            {
                "x": float(box[0]),
                "y": float(box[1]),
                "xref": "x",
                "yref": "y",
                "text": label_of(det),
                "showarrow": False,
                "xanchor": "left",
                "yanchor": "bottom",
                "bgcolor": rgba(hue, 0.85),
                "bordercolor": text_color(hue),
                "borderwidth": 1,
                "borderpad": 1,
                "font": {"size": 11, "color": text_color(hue)},
            }
        )
        if len(notes) == MAX_LABELS:
            break
    return notes[::-1]


# --------------------------------------------------------------------------- overlays


def decode_rle(mask: EncodedMask) -> np.ndarray:
    """A boolean (height, width) array from COCO's uncompressed, column-major RLE.

    Checked by :func:`jupyter_yolo.rle.decode`: a mask whose runs do not add up to its size, or
    whose size is over the limit, is a ValueError (never padded, truncated or allocated unbounded).
    """
    decoded: np.ndarray = _decode_checked(mask)
    return decoded


def png_uri(rgba_pixels: np.ndarray) -> str:
    """An RGBA (h, w, 4) uint8 array as a PNG ``data:`` URI."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rgba_pixels, "RGBA").save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _hex_rgb(hex_color: str) -> tuple[int, int, int]:
    return int(hex_color[1:3], 16), int(hex_color[3:5], 16), int(hex_color[5:7], 16)


def mask_overlay(detections: Sequence[Detection], width: int, height: int) -> str | None:
    """All instance masks as one translucent RGBA image (None when no detection has a mask)."""
    pixels = np.zeros((height, width, 4), dtype=np.uint8)
    drawn = False
    for det in reversed(detections[:MAX_BOXES_DRAWN]):  # the most confident ends on top
        encoded = det.get("mask")
        if not encoded or encoded.get("size") != [height, width]:
            continue
        try:
            mask = decode_rle(encoded)
        except ValueError:  # a damaged mask is left out; the outline still shows the instance
            continue
        pixels[mask] = (*_hex_rgb(color(det.get("cls"))), int(255 * MASK_ALPHA))
        drawn = True
    return png_uri(pixels) if drawn else None


def _viridis(values: np.ndarray) -> np.ndarray:
    """Viridis-like colours for values in 0-1 (five anchors, linear between them)."""
    anchors = np.array(
        [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], dtype=float
    )
    position = np.clip(values, 0, 1) * (len(anchors) - 1)
    low = np.floor(position).astype(int).clip(0, len(anchors) - 2)
    part = (position - low)[..., None]
    mixed: np.ndarray = (anchors[low] * (1 - part) + anchors[low + 1] * part).astype(np.uint8)
    return mixed


def pixel_map_overlay(png: bytes, geometry: str, alpha: float = 0.55) -> str:
    """A semantic class map (one class per pixel) or a depth map as a coloured RGBA overlay.

    Classes take the palette's colours (255, "ignore", stays clear); depth is scaled between
    its own minimum and maximum and coloured near (dark) to far (yellow).
    """
    from PIL import Image

    values = np.asarray(Image.open(io.BytesIO(png)))
    if values.ndim == 3:
        values = values[..., 0]
    pixels = np.zeros((*values.shape, 4), dtype=np.uint8)
    if geometry == "depth-map":
        data = values.astype(np.float64)
        valid = data > 0
        low = float(data[valid].min()) if valid.any() else 0.0
        high = float(data[valid].max()) if valid.any() else 1.0
        scaled = (data - low) / max(high - low, 1e-9)
        pixels[..., :3] = _viridis(scaled)
        pixels[..., 3] = np.where(valid, int(255 * alpha), 0)
    else:
        table = np.array([_hex_rgb(c) for c in PALETTE], dtype=np.uint8)
        classes = values.astype(np.int64)
        pixels[..., :3] = table[classes % len(PALETTE)]
        pixels[..., 3] = np.where(classes == 255, 0, int(255 * alpha))
    return png_uri(pixels)


def class_bars(classes: Sequence[ClassScore]) -> go.Bar:
    """Top-5 classes as horizontal bars, best on top, each labelled with its probability."""
    top = list(classes)[:5]
    return go.Bar(
        x=[float(c.get("prob") or 0) for c in top][::-1],
        y=[str(c.get("name")) for c in top][::-1],
        orientation="h",
        marker={"color": [color(c.get("cls")) for c in top][::-1]},
        text=[f"{float(c.get('prob') or 0):.1%}" for c in top][::-1],
        textposition="auto",
        hoverinfo="x+y",
        name="classes",
        showlegend=False,
    )


def scores_figure() -> LiveFigure:
    """The classification figure: empty bars, probability axis 0-1."""
    fig = live_figure(go.Figure(data=[go.Bar(x=[], y=[], orientation="h", name="classes")]))
    fig.update_layout(
        height=220,
        margin={"l": 110, "r": 20, "t": 30, "b": 30},
        template="plotly_white",
        xaxis={"range": [0, 1], "title": {"text": "probability"}},
        title={"text": "top-5 classes", "font": {"size": 13}},
    )
    return fig
