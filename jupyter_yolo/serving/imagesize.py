"""An encoded image's width and height from its header, without decoding it (stdlib only).

PNG (IHDR), JPEG (the first SOF marker) and WebP (VP8, VP8L, VP8X). A decompression bomb (a small
file that decodes to billions of pixels) is refused by its header before any pixel buffer is
allocated. Both the server and the inference worker can use it.
"""

from __future__ import annotations

import re
import struct

_PNG = b"\x89PNG\r\n\x1a\n"
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_JPEG_SCAN_LIMIT = 4 * 2**20
"""A JPEG whose frame header is not within this many bytes is not one we size."""
_JPEG_MAX_SEGMENTS = 1024
"""Nor one whose frame header comes after this many marker segments (real files: a dozen)."""
_FILL = re.compile(rb"\xff+")


def _png(data: bytes) -> tuple[int, int] | None:
    if len(data) < 24 or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def _jpeg(data: bytes) -> tuple[int, int] | None:
    """The size in the JPEG's frame header (SOF), found in at most :data:`_JPEG_MAX_SEGMENTS` steps.

    A crafted file of endless tiny segments or fill bytes costs next to nothing.
    """
    i = 2
    end = min(len(data), _JPEG_SCAN_LIMIT)
    for _ in range(_JPEG_MAX_SEGMENTS):
        if i + 4 > end or data[i] != 0xFF:
            return None
        fill = _FILL.match(data, i, end)  # any run of 0xFF fill bytes, skipped in C
        i = (fill.end() if fill else i + 1) - 1  # at the marker's last 0xFF
        if i + 4 > end:
            return None
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if marker in _SOF:
            if i + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return int(width), int(height)
        if length < 2:
            return None
        i += 2 + length
    return None


def _webp(data: bytes) -> tuple[int, int] | None:
    if len(data) < 30:
        return None
    chunk = data[12:16]
    if chunk == b"VP8X":
        width = 1 + int.from_bytes(data[24:27], "little")
        height = 1 + int.from_bytes(data[27:30], "little")
        return width, height
    if chunk == b"VP8L" and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    if chunk == b"VP8 ":
        width, height = struct.unpack("<HH", data[26:30])
        return int(width & 0x3FFF), int(height & 0x3FFF)
    return None


def image_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` of a PNG, JPEG or WebP by its header; None for anything else."""
    if data.startswith(_PNG):
        return _png(data)
    if data.startswith(b"\xff\xd8"):
        return _jpeg(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp(data)
    return None
