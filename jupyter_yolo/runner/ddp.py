"""Multi-GPU (DDP) training with the same events, stop and resume as a single-device run.

How ultralytics (8.4) runs DDP: a trainer whose ``device`` names several GPUs sees
``world_size > 1`` in the runner process and does not train there. ``generate_ddp_file`` saves
``{trainer class, args, model, callbacks}`` with cloudpickle into ``$YOLO_CONFIG_DIR/
Ultralytics/DDP/_temp_*.pt``, writes a launcher ``.py`` next to it and runs it with
``python -m torch.distributed.run --nproc_per_node N``; each rank rebuilds the trainer from
that state (its callbacks included) and trains; ``ddp_cleanup`` removes both files in a
``finally``. Our callbacks used to make that launch fail at once (``TypeError: cannot pickle
'_thread.lock' object``: the reporter's journal and stop controller hold locks and an open file),
and ultralytics skips ``on_pretrain_routine_start`` in the launching process, so the warning
meant for that case never showed. What happens now:

* **Picklable callbacks.** :class:`~jupyter_yolo.runner.callbacks.TrainingReporter` pickles as
  its settings (job folder, stop file, task, counters) without its journal or the runner's
  status callback; :class:`~jupyter_yolo.runner.stop.StopController` pickles as its stop file.
  Unpickled in a rank (``RANK``/``LOCAL_RANK`` set by ``torch.distributed.run``),
  :func:`attach_worker` gives rank 0 a journal of its own on the job's ``events.jsonl`` plus
  ultralytics' log records as ``log`` events, and every other rank a
  :class:`~jupyter_yolo.runner.journal.NullJournal`: rank 0 alone emits the batch, epoch,
  validation and artifact events. The runner keeps writing its own status, usage and log events;
  :class:`~jupyter_yolo.runner.journal.Journal` appends under an ``flock`` and re-reads the last
  seq when another process appended, so seq stays contiguous with two writers.
* **Stop on every rank, at the same batch.** Every rank reads the stop file at the points all
  ranks pass in lockstep (setup end, train start, epoch start, each batch end, epoch end) and
  :func:`agree` takes the maximum of their flags (one ``all_reduce`` of one number), so all ranks
  stop after the same batch: none is left waiting in a collective for a rank that left. Rank 0
  then writes a resumable ``last.pt`` mid-epoch (``save_interrupted_checkpoint``, optimizer
  included) and every rank raises :class:`DdpStopped` (a ``SystemExit(0)``): each worker exits 0,
  ``torch.distributed.run`` ends normally, and the runner finds rank 0's record in
  :data:`STATE_FILE` saying it stopped, and ends the job ``stopped``. A stop during a validation
  waits for the end of the epoch (the validator's batches are no lockstep point). A ``SIGTERM``
  of the job's session (the server's escalation) kills the workers; the launch then fails and the
  runner, whose stop controller sees the stop file, still reports ``stopped``.
* **No orphan ranks.** ``torch.distributed.run`` starts each rank in a session of its own,
  out of reach of the server's session cleanup; :func:`attach_worker` arms
  ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` in every rank (:mod:`jupyter_yolo.runner.parentdeath`),
  so a ``torchrun`` killed -9 takes its ranks with it, and a rank whose ``torchrun`` or runner
  is already gone when it starts leaves at once.
* **The runner's side** (:func:`run_ddp_train`): the results collector stays out of the launch
  (it holds the job context); :data:`STATE_FILE` is cleared before, followed during the run for
  ``status.json``'s ``epochs_done``, read after. A completed run is validated once more with
  ``best.pt`` on the first device with the collector attached, which gives ``results.json`` and
  the final metrics as a single-device run's ``final_eval`` would. Resume passes ``resume=last.pt``
  and the same devices, as for one device. A launch that fails in a worker raises
  :class:`DdpFailed` with the worker's own last exception line from the job log (the workers
  write to the runner's captured output), so out of memory still reads as out of memory.

Cost: one ``all_reduce`` of one integer per batch on every rank (and the synchronisation its
``item()`` implies), against the gradient ``all_reduce`` of the whole model that DDP does anyway.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..contract.files import write_json_atomic
from ..contract.tasks import headline
from .job import LOG_FILE
from .journal import EventLogHandler, Journal, NullJournal, number
from .stop import StopRequested

if TYPE_CHECKING:
    from .callbacks import TrainingReporter
    from .common import JobContext
    from .results import ResultsCollector

STATE_FILE = ".ddp_state.json"
"""Rank 0's record in the job folder: epochs done, last epoch event, final metrics, stop."""


class DdpStopped(SystemExit):
    """Raised on every rank after an agreed stop: the worker process exits 0 (see the module)."""

    def __init__(self) -> None:
        super().__init__(0)


class DdpFailed(RuntimeError):
    """The DDP launch failed in a worker: the message carries the worker's own error line."""

    def __init__(self, devices: int, status: int, error: str | None) -> None:
        super().__init__(
            f"multi-GPU (DDP) training failed in one of its {devices} worker processes "
            f"(exit status {status})"
            + (f": {error}" if error else "; the job log has the worker's traceback")
        )


WORKER_ERROR = re.compile(r"^(?:\[rank\d+\]:\s*)?((?:\w+\.)*\w*(?:Error|Exception): .+)$")
IGNORED_ERRORS = ("ChildFailedError", "CalledProcessError", "SignalException")


def worker_error(log: Path, tail: int = 256 * 1024) -> str | None:
    """The last exception line a DDP worker printed into the job log (None when there is none)."""
    try:
        with log.open("rb") as handle:
            handle.seek(max(handle.seek(0, os.SEEK_END) - tail, 0))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return None
    found = None
    for line in text.splitlines():
        match = WORKER_ERROR.match(line.strip())
        if match and not any(name in match.group(1) for name in IGNORED_ERRORS):
            found = match.group(1)
    return found[:500] if found else None


def device_count(device: Any) -> int:
    """How many accelerators a ``device`` value names (0 for the CPU or MPS, 1 for one GPU)."""
    if device is None:
        return 1
    if isinstance(device, (list, tuple)):
        return len(device)
    text = str(device).strip().lower().replace(" ", "")
    if text in {"cpu", "mps"} or text.startswith("mps"):
        return 0
    text = text.split(":", 1)[-1].strip("[]()")
    return len([part for part in text.split(",") if part]) or 1


def first_device(device: Any) -> str:
    """The first device of a multi-device value: ``"0,1"`` → ``"0"``, ``"cuda:2,3"`` → ``"2"``."""
    if isinstance(device, (list, tuple)):
        return str(device[0])
    return str(device).split(":", 1)[-1].strip("[]()").split(",")[0].strip()


def worker_rank() -> int | None:
    """The rank of the current process in a ``torch.distributed.run`` launch (None outside one)."""
    if "LOCAL_RANK" not in os.environ:
        return None
    return int(os.environ.get("RANK", os.environ["LOCAL_RANK"]))


def attach_worker(reporter: TrainingReporter) -> None:
    """Give an unpickled reporter what its process may use: rank 0 (or no rank) writes events."""
    rank = worker_rank()
    reporter.ddp_rank = rank
    if rank is not None:  # torchrun starts its ranks in sessions of their own: see parentdeath
        from .parentdeath import die_with_parent, launcher_pid

        die_with_parent(launcher_pid())
    if rank in (None, 0):
        reporter.journal = Journal(reporter.job_dir)
        reporter.on_epoch_done = lambda epoch: write_state(reporter)
    else:
        reporter.journal = NullJournal(reporter.job_dir)
    if rank == 0:
        from . import offline

        offline.install_socket_guard()  # the runner's jobs run offline; so do its workers
        with contextlib.suppress(Exception):  # log events are a comfort, never a failure
            from ultralytics.utils import LOGGER

            LOGGER.addHandler(EventLogHandler(reporter.journal))


def agree(trainer: Any, local: bool) -> bool:
    """Whether any rank asks to stop (every rank must call it at the same point)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return local
    import torch

    flag = torch.tensor([1 if local else 0], device=getattr(trainer, "device", None) or "cpu")
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


def collective_stop(reporter: TrainingReporter, trainer: Any) -> None:
    """The DDP stop check: at a lockstep point, all ranks stop together or none does."""
    if not agree(trainer, reporter.stop.requested()):
        return
    reporter.stop.requested()  # a rank that looked just before the stop file appeared sees it now
    reason = reporter.stop.reason or "another rank's stop"
    if reporter.ddp_rank in (None, 0):
        from .callbacks import save_interrupted_checkpoint

        reporter.journal.status("stopping", reason=reason)
        if reporter.in_epoch:
            completed = int(trainer.epoch) - 1
            path = save_interrupted_checkpoint(trainer, completed)
            if path is not None:
                reporter.journal.artifact(path, "weights", again=True)
                where = (
                    f"resume redoes epoch {completed + 2}"
                    if completed >= 0
                    else "no epoch had completed, so resume restarts training from epoch 1"
                )
                reporter.journal.log(
                    f"stopped during epoch {int(trainer.epoch) + 1}; saved last.pt ({where})"
                )
        write_state(reporter, stopped=reason, last=str(trainer.last))
    for name in ("train_loader", "test_loader"):
        close = getattr(getattr(trainer, name, None), "close", None)
        if close is not None:
            with contextlib.suppress(Exception):
                close()
    raise DdpStopped


def write_state(reporter: TrainingReporter, **extra: Any) -> None:
    """Rank 0's progress for the runner (:data:`STATE_FILE`), written atomically."""
    final = reporter.final_metrics
    state = {
        "epochs_done": reporter.epochs_done,
        "start_epoch": reporter.start_epoch,
        "last_epoch": reporter.last_epoch_event,
        "final_metrics": {str(k): number(v) for k, v in final.items()} if final else None,
        "stopped": None,
        **extra,
    }
    write_json_atomic(reporter.job_dir / STATE_FILE, state)


def read_state(job_dir: Path) -> dict[str, Any]:
    """Rank 0's last record, or ``{}`` when there is none (yet)."""
    try:
        data = json.loads((job_dir / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class _EpochFollower:
    """Copies rank 0's ``epochs_done`` into the runner's ``status.json`` while DDP trains."""

    def __init__(self, ctx: JobContext, period: float = 1.0) -> None:
        self.ctx = ctx
        self.period = period
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ddp-epochs", daemon=True)

    def __enter__(self) -> _EpochFollower:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._done.wait(self.period):
            epochs = read_state(self.ctx.job_dir).get("epochs_done")
            if isinstance(epochs, int) and epochs != self.ctx.status.epochs_done:
                self.ctx.status.epochs_done = epochs
                with contextlib.suppress(OSError):
                    self.ctx.status.save()


def run_ddp_train(
    ctx: JobContext,
    model: Any,
    train_args: dict[str, Any],
    reporter: TrainingReporter,
    collector: ResultsCollector,
) -> dict[str, Any]:
    """Train on several GPUs through ultralytics' DDP launch; the summary as :func:`run_train`."""
    from .callbacks import metric_fields, task_metrics

    ctx.stop.check()
    (ctx.job_dir / STATE_FILE).unlink(missing_ok=True)
    devices = device_count(train_args.get("device"))
    ctx.journal.log(f"multi-GPU training (DDP) on {devices} devices; rank 0 reports the events")
    from .parentdeath import RUNNER_PID_ENV

    os.environ[RUNNER_PID_ENV] = str(os.getpid())  # the ranks die with torchrun (parentdeath)
    failure: Exception | None = None
    with _EpochFollower(ctx):
        try:
            model.train(**train_args)
        except Exception as exc:  # a stop makes no checkpoint-less run fail: decided below
            failure = exc
    state = read_state(ctx.job_dir)
    (ctx.job_dir / STATE_FILE).unlink(missing_ok=True)
    epochs_done = int(state.get("epochs_done") or 0)
    ctx.status.epochs_done = epochs_done
    last = ctx.run_dir / "weights" / "last.pt"
    best = ctx.run_dir / "weights" / "best.pt"
    stop_asked = ctx.stop.stop_file.exists() or ctx.stop.reason is not None
    if state.get("stopped") or (failure is not None and stop_asked):
        ctx.stop.note(str(state.get("stopped") or ctx.stop.reason or "stop file"))
        ctx.partial_result = {
            "kind": "train",
            "epochs": int(train_args.get("epochs") or 0),
            "epochs_done": epochs_done,
            "last": ctx.rel(last) if last.exists() else None,
            "last_epoch": {
                k: v
                for k, v in (state.get("last_epoch") or {}).items()
                if k not in {"seq", "time", "type"}
            }
            or None,
        }
        raise StopRequested(ctx.stop.reason) from failure
    if isinstance(failure, subprocess.CalledProcessError):
        raise DdpFailed(devices, failure.returncode, worker_error(ctx.job_dir / LOG_FILE))
    if failure is not None:
        raise failure
    weights = best if best.exists() else last
    collector.attach(model)
    args = {k: train_args[k] for k in ("imgsz", "batch", "workers") if k in train_args}
    metrics = model.val(
        data=train_args["data"],
        device=first_device(train_args.get("device")),
        plots=False,
        **args,
        **ctx.output_args(),
    )
    collector.write(weights if weights.exists() else None, model)
    final = dict(getattr(metrics, "results_dict", None) or state.get("final_metrics") or {})
    trainer: Any = model.trainer
    return {
        "kind": "train",
        "task": ctx.spec.task,
        "epochs": int(trainer.epochs),
        "epochs_done": epochs_done,
        "metrics": {**metric_fields(final), "fitness": number(final.get("fitness"))},
        "task_metrics": task_metrics(final, ctx.spec.task),
        "headline": headline(ctx.spec.task),
        "best": ctx.rel(best) if best.exists() else None,
        "last": ctx.rel(last) if last.exists() else None,
        "save_dir": ctx.rel(ctx.run_dir),
    }
