"""Text views of a prediction: the backend line, the figure title and the results table."""

from __future__ import annotations

import posixpath
from typing import Any

from .common import esc, table

NO_OBJECTS = frozenset({"class-scores", "pixel-map", "depth-map"})
"""Geometries whose predictions carry no objects to filter by confidence and class."""


def backend_html(report: dict[str, Any] | None, *, stored: bool = False) -> str:
    """Which backend ran (or the stored choice), why, and the measured median latencies."""
    if not report:
        return ""
    name = str(report.get("name") or report.get("choice") or "")
    requested = report.get("requested")
    if stored:
        how = f"auto chose <b>{esc(name)}</b> when measured at imgsz {esc(report.get('imgsz'))}"
    elif report.get("standin"):  # PyTorch answered while auto is prepared in the background
        how = f"backend <b>{esc(name)}</b> (stand-in for auto: {esc(report.get('note'))})"
    elif requested == "auto":
        state = "reused the stored measurement" if report.get("cached") else "measured now"
        how = f"backend <b>{esc(name)}</b> (auto, {state})"
    else:
        how = f"backend <b>{esc(name)}</b> (forced)"
    latency = report.get("latency_ms") or {}
    parts = []
    for backend, value in sorted(latency.items(), key=lambda item: float(item[1])):
        text = f"{esc(backend)} {float(value):.1f} ms"
        parts.append(f"<b>{text}</b>" if backend == name else text)
    agreement = report.get("agreement") or {}
    disagree = [
        esc(n) for n, a in agreement.items() if isinstance(a, dict) and a.get("agree") is False
    ]
    undecided = [
        f"{esc(n)} ({esc(a.get('note'))})"
        for n, a in agreement.items()
        if isinstance(a, dict) and a.get("agree") is None and a.get("note")
    ]
    skipped = report.get("skipped") or {}
    lines = [how + (": " + ", ".join(parts) if parts else "")]
    if disagree:
        lines.append("not agreeing with PyTorch: " + ", ".join(disagree))
    if undecided:
        lines.append("no verdict: " + "; ".join(undecided))
    if skipped:
        lines.append("left out: " + "; ".join(f"{esc(k)} ({esc(v)})" for k, v in skipped.items()))
    return '<div class="yolo-muted yolo-backend">' + "<br>".join(lines) + "</div>"


def summary_value(value: Any) -> str:
    """A map summary figure as a person reads it: shares as percentages, numbers rounded."""
    if isinstance(value, dict):
        ranked = sorted(value.items(), key=lambda item: -float(item[1] or 0))
        return ", ".join(f"{k} {float(v or 0):.0%}" for k, v in ranked[:5])
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def title_text(path: str, entry: dict[str, Any], shown: list[Any], geometry: str) -> str:
    """The figure title: the image and what it shows (top class, map summary, counts)."""
    name = posixpath.basename(path)
    classes = entry.get("classes") or []
    if geometry == "class-scores" and classes:
        best = classes[0]
        return f"{name}: {best.get('name')} {float(best.get('prob') or 0):.1%}"
    pixel_map = entry.get("pixel_map") or {}
    if geometry in ("pixel-map", "depth-map"):
        summary = pixel_map.get("summary") or {}
        facts = "; ".join(f"{k} {summary_value(v)}" for k, v in list(summary.items())[:4])
        return f"{name}: {facts}" if facts else name
    count = len(entry.get("detections") or [])
    return f"{name}: {len(shown)} of {count} objects"


def results_table(entry: dict[str, Any], shown: list[dict[str, Any]], geometry: str) -> str:
    """The table under the figure: objects, class probabilities or the map summary."""
    if geometry == "class-scores":
        classes = entry.get("classes") or []
        return (
            table(
                [
                    [i + 1, c.get("name"), f"{float(c.get('prob') or 0):.3f}"]
                    for i, c in enumerate(classes)
                ],
                ["#", "class", "probability"],
            )
            if classes
            else '<div class="yolo-muted">No class scores.</div>'
        )
    if geometry in ("pixel-map", "depth-map"):
        summary = (entry.get("pixel_map") or {}).get("summary") or {}
        rows = [[k, summary_value(v)] for k, v in summary.items()]
        return table(rows, ["", "value"]) if rows else ""
    if not shown:
        return '<div class="yolo-muted">No detection above the threshold.</div>'
    extra = {"polygon": "points", "keypoints": "keypoints", "rotated-box": "angle"}.get(geometry)
    rows = []
    for i, d in enumerate(shown[:50]):
        row: list[Any] = [
            i + 1,
            d.get("name"),
            f"{float(d.get('conf') or 0):.3g}",
            ", ".join(f"{v:.0f}" for v in d["box_xyxy"] if v is not None),
        ]
        if extra == "points":
            row.append(len(d.get("polygon") or []))
        elif extra == "keypoints":
            points = d.get("keypoints") or []
            row.append(f"{sum(1 for p in points if len(p) < 3 or p[2] >= 0.5)}/{len(points)}")
        elif extra == "angle":
            angle = d.get("angle")
            row.append(f"{float(angle) * 57.29578:.1f}\u00b0" if angle is not None else "")
        rows.append(row)
    header = ["#", "class", "confidence", "box x0, y0, x1, y1"] + ([extra] if extra else [])
    return table(rows, header)
