"""How the server and an inference worker talk: framed messages over the worker's stdin/stdout.

Pure stdlib; both sides import it. A message is::

    4 bytes   big-endian length H of the header
    H bytes   the header: one JSON object (UTF-8, strict: no NaN)
    then, for each length in header["blobs"] (a list of ints, absent = none), that many bytes

Requests (server → worker) carry images as blobs; answers (worker → server) are header only.
The worker prints nothing else on stdout (its logs go to stderr), so a frame is never mixed
with stray text.

Request headers:

* ``{"op": "predict", "id": N, "conf": f, "iou": f, "classes": [..] | null,
  "names": ["a.jpg", ...], "blobs": [len, ...]}``; optional ``"max_pixels": int`` lowers the
  worker's pixel limit (its ``--max-pixels``) for this request
* ``{"op": "ping", "id": N}``

Answer headers:

* the first message of a worker: ``{"op": "ready", "task", "backend": BackendChoice,
  "imgsz", "model", "load_ms"}`` (also ``"device"``, ``"pid"`` and ``"start_ms"``: process
  start to ready) or ``{"op": "failed", "message": "..."}`` (it then exits 1); a ``failed``
  caused by the request itself (a missing model, a backend that cannot run it) has
  ``"status": 400``
* ``{"op": "result", "id": N, "images": [ImagePrediction ...], "timing": {"preprocess_ms",
  "inference_ms", "postprocess_ms"}}``; sums over the images of ultralytics' ``speed``, image
  decoding counted in preprocess, conversion to the contract's shapes in postprocess; also
  ``"worker_ms"``: the worker's whole handling of the request, frame read to answer built
* ``{"op": "error", "id": N, "status": 400|413|422|500, "message": "..."}``: this request
  failed (a corrupt image: 400, an image over the pixel limit: 413 ...); the worker goes on
  serving
* ``{"op": "pong", "id": N, "rss_bytes": int}``
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from typing import IO, Any, Protocol

MAX_HEADER_BYTES = 64 * 2**20
"""An answer holds every image's results (masks as RLE); more than this is a broken worker."""
MAX_BLOB_BYTES = 256 * 2**20

_LENGTH = struct.Struct(">I")


class ProtocolError(Exception):
    """The other side sent something that is not a frame (it crashed mid-write, or is not ours)."""


def encode(header: dict[str, Any], blobs: Sequence[bytes] = ()) -> bytes:
    """One frame: ``header`` (``blobs`` lengths filled in) followed by the blobs."""
    if blobs:
        header = {**header, "blobs": [len(b) for b in blobs]}
    text = json.dumps(header, allow_nan=False, separators=(",", ":")).encode()
    return b"".join([_LENGTH.pack(len(text)), text, *blobs])


def _header(raw: bytes) -> tuple[dict[str, Any], list[int]]:
    try:
        header = json.loads(raw)
    except ValueError as exc:
        raise ProtocolError(f"a frame header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise ProtocolError("a frame header is not a JSON object")
    lengths = header.get("blobs") or []
    if not isinstance(lengths, list) or not all(
        isinstance(n, int) and 0 <= n <= MAX_BLOB_BYTES for n in lengths
    ):
        raise ProtocolError("a frame header has a bad 'blobs' list")
    return header, lengths


def _length(prefix: bytes) -> int:
    (length,) = _LENGTH.unpack(prefix)
    if length > MAX_HEADER_BYTES:
        raise ProtocolError(f"a frame header of {length} bytes is over the limit")
    return int(length)


def read_sync(stream: IO[bytes]) -> tuple[dict[str, Any], list[bytes]] | None:
    """The next frame from a blocking binary stream; None at a clean end of stream."""

    def exactly(n: int) -> bytes:
        data = stream.read(n)
        if len(data) != n:
            raise ProtocolError(f"the stream ended inside a frame ({len(data)} of {n} bytes)")
        return data

    first = stream.read(_LENGTH.size)
    if not first:
        return None
    if len(first) != _LENGTH.size:
        raise ProtocolError("the stream ended inside a frame's length")
    header, lengths = _header(exactly(_length(first)))
    return header, [exactly(n) for n in lengths]


class AsyncReader(Protocol):
    """What :func:`read_async` needs (``asyncio.StreamReader`` has it)."""

    async def readexactly(self, n: int) -> bytes:
        """Exactly ``n`` bytes, or ``asyncio.IncompleteReadError``."""


async def read_async(reader: AsyncReader) -> tuple[dict[str, Any], list[bytes]]:
    """The next frame from an asyncio stream; ``asyncio.IncompleteReadError`` at its end."""
    header, lengths = _header(await reader.readexactly(_length(await reader.readexactly(4))))
    return header, [await reader.readexactly(n) for n in lengths]
