"""Do a backend's outputs agree with PyTorch's? Measured the way the task's output is shaped.

Outputs are one list per image. Instance tasks (detect, segment, pose, obb) list instances
``{"cls", "conf", "box_xyxy"}`` plus ``mask`` (a boolean array at the original image size),
``keypoints`` (``[x, y, conf]`` per keypoint) or ``corners`` (four ``[x, y]``); classify lists
one entry ``{"cls", "conf", "probs"}`` (top-1 class, its probability, all probabilities),
semantic one ``{"pixels"}`` (class index per pixel), depth one ``{"depth"}`` (per pixel). Both
sides were predicted at the same low confidence floor. The tolerance
(:func:`.tolerance.tolerance_for`) names the measure.

Instance tasks are checked both ways:

* every *confident* reference instance (score at least ``threshold``) needs a candidate instance
  of the same class overlapping it by at least ``tolerance.iou`` (box IoU for detect and pose,
  mask IoU for segment, rotated-box IoU for obb) with a score within ``tolerance.score`` (pose:
  and every visible keypoint within ``tolerance.distance`` of the box size);
* every confident candidate instance needs such a reference instance.

The counterpart may have any score above the floor, so an instance that scores 0.26 on one side
and 0.24 on the other (threshold 0.25) agrees instead of counting as missing. Matching is greedy,
one-to-one, highest score first, best overlap. A side passes when at least ``tolerance.share`` of
its confident instances found a counterpart.

The threshold starts at ``threshold`` and is lowered until ``min_boxes`` reference instances are
in (never below ``floor + tolerance.score``), so a weak model still gives something to compare;
the count of compared instances is part of the result. Classify, semantic and depth compare
every image (:mod:`.agreement_dense`).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from typing import Any

from .agreement_dense import compare_classes, compare_depth, compare_pixels
from .geometry import box_iou, keypoints_agree, mask_iou, rotated_iou
from .tolerance import TOLERANCES, Tolerance, tolerance_for

__all__ = [
    "DEFAULT_THRESHOLD",
    "MIN_BOXES",
    "TOLERANCES",
    "Tolerance",
    "choose_threshold",
    "compare",
    "iou",
    "tolerance_for",
]

Detection = dict[str, Any]
DEFAULT_THRESHOLD = 0.25
MIN_BOXES = 10
iou = box_iou  # the name older callers import


def _overlap(measure: str) -> Callable[[Detection, Detection], float]:
    """The overlap of two instances under ``measure``."""
    if measure == "mask-iou":

        def masks(a: Detection, b: Detection) -> float:
            if box_iou(a["box_xyxy"], b["box_xyxy"]) <= 0:
                return 0.0
            return mask_iou(a["mask"], b["mask"])

        return masks
    if measure == "rotated-iou":
        return lambda a, b: rotated_iou(a["corners"], b["corners"])
    return lambda a, b: box_iou(a["box_xyxy"], b["box_xyxy"])


class _Matches:
    """What one direction of the matching found."""

    def __init__(self) -> None:
        self.agreed = 0
        self.deltas: list[float] = []
        self.overlaps: list[float] = []
        self.keypoints = 0
        self.keypoints_ok = 0
        self.keypoint_gap = 0.0


def _match(
    confident: list[Detection],
    others: list[Detection],
    tol: Tolerance,
    found: _Matches,
) -> None:
    """Greedy one-to-one matching of ``confident`` against ``others``, added to ``found``."""
    overlap_of = _overlap(tol.measure)
    used: set[int] = set()
    for det in sorted(confident, key=lambda d: -float(d["conf"])):
        best, best_overlap = -1, tol.iou
        for index, other in enumerate(others):
            if index in used or int(other["cls"]) != int(det["cls"]):
                continue
            overlap = overlap_of(det, other)
            if overlap >= best_overlap:
                best, best_overlap = index, overlap
        if best < 0:
            continue
        used.add(best)
        delta = abs(float(others[best]["conf"]) - float(det["conf"]))
        found.deltas.append(delta)
        found.overlaps.append(best_overlap)
        ok = delta <= tol.score
        if tol.measure == "keypoint-distance":
            good, shown, gap = keypoints_agree(
                det.get("keypoints") or [],
                others[best].get("keypoints") or [],
                det["box_xyxy"],
                distance=tol.distance,
            )
            found.keypoints += shown
            found.keypoints_ok += good
            found.keypoint_gap = max(found.keypoint_gap, gap)
            ok = ok and good == shown
        if ok:
            found.agreed += 1


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
    """Compare per-image outputs by ``tol.measure``; returns figures and ``agree``.

    ``agree`` is None when fewer than ``min_compared`` outputs were compared (too little
    evidence for a verdict); the caller decides what that means for a backend.
    """
    if len(reference) != len(candidate):
        raise ValueError("reference and candidate must cover the same images")
    if tol.measure == "top1":
        return compare_classes(reference, candidate, tol, min_compared=min_compared)
    if tol.measure == "pixel-agreement":
        return compare_pixels(reference, candidate, tol, min_compared=min_compared)
    if tol.measure == "relative-depth":
        return compare_depth(reference, candidate, tol, min_compared=min_compared)
    t = choose_threshold(reference, tol, threshold=threshold, floor=floor, min_boxes=min_boxes)
    ref_total = cand_total = 0
    forward, backward = _Matches(), _Matches()
    for ref, cand in zip(reference, candidate, strict=True):
        ref_conf = [d for d in ref if float(d["conf"]) >= t]
        cand_conf = [d for d in cand if float(d["conf"]) >= t]
        _match(ref_conf, list(cand), tol, forward)
        ref_total += len(ref_conf)
        _match(cand_conf, list(ref), tol, backward)
        cand_total += len(cand_conf)
    recall = forward.agreed / ref_total if ref_total else 1.0
    precision = backward.agreed / cand_total if cand_total else 1.0
    compared = ref_total + cand_total
    needed = max(1, min_compared)
    agree = (recall >= tol.share and precision >= tol.share) if compared >= needed else None
    note = None
    if agree is None:
        what = "box(es)" if tol.measure == "box-iou" else "instance(s)"
        note = f"only {compared} {what} to compare (at least {needed} needed)"
    deltas, overlaps = forward.deltas, forward.overlaps
    figures: dict[str, Any] = {
        "agree": agree,
        "note": note,
        "measure": tol.measure,
        "compared_boxes": compared,
        "reference_boxes": ref_total,
        "candidate_boxes": cand_total,
        "recall": round(recall, 4),
        "precision": round(precision, 4),
        "threshold": t,
        "max_score_delta": round(max(deltas), 4) if deltas else None,
        "median_score_delta": round(statistics.median(deltas), 4) if deltas else None,
        "median_iou": round(statistics.median(overlaps), 4) if overlaps else None,
        "min_iou": round(min(overlaps), 4) if overlaps else None,
        "tolerance": tol.as_dict(),
        "images": len(reference),
    }
    if tol.measure == "keypoint-distance":
        shown = forward.keypoints
        figures["keypoints_compared"] = shown
        figures["keypoint_agreement"] = round(forward.keypoints_ok / shown, 4) if shown else None
        figures["max_keypoint_distance"] = round(forward.keypoint_gap, 4) if shown else None
    return figures
