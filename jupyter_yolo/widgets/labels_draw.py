"""Predictions and ground truth drawn into an image's pixels, for the gallery's thumbnails.

Readable on any background: every box is a class-coloured line over a dark halo (a green box
on a green shape still shows), every label is ``name conf`` in contrasting text on a filled
box of the class colour with a dark outline, and ground-truth boxes are dashed. Pillow only
(its built-in font: no font file, no emoji).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any

from .drawing import color, text_color

THUMB = 176
"""The longest side of a gallery thumbnail, in pixels."""
HALO = (20, 20, 20)
DASH = 6


def _rgb(hex_color: str) -> tuple[int, int, int]:
    return int(hex_color[1:3], 16), int(hex_color[3:5], 16), int(hex_color[5:7], 16)


def decode_data_uri(uri: str) -> bytes:
    """The bytes of a ``data:...;base64,`` URI."""
    return base64.b64decode(uri.split(",", 1)[1])


def _dashed_rect(draw: Any, box: Sequence[float], fill: tuple[int, int, int], width: int) -> None:
    x0, y0, x1, y1 = box
    for (ax, ay), (bx, by) in (
        ((x0, y0), (x1, y0)),
        ((x1, y0), (x1, y1)),
        ((x1, y1), (x0, y1)),
        ((x0, y1), (x0, y0)),
    ):
        length = max(abs(bx - ax), abs(by - ay))
        steps = max(int(length // DASH), 1)
        for i in range(0, steps, 2):
            s, e = i / steps, min((i + 1) / steps, 1.0)
            draw.line(
                [
                    (ax + (bx - ax) * s, ay + (by - ay) * s),
                    (ax + (bx - ax) * e, ay + (by - ay) * e),
                ],
                fill=fill,
                width=width,
            )


def truth_boxes(
    truth: Sequence[dict[str, Any]], width: float, height: float
) -> list[dict[str, Any]]:
    """A dataset sample's labels (``xywhn``) as boxes in pixels of a width x height image."""
    boxes = []
    for label in truth:
        xywhn = label.get("xywhn") or []
        if len(xywhn) != 4:
            continue
        cx, cy, w, h = (float(v) for v in xywhn)
        boxes.append(
            {
                "cls": int(label.get("class_id") or 0),
                "name": str(label.get("class_name") or label.get("class_id")),
                "box_xyxy": [
                    (cx - w / 2) * width,
                    (cy - h / 2) * height,
                    (cx + w / 2) * width,
                    (cy + h / 2) * height,
                ],
            }
        )
    return boxes


def annotate(
    image: bytes,
    detections: Sequence[dict[str, Any]],
    *,
    size: tuple[int, int] | None = None,
    truth: Sequence[dict[str, Any]] = (),
    longest: int = THUMB,
) -> bytes:
    """``image`` scaled to ``longest`` px (up or down) with its boxes and labels drawn; PNG.

    Boxes are in pixels of the original image, whose ``size`` (width, height) defaults to
    ``image``'s own (give it when ``image`` is already a thumbnail).
    """
    from PIL import Image, ImageDraw, ImageFont

    with Image.open(io.BytesIO(image)) as opened:
        picture = opened.convert("RGB")
    original = size or picture.size
    scale = longest / max(picture.size)  # small images grow too: labels keep their pixel size
    resized = (max(round(picture.size[0] * scale), 1), max(round(picture.size[1] * scale), 1))
    resample = Image.Resampling.NEAREST if scale > 1 else Image.Resampling.BILINEAR
    picture = picture.resize(resized, resample)
    scale_x = picture.size[0] / max(float(original[0]), 1.0)
    scale_y = picture.size[1] / max(float(original[1]), 1.0)
    draw = ImageDraw.Draw(picture)
    font = ImageFont.load_default(size=11)

    def scaled(det: dict[str, Any]) -> list[float]:
        x0, y0, x1, y1 = (float(v) for v in det["box_xyxy"])
        return [x0 * scale_x, y0 * scale_y, x1 * scale_x, y1 * scale_y]

    for det in truth:
        box = scaled(det)
        _dashed_rect(draw, box, HALO, 4)
        _dashed_rect(draw, box, _rgb(color(det.get("cls"))), 2)
    ordered = sorted(detections, key=lambda d: float(d.get("conf") or 0))  # best drawn last
    for det in ordered:
        draw.rectangle(scaled(det), outline=HALO, width=4)
        draw.rectangle(scaled(det), outline=_rgb(color(det.get("cls"))), width=2)
    for det in ordered:
        hue = color(det.get("cls"))
        x0, y0, _, _ = scaled(det)
        text = f"{det.get('name')} {float(det.get('conf') or 0):.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        w, h = right - left + 4, bottom - top + 4
        y = y0 - h if y0 - h >= 0 else y0  # above the box, inside it at the top edge
        x = min(max(x0, 0), max(picture.size[0] - w, 0))
        draw.rectangle([x, y, x + w, y + h], fill=_rgb(hue), outline=HALO, width=1)
        draw.text((x + 2 - left, y + 2 - top), text, font=font, fill=_rgb(text_color(hue)))
    out = io.BytesIO()
    picture.save(out, format="PNG")
    return out.getvalue()


def legend_html(names: dict[int, str], present: set[int] | None = None) -> str:
    """The classes as coloured swatches with their names (those in ``present`` in bold)."""
    if not names:
        return ""
    items = []
    for cls, name in sorted(names.items()):
        hue = color(cls)
        swatch = (
            f'<span style="display:inline-block;width:11px;height:11px;background:{hue};'
            'border:1px solid #222;margin-right:4px;vertical-align:-1px"></span>'
        )
        label = f"<b>{_esc(name)}</b>" if present and cls in present else _esc(name)
        items.append(f'<span style="margin-right:12px;white-space:nowrap">{swatch}{label}</span>')
    dashed = (
        '<span style="margin-left:8px;white-space:nowrap;color:#555">'
        '<span style="display:inline-block;width:16px;border-top:2px dashed #555;'
        'vertical-align:3px;margin-right:4px"></span>ground truth</span>'
    )
    return (
        '<div class="yolo-legend" style="font-size:12px;margin:2px 0">classes: '
        + "".join(items)
        + dashed
        + "</div>"
    )


def _esc(text: Any) -> str:
    from html import escape

    return escape(str(text))
