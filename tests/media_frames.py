"""Frames with a known moving shape, a test video of them, and an MJPEG stream served locally.

The frames look like the synthetic shapes dataset (a noisy coloured background, a filled square
far from its colour), so the shared detector (tests/inference_models.py) finds the square.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

WIDTH, HEIGHT = 192, 128
BOUNDARY = "frameboundary"


def frame(index: int, count: int = 48, seed: int = 0) -> Any:
    """BGR frame ``index`` of ``count``: a square moving left to right across the image."""
    rng = np.random.default_rng(seed * 100_003 + index)
    canvas = np.empty((HEIGHT, WIDTH, 3), dtype=np.float32)
    canvas[:] = (40.0, 60.0, 90.0)
    half = 18
    travel = WIDTH - 2 * half - 8
    cx = 4 + half + int(travel * index / max(1, count - 1))
    cy = HEIGHT // 2
    canvas[cy - half : cy + half, cx - half : cx + half] = (230.0, 230.0, 60.0)
    canvas += rng.normal(0.0, 8.0, size=canvas.shape).astype(np.float32)
    return np.clip(canvas, 0, 255).astype(np.uint8)


def write_video(path: Path, count: int = 48, fps: float = 12.0) -> Path:
    """An mp4 (OpenCV's mp4v) of ``count`` frames; returns ``path``."""
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (WIDTH, HEIGHT))
    for index in range(count):
        writer.write(frame(index, count))
    writer.release()
    return path


def write_images(folder: Path, count: int) -> Path:
    """``count`` PNG frames in ``folder`` (lossless, so batch sizes see the same pixels)."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        cv2.imwrite(str(folder / f"img{index:03d}.png"), frame(index * 3 % 48, 48, seed=index))
    return folder


def _jpeg(index: int) -> bytes:
    import cv2

    ok, data = cv2.imencode(".jpg", frame(index % 48, 48), [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return bytes(data.tobytes())


class MjpegServer:
    """``multipart/x-mixed-replace`` JPEG frames on 127.0.0.1 at about ``fps``.

    Forever, or (``die_after``) until that many frames were sent in all: then the connection is
    closed and the listening socket too, so reconnects are refused.
    """

    def __init__(self, fps: float = 15.0, die_after: int | None = None) -> None:
        self.fps = fps
        self.die_after = die_after
        self.sent = 0
        self.connections = 0
        self.closing = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                owner.connections += 1
                self.send_response(200)
                self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                for data in owner.frames():
                    try:
                        self.wfile.write(
                            f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                            f"Content-Length: {len(data)}\r\n\r\n".encode()
                            + data
                            + b"\r\n"
                        )
                        self.wfile.flush()
                    except OSError:
                        return
                self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"

    def frames(self) -> Iterator[bytes]:
        while not self.closing.is_set():
            if self.die_after is not None and self.sent >= self.die_after:
                threading.Thread(target=self.close, daemon=True).start()
                return
            yield _jpeg(self.sent)
            self.sent += 1
            time.sleep(1.0 / self.fps)

    def __enter__(self) -> MjpegServer:
        self.thread.start()
        return self

    def close(self) -> None:
        if not self.closing.is_set():
            self.closing.set()
            self.server.shutdown()
            self.server.server_close()

    def __exit__(self, *exc: Any) -> None:
        self.close()
