"""Frame sources of a predict job: a folder of images, a video file, a stream or a device.

Each yields :class:`Frame` (a name, a 1-based number and a BGR array) and says what it knows
up front: the unit (``images`` or ``frames``), the total when known and the frame rate. A
stream or device whose read fails or stalls (OpenCV's FFmpeg open/read timeouts) is opened
again up to ``reconnects`` times in a row with a short backoff; after that :class:`StreamLost`
ends the job with a reason a person can read. Whatever was predicted before stays written.

OpenCV (and FFmpeg inside it) is imported inside the functions, in the runner only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..contract.serving import MEDIA_VIDEO_SUFFIXES
from ..jobs.media_source import (
    IMAGE_SUFFIXES,
    KIND_DEVICE,
    KIND_STREAM,
    mask_url,
    source_kind,
)

STREAM_FPS = 25.0
"""The frame rate of a stream's annotated video (a live source's own figure is unreliable)."""
OPEN_TIMEOUT_MS = 10_000
READ_TIMEOUT_MS = 5_000
MAX_BACKOFF_S = 5.0


class StreamLost(RuntimeError):
    """A stream or device stopped giving frames and the reconnects were used up."""


class SourceEmpty(ValueError):
    """A folder without images: nothing to predict on."""


@dataclass
class Frame:
    """One image or video frame to predict on."""

    name: str
    """The image's path relative to the folder, the video's file name, or the stream (masked)."""
    number: int
    """1-based: the frame's number in the video or stream (with ``vid_stride``, the source's)."""
    image: Any
    """BGR array (height, width, 3)."""


class FrameSource:
    """Frames of one source; iterate once, then :meth:`close`."""

    unit = "frames"
    total: int | None = None
    fps: float | None = None
    video = True
    """Whether the annotated output is a video (else annotated images)."""
    reconnects = 0
    unreadable: list[str]

    def __init__(self, shown: str) -> None:
        self.shown = shown
        self.unreadable = []

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the source holds (a capture handle)."""


class ImageFiles(FrameSource):
    """One image, or a folder's images (sorted by name, images only, not recursive)."""

    unit = "images"
    video = False

    def __init__(self, path: Path, shown: str) -> None:
        super().__init__(shown)
        self.path = path
        if path.is_dir():
            self.files = sorted(
                p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
        else:
            self.files = [path]
        if not self.files:
            raise SourceEmpty(
                f"the folder {shown} has no images ({' '.join(IMAGE_SUFFIXES)}) to predict on"
            )
        self.total = len(self.files)

    def __iter__(self) -> Iterator[Frame]:
        import cv2

        for number, file in enumerate(self.files, 1):
            image = cv2.imread(str(file), cv2.IMREAD_COLOR)
            name = file.relative_to(self.path).as_posix() if self.path.is_dir() else file.name
            if image is None:
                self.unreadable.append(name)
                continue
            yield Frame(name, number, image)


class VideoFile(FrameSource):
    """A video file's frames, every ``stride``-th, at most ``limit``."""

    def __init__(self, path: Path, *, stride: int = 1, limit: int | None = None) -> None:
        import cv2

        super().__init__(path.name)
        self.path = path
        self.stride = max(1, stride)
        self.limit = limit
        self.capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
        if not self.capture.isOpened():
            raise StreamLost(f"the video {path.name} cannot be opened (not a video FFmpeg reads)")
        count = int(self.capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        fps = float(self.capture.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps / self.stride if 0 < fps < 1000 else STREAM_FPS
        if count > 0:
            total = -(-count // self.stride)
            self.total = min(total, limit) if limit else total

    def __iter__(self) -> Iterator[Frame]:
        number = 0
        given = 0
        while self.limit is None or given < self.limit:
            ok, image = self.capture.read()
            if not ok:
                return
            number += 1
            for _ in range(self.stride - 1):  # skipped frames are grabbed, not decoded
                if not self.capture.grab():
                    break
            given += 1
            yield Frame(self.shown, 1 + (number - 1) * self.stride, image)

    def close(self) -> None:
        """Release the capture."""
        self.capture.release()


class LiveSource(FrameSource):
    """A stream URL or a capture device, reconnected when it fails or stalls."""

    def __init__(
        self,
        value: str,
        *,
        stride: int = 1,
        limit: int | None = None,
        reconnects: int = 5,
        wait: Callable[[float], None] = time.sleep,
        log: Callable[[str], None] = print,
    ) -> None:
        super().__init__(mask_url(value))
        self.value = value
        self.kind = source_kind(value)
        self.stride = max(1, stride)
        self.limit = limit
        self.max_reconnects = reconnects
        self.fps = STREAM_FPS
        self.total = limit  # a live source has no length; a frame bound is one
        self._wait = wait
        self._log = log
        self.capture: Any = None

    def _open(self) -> bool:
        import cv2

        self.close()
        if self.kind == KIND_DEVICE:
            self.capture = cv2.VideoCapture(self.value, cv2.CAP_V4L2)
        else:
            self.capture = cv2.VideoCapture(
                self.value,
                cv2.CAP_FFMPEG,
                [
                    cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
                    OPEN_TIMEOUT_MS,
                    cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                    READ_TIMEOUT_MS,
                ],
            )
        return bool(self.capture.isOpened())

    def _read(self) -> Any:
        ok, image = self.capture.read() if self.capture is not None else (False, None)
        return image if ok and image is not None and image.size else None

    def __iter__(self) -> Iterator[Frame]:
        what = "stream" if self.kind == KIND_STREAM else "device"
        failures = 0
        number = 0
        given = 0
        opened = self._open()
        while self.limit is None or given < self.limit:
            image = self._read() if opened else None
            if image is None:
                if failures >= self.max_reconnects:
                    raise StreamLost(
                        f"the {what} at {self.shown} stopped sending frames; reconnected "
                        f"{failures} times, giving up ({number} frames read before)"
                    )
                failures += 1
                self.reconnects += 1
                delay = min(MAX_BACKOFF_S, 0.5 * 2 ** (failures - 1))
                self._log(
                    f"the {what} at {self.shown} gave no frame; reconnecting in {delay:.1f} s "
                    f"(attempt {failures} of {self.max_reconnects})"
                )
                self._wait(delay)
                opened = self._open()
                continue
            failures = 0
            number += 1
            if (number - 1) % self.stride:
                continue
            given += 1
            yield Frame(self.shown, number, image)

    def close(self) -> None:
        """Release the capture."""
        if self.capture is not None:
            self.capture.release()
            self.capture = None


def open_source(
    value: str,
    *,
    stride: int = 1,
    limit: int | None = None,
    reconnects: int = 5,
    wait: Callable[[float], None] = time.sleep,
    log: Callable[[str], None] = print,
) -> FrameSource:
    """The frame source a predict job's ``source`` names (checked by the server already)."""
    if source_kind(value) in (KIND_STREAM, KIND_DEVICE):
        return LiveSource(
            value, stride=stride, limit=limit, reconnects=reconnects, wait=wait, log=log
        )
    path = Path(value)
    if path.is_file() and path.suffix.lower() in MEDIA_VIDEO_SUFFIXES:
        return VideoFile(path, stride=stride, limit=limit)
    source = ImageFiles(path, path.name)
    if limit is not None:
        source.files = source.files[:limit]
        source.total = len(source.files)
    return source
