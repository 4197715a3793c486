"""One inference worker process as the server sees it: start, one exchange at a time, stop.

The worker (``python -m jupyter_yolo.serving.worker``) runs in its own session with the jobs'
environment (no secrets); it speaks :mod:`jupyter_yolo.serving.protocol` on its stdin/stdout.
Its stderr is copied to a log file under the workspace (rotated at a size bound, one old file
kept) and its last lines are kept in memory for error messages.

Nothing here imports tornado or torch.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import signal
from pathlib import Path
from typing import IO, Any

import psutil

from ..jobs.process import runner_environment, session_members, signal_session
from ..workspace import open_private, private_folder
from .protocol import ProtocolError, encode, read_async

TAIL_LINES = 20
STDERR_CHUNK = 65536


class WorkerGone(Exception):
    """The worker cannot answer: it exited, wrote a broken frame, hung, or refused to start.

    ``status`` is set when the worker itself said why it could not start (its ``failed``
    message) and what HTTP status that deserves; None for a crash or hang.
    """

    def __init__(self, message: str, *, status: int | None = None, hung: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.hung = hung


class WorkerProcess:
    """The process behind one warm worker; the pool serializes calls to :meth:`exchange`."""

    def __init__(self, command: list[str], log_path: Path, log_max_bytes: int) -> None:
        self.command = command
        self.log_path = log_path
        self.log_max_bytes = log_max_bytes
        self.process: asyncio.subprocess.Process | None = None
        self._tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        self._partial = b""
        self._stderr_task: asyncio.Task[None] | None = None
        self._log: IO[bytes] | None = None
        self._log_size = 0
        self._stopped = False
        self.rss: int | None = None
        """Resident memory as last measured by :meth:`measure_rss` (never on the event loop)."""
        self.load_argv: list[str] | None = None
        """For a spare worker given a model: the worker arguments :meth:`start` sends it."""

    @property
    def pid(self) -> int | None:
        """The worker's pid (also its session id), None before it is spawned."""
        return self.process.pid if self.process is not None else None

    @property
    def alive(self) -> bool:
        """Whether the process was spawned and has not exited."""
        return self.process is not None and self.process.returncode is None

    def stderr_tail(self) -> str:
        """The worker's last stderr lines (for error messages), or a note that it printed none."""
        lines = [*self._tail, *([self._partial.decode(errors="replace")] if self._partial else [])]
        text = "\n".join(line for line in lines if line.strip())
        return text or "(the worker printed nothing on stderr)"

    # ------------------------------------------------------------------ start

    async def start(self, timeout: float) -> dict[str, Any]:
        """Spawn the worker and wait for its ``ready`` header; :class:`WorkerGone` otherwise.

        A :meth:`close` that comes before the process exists (while it is being spawned) is
        honoured here: the process is killed as soon as it exists and nothing is served.
        """
        if self._stopped:
            raise WorkerGone("the inference worker was stopped before it started")
        if self.process is None:
            await self._spawn()
        elif self.load_argv is not None:  # a spare (libraries imported): name its model now
            await self._tell_spare(self.load_argv)
        try:
            header = await asyncio.wait_for(self._read(), timeout)
        except TimeoutError:
            self.kill()
            raise WorkerGone(
                f"the inference worker did not get ready within {timeout:g} s "
                f"(predict_start_timeout) and was stopped",
                hung=True,
            ) from None
        except WorkerGone:
            await self._settle()
            raise
        if header.get("op") == "failed":
            await self._settle()
            status = header.get("status")
            message = str(header.get("message") or "the worker gave no reason")
            raise WorkerGone(
                f"the inference worker could not start: {message}",
                status=status if isinstance(status, int) and 400 <= status < 500 else 503,
            )
        if header.get("op") != "ready":
            self.kill()
            raise WorkerGone(f"the inference worker's first message was {header.get('op')!r}")
        return header

    async def _spawn(self) -> None:
        self._open_log()
        self.process = await asyncio.create_subprocess_exec(
            *self.command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            close_fds=True,
            cwd=str(self.log_path.parent),
            env=runner_environment(os.environ),
        )
        self._stderr_task = asyncio.create_task(self._copy_stderr())
        if self._stopped:  # closed while it was being spawned
            self.kill()
            await self._settle()
            raise WorkerGone("the inference worker was stopped while it started")

    async def start_spare(self, timeout: float) -> dict[str, Any]:
        """Spawn a spare worker (``--spare``) and wait until its libraries are imported.

        :meth:`start` later tells it its model (``load_argv``, a worker command line) and
        waits for its ``ready`` like any worker's.
        """
        await self._spawn()
        try:
            header = await asyncio.wait_for(self._read(), timeout)
        except TimeoutError:
            self.kill()
            raise WorkerGone("the spare worker did not import its libraries in time") from None
        except WorkerGone:
            await self._settle()
            raise
        if header.get("op") != "spare":
            self.kill()
            raise WorkerGone(f"the spare worker's first message was {header.get('op')!r}")
        return header

    async def _tell_spare(self, argv: list[str]) -> None:
        process = self.process
        if process is None or process.stdin is None or not self.alive:
            raise WorkerGone("the spare worker had exited")
        try:
            process.stdin.write(encode({"op": "load", "argv": argv}))
            await process.stdin.drain()
        except (ConnectionError, BrokenPipeError) as exc:
            self.kill()
            raise WorkerGone(f"the spare worker's stdin broke ({exc})") from None

    # ------------------------------------------------------------------ requests

    async def exchange(
        self, header: dict[str, Any], blobs: list[bytes], timeout: float
    ) -> dict[str, Any]:
        """Send one request and read its answer; a crash, broken frame or hang kills it."""
        process = self.process
        if process is None or process.stdin is None or not self.alive:
            raise WorkerGone("the inference worker had already exited")
        try:
            process.stdin.write(encode(header, blobs))
            return await asyncio.wait_for(self._drain_and_read(process), timeout)
        except TimeoutError:
            self.kill()
            raise WorkerGone(
                f"the inference worker did not answer within {timeout:g} s (predict_timeout); "
                f"it was stopped",
                hung=True,
            ) from None
        except WorkerGone:
            self.kill()
            await self._settle()
            raise
        except (ConnectionError, BrokenPipeError) as exc:
            self.kill()
            await self._settle()
            raise WorkerGone(f"the inference worker's stdin broke ({exc})") from None
        except BaseException:  # cancelled mid-exchange: the stream is out of step, drop it
            self.kill()
            raise

    async def _drain_and_read(self, process: asyncio.subprocess.Process) -> dict[str, Any]:
        assert process.stdin is not None
        await process.stdin.drain()
        return await self._read()

    async def _read(self) -> dict[str, Any]:
        process = self.process
        assert process is not None and process.stdout is not None
        try:
            header, _blobs = await read_async(process.stdout)
        except asyncio.IncompleteReadError:
            with contextlib.suppress(TimeoutError):  # its exit code makes a better message
                await asyncio.wait_for(process.wait(), 2.0)
            raise WorkerGone(self._exit_text()) from None
        except ProtocolError as exc:
            raise WorkerGone(f"the inference worker wrote a broken frame ({exc})") from None
        return header

    def _exit_text(self) -> str:
        process = self.process
        code = process.returncode if process is not None else None
        if code is not None and code < 0:
            with contextlib.suppress(ValueError):
                return f"the inference worker was killed by {signal.Signals(-code).name}"
        if code is not None:
            return f"the inference worker exited with code {code}"
        return "the inference worker closed its output"

    async def _settle(self) -> None:
        """Give an exiting worker a moment so its exit code and last stderr lines are known."""
        if self.process is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.process.wait(), 2.0)
        if self._stderr_task is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._stderr_task), 1.0)

    # ------------------------------------------------------------------ stop

    def kill(self) -> None:
        """SIGKILL the worker's whole session at once."""
        if self.process is not None:
            signal_session(self.process.pid, signal.SIGKILL)

    async def close(self, grace: float) -> None:
        """Close stdin (the worker exits by itself), then SIGTERM, then SIGKILL its session.

        Before the process exists this only marks it stopped: :meth:`start` then kills it as soon
        as it is spawned (or does not spawn it at all).
        """
        self._stopped = True
        process = self.process
        if process is None:
            return
        if process.stdin is not None and not process.stdin.is_closing():
            process.stdin.close()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), grace)
            if process.returncode is not None and not session_members(process.pid):
                break
            signal_session(process.pid, sig)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), grace)
        if self._stderr_task is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._stderr_task, 1.0)
        self._close_log()

    async def measure_rss(self) -> int | None:
        """Measure :meth:`rss_bytes` in a thread (psutil walks /proc) and keep it in ``rss``."""
        self.rss = await asyncio.to_thread(self.rss_bytes)
        return self.rss

    def rss_bytes(self) -> int | None:
        """Resident memory of the worker and its children, None when it is gone."""
        if not self.alive or self.process is None:
            return None
        try:
            root = psutil.Process(self.process.pid)
            total = int(root.memory_info().rss)
            for child in root.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    total += int(child.memory_info().rss)
            return total
        except psutil.Error:
            return None

    # ------------------------------------------------------------------ stderr log

    def _open_log(self) -> None:
        private_folder(self.log_path.parent)
        self._rotate_if_big()
        self._log = open_private(self.log_path, "ab")
        self._log_size = self.log_path.stat().st_size

    def _rotate_if_big(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            if self.log_path.stat().st_size >= self.log_max_bytes:
                os.replace(self.log_path, self.log_path.with_suffix(".log.1"))

    def _close_log(self) -> None:
        if self._log is not None:
            with contextlib.suppress(OSError):
                self._log.close()
            self._log = None

    async def _copy_stderr(self) -> None:
        process = self.process
        assert process is not None and process.stderr is not None
        while chunk := await process.stderr.read(STDERR_CHUNK):
            lines = (self._partial + chunk).split(b"\n")
            self._partial = lines.pop()[-4096:]
            self._tail.extend(line.decode(errors="replace")[-1000:] for line in lines)
            self._write_log(chunk)
        self._close_log()

    def _write_log(self, chunk: bytes) -> None:
        if self._log is None:
            return
        try:
            if self._log_size + len(chunk) > self.log_max_bytes:
                self._log.close()
                os.replace(self.log_path, self.log_path.with_suffix(".log.1"))
                self._log = open_private(self.log_path, "ab")
                self._log_size = 0
            self._log.write(chunk)
            self._log.flush()
            self._log_size += len(chunk)
        except OSError:
            self._close_log()  # a full disk must not stop the worker: its log is best effort
