"""The accelerator service: runs the probe in a subprocess, caches the report, reads usage.

The server never imports torch; the probe does, in ``python -m jupyter_yolo.accelerators.probe``,
started in its own session so that a timeout kills it and anything it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ProbeFailed, ProbeTimeout
from ..jobs.process import allowed_environment
from .probe import OFFLINE_ENV
from .report import build_report
from .usage import UsageReader

PROBE_MODULE = "jupyter_yolo.accelerators.probe"
STDERR_TAIL = 2000


def probe_command(python: str) -> list[str]:
    """Return the command line that runs the probe with ``python``."""
    return [python, "-m", PROBE_MODULE]


def probe_env() -> dict[str, str]:
    """Return the probe's environment: offline, and able to import this package from anywhere.

    Only what the accelerator stacks, torch and Python need is passed on from the server's
    environment (the jobs' allow-list): no credentials, tokens or agent sockets.
    """
    env = allowed_environment(os.environ)
    env.update(OFFLINE_ENV)
    package_parent = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    return env


def _tail(data: bytes) -> str:
    text = data.decode("utf-8", errors="replace").strip()
    return text[-STDERR_TAIL:] if len(text) > STDERR_TAIL else text


@dataclass(frozen=True)
class Hints:
    """Where a person changes the probe's settings: traits in the server, flags in the CLI."""

    timeout: str = "raise YoloApp.probe_timeout"
    python: str = "set YoloApp.probe_python to a Python interpreter that has torch"


SERVER_HINTS = Hints()


def parse_probe_output(
    python: str, returncode: int, stdout: bytes, stderr: bytes, hints: Hints = SERVER_HINTS
) -> dict[str, Any]:
    """Turn the probe's exit code and output into the report, or raise :class:`ProbeFailed`."""
    command = " ".join(probe_command(python))
    if returncode != 0:
        how = (
            f"was killed by signal {-returncode}"
            if returncode < 0
            else f"exited with code {returncode}"
        )
        raise ProbeFailed(
            f"The hardware probe ({command}) {how}; if torch is missing or broken there, "
            f"{hints.python}. Its last output: {_tail(stderr) or '(none)'}",
            returncode=returncode,
        )
    text = stdout.decode("utf-8", errors="replace").strip()
    facts: Any = None
    for candidate in (text, text.splitlines()[-1] if text else ""):
        with contextlib.suppress(ValueError):
            facts = json.loads(candidate)
            break
    if not isinstance(facts, dict):
        raise ProbeFailed(
            f"The hardware probe ({command}) printed something that is not a JSON report: "
            f"{text[:300]!r}; {hints.python} and this version of jupyter_yolo. "
            f"Its stderr: {_tail(stderr) or '(none)'}",
        )
    try:
        return build_report(facts)
    except Exception as exc:
        raise ProbeFailed(
            f"The hardware probe's output could not be read ({exc}); its facts were: {text[:300]!r}"
        ) from exc


def _timeout(python: str, timeout: float, stderr: bytes, hints: Hints) -> ProbeTimeout:
    tail = _tail(stderr)
    return ProbeTimeout(
        f"The hardware probe ({' '.join(probe_command(python))}) did not answer within "
        f"{timeout:g} s and was stopped. Importing torch can be slow on a cold start or a busy "
        f"machine: try again, or {hints.timeout}." + (f" Its last output: {tail}" if tail else ""),
        timeout=timeout,
    )


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _missing(python: str, exc: OSError, hints: Hints) -> ProbeFailed:
    return ProbeFailed(f"The hardware probe could not start {python!r} ({exc}); {hints.python}.")


def run_probe_sync(python: str, timeout: float, hints: Hints = SERVER_HINTS) -> dict[str, Any]:
    """Run the probe and return the report, blocking; raises ProbeTimeout or ProbeFailed."""
    try:
        proc = subprocess.Popen(
            probe_command(python),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=probe_env(),
            start_new_session=True,
        )
    except OSError as exc:
        raise _missing(python, exc, hints) from exc
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        stderr = b""
        with contextlib.suppress(subprocess.TimeoutExpired):
            _, stderr = proc.communicate(timeout=5.0)
        raise _timeout(python, timeout, stderr, hints) from None
    return parse_probe_output(python, proc.returncode, stdout, stderr, hints)


async def _pump(stream: asyncio.StreamReader | None, buffer: bytearray) -> None:
    """Copy a pipe into ``buffer`` until EOF, so partial output survives a timeout."""
    if stream is None:
        return
    while chunk := await stream.read(65536):
        buffer.extend(chunk)


async def run_probe(python: str, timeout: float, hints: Hints = SERVER_HINTS) -> dict[str, Any]:
    """Run the probe without blocking the event loop; raises ProbeTimeout or ProbeFailed."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *probe_command(python),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            stdin=asyncio.subprocess.DEVNULL,
            env=probe_env(),
            start_new_session=True,
        )
    except OSError as exc:
        raise _missing(python, exc, hints) from exc
    stdout, stderr = bytearray(), bytearray()
    try:
        await asyncio.wait_for(
            asyncio.gather(_pump(proc.stdout, stdout), _pump(proc.stderr, stderr), proc.wait()),
            timeout,
        )
    except asyncio.TimeoutError:
        _kill_group(proc.pid)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(proc.wait(), 5.0)
        raise _timeout(python, timeout, bytes(stderr), hints) from None
    except BaseException:
        _kill_group(proc.pid)
        raise
    assert proc.returncode is not None
    return parse_probe_output(python, proc.returncode, bytes(stdout), bytes(stderr), hints)


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a shared probe's exception as seen even when every waiter went away."""
    if not future.cancelled():
        future.exception()


class AcceleratorService:
    """Caches the accelerator report; concurrent callers share one probe run."""

    def __init__(self, python: str, timeout: float, log: logging.Logger) -> None:
        self.python = python
        self.timeout = timeout
        self.log = log
        self._report: dict[str, Any] | None = None
        self._inflight: asyncio.Future[dict[str, Any]] | None = None
        self._usage = UsageReader()
        self._usage.prime()

    async def report(self, refresh: bool = False) -> dict[str, Any]:
        """Return the report, probing on first use or when ``refresh`` is true.

        A caller that arrives while a probe runs waits for that probe, even with ``refresh``:
        its result is as fresh as a new one would be.
        """
        if self._report is not None and not refresh:
            return self._report
        if self._inflight is None:
            self._inflight = asyncio.ensure_future(self._probe())
            self._inflight.add_done_callback(_retrieve)
        return await asyncio.shield(self._inflight)

    async def _probe(self) -> dict[str, Any]:
        started = time.monotonic()
        try:
            report = await run_probe(self.python, self.timeout)
        except (ProbeFailed, ProbeTimeout) as exc:
            self.log.warning("jupyter_yolo accelerator probe failed: %s", exc.message)
            raise
        finally:
            self._inflight = None
        self.log.info(
            "jupyter_yolo accelerator probe took %.1f s: %s",
            time.monotonic() - started,
            report["primary"]["label"],
        )
        self._report = report
        return report

    @property
    def cached_report(self) -> dict[str, Any] | None:
        """The last report, without probing; None before the first probe."""
        return self._report

    def report_sync(self, refresh: bool = False) -> dict[str, Any]:
        """Return the report from a blocking probe run (for the command line)."""
        if self._report is None or refresh:
            self._report = run_probe_sync(self.python, self.timeout)
        return self._report

    def usage(self) -> dict[str, Any]:
        """Return a cheap live reading of CPU, memory and GPU use."""
        return self._usage.read()
