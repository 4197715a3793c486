"""The tune panel: search the hyperparameters of a training, watch the trials, train the best.

The base training is picked like the training panel's (model, dataset, image size, batch,
device); the search adds the parameters and their bounds, the number of trials, the epochs per
trial and, where the server offers both, the executor (``local`` or ``ray``). Start posts a
``tune`` job; the panel follows its events (long poll, as the training panel does): each
``trial`` event updates the trials table and the chart (each parameter against the metric, the
best trial starred). Once the job has ended its own result (the runner's table, best trial and
``best_request``) replaces what the events said, and "Train with the best" posts that request as
a ``train`` job and follows it in a training panel below.

``TunePanel.attach(job_id)`` shows an existing tune job.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import ipywidgets as widgets

from ..client import YoloClient, YoloClientError
from ..contract.actions import JobActions, job_actions
from ..contract.status import TERMINAL, UNFINISHED
from ..contract.tune import TUNE_KIND
from .common import (
    STYLE,
    Follower,
    Throttle,
    error_text,
    esc,
    follow_error_text,
    get_client,
    in_background,
    note,
)
from .tasks import task_facts
from .training_controls import TrainingForm
from .tune_data import TrialBoard, summary_text, trials_html
from .tune_figure import draw, tune_figure
from .tune_form import SearchControls


class TunePanel(SearchControls, TrainingForm, widgets.VBox):  # type: ignore[misc]
    """Start, watch and stop a hyperparameter search; start a training with the best trial."""

    def __init__(
        self,
        client: YoloClient | None = None,
        *,
        data: str | None = None,
        model: str | None = None,
        imgsz: int | None = None,
        batch: int | None = None,
        device: str | None = None,
        space: dict[str, tuple[float, float] | list[float]] | None = None,
        iterations: int = 4,
        epochs: int = 2,
        train_epochs: int | None = None,
        executor: str | None = None,
        extra: dict[str, Any] | None = None,
        job_id: str | None = None,
        max_rate: float = 4.0,
    ) -> None:
        self.client = get_client(client)
        self.extra = dict(extra or {})
        self.facts = task_facts(self.client)
        self._lock = threading.RLock()
        self._board = TrialBoard()
        self._job_id: str | None = None
        self._job_status: str | None = None
        self._actions: JobActions | None = None
        self._request: dict[str, Any] = {}
        self._follower: Follower | None = None
        self._ended = threading.Event()
        self._drawn = -1
        self._params: list[str] = []
        self.training: Any = None
        self._throttle = Throttle(self._render, max_rate)
        self._build_form(
            data=data,
            model=model,
            epochs=train_epochs,
            imgsz=imgsz,
            batch=batch,
            device=device,
            amp=None,
        )
        self.epochs_w.description = "final epochs"
        self.epochs_w.tooltip = "Epochs of the full training that 'Train with the best' starts"
        self.epochs_w.style = {"description_width": "initial"}
        self._build_search(self._load_report(), space, iterations, epochs, executor)
        self.train_best_button = widgets.Button(
            description="Train with the best",
            icon="trophy",
            disabled=True,
            tooltip="Start a full training with the best trial's parameters",
            layout=widgets.Layout(width="auto"),
        )
        for button in (self.start_button, self.stop_button, self.train_best_button):
            button.add_class("yolo-button")
        self.start_button.on_click(lambda _: self._action(self.start))
        self.stop_button.on_click(lambda _: self._action(self.stop))
        self.train_best_button.on_click(lambda _: self._action(self.train_best))
        self.table_w = widgets.HTML('<span class="yolo-muted">No trials yet.</span>')
        self.table_w.add_class("yolo-trials-table")
        self.figure = tune_figure(list(self.space()), None)
        self.chart_w = widgets.Box([self.figure])
        self.training_w = widgets.VBox()
        super().__init__(
            children=[
                widgets.HTML(STYLE + '<div class="yolo-h">Hyperparameter tuning</div>'),
                widgets.HBox([self.task_w, self.model_w, self.data_w]),
                widgets.HBox([self.imgsz_w, self.batch_w, self.device_w]),
                widgets.HBox(
                    [self.iterations_w, self.trial_epochs_w, self.epochs_w, self.executor_w]
                ),
                self.space_w,
                widgets.HBox([self.start_button, self.stop_button, self.train_best_button]),
                self.message_w,
                widgets.HBox([self.progress_w, self.status_w]),
                self.table_w,
                self.chart_w,
                self.training_w,
            ]
        )
        self.add_class("yolo-tune-panel")
        self.task_w.observe(lambda _: self._task_chosen(), names="value")
        if job_id:
            self.follow(job_id)
        else:
            self._update_buttons()

    @classmethod
    def attach(cls, job_id: str, client: YoloClient | None = None, **kwargs: Any) -> TunePanel:
        """A panel showing the existing tune job ``job_id``."""
        return cls(client, job_id=job_id, **kwargs)

    # ------------------------------------------------------------------------------- actions

    def _action(self, fn: Any) -> None:
        self.message_w.value = ""
        in_background(fn, self._show_error)

    def _show_error(self, exc: BaseException) -> None:
        self.message_w.value = note("error", error_text(exc))

    def tune_request(self, **overrides: Any) -> dict[str, Any]:
        """The tune request the form describes (without ``kind``)."""
        space = self.space()
        # the base request keeps the full training's epochs ("Train with the best" posts it
        # with the best parameters); each trial trains the search's epochs
        train = {k: v for k, v in self.request().items() if k not in space}
        body: dict[str, Any] = {
            "train": train,
            "space": space,
            "iterations": int(self.iterations_w.value),
            "epochs": int(self.trial_epochs_w.value),
        }
        executor = self.executor()
        if executor is not None:
            body["executor"] = executor
        body.update(overrides)
        return body

    def start(self, **overrides: Any) -> str:
        """Start a tune job from the form; return its id."""
        if self._job_status in UNFINISHED:
            raise RuntimeError(f"Job {self._job_id} is still {self._job_status}; stop it first.")
        job = self.client.tune(**self.tune_request(**overrides))
        self.follow(str(job["id"]), job=job)
        return str(job["id"])

    def stop(self) -> None:
        """Stop the search: every trial stops."""
        if self._job_id is None:
            raise RuntimeError("There is no tune job: start one or attach to one by its id.")
        self._set_job(self.client.stop(self._job_id))

    def train_best(self) -> str:
        """Post the best trial's training request as a ``train`` job; return its id."""
        with self._lock:
            request = self._board.best_request
            best = self._board.best
        if request is None:
            raise RuntimeError("There is no best trial yet: the tune job must end first.")
        body = {k: v for k, v in request.items() if k != "kind"}
        job = self.client.create_job("train", **body)
        job_id = str(job["id"])
        trial = f"trial {best['trial']}'s" if best else "the best"
        self.message_w.value = note(
            "ok", f"Started training job {job_id} with {trial} parameters (followed below)."
        )
        self.message_w.add_class("yolo-train-best-note")
        from .training import TrainingPanel

        if self.training is not None:
            self.training.close()
        self.training = TrainingPanel(self.client, job_id=job_id)
        self.training_w.children = [self.training]
        return job_id

    # ------------------------------------------------------------------------------- following

    def follow(self, job_id: str, job: dict[str, Any] | None = None) -> None:
        """Show the tune job ``job_id``: replay its trials, then follow it live."""
        job = job or self.client.job(job_id)
        if job.get("kind") not in (None, TUNE_KIND):
            raise ValueError(f"Job {job_id} is a {job.get('kind')} job, not a tune job.")
        request = dict(job.get("request") or {})
        with self._lock:
            if self._follower is not None:
                self._follower.stop()
            self._job_id = job_id
            self._job_status = job.get("status")
            self._actions = job.get("actions")
            self._request = request
            self._board = TrialBoard()
            self._drawn = -1
        train = request.get("train")
        if isinstance(train, dict):
            self._fill_form(train)
        self._fill_search(request)
        space = request.get("space")
        self._new_chart(list(space) if isinstance(space, dict) else list(self.space()))
        if job.get("status") in TERMINAL:
            self._take_result(job.get("result"))
        self._ended.clear()
        follower = Follower(
            self.client,
            job_id,
            self._on_page,
            on_error=self._follow_error,
            on_end=self._on_end,
            watch_after_end=True,
        )
        with self._lock:
            self._follower = follower
        follower.start()
        self._throttle.poke()

    def load(
        self,
        events: list[dict[str, Any]],
        result: dict[str, Any] | None = None,
        request: dict[str, Any] | None = None,
        status: str | None = None,
    ) -> None:
        """Show trials that do not come from following a job (saved events, a TuneResult).

        Any followed job is let go; ``request`` (a tune request) fills the form and names the
        parameters drawn.
        """
        request = dict(request or {})
        with self._lock:
            if self._follower is not None:
                self._follower.stop()
                self._follower = None
            self._job_id = None
            self._actions = None
            self._job_status = status
            self._request = request
            self._board = TrialBoard()
            self._board.consume(sorted(events, key=lambda e: int(e.get("seq") or 0)))
            self._board.set_result(result)
        if request:
            self._fill_search(request)
        space = request.get("space") or (result or {}).get("space")
        names = list(space) if isinstance(space, dict) else self._board.param_names()
        self._new_chart(names)
        self.refresh()

    def _new_chart(self, params: list[str]) -> None:
        if params == self._params:
            return
        old = self.figure
        self._params = params
        self.figure = tune_figure(params, self._board.metric)
        self.chart_w.children = [self.figure]
        old.close()

    def _on_page(self, page: dict[str, Any]) -> None:
        with self._lock:
            if page.get("id") not in (None, self._job_id):
                return
            self._board.consume(page.get("events") or [])
            status = page.get("status", self._job_status)
            if status not in TERMINAL:
                self._ended.clear()
            self._job_status = status
            if page.get("actions") is not None:
                self._actions = page["actions"]
        self._throttle.poke()

    def _on_end(self) -> None:
        """The job ended: its own result (table, best, best_request) replaces the events'."""
        job_id = self._job_id
        if job_id is not None:
            try:
                self._take_result(self.client.trials(job_id))
            except YoloClientError as exc:
                self.message_w.value = note("warning", f"No trials table: {error_text(exc)}")
        self._ended.set()
        self._throttle.poke()

    def _take_result(self, result: Any) -> None:
        with self._lock:
            self._board.set_result(result if isinstance(result, dict) else None)

    def _follow_error(self, exc: BaseException) -> None:
        kind, text = follow_error_text(self._job_id or "?", exc)
        self.message_w.value = note(kind, text)

    def _set_job(self, job: dict[str, Any]) -> None:
        with self._lock:
            if job.get("id") not in (None, self._job_id):
                return
            self._job_status = job.get("status")
            if job.get("actions") is not None:
                self._actions = job["actions"]
        self._throttle.poke()

    # ------------------------------------------------------------------------------- drawing

    def _render(self) -> None:
        with self._lock:
            board = self._board
            changed = board.version != self._drawn
            self._drawn = board.version
            table = trials_html(board, self._params) if changed else None
            iterations = self._request.get("iterations") or board.iterations
            summary = summary_text(board, iterations if isinstance(iterations, int) else None)
            total = iterations if isinstance(iterations, int) and iterations > 0 else None
            fraction = board.done() / total if total else 0.0
            status = self._job_status
        if table is not None:
            self.table_w.value = table
            draw(self.figure, board, self._params)
        job = esc(self._job_id)
        self.status_w.value = (
            f'<span class="yolo-status">job {job}: <b>{esc(status)}</b> \u00b7 '
            f"{esc(summary)}</span>"
        )
        self.progress_w.value = min(1.0, fraction)
        self._update_buttons()

    def _update_buttons(self) -> None:
        actions = self.actions
        start = self._job_status not in UNFINISHED
        self.start_button.disabled = not start
        self.start_button.button_style = "success" if start else ""
        self.stop_button.disabled = not actions["stop"]
        self.stop_button.button_style = "danger" if actions["stop"] else ""
        best = self._board.best_request is not None
        self.train_best_button.disabled = not best
        self.train_best_button.button_style = "warning" if best else ""

    # ------------------------------------------------------------------------------- queries

    @property
    def actions(self) -> JobActions:
        """What the server accepts for the shown job now (as last seen)."""
        with self._lock:
            if self._actions is not None:
                return self._actions
            if self._job_id is None or self._job_status is None:
                return {"stop": False, "resume": False}
            return job_actions(TUNE_KIND, self._job_status)

    @property
    def job_id(self) -> str | None:
        """The tune job shown, if any."""
        return self._job_id

    @property
    def status(self) -> str | None:
        """The shown job's status as last seen."""
        return self._job_status

    @property
    def board(self) -> TrialBoard:
        """The trials of the shown job (from its events, then from its result)."""
        return self._board

    def wait(self, timeout: float | None = None) -> str | None:
        """Block until the job has ended and its result is shown; return its status."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._ended.wait(0.5):
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"tune job {self._job_id} is still {self._job_status}")
        self.refresh()
        return self._job_status

    def refresh(self) -> None:
        """Redraw now (the throttle is bypassed)."""
        with self._lock:
            self._drawn = -1
        self._render()

    def close(self) -> None:
        """Stop following and close the widgets."""
        if self._follower is not None:
            self._follower.stop()
        self._throttle.close()
        if self.training is not None:
            self.training.close()
        self.figure.close()
        super().close()
