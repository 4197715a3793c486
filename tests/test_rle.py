"""The one checked RLE module: round trips of both COCO forms, hostile sizes and counts refused."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from jupyter_yolo.rle import MAX_PIXELS, MAX_SIDE, area, counts_from_string, decode, encode
from jupyter_yolo.widgets.drawing import decode_rle, mask_overlay


def to_string(counts: list[int]) -> str:
    """pycocotools' rleToString, written out here so the decoder is checked against it."""
    out = []
    for index, count in enumerate(counts):
        value = count - counts[index - 2] if index > 2 else count
        more = True
        while more:
            char = value & 0x1F
            value >>= 5
            more = not (((char & 0x10) == 0 and value == 0) or ((char & 0x10) and value == -1))
            if more:
                char |= 0x20
            out.append(chr(char + 48))
    return "".join(out)


@pytest.mark.parametrize("shape", [(1, 1), (5, 7), (48, 64), (23, 17)])
@pytest.mark.parametrize("fill", [0.0, 0.3, 0.7, 1.0])
def test_round_trips_both_forms(shape: tuple[int, int], fill: float) -> None:
    mask = np.random.default_rng(1).random(shape) < fill
    rle = encode(mask)
    assert sum(rle["counts"]) == mask.size and area(rle) == int(mask.sum())
    assert np.array_equal(decode(rle), mask)
    compressed = {"size": rle["size"], "counts": to_string(rle["counts"])}
    assert counts_from_string(compressed["counts"]) == rle["counts"]
    assert np.array_equal(decode(compressed), mask)
    assert np.array_equal(decode_rle(rle), mask)


def test_encode_is_column_major_and_starts_with_zeros() -> None:
    corner = np.zeros((3, 2), bool)
    corner[0, 0] = True
    assert encode(corner)["counts"] == [0, 1, 5]
    column = np.zeros((2, 2), bool)
    column[:, 1] = True
    assert encode(column)["counts"] == [2, 2]
    with pytest.raises(ValueError, match="2-D"):
        encode(np.zeros(4))


HOSTILE: list[tuple[Any, str]] = [
    ({"size": [4, 4], "counts": [3]}, "add up to 3"),  # short: was padded with zeros
    ({"size": [4, 4], "counts": [10, 10]}, "add up to 20"),  # long: was truncated
    ({"size": [2, 2], "counts": [5, -1]}, r"0\.\.4"),
    ({"size": [2, 2], "counts": [2, 2.0]}, "integers"),
    ({"size": [2, 2], "counts": [True, 3]}, "not booleans"),
    ({"size": [2, 2], "counts": [2**70, 0]}, "integers|0..4"),
    ({"size": [2, 2], "counts": ["2", "2"]}, "integers"),
    ({"size": [2, 2], "counts": None}, "list of integers"),
    ({"size": [2, 2], "counts": [0] * 10}, "more than 4"),
    ({"size": [0, 5], "counts": []}, "positive"),
    ({"size": [-2, -2], "counts": [4]}, "positive"),
    ({"size": [2], "counts": [2]}, r"\[height, width\]"),
    ({"size": [2.0, 2], "counts": [4]}, "two integers"),
    ({"size": [True, 4], "counts": [4]}, "two integers"),
    ({"counts": [4]}, r"\[height, width\]"),
    ({"size": [MAX_SIDE + 1, 1], "counts": [MAX_SIDE + 1]}, "over the limit"),
    ({"size": [8192, 8193], "counts": [8192 * 8193]}, "over the limit"),
    ({"size": [2, 2], "counts": "0"}, "add up to 0"),
    ({"size": [2, 2], "counts": "P"}, "end in the middle"),  # a continuation bit, then nothing
    ({"size": [2, 2], "counts": "\x00"}, "foreign character"),
    ({"size": [2, 2], "counts": "o" * 50 + "0"}, "runs over"),  # a count as long as the string
    ("not a mask", "must be an object"),
]


@pytest.mark.parametrize(("rle", "message"), HOSTILE)
def test_hostile_masks_are_refused_clearly(rle: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decode(rle)


def test_huge_counts_allocate_nothing_large() -> None:
    """Counts far beyond the size are refused before the mask (or their sum) is built."""
    big = {"size": [10, 10], "counts": [0, 10**12]}
    with pytest.raises(ValueError, match=r"0\.\.100"):
        decode(big)
    with pytest.raises(ValueError):
        decode_rle(big)  # type: ignore[arg-type]  # the widget no longer pads/truncates
    assert MAX_PIXELS <= 64 * 1024 * 1024


def test_overlay_leaves_out_a_damaged_mask() -> None:
    good = encode(np.ones((4, 6), bool))
    damaged = {"size": [4, 6], "counts": [1, 2]}
    detections: list[Any] = [
        {"cls": 0, "name": "a", "conf": 0.9, "box_xyxy": [0, 0, 1, 1], "mask": damaged}
    ]
    assert mask_overlay(detections, 6, 4) is None
    detections.append({"cls": 0, "name": "a", "conf": 0.8, "box_xyxy": [0, 0, 1, 1], "mask": good})
    assert mask_overlay(detections, 6, 4) is not None
