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

from ..client import NotFoundError, ServerUnavailable, YoloClient, YoloClientError

log = logging.getLogger("jupyter_yolo.widgets")

DEFAULT_MAX_RATE = 5.0
PAGE_LIMIT = 5000
RUN_STARTS_KEPT = 10000

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

    It replays the job's whole history first (pages of up to 5000 events), then long-polls
    until the job has ended. Connection problems are retried with a growing pause.
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
    ) -> None:
        self.client = client
        self.job_id = job_id
        self.on_page = on_page
        self.after = after
        self.poll_timeout = poll_timeout
        self.on_error = on_error
        self.on_end = on_end
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

    def join(self, timeout: float | None = None) -> None:
        """Wait for the thread to end."""
        self._thread.join(timeout)

    def _run(self) -> None:
        pause = 1.0
        try:
            while not self._stop.is_set():
                try:
                    for page in self.client.iter_pages(
                        self.job_id, self.after, timeout=self.poll_timeout, limit=PAGE_LIMIT
                    ):
                        if self._stop.is_set():
                            return
                        if page["events"]:
                            self.after = page["events"][-1]["seq"]
                        self.on_page(page)
                        pause = 1.0
                    return
                except NotFoundError as exc:
                    self._report(exc)
                    return
                except (ServerUnavailable, YoloClientError) as exc:
                    self._report(exc)
                    self._stop.wait(pause)
                    pause = min(pause * 2, 15.0)
        finally:
            if self.on_end is not None and not self._stop.is_set():
                self.on_end()

    def _report(self, exc: BaseException) -> None:
        if self.on_error is not None:
            self.on_error(exc)
        else:
            log.warning("jupyter_yolo: following job %s: %s", self.job_id, exc)


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
