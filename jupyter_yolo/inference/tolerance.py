"""How close a backend's outputs must be to PyTorch's, per task and per precision.

Detection keeps its measured per-precision table (:data:`TOLERANCES`). Every other task starts
from its row of the contract's task table (``contract.tasks.profile(task).agreement``: the
measure, the match threshold and the value tolerance, all FP32 figures) and is loosened for
FP16 and INT8 the way detection is: the match threshold drops by as much as detection's IoU
does, score and distance tolerances grow to at least detection's, and the share of outputs
that must agree is detection's.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..contract.tasks import DEFAULT_TASK, profile


@dataclass(frozen=True)
class Tolerance:
    """How close two outputs must be to agree.

    ``iou``: the match threshold (box, mask or rotated-box IoU; for semantic and depth the share
    of pixels that must agree in an image); ``score``: the largest score or probability
    difference; ``share``: the fraction of outputs (instances, images) that must agree;
    ``distance``: pose, the largest keypoint distance as a fraction of the box size; depth, the
    largest relative depth difference of an agreeing pixel.
    """

    iou: float
    score: float
    share: float
    distance: float = 0.0
    measure: str = "box-iou"

    def as_dict(self) -> dict[str, float | str]:
        """JSON form."""
        out: dict[str, float | str] = {
            "measure": self.measure,
            "iou": self.iou,
            "score": self.score,
            "share": self.share,
        }
        if self.distance:
            out["distance"] = self.distance
        return out


#: Both sides predict the same square letterbox. FP32 exports compute the same function as
#: PyTorch up to rounding (scores within 1e-4 in practice); FP16 moves scores by about 1e-3;
#: INT8 moves boxes by a pixel or two (median IoU 0.99) and scores by a few hundredths (median
#: 0.02-0.04, single boxes up to 0.1-0.4), so it agrees when 80 % of the boxes stay within 0.15.
TOLERANCES: dict[str, Tolerance] = {
    "fp32": Tolerance(iou=0.8, score=0.02, share=0.9),
    "fp16": Tolerance(iou=0.7, score=0.05, share=0.9),
    "int8": Tolerance(iou=0.7, score=0.15, share=0.8),
}


def tolerance_for(task: str | None, precision: str) -> Tolerance:
    """The tolerance a ``precision`` export of a ``task`` model is judged with."""
    base = TOLERANCES[precision]
    name = task or DEFAULT_TASK
    if name == DEFAULT_TASK:
        return base
    rule = profile(name).agreement
    loosen = TOLERANCES["fp32"].iou - base.iou
    lossy = precision != "fp32"
    if rule.measure == "top1":
        return Tolerance(1.0, max(rule.tolerance, base.score), base.share, 0.0, rule.measure)
    if rule.measure == "keypoint-distance":
        distance = rule.tolerance * (2 if lossy else 1)
        match = round(rule.match - loosen, 4)
        return Tolerance(match, base.score, base.share, distance, rule.measure)
    if rule.measure == "pixel-agreement":
        return Tolerance(round(rule.match - loosen / 2, 4), 0.0, base.share, 0.0, rule.measure)
    if rule.measure == "relative-depth":
        distance = rule.tolerance * (2 if lossy else 1)
        return Tolerance(round(rule.match - loosen / 2, 4), 0.0, base.share, distance, rule.measure)
    score = max(rule.tolerance, base.score)
    return Tolerance(round(rule.match - loosen, 4), score, base.share, 0.0, rule.measure)
