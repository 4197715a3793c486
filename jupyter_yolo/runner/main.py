"""One job, start to end: ``python -m jupyter_yolo.runner JOB_DIR``.

Order of work: stop handlers first (a SIGUSR1 must never kill the runner), then the log capture,
``status.json`` = running and a ``running`` event, the offline environment, ultralytics, the task.
At the end: leftover processes of the runner's session are ended, then the ``result`` event, the
terminal ``status`` event and the terminal ``status.json``, in that order, so that a reader that
sees the terminal status.json finds every event already written. Then the process ends at once
(:func:`exit_process`): the interpreter's teardown after a training (about a second of freeing
torch and ultralytics modules on a small CPU) would only delay the moment the server sees the
job ended and starts the next one.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from .job import (
    ALREADY_RUNNING_EXIT,
    LOG_FILE,
    STATUS_FILE,
    STOP_FILE,
    JobFile,
    JobFileError,
    StatusFile,
    hold_runner_lock,
)
from .journal import EventLogHandler, Journal, strip_ansi
from .logcap import LogCapture
from .stop import StopController, StopRequested
from .usage_sampler import UsageSampler

EXIT_OK = 0
EXIT_FAILED = 1


@dataclass
class Outcome:
    """How the job ended."""

    status: str = "failed"
    exit_reason: str = "exception"
    result: dict[str, Any] | None = None
    error: str | None = None
    error_type: str | None = None


def describe_error(exc: BaseException) -> str:
    """A message a person can act on, from an exception raised by a job."""
    from .offline import NetworkBlocked

    text = strip_ansi(str(exc)).strip() or type(exc).__name__
    name = type(exc).__name__
    if "out of memory" in text.lower() or name == "OutOfMemoryError":
        text = f"out of accelerator memory: lower 'batch' or 'imgsz' ({text.splitlines()[0]})"
    elif isinstance(exc, (NetworkBlocked, ConnectionError)) or "Download failure" in text:
        text = (
            "this job tried to download something, but jupyter-yolo jobs run offline: put the "
            f"file in the workspace (weights/ or datasets/) and refer to it. Details: {text}"
        )
    elif isinstance(exc, JobFileError):
        text = f"the job folder is not valid: {text}"
    if len(text) > 2000:
        text = text[:2000] + " ..."
    return text


def _session_processes() -> list[int]:
    """Pids of the other processes in this runner's session (or its descendants if not a leader)."""
    me = os.getpid()
    leader = os.getsid(0) == me
    parents: dict[int, int] = {}
    sessions: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            with open(f"/proc/{pid}/stat", "rb") as handle:
                stat = handle.read().decode("utf-8", "replace")
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) < 4 or fields[0] == "Z":
            continue
        parents[pid] = int(fields[1])
        sessions[pid] = int(fields[3])
    if leader:
        return [pid for pid, sid in sessions.items() if sid == me and pid != me]
    found: list[int] = []
    frontier = [me]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        found.extend(children)
        frontier.extend(children)
    return found


def end_leftovers(grace: float = 3.0) -> list[int]:
    """SIGTERM, then SIGKILL, the processes this runner started that are still alive."""
    pids = _session_processes()
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while pids and time.monotonic() < deadline:
        time.sleep(0.05)
        for pid in pids:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
        pids = [pid for pid in pids if pid in _session_processes()]
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    return pids


def _attach_log_events(journal: Journal) -> None:
    from ultralytics.utils import LOGGER

    LOGGER.addHandler(EventLogHandler(journal))


def _detach_log_events() -> None:
    utils = sys.modules.get("ultralytics.utils")
    logger = getattr(utils, "LOGGER", None)
    if isinstance(logger, logging.Logger):
        for handler in list(logger.handlers):
            if isinstance(handler, EventLogHandler):
                logger.removeHandler(handler)


def _stream_hosts(spec: JobFile) -> tuple[str, ...]:
    """The host a predict job's stream source reads from (the server allowed it), else none."""
    from ..jobs.media_source import KIND_STREAM, source_kind, stream_host

    source = spec.params.get("source") if spec.kind == "predict" else None
    if not isinstance(source, str) or source_kind(source) != KIND_STREAM:
        return ()
    try:
        host, _ = stream_host(source)
    except Exception:  # an unreadable URL: the job fails when it opens it
        return ()
    return (host,) if host else ()


def run(job_dir: Path) -> int:
    """Run the job in ``job_dir``; return the process exit code (0: succeeded or stopped)."""
    job_dir = job_dir.absolute()
    os.umask(0o077)  # the job folder, its log, events and run/ are private to the user
    if hold_runner_lock(job_dir) is None:
        print(
            f"jupyter-yolo runner: another runner already runs the job in {job_dir}; "
            f"this one leaves it alone",
            file=sys.stderr,
            flush=True,
        )
        return ALREADY_RUNNING_EXIT
    stop = StopController(job_dir / STOP_FILE)
    stop.install()
    os.chdir(job_dir)

    capture: LogCapture | None = None
    journal: Journal | None = None
    status = StatusFile(job_dir / STATUS_FILE)
    spec: JobFile | None = None
    end = Outcome()
    ctx: Any = None
    sampler: UsageSampler | None = None
    try:
        try:
            spec = JobFile.load(job_dir)
        finally:
            capture = LogCapture(job_dir / LOG_FILE, spec.log_max_bytes if spec else 10 * 2**20)
            capture.start()
            journal = Journal(job_dir)
            status.save()
        print(
            f"jupyter-yolo runner pid {os.getpid()}: {spec.kind} job {spec.id}"
            f"{' (resume)' if spec.resume else ''}",
            flush=True,
        )
        journal.status("running", pid=os.getpid(), resume=spec.resume)
        sampler = UsageSampler(journal).start()
        active_journal = journal
        stop.install(on_request=lambda reason: active_journal.status("stopping", reason=reason))
        stop.check()

        from . import offline
        from .resources import usable_cpus

        cpus = usable_cpus()
        if spec.kind in {"train", "tune"}:
            offline.set_wait_policy()  # before torch starts its OpenMP threads
        prepared = offline.prepare(spec.workspace, cpus, allow_hosts=_stream_hosts(spec))
        if prepared["missing_fonts"]:
            journal.warning(
                "no_font",
                "no bundled font found to install for plots; ultralytics may try to download one",
            )
        import ultralytics  # noqa: F401 - after prepare(): settings, env and fonts are in place

        offline.after_import(cpus, journal.warning)
        _attach_log_events(journal)
        stop.check()

        from .tasks import TASKS, JobContext

        ctx = JobContext(
            job_dir=job_dir, spec=spec, journal=journal, stop=stop, status=status, cpus=cpus
        )
        result = TASKS[spec.kind](ctx)
        end = Outcome("succeeded", "completed", result=result)  # a late stop changes nothing
    except StopRequested:
        partial = getattr(ctx, "partial_result", None) or None
        end = Outcome("stopped", f"stop requested ({stop.reason})", result=partial)
    except BaseException as exc:  # every failure becomes a readable error event and status
        traceback.print_exc()
        reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else "exception"
        end = Outcome("failed", reason, error=describe_error(exc), error_type=type(exc).__name__)
    finally:
        _finish(capture, journal, status, end, sampler)
    return EXIT_OK if end.status in {"succeeded", "stopped"} else EXIT_FAILED


def _finish(
    capture: LogCapture | None,
    journal: Journal | None,
    status: StatusFile,
    end: Outcome,
    sampler: UsageSampler | None = None,
) -> None:
    """End leftovers, then write the closing events and the terminal status.json."""
    if sampler is not None:
        sampler.stop()  # no usage event after the terminal status
    for sig in (signal.SIGUSR1, signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)  # nothing may interrupt the closing writes
    try:
        leftovers = end_leftovers()
        if leftovers:
            print(f"ended {len(leftovers)} leftover process(es): {leftovers}", flush=True)
    except Exception:
        traceback.print_exc()
    _detach_log_events()
    if journal is not None:
        try:
            if end.error is not None:
                journal.emit("error", message=end.error, exception=end.error_type)
            if end.result is not None:
                journal.emit("result", **end.result)
            fields: dict[str, Any] = {"exit_reason": end.exit_reason}
            if end.error is not None:
                fields["error"] = end.error
            journal.status(end.status, **fields)
            journal.close()
        except Exception:
            traceback.print_exc()
    try:
        status.finish(end.status, exit_reason=end.exit_reason, error=end.error, result=end.result)
    except Exception:
        traceback.print_exc()
    print(f"jupyter-yolo runner: {end.status} ({end.exit_reason})", flush=True)
    if capture is not None:
        capture.stop()


def exit_process(code: int) -> NoReturn:
    """End the runner now with ``code``, without the interpreter's teardown.

    Everything that matters is on disk before this is called: the event file was fsynced and
    closed, ``status.json`` was written atomically (fsynced) and the log capture has stopped.
    The steps of a normal exit that can matter still run, in CPython's order: threading's exit
    hooks and the wait for non-daemon threads (``threading._shutdown``), the ``atexit``
    handlers (``logging.shutdown``, multiprocessing's clean-up ...), the flush of the standard
    streams. Only the freeing of every module and object (about a second after a training on
    a small CPU) is skipped.
    """
    try:
        shutdown: Callable[[], None] | None = getattr(threading, "_shutdown", None)
        if shutdown is not None and threading.current_thread() is threading.main_thread():
            shutdown()
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


def main(argv: list[str] | None = None) -> int:
    """Command line entry: ``python -m jupyter_yolo.runner JOB_DIR``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] in {"-h", "--help"}:
        print("usage: python -m jupyter_yolo.runner JOB_DIR", file=sys.stderr)
        return 2
    job_dir = Path(args[0])
    if not job_dir.is_dir():
        print(f"error: {job_dir} is not a folder", file=sys.stderr)
        return 2
    return run(job_dir)
