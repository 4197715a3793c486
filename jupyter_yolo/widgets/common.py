"""What the panels share: the client, background threads with throttled redraws, HTML helpers.

Panels update their widgets from background threads. ipykernel sends comm messages from any
thread (its IOPub socket is thread-safe), so a live panel keeps updating while a cell runs and
the kernel stays free to execute cells. Redraws go through :class:`Throttle`, which coalesces any
number of changes into at most ``max_rate`` redraws per second.
"""

from __future__ import annotations

import html
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ..client import END_GRACE, NotFoundError, ServerUnavailable, YoloClient, YoloClientError
from ..contract.status import TERMINAL

log = logging.getLogger("jupyter_yolo.widgets")

DEFAULT_MAX_RATE = 5.0
PAGE_LIMIT = 5000
RUN_STARTS_KEPT = 10000
END_POLL_INTERVAL = 1.0
"""Least seconds between two requests about an ended job that a panel keeps watching, against a
server that answers those at once (one that long-polls them is asked once per poll timeout)."""
MAX_RETRY_PAUSE = 2.0
"""Most seconds between two tries while the server does not answer."""

STYLE = """
<style>
.yolo-table { border-collapse: collapse; font-size: 12px; margin: 2px 0 6px 0; }
.yolo-table th, .yolo-table td { border: 1px solid var(--jp-border-color2, #ddd);
  padding: 2px 8px; text-align: left; vertical-align: top; }
.yolo-table th { background: var(--jp-layout-color2, #f3f3f3); font-weight: 600; }
.yolo-note { border-radius: 4px; padding: 4px 8px; margin: 3px 0; font-size: 12px; }
.yolo-note-warning { background: #fff4e0; border-left: 4px solid #f0a020; color: #5a3b00; }
.yolo-note-error { background: #fdecea; border-left: 4px solid #d93025; color: #5f1410; }
.yolo-note-info { background: #e8f1fd; border-left: 4px solid #3b7ddd; color: #0d2c5a; }
.yolo-note-ok { background: #e7f5ea; border-left: 4px solid #34a853; color: #0f3d1b; }
.yolo-status { font-size: 13px; font-family: var(--jp-code-font-family, monospace); }
.yolo-muted { color: var(--jp-ui-font-color2, #777); font-size: 12px; }
.yolo-h { font-weight: 600; font-size: 14px; margin: 6px 0 2px 0; }
.yolo-button:disabled, [class*="yolo-"][class*="-panel"] .jupyter-button:disabled {
  opacity: 0.35 !important;
  cursor: not-allowed !important; filter: grayscale(1); box-shadow: none !important; }
</style>
"""


def get_client(client: YoloClient | None) -> YoloClient:
    """Return ``client``, or one that finds the running server by itself."""
    return client if client is not None else YoloClient()


# ----------------------------------------------------------------------------------- HTML


def esc(value: Any) -> str:
    """HTML-escape any value (None shows as an em dash)."""
    return "\u2014" if value is None else html.escape(str(value))


def table(rows: Iterable[Sequence[Any]], header: Sequence[str] | None = None) -> str:
    """An HTML table; cells are escaped unless they are :class:`Raw`."""
    out = ['<table class="yolo-table">']
    if header:
        out.append("<tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>")
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{_cell(c)}</td>" for c in row) + "</tr>")
    out.append("</table>")
    return "".join(out)


class Raw(str):
    """A string that :func:`table` puts into the HTML as it is."""

    __slots__ = ()


def _cell(value: Any) -> str:
    return str(value) if isinstance(value, Raw) else esc(value)


def note(kind: str, text: str, *, raw: bool = False) -> str:
    """A coloured notice box: ``kind`` is info, ok, warning or error."""
    body = text if raw else esc(text)
    return f'<div class="yolo-note yolo-note-{kind}">{body}</div>'


def fmt_bytes(value: Any) -> str:
    """Bytes for people: ``7.6 GiB``, ``512 MiB``."""
    if not isinstance(value, int | float):
        return "\u2014"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit in ("B", "KiB") else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"  # pragma: no cover


def fmt_seconds(value: Any) -> str:
    """A duration for people: ``42 s``, ``3 min 05 s``, ``1 h 02 min``."""
    if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        return "\u2014"
    seconds = round(value)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def error_text(exc: BaseException) -> str:
    """A one-line message for an exception shown in a panel."""
    if isinstance(exc, YoloClientError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"


# ----------------------------------------------------------------------------------- threads


class Throttle:
    """Runs ``fn`` in a daemon thread after :meth:`poke`, at most ``max_rate`` times a second.

    Any number of pokes between two runs coalesce into one run, so the work per second is
    bounded however fast changes come in: two runs start at least ``1 / max_rate`` seconds apart
    (``time.monotonic``), and a poke is never lost: a run starts after the last one.
    :attr:`run_starts` keeps the start times of the latest runs.
    """

    def __init__(self, fn: Callable[[], None], max_rate: float = DEFAULT_MAX_RATE) -> None:
        self.fn = fn
        self.interval = 1.0 / max_rate if max_rate > 0 else 0.0
        self._cond = threading.Condition()
        self._pending = False
        self._closed = False
        self._last = -math.inf
        self._thread: threading.Thread | None = None
        self.runs = 0
        self.run_starts: deque[float] = deque(maxlen=RUN_STARTS_KEPT)

    def poke(self) -> None:
        """Ask for a run as soon as the rate allows."""
        with self._cond:
            if self._closed:
                return
            self._pending = True
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name="yolo-throttle", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    if not self._cond.wait(timeout=30.0) and not self._pending:
                        self._thread = None  # idle: let the thread go, poke() starts another
                        return
                if self._closed:
                    return
                delay = self._last + self.interval - time.monotonic()
            while delay > 0:  # a sleep may end a little early by the monotonic clock
                time.sleep(delay)
                delay = self._last + self.interval - time.monotonic()
            with self._cond:
                self._pending = False
                self._last = time.monotonic()
                self.run_starts.append(self._last)
            self._run()

    def _run(self) -> None:
        try:
            self.fn()
            self.runs += 1
        except Exception:  # a redraw must never kill the thread
            log.exception("jupyter_yolo: a panel redraw failed")

    def close(self) -> None:
        """Stop the thread; pending work is dropped."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class Follower:
    """Follows one job's events in a daemon thread and hands each page to ``on_page``.

    It replays the job's whole history first (pages of up to 5000 events), then long-polls with
    the status it last saw (the server answers at once on a new event or another status). Each
    page carries the job's ``status`` and ``actions`` (what the server would accept now).

    ``on_end`` is called when the job has ended (its final status event read). Without
    ``watch_after_end`` the thread then stops. With it, the thread keeps long-polling the ended
    job (one request per ``poll_timeout`` seconds; never more than one per ``end_poll_interval``
    against a server that answers an ended job at once), so a job resumed elsewhere (the
    sidebar, the REST API, another notebook) is picked up at once, and ``on_end`` is called
    again when it ends again; only :meth:`stop` (or the job disappearing) ends it.

    A server that does not answer (restarting) is retried every ``max_pause`` seconds at most;
    ``on_error`` gets each failure and ``on_reconnect`` the first answer after them. A job the
    server no longer knows (404) is reported to ``on_error`` and ends the thread (:attr:`gone`).
    """

    def __init__(
        self,
        client: YoloClient,
        job_id: str,
        on_page: Callable[[dict[str, Any]], None],
        *,
        after: int = 0,
        poll_timeout: float = 10.0,
        on_error: Callable[[BaseException], None] | None = None,
        on_end: Callable[[], None] | None = None,
        watch_after_end: bool = False,
        end_poll_interval: float = END_POLL_INTERVAL,
        on_reconnect: Callable[[], None] | None = None,
        max_pause: float = MAX_RETRY_PAUSE,
    ) -> None:
        self.client = client
        self.job_id = job_id
        self.on_page = on_page
        self.after = after
        self.poll_timeout = poll_timeout
        self.on_error = on_error
        self.on_end = on_end
        self.on_reconnect = on_reconnect
        self.watch_after_end = watch_after_end
        self.end_poll_interval = end_poll_interval
        self.max_pause = max_pause
        self.status: str | None = None
        self.gone = False
        self.failing = False
        self._ended = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"yolo-follow-{job_id}", daemon=True)

    def start(self) -> Follower:
        """Start following; returns self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop after the request in flight (at most ``poll_timeout`` seconds)."""
        self._stop.set()

    @property
    def alive(self) -> bool:
        """Whether the thread still follows the job."""
        return self._thread.is_alive() and not self._stop.is_set()

    @property
    def ended(self) -> bool:
        """Whether the job was last seen ended (it may be resumed later)."""
        return self._ended

    def join(self, timeout: float | None = None) -> None:
        """Wait for the thread to end."""
        self._thread.join(timeout)

    def _run(self) -> None:
        try:
            self._follow()
        finally:
            if self.on_end is not None and not self._stop.is_set() and not self._ended:
                self.on_end()  # the job is gone, or the thread ends for another reason

    def _follow(self) -> None:
        pause = min(1.0, self.max_pause)
        catching_up = True
        last_event_status: str | None = None
        ended_at: float | None = None
        while not self._stop.is_set():
            quick = catching_up or ended_at is not None
            asked = time.monotonic()
            try:
                page = self.client.events(
                    self.job_id,
                    after=self.after,
                    timeout=0.0 if quick else self.poll_timeout,
                    limit=PAGE_LIMIT,
                    status=None if quick else self.status,
                )
            except NotFoundError as exc:
                self.gone = True
                self._report(exc)
                return
            except (ServerUnavailable, YoloClientError) as exc:
                self.failing = True
                self._report(exc)
                self._stop.wait(pause)
                pause = min(pause * 2, self.max_pause)
                continue
            if self._stop.is_set():
                return
            pause = min(1.0, self.max_pause)
            if self.failing:
                self.failing = False
                if self.on_reconnect is not None:
                    self.on_reconnect()
            events = page["events"]
            changed = bool(events) or page.get("status") != self.status
            for event in events:
                if event.get("type") == "status":
                    last_event_status = event.get("status")
            if events:
                self.after = events[-1]["seq"]
            self.status = page.get("status")
            self.on_page(page)
            catching_up = bool(page.get("more"))
            if catching_up:
                continue
            if self.status not in TERMINAL:
                self._ended = False
                ended_at = None
                continue
            if not self._ended:
                # the server may append the final status event just after its registry says so
                ended_at = ended_at or time.monotonic()
                if last_event_status not in TERMINAL and time.monotonic() - ended_at <= END_GRACE:
                    self._stop.wait(0.25)
                    continue
                self._ended = True
                ended_at = None
                if self.on_end is not None:
                    self.on_end()
                if not self.watch_after_end:
                    return
            elif not changed:  # a server that answers an ended job at once is asked less often
                self._stop.wait(self.end_poll_interval - (time.monotonic() - asked))

    def _report(self, exc: BaseException) -> None:
        if self.on_error is not None:
            self.on_error(exc)
        else:
            log.warning("jupyter_yolo: following job %s: %s", self.job_id, exc)


def follow_error_text(job_id: str, exc: BaseException) -> tuple[str, str]:
    """The note kind and text a panel shows when following ``job_id`` failed with ``exc``."""
    if isinstance(exc, NotFoundError):
        return "error", (
            f"Job {job_id} no longer exists on the server (it was deleted, or the server now "
            f"uses another workspace). Start a new job or attach to another one."
        )
    if isinstance(exc, ServerUnavailable):
        return "warning", (
            "Server unreachable, retrying every few seconds (restarting or stopped?). The job "
            "itself goes on if the server was only restarted."
        )
    return "warning", f"Following job {job_id} failed, retrying: {error_text(exc)}"


class Ticker:
    """Calls ``fn`` every ``interval`` seconds in a daemon thread until :meth:`stop`."""

    def __init__(self, fn: Callable[[], None], interval: float) -> None:
        self.fn = fn
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="yolo-ticker", daemon=True)

    def start(self) -> Ticker:
        """Start ticking; returns self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop ticking."""
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.fn()
            except Exception:
                log.exception("jupyter_yolo: a periodic panel update failed")
            self._stop.wait(self.interval)


def in_background(
    fn: Callable[[], None], on_error: Callable[[BaseException], None], name: str = "yolo-action"
) -> threading.Thread:
    """Run a slow action (a REST round trip, a prediction job) off the kernel's main thread."""

    def run() -> None:
        try:
            fn()
        except Exception as exc:
            on_error(exc)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread
