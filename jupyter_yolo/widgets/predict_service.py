"""How the prediction panel talks to the warm service: the latest request wins.

:class:`LatestOnly` runs requests one at a time in a daemon thread (never the kernel's main
thread). A request waits a short debounce, so dragging a slider sends one request for where it
stopped, not one per step; while one is in flight, newer ones replace each other, and an answer
that a newer request made stale is dropped, never drawn. :func:`timing_html` is the panel's
line saying where the milliseconds went and which backend ran.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from .common import esc

log = logging.getLogger("jupyter_yolo.widgets")

DEBOUNCE_S = 0.08
"""How long a request waits for a newer one before it is sent."""

Req = TypeVar("Req")
Res = TypeVar("Res")


class LatestOnly(Generic[Req, Res]):
    """Sends the latest submitted request with ``send`` and hands its answer to ``on_result``.

    ``on_error`` gets the exception of the latest request that failed. Stale answers (a newer
    request was submitted while this one ran) are counted in :attr:`dropped` and not handed on.
    """

    def __init__(
        self,
        send: Callable[[Req], Res],
        on_result: Callable[[Req, Res], None],
        on_error: Callable[[BaseException], None],
        *,
        debounce: float = DEBOUNCE_S,
        on_start: Callable[[Req], None] | None = None,
    ) -> None:
        self.send = send
        self.on_result = on_result
        self.on_error = on_error
        self.on_start = on_start
        self.debounce = debounce
        self._cond = threading.Condition()
        self._pending: Req | None = None
        self._has_pending = False
        self._submitted = 0.0
        self._generation = 0
        self._busy = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self.sent = 0
        self.dropped = 0
        self.answered = 0

    def submit(self, request: Req) -> int:
        """Queue ``request`` in place of any not yet sent; returns its generation number."""
        with self._cond:
            self._generation += 1
            self._pending = request
            self._has_pending = True
            self._submitted = time.monotonic()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name="yolo-predict-service", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()
            return self._generation

    def idle(self, timeout: float | None = None) -> bool:
        """Wait until nothing is pending or in flight; False when ``timeout`` passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._has_pending or self._busy:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining if remaining is not None else 1.0)
            return True

    def close(self) -> None:
        """Drop what is pending and let the thread end."""
        with self._cond:
            self._closed = True
            self._has_pending = False
            self._cond.notify_all()

    def _take(self) -> tuple[Req, int] | None:
        with self._cond:
            while not self._has_pending and not self._closed:
                if not self._cond.wait(timeout=30.0) and not self._has_pending:
                    self._thread = None  # idle: submit() starts another
                    return None
            if self._closed:
                return None
            while True:  # debounce: wait until no newer request came for `debounce` seconds
                quiet = self._submitted + self.debounce - time.monotonic()
                if quiet <= 0 or self._closed:
                    break
                self._cond.wait(quiet)
            if self._closed:
                return None
            request = self._pending
            self._pending, self._has_pending, self._busy = None, False, True
            return request, self._generation  # type: ignore[return-value]

    def _loop(self) -> None:
        while True:
            taken = self._take()
            if taken is None:
                return
            request, generation = taken
            try:
                self._run(request, generation)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _current(self, generation: int) -> bool:
        with self._cond:
            return generation == self._generation and not self._closed

    def _run(self, request: Req, generation: int) -> None:
        try:
            if self.on_start is not None:
                self.on_start(request)
            self.sent += 1
            result = self.send(request)
        except Exception as exc:
            if self._current(generation):
                self._report(exc)
            else:
                self.dropped += 1
            return
        if not self._current(generation):
            self.dropped += 1
            return
        try:
            self.on_result(request, result)
            self.answered += 1
        except Exception as exc:
            self._report(exc)

    def _report(self, exc: BaseException) -> None:
        try:
            self.on_error(exc)
        except Exception:  # the thread must go on for the next request
            log.exception("jupyter_yolo: showing a prediction error failed")


STAGES = (
    ("queue", "queue_ms"),
    ("pre", "preprocess_ms"),
    ("inference", "inference_ms"),
    ("post", "postprocess_ms"),
    ("total", "total_ms"),
)


def timing_html(timing: Mapping[str, Any] | None, backend: Mapping[str, Any] | None) -> str:
    """One line: the timing breakdown of a service answer (ms) and the backend that ran."""
    if not timing:
        return ""
    parts = []
    for label, key in STAGES:
        value = timing.get(key)
        if isinstance(value, int | float):
            text = f"{label} {float(value):.1f}"
            parts.append(f"<b>{text}</b>" if key == "total_ms" else text)
    line = " \u00b7 ".join(parts) + " ms"
    started = timing.get("worker_start_ms")
    if isinstance(started, int | float):
        line += f" (this request started the worker: {float(started) / 1000:.1f} s)"
    if backend:
        name = esc(backend.get("name"))
        requested = backend.get("requested")
        how = "auto" if requested == "auto" else "forced" if requested else ""
        line += f" \u00b7 backend <b>{name}</b>" + (f" ({how})" if how else "")
    return f'<div class="yolo-muted yolo-timing">{line}</div>'
