"""What waiting clients cost an idle server: CPU and event-loop wake-ups while N clients
long-poll an ended job's events (``GET /yolo/jobs/{id}/events?after=<last>&timeout=30&status=
<status>``: nothing will change, every request waits its whole timeout).

Read from ``/proc/<server pid>``: ``stat`` (utime + stime: CPU seconds of the whole server
process) and ``status`` (``voluntary_ctxt_switches`` of its main thread, the event loop: each
time it went to sleep, so about one per wake-up). The section measures it once with the default
notification (inotify) and once on a server started with ``--YoloApp.event_notification=poll``
(the old re-read every 0.25 s), side by side, plus the same server with no client as a baseline
(the job supervisor's own tick).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from .common import Rest, rounded

LONG_POLL_S = 30


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) the process has used so far, threads included."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def loop_sleeps(pid: int) -> int:
    """Voluntary context switches of the process's main thread (the server's event loop)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("voluntary_ctxt_switches:"):
            return int(line.split()[1])
    return 0


class LongPoller(threading.Thread):
    """One client long-polling a job's events over its own keep-alive connection.

    Its own ``http.client`` connection, not :class:`Rest`: a request must not be sent again on
    a new connection when :meth:`stop` shuts the socket under it.
    """

    def __init__(self, url: str, token: str, job_id: str, last_seq: int, status: str) -> None:
        super().__init__(name=f"bench-longpoll-{job_id}", daemon=True)
        host, _, port = url.removeprefix("http://").rstrip("/").partition(":")
        self.conn = http.client.HTTPConnection(host, int(port or 80), timeout=LONG_POLL_S + 60)
        self.headers = {"Authorization": f"token {token}", "Connection": "keep-alive"}
        self.path = f"/yolo/jobs/{job_id}/events?timeout={LONG_POLL_S}"
        self.last_seq = last_seq
        self.status = status
        self.answers = 0
        self.stopping = threading.Event()
        self.failure: BaseException | None = None

    def run(self) -> None:
        """Long-poll until :meth:`stop`; each answer starts the next request."""
        try:
            while not self.stopping.is_set():
                path = f"{self.path}&after={self.last_seq}&status={self.status}"
                self.conn.request("GET", path, headers=self.headers)
                response = self.conn.getresponse()
                body = response.read()
                if response.status != 200:
                    raise RuntimeError(f"GET {path}: HTTP {response.status}: {body[:300]!r}")
                page = json.loads(body)
                self.answers += 1
                self.last_seq, self.status = page["last_seq"], page["status"]
        except Exception as exc:
            if not self.stopping.is_set():
                self.failure = exc

    def interrupt(self) -> None:
        """End the loop and the request in flight (its socket is shut)."""
        self.stopping.set()
        sock = self.conn.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def measure(
    pid: int, url: str, token: str, job_id: str, *, clients: int, seconds: float
) -> dict[str, Any]:
    """Server CPU % (of one CPU) and loop wake-ups/s while ``clients`` long-poll ``job_id``."""
    rest = Rest(url, token)
    try:
        page = rest.get(f"/yolo/jobs/{job_id}/events?after=0&limit=1")
    finally:
        rest.close()
    pollers = [
        LongPoller(url, token, job_id, page["last_seq"], page["status"]) for _ in range(clients)
    ]
    for poller in pollers:
        poller.start()
    time.sleep(1.5 if clients else 0.0)  # every request has arrived and waits
    cpu, sleeps, started = process_cpu_s(pid), loop_sleeps(pid), time.monotonic()
    time.sleep(seconds)
    cpu = process_cpu_s(pid) - cpu
    sleeps = loop_sleeps(pid) - sleeps
    wall = time.monotonic() - started
    answers = sum(p.answers for p in pollers)
    for poller in pollers:
        poller.interrupt()
    for poller in pollers:
        poller.join(timeout=10)
        poller.conn.close()
    failures = [p.failure for p in pollers if p.failure is not None]
    if failures:
        raise RuntimeError(f"a long-polling client failed: {failures[0]!r}")
    return {
        "cpu_percent": rounded(100 * cpu / wall, 2),
        "cpu_s": rounded(cpu, 3),
        "loop_wakeups_per_s": rounded(sleeps / wall, 1),
        "answers": answers,
        "clients": clients,
        "seconds": rounded(wall, 1),
    }
