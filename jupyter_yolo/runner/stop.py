"""Graceful stop requests: the ``stop`` file plus SIGUSR1, or SIGTERM (or SIGINT).

The signal handlers only set a flag; the training callbacks poll :meth:`StopController.requested`
between batches and raise :class:`StopRequested`, which unwinds ultralytics without running its
end-of-training steps (which would strip the optimizer from ``last.pt``).

Dataloader workers are forked from the runner and inherit these handlers; in a worker a signal
restores the default action and re-raises itself, so the workers die as signals intend.

A controller pickles as its stop file alone (the launcher of a multi-GPU training carries it to
the DDP worker processes): unpickled, it watches the same file from the new process, with no
signal handlers and no callback (:mod:`jupyter_yolo.runner.ddp`).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGUSR1, signal.SIGTERM, signal.SIGINT)


class StopRequested(BaseException):
    """Raised inside ultralytics callbacks to unwind a job after a graceful stop request.

    It derives from BaseException so that ``except Exception`` in libraries does not swallow it.
    """


class StopController:
    """Knows whether a graceful stop was requested and by what."""

    def __init__(self, stop_file: Path) -> None:
        self.stop_file = stop_file
        self._reason: str | None = None
        self._main_pid = os.getpid()
        self._lock = threading.Lock()
        self._on_request: Callable[[str], None] | None = None
        self._announced = False

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.stop_file,))

    def install(self, on_request: Callable[[str], None] | None = None) -> None:
        """Install the signal handlers; ``on_request(reason)`` runs once, in the main thread."""
        self._on_request = on_request
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if os.getpid() != self._main_pid:  # a forked dataloader worker: behave as if unhandled
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.request(f"signal {signal.Signals(signum).name}")

    def request(self, reason: str) -> None:
        """Record a stop request (the first reason wins)."""
        with self._lock:
            if self._reason is None:
                self._reason = reason

    def note(self, reason: str) -> None:
        """Record a stop that another process already announced (no ``on_request`` call)."""
        with self._lock:
            if self._reason is None:
                self._reason = reason
            self._announced = True

    @property
    def reason(self) -> str | None:
        """Why the stop was requested, or None when it was not."""
        return self._reason

    def requested(self) -> bool:
        """Whether a stop was requested: by a signal, or by the ``stop`` file alone."""
        if self._reason is None and self.stop_file.exists():
            self.request("stop file")
        if self._reason is not None and not self._announced and os.getpid() == self._main_pid:
            self._announced = True
            if self._on_request is not None:
                self._on_request(self._reason)
        return self._reason is not None

    def check(self) -> None:
        """Raise :class:`StopRequested` when a stop was requested."""
        if self.requested():
            raise StopRequested(self._reason)
