"""The training panel's job following: status and actions from the server, Stop and Resume.

A mixin of :class:`~jupyter_yolo.widgets.training.TrainingPanel`. A :class:`.common.Follower`
keeps watching the shown job after it ended, so a stop or a resume made elsewhere (the jobs
sidebar, the REST API, another notebook) shows within about a second; each page carries the
job's ``actions`` (what the server would accept now), which enable the Stop and Resume buttons.
A click the server refuses (409: the job changed meanwhile) refreshes the state with a note.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import ipywidgets as widgets

from ..client import ConflictError, NotFoundError, YoloClient, YoloClientError
from ..contract.actions import JobActions, job_actions
from ..contract.status import TERMINAL, UNFINISHED
from . import training_status
from .common import Follower, Throttle, error_text, follow_error_text, note
from .history import TrainingHistory

#: the buttons' colours while enabled (a disabled button is grey and faded)
BUTTON_STYLES = {"start": "success", "stop": "danger", "resume": "info"}


class JobFollowing:
    """Following the panel's job and acting on it (the panel supplies the widgets and state)."""

    client: YoloClient
    message_w: widgets.HTML
    start_button: widgets.Button
    stop_button: widgets.Button
    resume_button: widgets.Button
    _lock: threading.RLock
    _history: TrainingHistory
    _drawn: dict[str, int]
    _job_id: str | None
    _job_status: str | None
    _where: tuple[str | None, str | None]
    _actions: JobActions | None
    _follower: Follower | None
    _follow_failed: bool
    _caught_up: threading.Event
    _ended: threading.Event
    _throttle: Throttle

    def _show_error(self, exc: BaseException) -> None:
        if isinstance(exc, ConflictError) and self._job_id is not None:
            # the job changed elsewhere since the buttons were drawn: show it as it is now
            self.message_w.value = note(
                "warning", f"{exc.message} The panel now shows the job as the server has it."
            )
            with contextlib.suppress(YoloClientError):
                self._set_job(self.client.job(self._job_id))
            return
        self.message_w.value = note("error", error_text(exc))

    def stop(self) -> None:
        """Ask the job to stop: the batch finishes and a resumable last.pt is saved."""
        job_id = self._require_job()
        self._set_job(self.client.stop(job_id))

    def resume(self) -> None:
        """Resume the stopped or interrupted job from its last.pt; the curves continue."""
        job_id = self._require_job()
        self._set_job(self.client.resume(job_id))
        self._ended.clear()
        if self._follower is None or not self._follower.alive:
            self._start_follower(job_id, after=self._history.last_seq)

    def _require_job(self) -> str:
        if self._job_id is None:
            raise RuntimeError("There is no job: start one or attach to one by its id.")
        return self._job_id

    def _start_follower(self, job_id: str, after: int) -> None:
        self._caught_up.clear()
        self._ended.clear()
        follower = Follower(
            self.client,
            job_id,
            self._on_page,
            after=after,
            on_error=self._follow_error,
            on_end=self._on_end,
            on_reconnect=self._follow_reconnected,
            watch_after_end=True,
        )
        with self._lock:
            self._follower = follower
        follower.start()

    def _follow_error(self, exc: BaseException) -> None:
        """Following failed: the server is unreachable (retried) or the job is gone."""
        job_id = self._job_id or "?"
        kind, text = follow_error_text(job_id, exc)
        with self._lock:
            self._follow_failed = True
            if isinstance(exc, NotFoundError):  # nothing can be done with it any more
                self._actions = {"stop": False, "resume": False}
                self._drawn["info"] = -1
        self.message_w.value = note(kind, text)
        self._throttle.poke()

    def _follow_reconnected(self) -> None:
        """The server answers again: the retry notice goes."""
        with self._lock:
            self._follow_failed = False
        self.message_w.value = ""

    def _on_page(self, page: dict[str, Any]) -> None:
        with self._lock:
            if self._job_id != page.get("id"):
                return
            status = page.get("status", self._job_status)
            actions = page.get("actions")
            changed = bool(page["events"]) or status != self._job_status or actions != self._actions
            self._history.consume(page["events"])
            moved = status != self._job_status
            if moved:
                self._drawn["info"] = -1
            self._job_status = status
            if actions is not None:
                self._actions = actions
            caught_up = not page.get("more")
        if moved and self._where[0]:  # a Ray job placed or ended: on which node, Ray's reason
            with contextlib.suppress(YoloClientError):
                job = self.client.job(str(page.get("id")))
                with self._lock:
                    self._where = training_status.placement(job)
        if status not in TERMINAL:
            self._ended.clear()  # running again: resumed here or elsewhere
        if caught_up:
            self._caught_up.set()
        if changed:
            self._throttle.poke()

    def _on_end(self) -> None:
        """The job ended (the follower goes on watching, in case it is resumed elsewhere)."""
        self._ended.set()
        self._throttle.poke()

    def _set_job(self, job: dict[str, Any]) -> None:
        """Show a job payload's status and actions (an answer to stop, resume or GET)."""
        with self._lock:
            if job.get("id") not in (None, self._job_id):
                return
            self._job_status = job.get("status")
            if "executor" in job:
                self._where = training_status.placement(job)
            if job.get("actions") is not None:
                self._actions = job["actions"]
            self._drawn["info"] = -1
        self._throttle.poke()

    @property
    def actions(self) -> JobActions:
        """What the server accepts for the shown job now (as last seen): stop, resume."""
        with self._lock:
            if self._actions is not None:
                return self._actions
            if self._job_id is None or self._job_status is None:
                return {"stop": False, "resume": False}
            return job_actions("train", self._job_status)

    def _update_action_buttons(self) -> None:
        """Enable Stop and Resume exactly when the server would accept them."""
        actions = self.actions
        enabled = {
            "start": self._job_status not in UNFINISHED,
            "stop": actions["stop"],
            "resume": actions["resume"],
        }
        buttons = (
            ("start", self.start_button),
            ("stop", self.stop_button),
            ("resume", self.resume_button),
        )
        for name, button in buttons:
            button.disabled = not enabled[name]
            button.button_style = BUTTON_STYLES[name] if enabled[name] else ""
