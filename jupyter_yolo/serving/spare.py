"""The spare inference worker: torch and ultralytics imported ahead, waiting for a model.

A worker's start is mostly importing the libraries (about 4 CPU-seconds). When a training job
starts, the pool starts one spare (``python -m jupyter_yolo.serving.worker --spare --nice``): at
nice 19 it imports, runs one prediction on an untrained model, says ``spare`` and waits. The
PyTorch stand-in that answers ``backend=auto`` while a trained model is prepared
(:mod:`.prepare`) becomes that process: the pool gives it the worker command line of its model
(:attr:`~.process.WorkerProcess.load_argv`) and it only loads the weights and warms up. It is
only ever a stand-in (transient), so its nice 19 never slows a lasting worker.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from .process import WorkerGone, WorkerProcess

LOG_NAME = "spare.log"


def spare_command(
    python: str, module: str, *, workspace: Path, cpus: int, max_pixels: int
) -> list[str]:
    """The spare's command line: the worker ``module`` with ``--spare --nice``, no model yet."""
    return [
        python,
        "-m",
        module,
        "--workspace",
        str(workspace),
        "--model",
        "-",
        "--cpus",
        str(cpus),
        "--max-pixels",
        str(max_pixels),
        "--spare",
        "--nice",
    ]


class Spare:
    """At most one spare worker process, started on demand, handed out once."""

    def __init__(
        self,
        command: list[str],
        log_path: Path,
        *,
        log_max_bytes: int,
        start_timeout: float,
        kill_grace: float,
        log: logging.Logger,
    ) -> None:
        """``command``: the spare's worker command line (``--spare --nice``, ``--model -``)."""
        self.command = command
        self.log_path = log_path
        self.log_max_bytes = log_max_bytes
        self.start_timeout = start_timeout
        self.kill_grace = kill_grace
        self.log = log
        self._process: WorkerProcess | None = None
        self._ready = False
        self._closing: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Start the spare unless there is one; a failure is logged (requests start their own)."""
        if self._process is not None:
            return
        spare = WorkerProcess(self.command, self.log_path, self.log_max_bytes)
        self._process, self._ready = spare, False
        try:
            await spare.start_spare(self.start_timeout)
        except (WorkerGone, OSError) as exc:
            self.log.warning("jupyter_yolo: the spare inference worker did not start: %s", exc)
            if self._process is spare:
                self._process = None
            await spare.close(self.kill_grace)
            return
        if self._process is spare:
            self._ready = True
            self.log.info("jupyter_yolo: spare inference worker ready (pid %s)", spare.pid)

    def take(self, argv: list[str]) -> WorkerProcess | None:
        """The ready spare, told to load the model of worker arguments ``argv``; else None."""
        spare = self._process
        if spare is None or not self._ready or not spare.alive:
            return None
        spare.load_argv = argv
        self._process, self._ready = None, False
        return spare

    def drop(self) -> None:
        """Stop the spare, if there is one (in the background, bounded by ``kill_grace``)."""
        spare, self._process, self._ready = self._process, None, False
        if spare is not None:
            task = asyncio.ensure_future(spare.close(self.kill_grace))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        """Stop the spare and wait for it (shutdown)."""
        self.drop()
        await asyncio.gather(*self._closing, return_exceptions=True)
