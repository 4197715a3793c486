"""The Ray executor: jobs submitted to a Ray cluster through its Jobs API, followed by polling.

The server never imports ``ray``: :class:`~.ray_api.RayJobsApi` speaks HTTP. A Ray job's runner
writes its folder (``status.json``, ``events.jsonl``) on the shared workspace exactly as a local
runner does; the server reads Ray's word only for what the runner cannot say:

- ``queued`` while Ray has not placed it (``PENDING``, with Ray's message as the queue reason);
  ``running`` once Ray runs it or the runner wrote ``status.json``;
- the end: the runner's own terminal status when it wrote one; else Ray's: the node or the job
  supervisor died -> ``interrupted`` (resumable, anywhere: a resume is a new submission); the
  entrypoint's :data:`WORKSPACE_NOT_SHARED_EXIT` -> ``failed`` with
  :data:`WORKSPACE_NOT_SHARED`; ``STOPPED`` -> ``stopped``; any other failure -> ``failed`` with
  Ray's message and the log tail.

Stop: the stop file first (the runner polls it between batches; signals cannot cross nodes),
then Ray's stop after the grace period. "Ray reports it stopped" is made deterministic thus: as
soon as the runner's ``status.json`` says ``stopped`` the server asks Ray to stop the
submission, and the entrypoint (:mod:`jupyter_yolo.runner.ray_entry`) of a runner that ended
``stopped`` waits (bounded) for that stop instead of exiting 0, so Ray records ``STOPPED``, not
``SUCCEEDED``. The job's own truth stays ``status.json`` either way.

Every HTTP call runs in the supervisor's worker thread without the manager's lock; an
unreachable head keeps jobs as they are and is reported (GET /yolo/jobs warnings) until it
answers again.
"""

from __future__ import annotations

import os
import secrets
import shlex
import time
from typing import TYPE_CHECKING, Any

from ..contract.executors import (
    SHARED_MARKER_FILE,
    WORKSPACE_NOT_SHARED,
    WORKSPACE_NOT_SHARED_EXIT,
    RayJobInfo,
    submission_id,
)
from ..contract.files import write_atomic
from ..contract.status import TERMINAL
from ..errors import Conflict, ServiceUnavailable
from .process import runner_environment
from .ray_api import RayError, RayJobsApi, RayUnavailable, RayVersionMismatch
from .registry import JobRecord

if TYPE_CHECKING:
    from .manager import JobManager

POLL_S = 1.0
"""How often Ray is asked about one active job."""
RETRY_S = 5.0
"""How long the executor waits before asking an unreachable head again."""
VERSION_TTL_S = 300.0
"""How long a successful version check is trusted (a cluster may be upgraded meanwhile)."""
#: What travels from the server to a Ray node: the product's own switches and the offline ones.
#: The machine's own values (PATH, LD_LIBRARY_PATH, HOME, VIRTUAL_ENV, CUDA_HOME, thread counts,
#: device lists ...) stay the node's: a GPU worker's image differs from JupyterLab's.
TRAVELLING_NAMES = frozenset(
    {"PYTHONUNBUFFERED", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "NO_COLOR", "TZ", "MPLBACKEND"}
)
TRAVELLING_PREFIXES = ("YOLO_", "JUPYTER_YOLO_")
LOST_ERRORS = frozenset({"JOB_SUPERVISOR_ACTOR_DIED", "NODE_DIED"})
#: Ray gave up placing a submission (``RAY_JOB_START_TIMEOUT_SECONDS``, 15 min by default): for a
#: job that never ran this is still "waiting for resources", so it is submitted again.
NOT_PLACED_ERRORS = frozenset(
    {"JOB_SUPERVISOR_ACTOR_START_TIMEOUT", "JOB_SUPERVISOR_ACTOR_UNSCHEDULABLE"}
)
MAX_SUBMIT_FAILURES = 5
"""Consecutive 5xx answers to one job's submission before it fails (a refusal Ray wraps in a 500
would otherwise be retried forever)."""


def ray_environment() -> dict[str, str]:
    """The variables a Ray job takes from the server: the allow-list's product switches only."""
    env = runner_environment(os.environ)
    return {
        k: v for k, v in env.items() if k in TRAVELLING_NAMES or k.startswith(TRAVELLING_PREFIXES)
    }


def lost_by_ray(info: RayJobInfo) -> bool:
    """Whether Ray lost the job (its node or its supervisor died) rather than the job failing."""
    if info["status"] != "FAILED":
        return False
    if info["error_type"] is not None:  # the message may quote the job's own log: not evidence
        return info["error_type"] in LOST_ERRORS
    message = info["message"].lower()
    return "supervisor actor died" in message or (
        "node" in message and ("died" in message or "dead" in message)
    )


class RayExecutor:
    """Submits, follows and stops the Ray jobs of one :class:`~.manager.JobManager`."""

    def __init__(self, manager: JobManager, address: str, python: str) -> None:
        self.manager = manager
        self.api = RayJobsApi(address)
        self.python = python
        self.problem: str | None = None
        self._version_ok_at: float | None = None
        self._next_poll: dict[str, float] = {}
        self._stop_sent: set[str] = set()
        self._to_stop: set[str] = set()
        """Submissions to stop on Ray: decided under the manager's lock, sent without it."""
        self._submit_failures: dict[str, int] = {}
        self._retry_at = 0.0

    # ------------------------------------------------------------------ version

    def check_version(self) -> None:
        """Refuse new Ray jobs on a cluster of another Ray version (409) or none reachable (503)."""
        now = time.monotonic()
        if self._version_ok_at is not None and now - self._version_ok_at < VERSION_TTL_S:
            return
        try:
            self.api.check_version()
        except RayVersionMismatch as exc:
            raise Conflict(str(exc)) from None
        except RayError as exc:
            raise ServiceUnavailable(
                f"{exc} Ray jobs cannot be submitted until it answers; local jobs can run."
            ) from None
        self._version_ok_at = now

    # ------------------------------------------------------------------ supervision

    def follow_all(self, records: list[JobRecord]) -> None:
        """One supervision step of every queued or active Ray job (supervisor thread, no lock)."""
        now = time.monotonic()
        if now < self._retry_at:
            return
        try:
            self._send_stops()
        except RayUnavailable as exc:
            self._unreachable(str(exc))
            return
        for record in records:
            if now < self._next_poll.get(record.id, 0.0):
                continue
            self._next_poll[record.id] = now + POLL_S
            try:
                self._follow(record)
                self._send_stops()
            except RayUnavailable as exc:
                self._unreachable(str(exc))
                return
            except Exception as exc:  # one job's odd answer must not stop the others
                self.manager.log.exception("jupyter_yolo: following Ray job %s failed", record.id)
                self.problem = f"Following Ray job {record.id} failed ({exc}); retrying."
                return
        if self.problem is not None and records:
            return  # reported until a poll succeeds
        self.problem = None

    def stops_pending(self) -> bool:
        """Whether a decided stop (a cancelled queued job's) still has to reach Ray."""
        return bool(self._to_stop)

    def _send_stops(self) -> None:
        """Ask Ray to stop what was decided; an unreachable head keeps them for the next step."""
        for sid in sorted(self._to_stop):
            try:
                self.api.stop(sid)
            except RayUnavailable:
                raise
            except RayError as exc:  # refused (4xx): retrying would not help
                self.manager.log.warning("jupyter_yolo: %s", exc)
            self._to_stop.discard(sid)
            self._stop_sent.add(sid)

    def _unreachable(self, message: str) -> None:
        if self.problem != message:
            self.manager.log.warning("jupyter_yolo: %s Ray jobs are kept as they are.", message)
        self.problem = (
            f"{message} Ray jobs are kept as they are and followed again when it answers."
        )
        self._retry_at = time.monotonic() + RETRY_S

    def _follow(self, record: JobRecord) -> None:
        ray = dict(record.ray or {})
        sid = ray.get("submission_id")
        if record.status == "queued" and not sid:
            self._submit(record)
            return
        info = self.api.info(str(sid))
        self.problem = None
        with self.manager._lock:
            current = self.manager.registry.get(record.id)
            if current is None or current.status not in ("queued", "running", "stopping"):
                return
            if (current.ray or {}).get("submission_id") != sid:
                return  # resumed or re-submitted meanwhile
            if info is None:
                if current.status == "queued":
                    self._clear_submission(current)  # never reached Ray: submit again
                else:
                    self._end(current, "interrupted", f"Ray no longer knows submission {sid}")
                return
            self._apply(current, info)

    def _apply(self, record: JobRecord, info: RayJobInfo) -> None:
        ray = dict(record.ray or {})
        seen = {
            "status": info["status"],
            "message": info["message"],
            "node_id": info["driver_node_id"],
            "error_type": info["error_type"],
        }
        if any(ray.get(k) != v for k, v in seen.items()):
            ray.update(seen)
            self.manager.registry.set_ray(record.id, ray)
        runner = self._runner_status(record)
        sid = str(ray["submission_id"])
        if runner.get("status") in TERMINAL:
            if runner["status"] == "stopped" and info["status"] in ("PENDING", "RUNNING"):
                self._ray_stop(sid)  # so Ray records STOPPED (the entrypoint waits for it)
            self.manager._finish_from_status(record.id, runner)
            self._forget(record.id)
            self.manager._wake()
            return
        if info["status"] == "PENDING" and runner.get("status") != "running":
            return
        if info["status"] in ("PENDING", "RUNNING"):
            if record.status == "queued" and self.manager.registry.mark_placed(record.id):
                self.manager.log.info("jupyter_yolo: Ray runs job %s (%s)", record.id, sid)
            if record.status == "stopping":
                self._escalate(record, sid)
            return
        runner = self._runner_status(record)  # written before the entrypoint exited
        if runner.get("status") in TERMINAL:
            self.manager._finish_from_status(record.id, runner)
            self._forget(record.id)
            return
        self._finish_from_ray(record, info)

    def _finish_from_ray(self, record: JobRecord, info: RayJobInfo) -> None:
        message = info["message"].strip() or "no message"
        if record.status == "queued" and info["error_type"] in NOT_PLACED_ERRORS:
            # still waiting for resources as far as the person is concerned: a new attempt
            self.manager.log.info(
                "jupyter_yolo: Ray gave up placing job %s (%s); submitting it again",
                record.id,
                message,
            )
            ray = dict(record.ray or {})
            ray.update(submission_id=None, message=f"submitted again: {message}")
            self.manager.registry.set_ray(record.id, ray)
            return
        if info["driver_exit_code"] == WORKSPACE_NOT_SHARED_EXIT:
            self._end(
                record,
                "failed",
                f"{WORKSPACE_NOT_SHARED}: the node Ray chose cannot read the marker the server "
                f"wrote in the job folder (mount the workspace at the same path on every node)",
                error=True,
            )
        elif info["status"] == "STOPPED" or record.status == "stopping":
            self._end(record, "stopped", f"Ray stopped the job ({message})")
        elif lost_by_ray(info):
            self._end(record, "interrupted", f"Ray lost the job: {message}", error=True)
        else:
            code = info["driver_exit_code"]
            shown = f", exit code {code}" if code is not None else ""
            self._end(record, "failed", f"Ray reports {info['status']}{shown}: {message}", True)

    def _end(self, record: JobRecord, final: str, reason: str, error: bool = False) -> None:
        manager = self.manager
        tail = manager._log_tail_lines(record.id)
        text = f"Job {final}: {reason}." if error else None
        if manager.registry.finish(
            record.id,
            final,
            exit_reason=reason,
            error=text,
            result={"log_tail": tail} if tail and error else None,
        ):
            if text:
                manager._append(record.id, "error", message=text, log_tail=tail)
            manager._append(record.id, "status", status=final, exit_reason=reason)
            manager.log.warning("jupyter_yolo: Ray job %s %s: %s", record.id, final, reason)
        self._forget(record.id)
        manager._wake()

    def _forget(self, job_id: str) -> None:
        self._next_poll.pop(job_id, None)
        self.manager._stop_requested.pop(job_id, None)

    def _runner_status(self, record: JobRecord) -> dict[str, Any]:
        """``status.json`` when this attempt's runner wrote it (not a previous attempt's)."""
        status = self.manager._read_status(record.id) or {}
        stale = (record.ray or {}).get("stale_started")
        if status and stale is not None and status.get("started") == stale:
            return {}
        return status

    # ------------------------------------------------------------------ submit, stop

    def _submit(self, record: JobRecord) -> None:
        """Submit the next attempt of a queued job: marker, registry, then Ray (idempotent)."""
        manager = self.manager
        try:
            self.check_version()
        except Conflict as exc:
            with manager._lock:
                self._end(record, "failed", str(exc).rstrip("."), error=True)
            return
        except ServiceUnavailable as exc:
            self._unreachable(exc.message)
            raise RayUnavailable(exc.message) from None
        folder = manager.workspace.jobs / record.id
        token = secrets.token_hex(16)
        with manager._lock:
            current = manager.registry.get(record.id)
            if (
                current is None
                or current.status != "queued"
                or (current.ray or {}).get("submission_id")
            ):
                return
            attempt = current.attempts + 1
            sid = submission_id(record.id, attempt)
            previous = manager._read_status(record.id) or {}
            ray = dict(current.ray or {})
            ray.update(
                submission_id=sid,
                attempt=attempt,
                status="PENDING",
                message="submitted to Ray",
                node_id=None,
                error_type=None,
                stale_started=previous.get("started"),
            )
            (folder / "stop").unlink(missing_ok=True)
            write_atomic(folder / SHARED_MARKER_FILE, token)
            if not manager.registry.mark_submitted(record.id, ray):
                return
        entrypoint = " ".join(
            [
                shlex.quote(self.python),
                "-m",
                "jupyter_yolo.runner.ray_entry",
                shlex.quote(str(folder)),
                token,
            ]
        )
        try:
            self.api.submit(
                sid,
                entrypoint,
                env_vars=ray_environment(),
                num_cpus=float(ray.get("num_cpus", 1.0)),
                num_gpus=float(ray.get("num_gpus", 0.0)),
                resources={str(k): float(v) for k, v in (ray.get("resources") or {}).items()},
                metadata={
                    "job_id": record.id,
                    "kind": record.kind,
                    "name": record.name or "",
                    "attempt": str(attempt),
                },
            )
        except RayUnavailable as exc:
            failures = self._submit_failures.get(record.id, 0) + 1
            self._submit_failures[record.id] = failures
            if failures < MAX_SUBMIT_FAILURES or "answered" not in str(exc):
                raise  # kept queued with this submission id: submitted again when Ray answers
            with manager._lock:
                self._end(manager.registry.require(record.id), "failed", str(exc), error=True)
            return
        except RayError as exc:
            with manager._lock:
                self._end(manager.registry.require(record.id), "failed", str(exc), error=True)
            return
        self._submit_failures.pop(record.id, None)
        manager.log.info("jupyter_yolo: job %s submitted to Ray as %s", record.id, sid)

    def _clear_submission(self, record: JobRecord) -> None:
        ray = dict(record.ray or {})
        ray["submission_id"] = None
        self.manager.registry.set_ray(record.id, ray)

    def _escalate(self, record: JobRecord, sid: str) -> None:
        asked = self.manager._stop_requested.setdefault(record.id, time.monotonic())
        if time.monotonic() - asked > self.manager.stop_grace_period:
            self._ray_stop(sid)

    def _ray_stop(self, sid: str) -> None:
        """Decide that Ray must stop ``sid``.

        The supervisor sends it without the manager's lock (and again in its next step while the
        head does not answer).
        """
        if sid not in self._stop_sent:
            self._to_stop.add(sid)

    def cancel(self, record: JobRecord) -> None:
        """Stop a queued job's submission (sent by the supervisor's next step, without the lock).

        Ray 2.60 answers ``stopped`` but keeps a submission whose supervisor was never placed
        ``PENDING`` (until its start timeout fails it); the stop file the manager wrote first
        makes a runner that starts anyway stop before its first batch.
        """
        sid = (record.ray or {}).get("submission_id")
        if sid:
            self._ray_stop(str(sid))

    def prepare_resume(self, record: JobRecord, resources: dict[str, Any]) -> None:
        """Before a resume: the next attempt is a new submission with the resources asked now."""
        ray = dict(record.ray or {})
        ray.update(resources)
        ray.update(submission_id=None, status=None, message=None, node_id=None, error_type=None)
        self.manager.registry.set_ray(record.id, ray)
        self._next_poll.pop(record.id, None)

    def view(self, record: JobRecord) -> dict[str, Any]:
        """The ``ray`` field of a job's description."""
        ray = record.ray or {}
        return {
            "submission_id": ray.get("submission_id"),
            "status": ray.get("status"),
            "message": ray.get("message"),
            "node_id": ray.get("node_id"),
        }
