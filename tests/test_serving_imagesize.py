"""Image sizes from headers (jupyter_yolo.serving.imagesize): what refuses decompression bombs
before any pixel is decoded, in the server and in the inference worker."""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

import pytest

from jupyter_yolo.serving.imagesize import image_size


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` pixels (a decompression bomb's header)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    crc = struct.pack(">I", zlib.crc32(chunk) & 0xFFFFFFFF)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + crc


@pytest.mark.parametrize(
    ("fmt", "options"),
    [
        ("JPEG", {}),
        ("JPEG", {"progressive": True}),
        ("PNG", {}),
        ("WEBP", {"lossless": False}),
        ("WEBP", {"lossless": True}),
    ],
)
def test_image_size_reads_the_header(fmt: str, options: dict[str, Any]) -> None:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (37, 23), (200, 10, 10)).save(buffer, fmt, **options)
    data = buffer.getvalue()
    assert image_size(data) == (37, 23)
    if fmt == "WEBP":  # the extended header (VP8X) of an image with alpha
        buffer = io.BytesIO()
        Image.new("RGBA", (37, 23), (200, 10, 10, 128)).save(buffer, fmt, **options)
        assert image_size(buffer.getvalue()) == (37, 23)
    assert image_size(data[:8]) is None
    assert image_size(b"GIF89a" + data) is None


def test_image_size_of_a_bomb_header() -> None:
    assert image_size(png_header(50_000, 40_000)) == (50_000, 40_000)
    assert image_size(b"\xff\xd8\xff\xe0\x00\x01") is None  # a length below 2: not a JPEG


def jpeg_with(segments: bytes, data: bytes) -> bytes:
    """``data`` (a real JPEG) with ``segments`` inserted after its start marker."""
    return data[:2] + segments + data[2:]


def test_crafted_jpeg_headers_are_refused_and_real_ones_still_sized() -> None:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (37, 23)).save(buffer, "JPEG")
    real = buffer.getvalue()
    comment = b"\xff\xfe\x00\x06abcd"  # a COM segment
    assert image_size(jpeg_with(b"\xff" * 1000 + comment * 100, real)) == (37, 23)
    assert image_size(jpeg_with(comment * 2000, real)) is None  # over the segment cap
    # 4 MiB crafted to walk byte by byte (fill) or in 4-byte steps (empty segments): refused
    assert image_size(b"\xff\xd8" + b"\xff" * 4 * 2**20) is None
    assert image_size(b"\xff\xd8" + b"\xff\xe0\x00\x02" * 2**20) is None
    assert image_size(jpeg_with(b"\xff\xe0\x00\x02" * 2**20, real)) is None
