"""Do a backend's detections agree with PyTorch's? Boxes matched by IoU, scores compared.

Detections are the runner's JSON form, ``{"cls", "conf", "box_xyxy"}``, one list per image, and
both sides were predicted at the same low confidence floor. The check runs both ways:

* every *confident* reference box (score at least ``threshold``) needs a candidate box of the same
  class with IoU at least ``tolerance.iou`` and a score within ``tolerance.score``;
* every confident candidate box needs such a reference box.

The counterpart may have any score above the floor, so a box that scores 0.26 on one side and
0.24 on the other (threshold 0.25) agrees instead of counting as missing. Matching is greedy,
one-to-one, highest score first, best IoU. A side passes when at least ``tolerance.share`` of its
confident boxes found a counterpart.

The threshold starts at ``threshold`` and is lowered until ``min_boxes`` reference boxes are in
(never below ``floor + tolerance.score``), so a weak model still gives something to compare;
the count of compared boxes is part of the result.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

Detection = dict[str, Any]


@dataclass(frozen=True)
class Tolerance:
    """How close two detections must be to agree."""

    iou: float
    score: float
    share: float

    def as_dict(self) -> dict[str, float]:
        """JSON form."""
        return {"iou": self.iou, "score": self.score, "share": self.share}


#: Both sides predict the same square letterbox. FP32 exports compute the same function as
#: PyTorch up to rounding (scores within 1e-4 in practice); FP16 moves scores by about 1e-3;
#: INT8 moves boxes by a pixel or two (median IoU 0.99) and scores by a few hundredths (median
#: 0.02-0.04, single boxes up to 0.1-0.4), so it agrees when 80 % of the boxes stay within 0.15.
TOLERANCES: dict[str, Tolerance] = {
    "fp32": Tolerance(iou=0.8, score=0.02, share=0.9),
    "fp16": Tolerance(iou=0.7, score=0.05, share=0.9),
    "int8": Tolerance(iou=0.7, score=0.15, share=0.8),
}
DEFAULT_THRESHOLD = 0.25
MIN_BOXES = 10


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two ``x0, y0, x1, y1`` boxes."""
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _match(
    confident: list[Detection], others: list[Detection], tol: Tolerance
) -> tuple[int, list[float], list[float]]:
    """Greedy one-to-one matching; returns (agreeing count, |score deltas|, IoUs) of matches."""
    used: set[int] = set()
    agreed = 0
    deltas: list[float] = []
    ious: list[float] = []
    for det in sorted(confident, key=lambda d: -float(d["conf"])):
        best, best_iou = -1, tol.iou
        for index, other in enumerate(others):
            if index in used or int(other["cls"]) != int(det["cls"]):
                continue
            overlap = iou(det["box_xyxy"], other["box_xyxy"])
            if overlap >= best_iou:
                best, best_iou = index, overlap
        if best < 0:
            continue
        used.add(best)
        delta = abs(float(others[best]["conf"]) - float(det["conf"]))
        deltas.append(delta)
        ious.append(best_iou)
        if delta <= tol.score:
            agreed += 1
    return agreed, deltas, ious


def choose_threshold(
    reference: Sequence[Sequence[Detection]],
    tol: Tolerance,
    *,
    threshold: float,
    floor: float,
    min_boxes: int,
) -> float:
    """The comparison threshold for ``reference``.

    ``threshold``, lowered to the ``min_boxes``-th best reference score, never below
    ``floor + tol.score``.
    """
    lowest = min(threshold, floor + tol.score)
    scores = sorted((float(d["conf"]) for image in reference for d in image), reverse=True)
    if len(scores) >= min_boxes and scores[min_boxes - 1] >= threshold:
        return threshold
    kth = scores[min(min_boxes, len(scores)) - 1] if scores else lowest
    return round(max(lowest, min(threshold, kth)), 4)


def compare(
    reference: Sequence[Sequence[Detection]],
    candidate: Sequence[Sequence[Detection]],
    tol: Tolerance,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    floor: float = 0.0,
    min_boxes: int = MIN_BOXES,
    min_compared: int = 1,
) -> dict[str, Any]:
    """Compare per-image detection lists; returns figures and ``agree``.

    ``agree`` is None when fewer than ``min_compared`` boxes were compared (too little evidence
    for a verdict); the caller decides what that means for a backend.
    """
    if len(reference) != len(candidate):
        raise ValueError("reference and candidate must cover the same images")
    t = choose_threshold(reference, tol, threshold=threshold, floor=floor, min_boxes=min_boxes)
    ref_total = cand_total = ref_ok = cand_ok = 0
    deltas: list[float] = []
    ious: list[float] = []
    for ref, cand in zip(reference, candidate, strict=True):
        ref_conf = [d for d in ref if float(d["conf"]) >= t]
        cand_conf = [d for d in cand if float(d["conf"]) >= t]
        ok, d1, i1 = _match(ref_conf, list(cand), tol)
        ref_total += len(ref_conf)
        ref_ok += ok
        deltas += d1
        ious += i1
        ok, _, _ = _match(cand_conf, list(ref), tol)
        cand_total += len(cand_conf)
        cand_ok += ok
    recall = ref_ok / ref_total if ref_total else 1.0
    precision = cand_ok / cand_total if cand_total else 1.0
    compared = ref_total + cand_total
    needed = max(1, min_compared)
    agree = (recall >= tol.share and precision >= tol.share) if compared >= needed else None
    note = (
        None
        if agree is not None
        else (f"only {compared} box(es) to compare (at least {needed} needed)")
    )
    return {
        "agree": agree,
        "note": note,
        "compared_boxes": compared,
        "reference_boxes": ref_total,
        "candidate_boxes": cand_total,
        "recall": round(recall, 4),
        "precision": round(precision, 4),
        "threshold": t,
        "max_score_delta": round(max(deltas), 4) if deltas else None,
        "median_score_delta": round(statistics.median(deltas), 4) if deltas else None,
        "median_iou": round(statistics.median(ious), 4) if ious else None,
        "tolerance": tol.as_dict(),
        "images": len(reference),
    }
