"""A warm inference worker: ``python -m jupyter_yolo.serving.worker --workspace W --model M``.

One model on one backend, answering :mod:`jupyter_yolo.serving.protocol` frames on stdin/stdout
until stdin ends (exit 0) or SIGTERM (default action: the process ends at once).

Start-up, in order:

1. The real stdout is kept for frames only (a private duplicate of fd 1); fd 1 then points at
   stderr, so anything printed (ultralytics' LOGGER, a stray ``print``) lands in the log, never
   inside a frame.
2. :func:`jupyter_yolo.runner.offline.prepare`, like a job runner, before ultralytics is imported:
   offline, fonts and settings in the workspace, the socket guard, thread variables. OpenCV's own
   pixel limit (``OPENCV_IO_MAX_IMAGE_PIXELS``) is set to the worker's.
3. The model on its backend (:mod:`.warm`: the choice a predict job makes), one warm-up
   inference, then ``ready`` (or ``failed`` with a message a person can act on, exit 1).

Each ``predict`` is answered by :class:`~jupyter_yolo.serving.answer.Answerer`; a refused or
failed request gets an ``error`` frame and the worker goes on.

Three flags serve the background preparation after training (:mod:`.prepare`): ``--nice``
lowers the process's CPU priority (nice 19) and I/O class (idle) before anything is imported;
``--prepare`` exits 0 right after ``ready``: the exports and the ``auto`` measurement it did on
the way are stored in the export cache, where the warm worker started next finds them;
``--spare`` (with ``--model -``) imports the libraries and runs one prediction on an untrained
model, answers ``{"op": "spare"}`` and waits for a ``{"op": "load", "argv": [...]}`` frame: the
worker command line of the model it then loads as usual (``ready`` or ``failed``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import IO, Any, NoReturn

from .answer import DEFAULT_MAX_PIXELS, Answerer, RequestError
from .protocol import MAX_HEADER_BYTES, ProtocolError, encode, read_sync

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BROKEN_STREAM = 2


class _ArgumentError(Exception):
    pass


class AnswerTooLarge(Exception):
    """An answer over the frame limit (many full-size masks): refused, the worker goes on."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # a `failed` frame, not usage text on stdout
        raise _ArgumentError(message)


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The worker's command line (the pool builds it)."""
    parser = _Parser(prog="python -m jupyter_yolo.serving.worker", add_help=False)
    parser.add_argument("--workspace", required=True, type=Path)
    parser.add_argument("--model", required=True)
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--imgsz", type=int, default=0, help="0: the model's own")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cpus", type=int, default=0, help="0: the CPUs usable here")
    parser.add_argument("--task", default=None)
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS)
    parser.add_argument("--prepare", action="store_true", help="exit 0 after ready")
    parser.add_argument("--nice", action="store_true", help="lowest CPU and I/O priority")
    parser.add_argument("--spare", action="store_true", help="import, then wait for a model")
    return parser.parse_args(argv)


def lower_priority() -> None:
    """Nice 19 and the idle I/O class (where the kernel offers it) for this process."""
    with contextlib.suppress(OSError):
        os.nice(19)
    import psutil  # a dependency of the server: no torch, cheap

    io = "idle"
    try:
        psutil.Process().ionice(psutil.IOPRIO_CLASS_IDLE)
    except (AttributeError, OSError, ValueError, psutil.Error):
        io = "unchanged (the idle class is not offered here)"
    log(f"low priority: nice {os.nice(0)}, I/O class {io}")


def log(message: str) -> None:
    """One line on stderr (the worker's log)."""
    print(f"jupyter-yolo worker {os.getpid()}: {message}", file=sys.stderr, flush=True)


def rss_bytes() -> int:
    """Resident memory of this process now."""
    try:
        with open("/proc/self/statm", "rb") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


class Channel:
    """The frame stream to the server (the private duplicate of the real stdout)."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out

    def send(self, header: dict[str, Any]) -> None:
        """Write one header-only frame and flush it (nothing is written if it cannot be built)."""
        frame = encode(header)
        if len(frame) - 4 > MAX_HEADER_BYTES:
            raise AnswerTooLarge(
                f"the answer has {len(frame) - 4} bytes of JSON, more than the "
                f"{MAX_HEADER_BYTES} a frame may carry: send fewer or smaller images"
            )
        self.out.write(frame)
        self.out.flush()


def take_stdout() -> IO[bytes]:
    """The real stdout for frames only; fd 1 (and ``print``) go to stderr from now on."""
    sys.stdout.flush()
    out = os.fdopen(os.dup(1), "wb", buffering=1 << 16)
    os.dup2(2, 1)
    return out


def _start_message(exc: BaseException, workspace: Path | None) -> tuple[str, int | None]:
    from .warm import WorkerStartError

    if isinstance(exc, (WorkerStartError, _ArgumentError)):
        return str(exc), 400
    from ..runner.main import describe_error

    return describe_error(exc), None


def prepare_libraries(args: argparse.Namespace) -> int:
    """Prepare the process like a job runner and import ultralytics; the CPUs to use."""
    from ..runner import offline
    from ..runner.resources import usable_cpus

    cpus = int(args.cpus) if args.cpus > 0 else usable_cpus()
    os.environ["OPENCV_IO_MAX_IMAGE_PIXELS"] = str(max(1, args.max_pixels))
    offline.prepare(args.workspace.absolute(), cpus)
    import ultralytics  # noqa: F401 - after prepare(): settings, env and fonts are in place

    offline.after_import(cpus, lambda code, text: log(f"warning {code}: {text}"))
    return cpus


def start(args: argparse.Namespace, cpus: int | None = None) -> Answerer:
    """Load and warm the model (preparing the process first unless ``cpus`` says it was)."""
    from .warm import load

    if cpus is None:
        cpus = prepare_libraries(args)
    workspace: Path = args.workspace.absolute()
    model_path = Path(args.model)
    if not model_path.is_absolute():
        model_path = workspace / model_path
    warm = load(
        model_path,
        workspace=workspace,
        backend=args.backend,
        imgsz=args.imgsz or None,
        device=args.device,
        cpus=cpus,
        task=args.task,
        log=log,
    )
    log(
        f"ready: {warm.task} model {args.model} on {warm.backend['name']} at {warm.imgsz} px "
        f"({warm.device}), loaded in {warm.load_ms:.0f} ms"
    )
    return Answerer(warm, args.max_pixels)


def warm_libraries() -> None:
    """Run what a first prediction imports and initialises, on an untrained model (a spare)."""
    import numpy as np
    from ultralytics.models.yolo.model import YOLO

    model = YOLO("yolov8n.yaml", verbose=False)
    model.predict(np.zeros((32, 32, 3), np.uint8), imgsz=32, device="cpu", verbose=False)


def wait_for_model(
    stdin: IO[bytes], channel: Channel, args: argparse.Namespace
) -> argparse.Namespace | None:
    """A spare: say its libraries are ready, then read the model it is given (None: stdin ended).

    The ``load`` frame carries a worker command line; its workspace must be the spare's own.
    """
    channel.send({"op": "spare", "pid": os.getpid()})
    frame = read_sync(stdin)
    if frame is None:
        return None
    header, _ = frame
    argv = header.get("argv")
    if header.get("op") != "load" or not isinstance(argv, list):
        raise _ArgumentError("a spare worker expects a 'load' frame with the worker's arguments")
    given = parse_args([str(a) for a in argv])
    if given.workspace.absolute() != args.workspace.absolute() or given.cpus != args.cpus:
        raise _ArgumentError("a spare worker serves its own workspace with its own CPUs")
    log(f"spare worker given {given.model} ({given.backend})")
    return given


def serve(stdin: IO[bytes], channel: Channel, answerer: Answerer) -> int:
    """Answer frames until stdin ends; the exit code."""
    while True:
        try:
            frame = read_sync(stdin)
        except ProtocolError as exc:
            log(f"the server sent a broken frame, stopping: {exc}")
            return EXIT_BROKEN_STREAM
        if frame is None:
            return EXIT_OK
        header, blobs = frame
        del frame  # the blobs are freed once answered
        op = header.get("op")
        rid = header.get("id")
        if op == "ping":
            channel.send({"op": "pong", "id": rid, "rss_bytes": rss_bytes()})
            continue
        if op != "predict":
            channel.send({"op": "error", "id": rid, "status": 400, "message": f"unknown op {op!r}"})
            continue
        try:
            answer = answerer.predict(header, blobs)
        except RequestError as exc:
            answer = {"op": "error", "id": rid, "status": exc.status, "message": exc.message}
        except Exception as exc:  # the request failed; the worker goes on serving
            traceback.print_exc()
            from ..runner.main import describe_error

            message = f"prediction failed: {describe_error(exc)}"
            answer = {"op": "error", "id": rid, "status": 500, "message": message}
        del blobs
        try:
            channel.send(answer)
        except (TypeError, ValueError, AnswerTooLarge) as exc:  # nothing was written
            traceback.print_exc()
            status = 413 if isinstance(exc, AnswerTooLarge) else 500
            message = f"the answer could not be sent: {exc}"
            channel.send({"op": "error", "id": rid, "status": status, "message": message})


def main(argv: list[str] | None = None) -> int:
    """Command line entry; the process exit code."""
    started = time.perf_counter()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    channel = Channel(take_stdout())
    stdin = sys.stdin.buffer
    workspace: Path | None = None
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
        workspace = args.workspace
        if args.nice:
            lower_priority()
        os.umask(0o077)
        if args.spare:  # import now, the model comes later (a stand-in after training)
            cpus = prepare_libraries(args)
            warm_libraries()
            given = wait_for_model(stdin, channel, args)
            if given is None:
                return EXIT_OK
            args, started = given, time.perf_counter()
            answerer = start(args, cpus)
        else:
            answerer = start(args)
    except BaseException as exc:  # every start failure is a `failed` frame and exit 1
        traceback.print_exc()
        message, status = _start_message(exc, workspace)
        failed: dict[str, Any] = {"op": "failed", "message": message}
        if status is not None:
            failed["status"] = status
        with contextlib.suppress(OSError):
            channel.send(failed)
        return EXIT_FAILED
    warm = answerer.warm
    channel.send(
        {
            "op": "ready",
            "task": warm.task,
            "backend": warm.backend,
            "imgsz": warm.imgsz,
            "model": args.model,
            "device": warm.device,
            "load_ms": round(warm.load_ms, 1),
            "start_ms": round((time.perf_counter() - started) * 1000.0, 1),
            "pid": os.getpid(),
        }
    )
    if args.prepare:  # prepared: the exports and the choice are in the cache
        return EXIT_OK
    try:
        return serve(stdin, channel, answerer)
    except BrokenPipeError:  # the server is gone
        return EXIT_OK


if __name__ == "__main__":
    code = main()
    from ..runner.main import exit_process

    exit_process(code)
