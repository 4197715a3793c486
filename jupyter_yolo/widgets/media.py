"""The media panel: a predict job on a folder, a video or a stream, its progress, Stop, the video.

Many images, videos and live streams are predicted by a predict *job* (kind ``predict`` with a
``source``), not by the warm service: the job runs in throughput mode, writes results per frame
(``run/predictions.jsonl``) and an annotated H.264 mp4, and reports ``progress`` events (done,
total when known, frames per second, ETA). The panel starts such a job, follows its events, has
a Stop button (what was written is kept), and once the job has ended plays the annotated video
in the notebook (an ``ipywidgets.Video`` holding the mp4's bytes, up to a size limit).
"""

from __future__ import annotations

import io
import threading
import urllib.parse
from collections.abc import Mapping
from typing import Any

import ipywidgets as widgets

from ..client import YoloClient, YoloClientError
from ..contract.serving import PROGRESS_EVENT
from ..contract.status import TERMINAL
from .common import (
    STYLE,
    Follower,
    error_text,
    esc,
    fmt_bytes,
    fmt_seconds,
    follow_error_text,
    get_client,
    note,
)
from .results_data import console_text
from .training_form import weights_choices

__all__ = ["MAX_VIDEO_BYTES", "MediaPanel", "progress_text", "video_artifact", "video_width"]

MAX_VIDEO_BYTES = 64 * 1024 * 1024
"""The largest annotated video the panel sends through the kernel to the page."""
SOURCE_HINT = "datasets/x/videos/clip.mp4, a folder, rtsp://host/stream or /dev/video0"
MAX_VIDEO_WIDTH = 720
"""The widest the panel shows a video; a smaller one is shown at its own size, not scaled up."""


def progress_text(event: Mapping[str, Any]) -> str:
    """A ``progress`` event as a person reads it: done/total, rate and time left."""
    unit = str(event.get("unit") or "frames")
    done, total = event.get("done"), event.get("total")
    text = f"{unit} {done}" + (f"/{total}" if isinstance(total, int) else " (live)")
    fps = event.get("fps")
    if isinstance(fps, int | float):
        text += f" \u00b7 {float(fps):.1f} {'images' if unit == 'images' else 'frames'}/s"
    eta = event.get("eta_s")
    if isinstance(eta, int | float):
        text += f" \u00b7 ETA {fmt_seconds(eta)}"
    reconnects = event.get("reconnects")
    if isinstance(reconnects, int) and reconnects:
        text += f" \u00b7 reconnected {reconnects}\u00d7"
    return text


def video_artifact(artifacts: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The job's annotated mp4 among its artifacts (the first under ``run/``), if any."""
    videos = [a for a in artifacts if str(a.get("path", "")).endswith(".mp4")]
    videos.sort(key=lambda a: (str(a["path"]).count("/"), str(a["path"])))
    return videos[0] if videos else None


def video_width(data: bytes) -> int | None:
    """The frame width of an mp4 held in ``data`` (PyAV reads its header); None if unreadable."""
    try:
        import av

        with av.open(io.BytesIO(data), "r") as container:
            streams = container.streams.video
            return int(streams[0].width) if streams and streams[0].width else None
    except Exception:  # not an mp4 PyAV reads: the panel caps the width instead
        return None


class MediaPanel(widgets.VBox):  # type: ignore[misc]
    """Run a predict job on a folder, video or stream; follow it; stop it; play the result."""

    def __init__(
        self,
        client: YoloClient | None = None,
        *,
        model: str | None = None,
        source: str = "",
        conf: float = 0.25,
        track: bool = False,
        device: str | None = None,
        max_video_bytes: int = MAX_VIDEO_BYTES,
        params: dict[str, Any] | None = None,
    ) -> None:
        self.client = get_client(client)
        self.device = device
        self.max_video_bytes = max_video_bytes
        self.params = dict(params or {})
        self.job_id: str | None = None
        self.last_progress: dict[str, Any] | None = None
        self.video: widgets.Video | None = None
        self._follower: Follower | None = None
        self._lock = threading.Lock()
        self._busy = False
        """True from a Run click until its job has ended (or failed to start): one job at once."""
        self.ended = threading.Event()
        self.header_w = widgets.HTML(
            STYLE + '<div class="yolo-h">Folders, videos and streams (predict job)</div>'
        )
        self.model_w = widgets.Dropdown(description="weights", layout=widgets.Layout(width="360px"))
        self.source_w = widgets.Text(
            value=source,
            description="source",
            placeholder=SOURCE_HINT,
            layout=widgets.Layout(width="520px"),
        )
        self.conf_w = widgets.FloatSlider(
            value=conf, min=0.01, max=0.99, step=0.01, description="confidence"
        )
        self.track_w = widgets.Checkbox(value=track, description="track objects")
        self.run_button = widgets.Button(description="Run", icon="play", button_style="primary")
        self.stop_button = widgets.Button(
            description="Stop", icon="stop", button_style="", disabled=True
        )  # grey while there is nothing to stop (_set_stoppable)
        self.progress_w = widgets.FloatProgress(value=0.0, min=0.0, max=1.0)
        self.progress_text_w = widgets.HTML()
        self.status_w = widgets.HTML()
        self.output_w = widgets.Box(layout=widgets.Layout(flex_flow="column"))
        super().__init__(
            children=[
                self.header_w,
                widgets.HBox([self.model_w, self.source_w]),
                widgets.HBox([self.conf_w, self.track_w, self.run_button, self.stop_button]),
                widgets.HBox([self.progress_w, self.progress_text_w]),
                self.status_w,
                self.output_w,
            ]
        )
        self.add_class("yolo-media-panel")
        self._fill_models(model)
        self.run_button.on_click(self._on_run_click)
        self.stop_button.on_click(self._on_stop_click)

    # ------------------------------------------------------------------------------ actions

    def _fill_models(self, select: str | None) -> None:
        options, best = weights_choices(self.client.models())  # best run first, labelled
        if select and select not in [value for _, value in options]:
            options.insert(0, (select, select))
        self.model_w.options = options
        if options:
            self.model_w.value = select or best or options[0][1]

    def _on_run_click(self, _: Any) -> None:
        # claimed here, synchronously: a second click before the job exists finds it taken
        if self._claim():
            self._background(lambda: self._start(None))

    def _on_stop_click(self, _: Any) -> None:
        self._set_stoppable(False)
        self._background(self.stop)

    def _claim(self) -> bool:
        """Take the panel for one job; False when a job is starting or running already."""
        with self._lock:
            if self._busy:
                return False
            self._busy = True
        self.run_button.disabled = True
        self._set_stoppable(False)
        return True

    def _release(self) -> None:
        """The job has ended or never started: Run again, nothing to stop."""
        with self._lock:
            self._busy = False
        self._set_stoppable(False)
        self.run_button.disabled = False

    def _set_stoppable(self, stoppable: bool) -> None:
        """Stop is enabled (orange) only while there is a job to stop, else disabled and grey."""
        self.stop_button.disabled = not stoppable
        self.stop_button.button_style = "warning" if stoppable else ""

    def _background(self, fn: Any) -> None:
        def run() -> None:
            try:
                fn()
            except Exception as exc:
                self._show_error(exc)

        threading.Thread(target=run, name="yolo-media", daemon=True).start()

    def _show_error(self, exc: BaseException) -> None:
        self.status_w.value = note("error", error_text(exc))

    def run(self, source: str | None = None) -> str | None:
        """Start a predict job on ``source`` (default: the text field); return its id.

        The panel follows it in the background; :attr:`ended` is set once it has ended. While
        one job is starting or running the panel starts no other (None, with a message).
        """
        if not self._claim():
            self.status_w.value = note(
                "info", f"Predict job {self.job_id or ''} is still running: Stop it first."
            )
            return None
        return self._start(source)

    def _start(self, source: str | None) -> str | None:
        """Start the job once :meth:`_claim` has taken the panel; releases it on failure."""
        try:
            job_id = self._submit(source)
        except BaseException:
            self._release()
            raise
        if job_id is None:
            self._release()
        return job_id

    def _submit(self, source: str | None) -> str | None:
        if source is not None:
            self.source_w.value = source
        chosen = self.source_w.value.strip()
        model = self.model_w.value
        if not chosen or not model:
            self.status_w.value = note("info", f"Choose weights and a source ({SOURCE_HINT}).")
            return None
        params: dict[str, Any] = {"conf": round(float(self.conf_w.value), 3), **self.params}
        if self.track_w.value:
            params["track"] = True
        if self.device:
            params["device"] = self.device
        self._reset()
        job = self.client.predict(str(model), chosen, **params)
        job_id = str(job["id"])
        with self._lock:
            self.job_id = job_id
            self._follower = Follower(
                self.client,
                job_id,
                self._on_page,
                on_error=lambda exc: setattr(
                    self.status_w, "value", note(*follow_error_text(job_id, exc))
                ),
                on_end=lambda: self._ended(job_id),
            ).start()
        self._set_stoppable(True)
        self.status_w.value = note("info", f"Predict job {job_id} on {chosen}: {job['status']}")
        return job_id

    def stop(self) -> None:
        """Ask the running job to stop; what it has written (frames, video) is kept."""
        with self._lock:
            job_id = self.job_id
        if job_id is None:
            return
        self._set_stoppable(False)
        self.client.stop(job_id)
        self.status_w.value = note("info", f"Stopping predict job {job_id}\u2026")

    def close(self) -> None:
        """Stop following the job and close the panel (the job itself keeps running)."""
        with self._lock:
            if self._follower is not None:
                self._follower.stop()
        super().close()

    def _reset(self) -> None:
        with self._lock:
            if self._follower is not None:
                self._follower.stop()
            self._follower = None
        self.ended.clear()
        self.last_progress = None
        self.video = None
        self.output_w.children = []
        self.progress_w.value = 0.0
        self.progress_w.bar_style = ""
        self.progress_text_w.value = ""

    # ------------------------------------------------------------------------------ events

    def _on_page(self, page: dict[str, Any]) -> None:
        actions = page.get("actions")
        if isinstance(actions, dict) and page.get("status") not in TERMINAL:
            self._set_stoppable(bool(actions.get("stop")))  # a stop made elsewhere greys it
        progress = [e for e in page["events"] if e.get("type") == PROGRESS_EVENT]
        if progress:
            self.show_progress(progress[-1])
        for event in page["events"]:
            if event.get("type") == "status":
                self.status_w.value = note(
                    "info", f"Predict job {self.job_id}: {event.get('status')}"
                )
            elif event.get("type") in ("warning", "error"):
                kind = "warning" if event["type"] == "warning" else "error"
                message = console_text(str(event.get("message") or event))  # relative paths
                self.status_w.value = note(kind, message)

    def show_progress(self, event: Mapping[str, Any]) -> None:
        """Show a ``progress`` event: the bar (when the total is known) and its text."""
        self.last_progress = dict(event)
        done, total = event.get("done"), event.get("total")
        if isinstance(total, int) and total > 0 and isinstance(done, int):
            self.progress_w.value = min(1.0, done / total)
        else:  # a live stream: the bar pulses on what has been done
            self.progress_w.value = 0.5
            self.progress_w.bar_style = "info"
        self.progress_text_w.value = (
            f'<span class="yolo-status yolo-progress">{esc(progress_text(event))}</span>'
        )

    def _ended(self, job_id: str) -> None:
        try:
            job = self.client.job(job_id)
            status = str(job.get("status"))
            if status in ("succeeded", "stopped"):
                self.progress_w.bar_style = "success" if status == "succeeded" else "warning"
                if status == "succeeded":
                    self.progress_w.value = 1.0
                shown = self.show_video(job_id)
                what = "the annotated video is below" if shown else "no video to show"
                self.status_w.value = note(
                    "ok" if status == "succeeded" else "warning",
                    f"Predict job {job_id} {status}; results in run/predictions.jsonl, {what}.",
                )
            elif status in TERMINAL:
                self.progress_w.bar_style = "danger"
                self.status_w.value = note(
                    "error", f"Predict job {job_id} {status}: {job.get('error') or 'see its log'}"
                )
        except YoloClientError as exc:
            self._show_error(exc)
        finally:
            self._release()
            self.ended.set()

    def served_video_html(self, job_id: str, path: str) -> str:
        """A ``<video>`` streaming the artifact from the server by its path on the page's origin.

        The page's own login cookie authenticates it (no token is put into the page).
        """
        base = urllib.parse.urlparse(self.client.url).path or "/"
        quoted = urllib.parse.quote(path, safe="/")
        src = f"{base}yolo/jobs/{urllib.parse.quote(job_id, safe='')}/artifacts/{quoted}"
        return (
            f'<video class="yolo-media-served" controls preload="metadata" '
            f'style="max-width: 720px" src="{esc(src)}"></video>'
        )

    def show_video(self, job_id: str) -> bool:
        """Play the job's annotated mp4 in the panel; False (with a message) when it cannot."""
        found = video_artifact(self.client.artifacts(job_id))
        if found is None:
            return False
        path, size = str(found["path"]), int(found.get("size") or 0)
        if size > self.max_video_bytes:
            self.output_w.children = [
                widgets.HTML(
                    note(
                        "warning",
                        f"The annotated video {path} is {fmt_bytes(size)}, more than this "
                        f"panel sends through the kernel ({fmt_bytes(self.max_video_bytes)}). "
                        "Below it streams from the server, which works when this page is "
                        "served by the same Jupyter server; else download it with "
                        f"client.artifact({job_id!r}, {path!r}), or open the panel with a "
                        "larger max_video_bytes.",
                    )
                    + self.served_video_html(job_id, path)
                )
            ]
            return False
        data = self.client.artifact(job_id, path)
        video = widgets.Video(value=data, format="mp4", autoplay=False, loop=False, controls=True)
        width = min(video_width(data) or MAX_VIDEO_WIDTH, MAX_VIDEO_WIDTH)  # never scaled up
        video.layout = widgets.Layout(width=f"{width}px", max_width=f"{MAX_VIDEO_WIDTH}px")
        video.add_class("yolo-media-video")
        self.video = video
        self.output_w.children = [
            widgets.HTML(f'<div class="yolo-muted">{esc(path)} ({fmt_bytes(size)})</div>'),
            video,
        ]
        return True
