"""The annotated video of a predict job: H.264 in an mp4 that browsers play.

Written incrementally with PyAV (its wheels bundle FFmpeg with libx264): ``yuv420p`` (the
pixel format every browser decodes), even width and height (a frame of odd size is cropped by
one pixel), the moov atom at the front (``+faststart``: playback and seeking start before the
whole file is read). Frames go to ``.<name>.partial`` beside the final name; :meth:`close`
flushes the encoder, closes the container and renames it into place, on success, stop and
failure alike. A hard kill (SIGKILL, out of memory) may leave only the partial file.
"""

from __future__ import annotations

import contextlib
import os
from fractions import Fraction
from pathlib import Path
from typing import Any

CODEC = "libx264"
PIXEL_FORMAT = "yuv420p"
ENCODER_OPTIONS = {"preset": "veryfast", "crf": "23"}


class Mp4Writer:
    """Appends BGR frames to an H.264 mp4, opened on the first frame (whose size it keeps)."""

    def __init__(self, final: Path, fps: float) -> None:
        self.final = final
        self.partial = final.with_name(f".{final.name}.partial")
        self.rate = Fraction(fps if 0 < fps < 1000 else 25.0).limit_denominator(1001)
        self.frames = 0
        self._container: Any = None
        self._stream: Any = None
        self._size: tuple[int, int] | None = None

    def _open(self, width: int, height: int) -> None:
        import av

        self._container = av.open(
            str(self.partial), mode="w", format="mp4", options={"movflags": "+faststart"}
        )
        stream = self._container.add_stream(CODEC, rate=self.rate)
        stream.width, stream.height = width, height
        stream.pix_fmt = PIXEL_FORMAT
        stream.options = dict(ENCODER_OPTIONS)
        stream.codec_context.time_base = 1 / self.rate
        self._stream = stream
        self._size = (width, height)

    def write(self, bgr: Any) -> None:
        """Encode one BGR frame; a frame of another size is fitted to the first one's."""
        import av
        import cv2

        height, width = bgr.shape[:2]
        if self._size is None:
            self._open(width - width % 2, height - height % 2)
        assert self._size is not None
        size = self._size
        if (width, height) != size:
            if width >= size[0] and height >= size[1]:
                bgr = bgr[: size[1], : size[0]]
            else:
                bgr = cv2.resize(bgr, size)
        frame = av.VideoFrame.from_ndarray(bgr, format="bgr24").reformat(format=PIXEL_FORMAT)
        frame.pts = self.frames
        frame.time_base = 1 / self.rate
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> Path | None:
        """Finish the file and move it into place; return its path (None when no frame came)."""
        if self._container is None:
            return None
        container, self._container = self._container, None
        try:
            for packet in self._stream.encode(None):
                container.mux(packet)
        finally:
            container.close()
        os.replace(self.partial, self.final)
        return self.final

    def discard(self) -> None:
        """Drop a partial file (used only when closing it failed)."""
        with contextlib.suppress(OSError):
            self.partial.unlink()
