"""The predict loop's two helper threads: frames read ahead, annotated output written behind.

While the model works on one batch, :class:`ReadAhead` reads and decodes the next frames
(OpenCV's ``imread`` and FFmpeg's decoding release the GIL), and :class:`Behind` draws and writes
the annotated images or video frames of the batches already predicted (PyAV's encoder and
``cv2.imwrite`` release it too). Both keep the order of the frames, hold a bounded number of
them (a slow disk or encoder slows the loop down instead of filling the memory) and hand an
error over to the loop's thread, which raises it at its next call. :meth:`ReadAhead.close` waits
for the reader to leave the source before the source is closed (a capture is never released
under a read in progress).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

_END = object()


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class ReadAhead:
    """Iterate ``frames`` on a thread, up to ``depth`` frames ahead of the consumer."""

    def __init__(self, frames: Iterator[Any], depth: int) -> None:
        self._frames = frames
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="predict-read-ahead", daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for frame in self._frames:
                if not self._put(frame):
                    return
            self._put(_END)
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(_Failed(exc))

    def __iter__(self) -> Iterator[Any]:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item

    def close(self) -> None:
        """Stop reading and wait until the reader has left the source."""
        self._stop.set()
        while self._thread.is_alive():
            try:  # unblock a reader waiting for room
                while True:
                    self._queue.get_nowait()
            except queue.Empty:
                pass
            self._thread.join(timeout=0.1)


class Behind:
    """Run ``work(item)`` for each item on one thread, in order, at most ``depth`` waiting."""

    def __init__(self, work: Callable[[Any], None], depth: int) -> None:
        self._work = work
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, depth))
        self._error: BaseException | None = None
        self._failed = False
        self._thread = threading.Thread(target=self._run, name="predict-behind", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if self._failed:
                continue  # after a failure the rest is dropped; the loop raises it
            try:
                self._work(item)
            except BaseException as exc:
                self._failed = True
                self._error = exc

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def put(self, item: Any) -> None:
        """Queue ``item`` (waits while ``depth`` items wait); raises an earlier item's error."""
        self._raise()
        self._queue.put(item)

    def close(self) -> BaseException | None:
        """Finish every queued item, then stop; the first error not raised yet, if any."""
        self._queue.put(_END)
        self._thread.join()
        error, self._error = self._error, None
        return error
