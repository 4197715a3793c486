"""COCO-style uncompressed run-length encoding of binary masks (numpy only, no side effects).

``{"size": [height, width], "counts": [...]}``: the mask is read column-major (Fortran order),
``counts`` alternates runs of 0 and 1 and always starts with a run of 0 (possibly empty).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..contract.payloads import EncodedMask


def encode(mask: Any) -> EncodedMask:
    """Encode a 2-D mask (any truthy values are 1) as uncompressed COCO RLE."""
    array = np.asarray(mask).astype(bool)
    if array.ndim != 2:
        raise ValueError(f"a mask must be 2-D, got shape {array.shape}")
    height, width = array.shape
    flat = array.reshape(-1, order="F").astype(np.int8)
    if flat.size == 0:
        return {"size": [int(height), int(width)], "counts": []}
    changes = np.flatnonzero(np.diff(flat)) + 1
    edges = np.concatenate(([0], changes, [flat.size]))
    counts = np.diff(edges).tolist()
    if flat[0]:
        counts = [0, *counts]
    return {"size": [int(height), int(width)], "counts": [int(c) for c in counts]}


def decode(rle: EncodedMask) -> Any:
    """The boolean ``(height, width)`` array of an encoded mask."""
    height, width = (int(v) for v in rle["size"])
    counts = np.asarray(rle["counts"], dtype=np.int64)
    if int(counts.sum()) != height * width:
        raise ValueError(f"counts add up to {int(counts.sum())}, not {height} x {width} pixels")
    values = np.arange(counts.size) % 2 == 1
    flat = np.repeat(values, counts)
    return flat.reshape((height, width), order="F")


def area(rle: EncodedMask) -> int:
    """Pixels set in an encoded mask."""
    return int(sum(rle["counts"][1::2]))
