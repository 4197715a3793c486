"""COCO run-length encoding of binary masks: one checked implementation (numpy only).

``{"size": [height, width], "counts": [...]}``: the mask is read column-major (Fortran order),
``counts`` alternates runs of 0 and 1 and always starts with a run of 0 (possibly empty). COCO
also stores ``counts`` as a compressed string (pycocotools' ``rleToString``); :func:`decode`
reads both forms and :func:`counts_from_string` reads the string alone.

Nothing here pads, truncates or guesses: a mask whose runs do not add up to its size, a size
that is not two positive integers within :data:`MAX_SIDE` / :data:`MAX_PIXELS`, or a count that
is negative or not an integer is refused with a :class:`ValueError` that says which. The bounds
are checked before anything is allocated, so a hostile ``counts`` cannot make a decoder reserve
more than ``MAX_PIXELS`` bytes.

Used by the runner (encoding predicted masks), the widgets (drawing them in the kernel) and the
dataset converters (COCO annotations). Not in ``contract``, which stays stdlib-only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .contract.payloads import EncodedMask

MAX_SIDE = 65536
"""The largest height or width accepted (pixels)."""
MAX_PIXELS = 64 * 1024 * 1024
"""The largest ``height * width`` accepted: a decoded mask is at most this many bytes."""
MAX_CHARS_PER_COUNT = 7
"""Characters one count of the compressed string may take (35 bits, far above MAX_PIXELS)."""

__all__ = [
    "MAX_PIXELS",
    "MAX_SIDE",
    "area",
    "check_size",
    "counts_from_string",
    "decode",
    "encode",
]


def encode(mask: Any) -> EncodedMask:
    """Encode a 2-D mask (any truthy values are 1) as uncompressed COCO RLE."""
    array = np.asarray(mask).astype(bool)
    if array.ndim != 2:
        raise ValueError(f"a mask must be 2-D, got shape {array.shape}")
    height, width = (int(v) for v in array.shape)
    flat = array.reshape(-1, order="F").astype(np.int8)
    if flat.size == 0:
        return {"size": [height, width], "counts": []}
    changes = np.flatnonzero(np.diff(flat)) + 1
    edges = np.concatenate(([0], changes, [flat.size]))
    counts = [int(c) for c in np.diff(edges)]
    if flat[0]:
        counts = [0, *counts]
    return {"size": [height, width], "counts": counts}


def check_size(size: Any) -> tuple[int, int]:
    """``(height, width)`` of an RLE ``size``; ValueError unless two bounded positive integers."""
    if not isinstance(size, list | tuple) or len(size) != 2:
        raise ValueError(f"an RLE size must be [height, width], got {_shown(size)}")
    if not all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in size):
        raise ValueError(f"an RLE size must be two integers, got {_shown(size)}")
    height, width = int(size[0]), int(size[1])
    if height <= 0 or width <= 0:
        raise ValueError(f"an RLE size must be positive, got {height} x {width}")
    if height > MAX_SIDE or width > MAX_SIDE or height * width > MAX_PIXELS:
        raise ValueError(
            f"an RLE mask of {height} x {width} pixels is over the limit "
            f"({MAX_SIDE} per side, {MAX_PIXELS} pixels)"
        )
    return height, width


def counts_from_string(text: str, *, limit: int = MAX_PIXELS) -> list[int]:
    """The counts of COCO's compressed RLE string (pycocotools' ``rleFrString``), checked.

    Each count is at most ``limit``; a truncated string, an over-long count or a negative run
    is a ValueError.
    """
    if not isinstance(text, str):
        raise ValueError(f"compressed RLE counts must be a string, got {type(text).__name__}")
    values: list[int] = []
    position = 0
    while position < len(text):
        value = shift = 0
        more = True
        while more:
            if position >= len(text):
                raise ValueError("compressed RLE counts end in the middle of a count")
            if shift >= MAX_CHARS_PER_COUNT:
                raise ValueError(f"a compressed RLE count runs over {MAX_CHARS_PER_COUNT} chars")
            char = ord(text[position]) - 48
            if not 0 <= char < 64:
                raise ValueError(f"compressed RLE counts hold a foreign character at {position}")
            value |= (char & 0x1F) << (5 * shift)
            more = bool(char & 0x20)
            position += 1
            shift += 1
            if not more and char & 0x10:
                value |= -1 << (5 * shift)
        if len(values) > 2:
            value += values[-2]
        if value < 0 or value > limit:
            raise ValueError(f"compressed RLE count {len(values)} is {value}, not in 0..{limit}")
        values.append(value)
        if len(values) > limit + 1:
            raise ValueError(f"compressed RLE counts hold more runs than {limit} pixels")
    return values


def _counts(raw: Any, pixels: int) -> Any:
    """The counts as a 1-D int64 array, each in 0..pixels, adding up to ``pixels``."""
    if isinstance(raw, str):
        raw = counts_from_string(raw, limit=pixels)
    if not isinstance(raw, list | tuple | np.ndarray):
        raise ValueError(f"RLE counts must be a list of integers, got {type(raw).__name__}")
    if len(raw) > pixels + 1:
        raise ValueError(f"RLE counts hold {len(raw)} runs, more than {pixels} pixels allow")
    if not isinstance(raw, np.ndarray) and any(isinstance(c, bool) for c in raw):
        raise ValueError("RLE counts must be a flat list of integers, not booleans")
    array = np.asarray(raw) if len(raw) else np.zeros(0, dtype=np.int64)
    if array.ndim != 1 or array.dtype.kind not in "iu":
        raise ValueError("RLE counts must be a flat list of integers")
    if array.size and (int(array.min()) < 0 or int(array.max()) > pixels):
        raise ValueError(f"RLE counts must each lie in 0..{pixels}")
    counts = array.astype(np.int64)
    total = int(counts.sum())  # at most (pixels + 1) * pixels: no int64 overflow
    if total != pixels:
        raise ValueError(f"RLE counts add up to {total} pixels, not the mask's {pixels}")
    return counts


def decode(rle: Mapping[str, Any]) -> Any:
    """The boolean ``(height, width)`` array of an encoded mask (counts a list or a string).

    Raises ValueError when the size or counts are not a valid mask (see the module's rules).
    """
    if not isinstance(rle, Mapping):
        raise ValueError(f"an RLE mask must be an object, got {type(rle).__name__}")
    height, width = check_size(rle.get("size"))
    counts = _counts(rle.get("counts"), height * width)
    values = np.arange(counts.size) % 2 == 1
    flat = np.repeat(values, counts)
    return flat.reshape((height, width), order="F")


def area(rle: EncodedMask) -> int:
    """Pixels set in an encoded mask (uncompressed counts)."""
    return int(sum(rle["counts"][1::2]))


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
