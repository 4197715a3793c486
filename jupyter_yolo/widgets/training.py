"""The training panel: settings, Start / Stop / Resume, live progress, loss and mAP curves.

Events come from the server in a background thread (long poll) and are folded into a
:class:`~jupyter_yolo.widgets.history.TrainingHistory`; the figure is redrawn from it at most
``max_rate`` times a second with every trace decimated to ``max_points`` points, so a long run
costs the browser a bounded amount of data and the kernel stays free.

``TrainingPanel.attach(job_id)`` builds a panel on an existing job and replays all its events,
so a restarted kernel (or another notebook, or another machine) picks the run up again.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

import ipywidgets as widgets
import numpy as np

from ..client import YoloClient
from ..contract.actions import JobActions
from ..contract.status import TERMINAL, UNFINISHED
from . import training_status
from .common import (
    STYLE,
    Follower,
    Throttle,
    esc,
    get_client,
    in_background,
)
from .history import LOSS_KEYS, TrainingHistory
from .results_section import ResultsSection
from .tasks import TaskFacts, metric_label, task_facts
from .training_controls import TrainingForm
from .training_figure import (
    FigureSpec,
    apply_spec,
    batch_trace,
    training_figure,
)
from .training_follow import JobFollowing

#: detection's per-batch loss traces (names are shown in the legend and used by tests)
BATCH_TRACES = tuple(batch_trace(k) for k in LOSS_KEYS)


class TrainingPanel(JobFollowing, TrainingForm, widgets.VBox):  # type: ignore[misc]
    """Start, watch, stop and resume a training; attach to any existing job by id."""

    def __init__(
        self,
        client: YoloClient | None = None,
        *,
        data: str | None = None,
        model: str | None = None,
        epochs: int | None = None,
        imgsz: int | None = None,
        batch: int | None = None,
        device: str | None = None,
        amp: bool | None = None,
        extra: dict[str, Any] | None = None,
        job_id: str | None = None,
        max_points: int = 2000,
        max_rate: float = 5.0,
    ) -> None:
        self.client = get_client(client)
        self.extra = dict(extra or {})
        self.max_points = max_points
        self.render_log: deque[tuple[float, int]] = deque(maxlen=10000)
        self._lock = threading.RLock()
        # one redraw at a time: a refresh() must not return while the throttle's redraw is still
        # writing the figure
        self._render_lock = threading.Lock()
        self._history = TrainingHistory()
        self._drawn = {"batch": -1, "epoch": -1, "info": -1}
        self._job_id: str | None = None
        self._job_status: str | None = None
        self._where: tuple[str | None, str | None] = (None, None)
        self._actions: JobActions | None = None
        self._follower: Follower | None = None
        self._recommended_workers: int | None = None
        self._follow_failed = False
        self._caught_up = threading.Event()
        self._ended = threading.Event()
        self._throttle = Throttle(self._render, max_rate)
        self.facts: TaskFacts = task_facts(self.client)
        self._task: str | None = None
        self._spec = FigureSpec()
        self.figure = training_figure()
        self.results_w = ResultsSection(self.client)
        self._build_form(
            data=data, model=model, epochs=epochs, imgsz=imgsz, batch=batch, device=device, amp=amp
        )
        self.start_button.on_click(lambda _: self._action(self.start))
        self.stop_button.on_click(lambda _: self._action(self.stop))
        self.resume_button.on_click(lambda _: self._action(self.resume))
        self.attach_button.on_click(lambda _: self._action(self._attach_clicked))
        for button in (self.start_button, self.stop_button, self.resume_button):
            button.add_class("yolo-button")
        self.progress_w.layout.flex = "0 0 auto"  # a long status line does not squeeze the bar
        super().__init__(
            children=[
                widgets.HTML(STYLE + '<div class="yolo-h">Training</div>'),
                widgets.HBox([self.task_w, self.model_w, self.data_w]),
                widgets.HBox([self.epochs_w, self.imgsz_w, self.batch_w, self.device_w]),
                widgets.HBox([self.amp_w, self.task_info_w]),
                self.advanced_w,
                widgets.HBox(
                    [
                        self.start_button,
                        self.stop_button,
                        self.resume_button,
                        self.attach_w,
                        self.attach_button,
                    ]
                ),
                self.message_w,
                widgets.HBox([self.progress_w, self.status_w]),
                self.warnings_w,
                self.figure,
                self.results_w,
            ]
        )
        self.add_class("yolo-training-panel")
        self.task_w.observe(lambda _: self._task_chosen(), names="value")
        self.model_w.observe(lambda _: self._model_chosen(), names="value")
        if job_id:
            self.follow(job_id)
        else:
            self._model_chosen()
            self._update_buttons()

    @classmethod
    def attach(cls, job_id: str, client: YoloClient | None = None, **kwargs: Any) -> TrainingPanel:
        """A panel following the existing job ``job_id``, with all its events replayed."""
        return cls(client, job_id=job_id, **kwargs)

    def _model_chosen(self) -> None:
        """The chosen model's task decides the curves (until a job is shown)."""
        task = self.facts.task_of_model(str(self.model_w.value or ""))
        profile = self.facts.profile(task)
        keys = ", ".join(self.facts.loss_keys(task))
        head = self.facts.headline(task)
        self.task_info_w.value = (
            f'<span class="yolo-muted">{esc(profile.get("title") or task)}: losses {esc(keys)}'
            f"; headline {esc(metric_label(head) if head else None)}</span>"
        )
        if self._job_id is None:
            self._set_task(task)

    def _set_task(self, task: str | None) -> None:
        with self._lock:
            self._task = task
            self._drawn["batch"] = self._drawn["epoch"] = -1
        self._throttle.poke()

    @property
    def task(self) -> str | None:
        """The task whose curves the figure draws."""
        return self._task

    # ------------------------------------------------------------------------------- actions

    def _action(self, fn: Any) -> None:
        self.message_w.value = ""
        in_background(fn, self._show_error)

    def _attach_clicked(self) -> None:
        job_id = (self.attach_w.value or "").strip()
        if not job_id:
            raise ValueError("Type or choose a job id to attach to.")
        self.client.job(job_id)  # a clear 404 before anything changes
        self.follow(job_id)

    def start(self, **overrides: Any) -> str:
        """Start a training from the form's settings; return the new job's id."""
        if self._job_status in UNFINISHED:
            raise RuntimeError(f"Job {self._job_id} is still {self._job_status}; stop it first.")
        job = self.client.train(**self.request(**overrides))
        self.follow(job["id"], job=job)
        options = list(self.attach_w.options)
        self.attach_w.options = [job["id"], *[o for o in options if o != job["id"]]][:20]
        return str(job["id"])

    def follow(self, job_id: str, job: dict[str, Any] | None = None) -> None:
        """Show ``job_id``: replay all its events into the figure, then follow it live."""
        job = job or self.client.job(job_id)
        with self._lock:
            if self._follower is not None:
                self._follower.stop()
            epochs = (job.get("request") or {}).get("epochs")
            self._history = TrainingHistory(epochs_hint=epochs if isinstance(epochs, int) else None)
            self._drawn = {"batch": -1, "epoch": -1, "info": -1}
            self._job_id = job_id
            self._job_status = job.get("status")
            self._where = training_status.placement(job)
            self._actions = job.get("actions")
            request = job.get("request") or {}
            task = job.get("task") or self.facts.task_of_model(str(request.get("model") or ""))
            self._task = str(task)
        self._fill_form(request)
        self.attach_w.value = job_id
        self._start_follower(job_id, after=0)

    def load_events(
        self, events: list[dict[str, Any]], status: str | None = None, task: str | None = None
    ) -> None:
        """Show events that do not come from following a job (e.g. a saved events.jsonl).

        Any followed job is let go; the figure is redrawn once from the events (the curves of
        ``task``, when given, else of the form's model, plus whatever the events carry).
        """
        with self._lock:
            if self._follower is not None:
                self._follower.stop()
                self._follower = None
            self._history = TrainingHistory()
            self._history.consume(sorted(events, key=lambda e: int(e.get("seq") or 0)))
            self._drawn = {"batch": -1, "epoch": -1, "info": -1}
            self._job_id = None
            self._actions = None
            self._job_status = status or self._history.status
            if task is not None:
                self._task = task
        self.refresh()

    # ------------------------------------------------------------------------------- drawing

    def _render(self) -> None:
        """Apply what changed since the last redraw to the figure and the status widgets."""
        with self._render_lock:
            self._render_changes()

    def _render_changes(self) -> None:
        with self._lock:
            history = self._history
            spec = self._figure_spec(history)
            if spec != self._spec:
                self._spec = spec
                apply_spec(self.figure, spec)
                self._drawn["batch"] = self._drawn["epoch"] = -1
            batch_data = None
            epoch_data = None
            empty = np.zeros(0)
            if history.batch_version != self._drawn["batch"]:
                batch_data = [
                    history.batch_loss[k].arrays(self.max_points)
                    if k in history.batch_loss
                    else (empty, empty)
                    for k in spec.losses
                ]
                self._drawn["batch"] = history.batch_version
            if history.epoch_version != self._drawn["epoch"]:
                epoch_data = (
                    [history.epoch_curve(k, "loss") for k in spec.losses]
                    + [history.epoch_curve(k, "val_loss") for k in spec.losses]
                    + [history.metric_curve(k) for k in spec.metrics]
                )
                self._drawn["epoch"] = history.epoch_version
            info_changed = history.info_version != self._drawn["info"]
            self._drawn["info"] = history.info_version
            seq = history.last_seq
            status_html = (
                training_status.status_html(
                    history, self._job_id, self._job_status, self._spec.headline, self._where
                )
                if info_changed
                else None
            )
            fraction = training_status.fraction(history)
            warnings_html = training_status.warnings_html(history) if info_changed else None
        if batch_data is not None or epoch_data is not None:
            with self.figure.batch_update():
                if batch_data is not None:
                    for index, (x, y) in enumerate(batch_data):
                        trace = self.figure.data[index]
                        trace.x = x.astype(np.float32)
                        trace.y = y.astype(np.float32)
                if epoch_data is not None:
                    offset = len(spec.losses)
                    for index, (xs, ys) in enumerate(epoch_data):
                        trace = self.figure.data[offset + index]
                        trace.x = xs
                        trace.y = ys
                    self._fit_metric_axis(epoch_data[-len(spec.metrics) :] if spec.metrics else [])
        if status_html is not None:
            self.status_w.value = status_html
            self.progress_w.value = fraction
        if warnings_html is not None and warnings_html != self.warnings_w.value:
            self.warnings_w.value = warnings_html
        self._update_buttons()
        self.render_log.append((time.time(), seq))

    def _figure_spec(self, history: TrainingHistory) -> FigureSpec:
        """The curves to draw: the task's losses and metrics, then any others the events hold.

        Other losses are drawn once a batch gave them a value other than 0.
        """
        task = self._task
        losses = self.facts.loss_keys(task) if task else list(LOSS_KEYS)
        seen = history.loss_keys
        if seen and not set(seen) & set(losses):  # events of another task than expected
            losses = []
        # a loss beyond the task's own that has only ever been 0 is not this model's: not drawn
        losses += [k for k in seen if k not in losses and k in history.nonzero_losses]
        metrics = self.facts.metric_keys(task)
        metrics += [k for k in history.metric_keys if k not in metrics]
        head = history.headline or self.facts.headline(task)
        if head in metrics:
            metrics = [head, *[k for k in metrics if k != head]]
        return FigureSpec(tuple(losses), tuple(metrics), head)

    def _fit_metric_axis(self, curves: list[tuple[list[int], list[float | None]]]) -> None:
        """Metrics in 0-1 get a fixed 0-1 axis; others (depth errors in metres) autorange."""
        values = [v for _, ys in curves for v in ys if v is not None]
        if values and (max(values) > 1.02 or min(values) < 0):
            self.figure.layout.yaxis2.autorange = True
        else:
            self.figure.layout.yaxis2.update(autorange=False, range=[0, 1.02])

    def _update_buttons(self) -> None:
        self._update_action_buttons()
        self.results_w.update(self._job_id, self._job_status, len(self._history.epochs))

    # ------------------------------------------------------------------------------- queries

    @property
    def job_id(self) -> str | None:
        """The job shown, if any."""
        return self._job_id

    @property
    def status(self) -> str | None:
        """The shown job's status as last seen."""
        return self._job_status

    @property
    def history(self) -> TrainingHistory:
        """The folded events of the shown job."""
        return self._history

    @property
    def redraw_interval(self) -> float:
        """The least time between two throttled redraws, in seconds (``1 / max_rate``)."""
        return self._throttle.interval

    @property
    def throttled_redraws(self) -> list[float]:
        """``time.monotonic()`` at the start of each throttled redraw (the latest 10000).

        :meth:`refresh` redraws outside the throttle and is not listed.
        """
        return list(self._throttle.run_starts)

    def trace_points(self, name: str) -> int:
        """How many points the figure's trace ``name`` holds now."""
        for trace in self.figure.data:
            if trace.name == name:
                return 0 if trace.x is None else len(trace.x)
        raise KeyError(name)

    def wait(self, timeout: float | None = None) -> str | None:
        """Block until the job has ended and the figure shows all its events; return status."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._ended.is_set():
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise TimeoutError(f"job {self._job_id} is still {self._job_status}")
            self._ended.wait(0.5 if remaining is None else min(0.5, remaining))
        self.refresh()
        return self._job_status

    def wait_until(self, predicate: Any, timeout: float = 300.0) -> None:
        """Block until ``predicate(history)`` is true (checked as pages arrive)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if predicate(self._history):
                    return
                status = self._job_status
            if self._ended.is_set() and status in TERMINAL:
                raise RuntimeError(f"job {self._job_id} ended ({status}) first")
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {self._job_id}: condition not met in {timeout}s")
            time.sleep(0.1)

    def refresh(self) -> None:
        """Redraw now (the throttle is bypassed)."""
        with self._lock:
            self._drawn["info"] = -1
        self._render()

    def results(self) -> Any:
        """The run's :class:`~.results.ResultsPanel`, opened under the panel."""
        return self.results_w.open_results()

    def close(self) -> None:
        """Stop following and close the widgets."""
        self.results_w.close()
        if self._follower is not None:
            self._follower.stop()
        self._throttle.close()
        self.figure.close()
        super().close()
