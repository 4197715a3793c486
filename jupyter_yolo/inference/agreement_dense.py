"""Agreement of whole-image outputs: classify (top-1), semantic (pixels), depth (relative).

Each image is one comparison: classify agrees on an image when both sides name the same top-1
class and its probability differs by at most ``tolerance.score``; semantic when at least
``tolerance.iou`` of the pixels carry the same class; depth when at least ``tolerance.iou`` of
the pixels are within ``tolerance.distance`` relative depth. A backend agrees when at least
``tolerance.share`` of the images do. Inputs are the per-image one-entry lists described in
:mod:`.agreement`; numpy arrays for the per-pixel outputs.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from .tolerance import Tolerance

Output = dict[str, Any]


def _verdict(
    agreeing: int, images: int, tol: Tolerance, min_compared: int
) -> tuple[bool | None, str | None]:
    needed = max(1, min_compared)
    if images < needed:
        return None, f"only {images} image(s) to compare (at least {needed} needed)"
    return agreeing / images >= tol.share, None


def _only(outputs: Sequence[Output]) -> Output | None:
    return outputs[0] if outputs else None


def compare_classes(
    reference: Sequence[Sequence[Output]],
    candidate: Sequence[Sequence[Output]],
    tol: Tolerance,
    *,
    min_compared: int = 1,
) -> dict[str, Any]:
    """Top-1 agreement and the top-1 probability difference, image by image."""
    images = agreeing = same = 0
    deltas: list[float] = []
    for ref_list, cand_list in zip(reference, candidate, strict=True):
        ref, cand = _only(ref_list), _only(cand_list)
        if ref is None or cand is None:
            continue
        images += 1
        probs = cand.get("probs") or []
        index = int(ref["cls"])
        cand_prob = float(probs[index]) if index < len(probs) else float(cand["conf"])
        delta = abs(cand_prob - float(ref["conf"]))
        deltas.append(delta)
        if int(cand["cls"]) == index:
            same += 1
            if delta <= tol.score:
                agreeing += 1
    agree, note = _verdict(agreeing, images, tol, min_compared)
    return {
        "agree": agree,
        "note": note,
        "measure": tol.measure,
        "compared_boxes": images,
        "compared_images": images,
        "top1_agreement": round(same / images, 4) if images else None,
        "recall": round(agreeing / images, 4) if images else 1.0,
        "precision": round(agreeing / images, 4) if images else 1.0,
        "threshold": None,
        "max_score_delta": round(max(deltas), 4) if deltas else None,
        "median_score_delta": round(statistics.median(deltas), 4) if deltas else None,
        "tolerance": tol.as_dict(),
        "images": len(reference),
    }


def _pixel_figures(
    shares: list[float], images: int, tol: Tolerance, min_compared: int, extra: dict[str, Any]
) -> dict[str, Any]:
    agreeing = sum(1 for share in shares if share >= tol.iou)
    agree, note = _verdict(agreeing, images, tol, min_compared)
    return {
        "agree": agree,
        "note": note,
        "measure": tol.measure,
        "compared_boxes": images,
        "compared_images": images,
        "recall": round(agreeing / images, 4) if images else 1.0,
        "precision": round(agreeing / images, 4) if images else 1.0,
        "threshold": None,
        "max_score_delta": None,
        "min_pixel_agreement": round(min(shares), 4) if shares else None,
        "mean_pixel_agreement": round(statistics.fmean(shares), 4) if shares else None,
        **extra,
        "tolerance": tol.as_dict(),
        "images": images,
    }


def compare_pixels(
    reference: Sequence[Sequence[Output]],
    candidate: Sequence[Sequence[Output]],
    tol: Tolerance,
    *,
    min_compared: int = 1,
) -> dict[str, Any]:
    """Share of pixels with the same class, image by image."""
    shares: list[float] = []
    for ref_list, cand_list in zip(reference, candidate, strict=True):
        ref, cand = _only(ref_list), _only(cand_list)
        if ref is None or cand is None:
            continue
        a, b = ref["pixels"], cand["pixels"]
        if a.shape != b.shape:
            shares.append(0.0)
            continue
        shares.append(float((a == b).mean()) if a.size else 1.0)
    return _pixel_figures(shares, len(shares), tol, min_compared, {})


def compare_depth(
    reference: Sequence[Sequence[Output]],
    candidate: Sequence[Sequence[Output]],
    tol: Tolerance,
    *,
    min_compared: int = 1,
) -> dict[str, Any]:
    """Share of pixels within ``tol.distance`` relative depth, image by image."""
    import numpy as np

    shares: list[float] = []
    worst = 0.0
    for ref_list, cand_list in zip(reference, candidate, strict=True):
        ref, cand = _only(ref_list), _only(cand_list)
        if ref is None or cand is None:
            continue
        a = np.asarray(ref["depth"], dtype=np.float64)
        b = np.asarray(cand["depth"], dtype=np.float64)
        if a.shape != b.shape:
            shares.append(0.0)
            continue
        relative = np.abs(a - b) / np.maximum(np.abs(a), 1e-6)
        worst = max(worst, float(np.median(relative)) if relative.size else 0.0)
        shares.append(float((relative <= tol.distance).mean()) if relative.size else 1.0)
    return _pixel_figures(
        shares, len(shares), tol, min_compared, {"max_median_relative_error": round(worst, 5)}
    )
