"""The agreement measure of each task on hand-made outputs with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from jupyter_yolo.contract.tasks import TASK_NAMES, profile
from jupyter_yolo.inference.agreement import TOLERANCES, compare, tolerance_for
from jupyter_yolo.inference.geometry import (
    box_iou,
    clip_convex,
    corners_xywhr,
    keypoints_agree,
    mask_iou,
    polygon_area,
    rotated_iou,
)


def test_every_task_has_a_tolerance_per_precision_fp32_strictest() -> None:
    for task in TASK_NAMES:
        fp32, int8 = tolerance_for(task, "fp32"), tolerance_for(task, "int8")
        assert fp32.measure == (profile(task).agreement.measure if task != "detect" else "box-iou")
        assert int8.iou <= fp32.iou and int8.share <= fp32.share
        assert int8.score >= fp32.score and int8.distance >= fp32.distance
    assert tolerance_for("detect", "fp16") == TOLERANCES["fp16"]
    assert tolerance_for(None, "fp32") == TOLERANCES["fp32"]


# ------------------------------------------------------------------------------- rotated IoU
def test_rotated_square_against_itself_and_rotated_by_45_degrees() -> None:
    square = corners_xywhr(0, 0, 2, 2, 0.0)
    assert rotated_iou(square, square) == pytest.approx(1.0)
    assert rotated_iou(square, corners_xywhr(0, 0, 2, 2, math.pi / 2)) == pytest.approx(1.0)
    # a square and itself turned 45 degrees: the intersection is a regular octagon
    octagon = 8 * (math.sqrt(2) - 1)  # area of the octagon inside a square of side 2
    expected = octagon / (4 + 4 - octagon)
    turned = corners_xywhr(0, 0, 2, 2, math.pi / 4)
    assert rotated_iou(square, turned) == pytest.approx(expected, abs=1e-9)
    assert rotated_iou(turned, square) == pytest.approx(expected, abs=1e-9)


def test_rotated_iou_of_shifted_disjoint_and_clockwise_boxes() -> None:
    a = [[0, 0], [2, 0], [2, 2], [0, 2]]
    shifted = [[1, 0], [3, 0], [3, 2], [1, 2]]
    assert rotated_iou(a, shifted) == pytest.approx(1 / 3)
    assert rotated_iou(a, [[5, 5], [6, 5], [6, 6], [5, 6]]) == 0.0
    assert rotated_iou(a, shifted[::-1]) == pytest.approx(1 / 3)  # orientation does not matter
    assert rotated_iou(a, [[0, 0], [1, 1], [2, 2], [0, 0]]) == 0.0  # a quadrilateral of no area
    assert abs(polygon_area(clip_convex(a, shifted))) == pytest.approx(2.0)
    line = [[0, 0], [2, 0], [2, 0], [0, 0]]  # obb heads can predict a box of no height
    assert rotated_iou(line, line) == 1.0 and rotated_iou(line, a) == 0.0


def test_rotated_iou_matches_a_raster_estimate() -> None:
    a = corners_xywhr(10, 10, 8, 4, 0.3)
    b = corners_xywhr(11, 10.5, 7, 5, -0.4)
    ys, xs = np.mgrid[0:20:0.02, 0:20:0.02]

    def inside(quad: list[list[float]]) -> np.ndarray:
        ok = np.ones_like(xs, dtype=bool)
        ring = quad if polygon_area(quad) > 0 else quad[::-1]
        for i in range(4):
            (x0, y0), (x1, y1) = ring[i], ring[(i + 1) % 4]
            ok &= (x1 - x0) * (ys - y0) - (y1 - y0) * (xs - x0) >= 0
        return ok

    ma, mb = inside(a), inside(b)
    assert rotated_iou(a, b) == pytest.approx(mask_iou(ma, mb), abs=0.01)


# ------------------------------------------------------------------------------- masks, keypoints
def test_mask_iou_known_values() -> None:
    a = np.zeros((10, 10), bool)
    b = np.zeros((10, 10), bool)
    a[0:4, 0:4] = True
    b[2:6, 0:4] = True
    assert mask_iou(a, b) == pytest.approx(8 / 24)
    assert mask_iou(a, a) == 1.0
    assert mask_iou(np.zeros((3, 3), bool), np.zeros((3, 3), bool)) == 0.0
    with pytest.raises(ValueError):
        mask_iou(a, np.zeros((5, 5), bool))


def test_keypoints_within_a_share_of_the_box_size() -> None:
    box = [0, 0, 100, 100]  # size 100: 5 % is 5 px
    ref = [[10, 10, 0.9], [50, 50, 0.9], [90, 90, 0.1]]
    near = [[13, 14, 0.9], [50, 50, 0.9], [0, 0, 0.1]]  # 5 px off; the invisible one moved
    assert keypoints_agree(ref, near, box, distance=0.05) == (2, 2, pytest.approx(0.05))
    far = [[20, 10, 0.9], [50, 50, 0.9], [90, 90, 0.9]]
    good, shown, worst = keypoints_agree(ref, far, box, distance=0.05)
    assert (good, shown) == (1, 2) and worst == pytest.approx(0.1)


# ------------------------------------------------------------------------------- compare per task
def seg(cls: int, conf: float, rows: slice) -> dict[str, object]:
    mask = np.zeros((40, 40), bool)
    mask[rows, 0:20] = True
    box = [0.0, float(rows.start), 20.0, float(rows.stop)]
    return {"cls": cls, "conf": conf, "box_xyxy": box, "mask": mask}


def test_segment_instances_are_matched_by_mask_iou() -> None:
    tol = tolerance_for("segment", "fp32")
    ref = [[seg(0, 0.9, slice(0, 10)), seg(1, 0.8, slice(20, 30))]]
    same = compare(ref, ref, tol, min_boxes=1)
    assert same["agree"] is True and same["median_iou"] == 1.0 and same["measure"] == "mask-iou"
    # the second mask moved by 5 of its 10 rows: mask IoU 1/3, under the threshold
    moved = [[seg(0, 0.9, slice(0, 10)), seg(1, 0.8, slice(25, 35))]]
    result = compare(ref, moved, tol, min_boxes=1)
    assert result["agree"] is False and result["recall"] == 0.5
    rescored = [[seg(0, 0.5, slice(0, 10)), seg(1, 0.8, slice(20, 30))]]
    assert compare(ref, rescored, tol, min_boxes=1)["agree"] is False


def test_pose_instances_need_their_visible_keypoints_in_place() -> None:
    tol = tolerance_for("pose", "fp32")
    person = {"cls": 0, "conf": 0.9, "box_xyxy": [0, 0, 100, 100], "keypoints": [[10, 10, 0.9]]}
    assert compare([[person]], [[person]], tol, min_boxes=1)["keypoint_agreement"] == 1.0
    off = {**person, "keypoints": [[30, 10, 0.9]]}
    result = compare([[person]], [[off]], tol, min_boxes=1)
    assert result["agree"] is False and result["max_keypoint_distance"] == pytest.approx(0.2)


def test_obb_instances_are_matched_by_rotated_iou() -> None:
    tol = tolerance_for("obb", "fp32")

    def rbox(r: float) -> dict[str, object]:
        return {
            "cls": 0,
            "conf": 0.9,
            "box_xyxy": [0, 0, 4, 4],
            "corners": corners_xywhr(2, 2, 4, 1, r),
        }

    assert compare([[rbox(0.3)]], [[rbox(0.3)]], tol, min_boxes=1)["agree"] is True
    # the same axis-aligned box but a thin box turned a right angle: rotated IoU 1/7
    assert compare([[rbox(0.0)]], [[rbox(math.pi / 2)]], tol, min_boxes=1)["agree"] is False


def test_classify_top1_and_its_probability() -> None:
    tol = tolerance_for("classify", "fp32")

    def top(cls: int, probs: list[float]) -> list[dict[str, object]]:
        return [{"cls": cls, "conf": probs[cls], "probs": probs}]

    ref = [top(0, [0.7, 0.3]), top(1, [0.2, 0.8])]
    same = compare(ref, ref, tol)
    assert same["agree"] is True and same["top1_agreement"] == 1.0 and same["max_score_delta"] == 0
    flipped = [top(0, [0.7, 0.3]), top(0, [0.6, 0.4])]
    result = compare(ref, flipped, tol)
    assert result["agree"] is False and result["top1_agreement"] == 0.5
    assert result["max_score_delta"] == pytest.approx(0.4)
    shifted = [top(0, [0.6, 0.4]), top(1, [0.2, 0.8])]
    assert compare(ref, shifted, tol)["agree"] is False  # same class, probability 0.1 away


def test_semantic_pixels_and_relative_depth() -> None:
    tol = tolerance_for("semantic", "fp32")
    classes = np.zeros((10, 10), np.uint8)
    changed = classes.copy()
    changed[0, :3] = 1  # 3 % of the pixels
    assert compare([[{"pixels": classes}]], [[{"pixels": changed}]], tol)["agree"] is True
    changed[:2] = 1  # 20 %
    result = compare([[{"pixels": classes}]], [[{"pixels": changed}]], tol)
    assert result["agree"] is False and result["min_pixel_agreement"] == 0.8
    depth_tol = tolerance_for("depth", "fp32")
    depth = np.full((10, 10), 2.0)
    assert compare([[{"depth": depth}]], [[{"depth": depth * 1.01}]], depth_tol)["agree"] is True
    assert compare([[{"depth": depth}]], [[{"depth": depth * 1.2}]], depth_tol)["agree"] is False


def test_box_iou_is_unchanged() -> None:
    assert box_iou([0, 0, 2, 2], [1, 0, 3, 2]) == pytest.approx(1 / 3)
