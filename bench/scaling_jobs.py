"""Scaling of the server with finished jobs: ``GET /yolo/jobs`` and the event reads at 10, 100
and 1,000 jobs in the registry, event reads of a job with 100 and 100,000 events, and the
server's start (adoption of the job folders) with that many jobs.

Latencies are p50/p95 over 20 (quick) or 50 sequential GETs on one keep-alive connection, each
until its whole answer is read (not JSON-decoded: the server's cost and the transfer). The full
list grows with the jobs by design (about 1.5 kB a job); ``?limit=10`` lists the same ten at
every size, so it shows whether the cost of a request depends on the history behind it.

The finished jobs are honest copies of a real one: a training job run through the server is
the template; each copy gets a new id, its ``job.json`` rewritten with the contract's
:class:`~jupyter_yolo.contract.jobfile.JobFile` (id and paths moved to the copy's folder), its
``status.json`` with the contract's atomic writer, its ``events.jsonl`` and ``log.txt`` with
their paths moved, and its result files (``run/``: weights, CSV, plots) as hard links. The
server then adopts the folders at start as it adopts restored ones (its registry is rebuilt
from the folders) -- the path a workspace restored from a backup takes.

The two large-event jobs have their event files written with the runner's own
:class:`~jupyter_yolo.jobs.events.EventWriter` (``status`` running, ``batch`` events shaped as
the trainer callback writes them, ``status`` succeeded).
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import shutil
import time
from pathlib import Path
from typing import Any

from .common import Log, Rest, percentile, rounded, start_server


def _move_paths(text: str, replacements: list[tuple[str, str]]) -> str:
    for old, new in replacements:
        text = text.replace(old, new)
    return text


def clone_job(template: Path, source_root: Path, workspace: Path) -> str:
    """Copy a finished job folder into ``workspace/jobs`` under a new id; return the id."""
    from jupyter_yolo.contract.files import EVENTS_FILE, STATUS_FILE, write_atomic
    from jupyter_yolo.contract.jobfile import JobFile

    job_id = secrets.token_hex(6)
    folder = workspace / "jobs" / job_id
    staging = workspace / ".tmp" / f"clone-{job_id}"
    staging.mkdir(parents=True)
    moves = [
        (str(source_root / "jobs" / template.name), str(folder)),
        (str(source_root), str(workspace)),
        (template.name, job_id),
    ]
    raw = json.loads(_move_paths((template / "job.json").read_text(), moves))
    JobFile.from_dict(raw, default_id=job_id).write(staging)
    for name in (STATUS_FILE, EVENTS_FILE, "log.txt"):
        if (template / name).is_file():
            write_atomic(staging / name, _move_paths((template / name).read_text(), moves))
    run = template / "run"
    for path in run.rglob("*") if run.is_dir() else ():
        target = staging / path.relative_to(template)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        elif path.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(path, target)
    os.chmod(staging, 0o700)
    os.rename(staging, folder)
    return job_id


def event_job(template: Path, source_root: Path, workspace: Path, events: int) -> str:
    """A copy of the template whose event file holds ``events`` events (runner's writer)."""
    from jupyter_yolo.contract.files import EVENTS_FILE
    from jupyter_yolo.jobs.events import EventWriter

    job_id = clone_job(template, source_root, workspace)
    path = workspace / "jobs" / job_id / EVENTS_FILE
    path.unlink()
    batches = 50
    with EventWriter(path) as writer:
        writer.emit("status", status="running")
        for i in range(events - 2):
            epoch, batch = divmod(i, batches)
            writer.emit(
                "batch",
                epoch=epoch + 1,
                batch=batch + 1,
                batches=batches,
                loss={"box": 1.91, "cls": 1.40, "dfl": 1.66},
                lr=0.00167,
                images_per_s=41.2,
            )
        writer.emit("status", status="succeeded")
    return job_id


#: ``GET /yolo/jobs?limit=LIMIT``: the same number of jobs listed at every registry size.
LIMIT = 10


def _latencies(rest: Rest, path: str, count: int) -> list[float]:
    """Seconds each of ``count`` GETs takes until the whole answer is read (not decoded: the
    server's cost and the transfer, not the client's JSON parsing)."""
    conn = http.client.HTTPConnection(rest.host, rest.port, timeout=rest.timeout)
    headers = {"Authorization": f"token {rest.token}", "Connection": "keep-alive"}
    out = []
    try:
        for _ in range(count):
            started = time.perf_counter()
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            response.read()
            out.append(time.perf_counter() - started)
            if response.status != 200:
                raise RuntimeError(f"GET {path}: HTTP {response.status}")
    finally:
        conn.close()
    return out


def _stats_ms(values: list[float]) -> dict[str, Any]:
    return {
        "p50_ms": rounded(percentile(values, 50) * 1000, 2),
        "p95_ms": rounded(percentile(values, 95) * 1000, 2),
    }


def measure_server(
    root: Path, workspace: Path, job_id: str, repeats: int, log: Log
) -> dict[str, Any]:
    """Start a server on ``workspace``; time its start, the job list and one job's events."""
    started = time.perf_counter()
    server = start_server(root, workspace, {})
    start_s = time.perf_counter() - started
    rest = Rest(server.url, server.token)
    try:
        first = time.perf_counter()
        listing = rest.get("/yolo/jobs")
        first_s = time.perf_counter() - first
        jobs = len(listing["jobs"])
        raw = json.dumps(listing)
        lists = _latencies(rest, "/yolo/jobs", repeats)
        limited = _latencies(rest, f"/yolo/jobs?limit={LIMIT}", repeats)
        last = rest.get(f"/yolo/jobs/{job_id}/events?after=0&limit=1")["last_seq"]
        all_events = _latencies(rest, f"/yolo/jobs/{job_id}/events?after=0&limit=1000", repeats)
        tail = _latencies(
            rest, f"/yolo/jobs/{job_id}/events?after={max(0, last - 10)}&limit=1000", repeats
        )
        one = _latencies(rest, f"/yolo/jobs/{job_id}", repeats)
    finally:
        rest.close()
        server.stop()
    figures: dict[str, Any] = {
        "jobs": jobs,
        "server_start_s": rounded(start_s, 3),
        "first_list_ms": rounded(first_s * 1000, 2),
        "list": _stats_ms(lists),
        "list_kb": rounded(len(raw) / 1024, 1),
        "list_ms_per_job": rounded(percentile(lists, 50) * 1000 / max(1, jobs), 4),
        "list_limited": _stats_ms(limited),
        "events_after_0": _stats_ms(all_events),
        "events_tail": _stats_ms(tail),
        "job": _stats_ms(one),
    }
    log(
        f"scaling: {jobs} jobs: start {start_s:.2f} s, GET /yolo/jobs p50 "
        f"{figures['list']['p50_ms']} ms ({figures['list_kb']} kB), ?limit={LIMIT} "
        f"{figures['list_limited']['p50_ms']} ms, events p50 "
        f"{figures['events_after_0']['p50_ms']} ms"
    )
    return figures


def measure_events(
    root: Path, workspace: Path, jobs: dict[int, str], repeats: int, log: Log
) -> dict[str, Any]:
    """Event reads of jobs with different event counts: cold (index built) and warm."""
    server = start_server(root, workspace, {})
    rest = Rest(server.url, server.token)
    out: dict[str, Any] = {}
    try:
        for count, job_id in jobs.items():
            base = f"/yolo/jobs/{job_id}/events"
            cold = rest.timed_get(f"{base}?after={count - 10}&limit=1000")
            out[str(count)] = {
                "cold_tail_ms": rounded(cold * 1000, 2),
                "after_0": _stats_ms(_latencies(rest, f"{base}?after=0&limit=1000", repeats)),
                "tail": _stats_ms(
                    _latencies(rest, f"{base}?after={count - 10}&limit=1000", repeats)
                ),
                "middle": _stats_ms(
                    _latencies(rest, f"{base}?after={count // 2}&limit=1000", repeats)
                ),
            }
            log(f"scaling: {count} events: cold {cold * 1000:.1f} ms, {out[str(count)]}")
        started = time.perf_counter()
        rest.get("/yolo/jobs")
        out["list_after_ms"] = rounded((time.perf_counter() - started) * 1000, 2)
    finally:
        rest.close()
        server.stop()
    return out


def run_registry(
    template: Path, source_root: Path, workdir: Path, *, quick: bool, log: Log
) -> dict[str, Any]:
    """The ``jobs`` and ``events`` parts of the scaling table, from a finished template job."""
    counts = (10, 100, 1000)
    repeats = 20 if quick else 50
    root = workdir / "registry"
    workspace = root / "workspace"
    (workspace / "jobs").mkdir(parents=True, exist_ok=True)
    (workspace / ".tmp").mkdir(exist_ok=True)
    real = clone_job(template, source_root, workspace)
    made = 1
    by_count: dict[str, Any] = {}
    for count in counts:
        started = time.perf_counter()
        while made < count:
            clone_job(template, source_root, workspace)
            made += 1
        log(f"scaling: {count} job folders ({time.perf_counter() - started:.1f} s to copy)")
        # the registry is rebuilt from the folders: the server adopts each one at start
        for suffix in ("", "-wal", "-shm"):
            (workspace / ".jupyter-yolo" / f"jobs.sqlite{suffix}").unlink(missing_ok=True)
        adopted = measure_server(root, workspace, real, repeats, log)
        adopted["adopted_start_s"] = adopted.pop("server_start_s")
        known = measure_server(root, workspace, real, repeats, log)
        by_count[str(count)] = {**adopted, "known_start_s": known["server_start_s"]}
    low, high = by_count[str(counts[0])], by_count[str(counts[-1])]
    events = {n: event_job(template, source_root, workspace, n) for n in (100, 100_000)}
    event_figures = measure_events(root, workspace, events, repeats, log)
    shutil.rmtree(workspace / "jobs", ignore_errors=True)
    return {
        "by_jobs": by_count,
        "list_p50_ratio_1000_over_10": _ratio(high["list"]["p50_ms"], low["list"]["p50_ms"]),
        "list_limited_p50_ratio_1000_over_10": _ratio(
            high["list_limited"]["p50_ms"], low["list_limited"]["p50_ms"]
        ),
        "events_p50_ratio_1000_over_10": _ratio(
            high["events_tail"]["p50_ms"], low["events_tail"]["p50_ms"]
        ),
        "by_events": event_figures,
        "events_tail_ratio_100k_over_100": _ratio(
            event_figures["100000"]["tail"]["p50_ms"], event_figures["100"]["tail"]["p50_ms"]
        ),
        "repeats": repeats,
    }


def _ratio(high: float | None, low: float | None) -> float | None:
    return rounded(high / low, 3) if high is not None and low else None
