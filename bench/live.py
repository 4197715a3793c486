"""Live metrics and REST latency: how fast a trainer's event reaches a REST client, and how the
server answers while training keeps the CPU busy.

One real jupyter server with the extension; training jobs train ``yolov8n.yaml`` from scratch
on the generated shapes dataset (``device=cpu``, the usable CPUs as thread settings):

* ``live.callback_to_rest_*``: while one job trains, a client long-polls
  ``GET /yolo/jobs/{id}/events?after=N&timeout=30`` and notes when each answer arrives. An
  event's ``time`` is stamped by the runner inside the ultralytics trainer callback
  (``on_train_batch_end`` / ``on_fit_epoch_end`` -> ``Journal.emit``), on the same host clock,
  so receipt minus ``time`` is the delay from the callback to the event being served. Median,
  p95 and max over the job's batch and epoch events.
* ``rest.*``: a second client sends authenticated GETs at a steady pace (every
  ``interval_ms``), cycling over ``/yolo/jobs/{id}``, ``/yolo/jobs`` and
  ``/yolo/accelerators/usage`` on a keep-alive connection; latency p50/p99 in three windows:
  ``one_job`` (from the first batch of that job to its end), ``idle`` (``idle_s`` seconds with
  nothing running) and ``under_load``: from the first batch until the first end of as many
  concurrent jobs as it takes to keep every usable CPU busy: a job computes on the CPUs its
  thread setting gives it (here all usable CPUs), so one job does. ``rest.cpu_busy_percent_*``
  is the share of all CPUs that was busy in each window (from /proc/stat), to show the load.
* ``live.idle_longpoll_*``: after the job ended, ``longpoll_clients`` clients long-poll it
  (``?after=<last>&timeout=30&status=succeeded``: nothing changes, each request waits) for
  ``longpoll_s`` seconds; the server process's CPU use (% of one CPU, from /proc/<pid>/stat) and
  its event loop's wake-ups per second, with the default notification (inotify) and on the same
  workspace served with ``--YoloApp.event_notification=poll`` (the old 0.25 s re-read), and the
  same server with no client (``live.idle_server_cpu_percent``). See ``bench/live_idle.py``.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .common import (
    Log,
    Rest,
    busy_percent,
    cpu_times,
    follow_events,
    job_log_tail,
    make_shapes,
    percentile,
    rounded,
    start_server,
    summary,
    thread_env,
    usable_cpus,
)
from .live_idle import measure as measure_long_polls

#: A finished training's background preparation for predictions (export, backend measurement)
#: would run beside the next measured job and during the idle windows: off here.
QUIET = ("--YoloApp.prepare_after_training=False",)


@dataclass(frozen=True)
class LiveConfig:
    """The training jobs and the request pace."""

    epochs: int
    idle_s: float
    imgsz: int = 128
    batch: int = 8
    interval_ms: float = 40.0
    longpoll_clients: int = 20
    longpoll_s: float = 20.0

    @classmethod
    def for_mode(cls, quick: bool) -> LiveConfig:
        """Quick: 4 epochs (~20 s a job on 2 cores), 10 s idle, 10 s of long polls; full: 10
        epochs, 30 s idle, 20 s of long polls."""
        if quick:
            return cls(epochs=4, idle_s=10.0, longpoll_s=10.0)
        return cls(epochs=10, idle_s=30.0)

    def body(self) -> dict[str, Any]:
        """The ``POST /yolo/jobs`` body of one training job."""
        return {
            "kind": "train",
            "model": "yolov8n.yaml",
            "data": "shapes",
            "epochs": self.epochs,
            "imgsz": self.imgsz,
            "batch": self.batch,
            "device": "cpu",
            "workers": 0,
            "plots": False,
            "seed": 0,
        }


def jobs_to_saturate(cpus: int, threads: int | None = None) -> int:
    """Concurrent CPU training jobs that keep ``cpus`` CPUs busy.

    A training job computes on as many torch threads as its plan says: ``OMP_NUM_THREADS`` when
    the environment sets it (this section sets it to the usable CPUs), else every usable CPU
    (:mod:`jupyter_yolo.contract.training_speed`); one job then keeps every CPU busy.
    """
    per_job = max(1, threads if threads is not None else cpus)
    return max(1, math.ceil(cpus / per_job))


class Follower(threading.Thread):
    """Long-polls one job's events in a thread, noting when each one arrives."""

    def __init__(self, url: str, token: str, job_id: str, ended: threading.Event) -> None:
        super().__init__(name=f"bench-follow-{job_id}", daemon=True)
        self.rest = Rest(url, token)
        self.job_id = job_id
        self.received: list[tuple[dict[str, Any], float]] = []
        self.training = threading.Event()  # set at the first batch (or at the end)
        self.ended = ended  # shared: set when the first of the followed jobs ends
        self.failure: BaseException | None = None

    def run(self) -> None:
        """Follow until the job's terminal status event."""
        try:
            for event, at in follow_events(self.rest, self.job_id, timeout_s=1800):
                self.received.append((event, at))
                if event.get("type") == "batch":
                    self.training.set()
        except BaseException as exc:
            self.failure = exc
        finally:
            self.rest.close()
            self.training.set()
            self.ended.set()

    def check(self, workspace: Path) -> None:
        """Raise when following failed or the job did not succeed."""
        if self.failure is not None:
            raise RuntimeError(f"following job {self.job_id} failed: {self.failure!r}")
        end = self.received[-1][0] if self.received else {}
        if end.get("status") != "succeeded":
            raise RuntimeError(
                f"job {self.job_id} ended {end.get('status')}:\n"
                f"{job_log_tail(workspace, self.job_id)}"
            )


class Sampler:
    """Sends paced GETs over a keep-alive connection and keeps each latency in seconds."""

    def __init__(self, rest: Rest, paths: dict[str, str], interval_s: float) -> None:
        self.rest = rest
        self.paths = paths  # name -> path
        self.interval_s = interval_s
        self.latencies: list[float] = []
        self.by_path: dict[str, list[float]] = {name: [] for name in paths}
        self.errors = 0

    def run_until(self, done: threading.Event | None, seconds: float | None = None) -> None:
        """Sample until ``done`` is set or ``seconds`` have passed."""
        end = None if seconds is None else time.monotonic() + seconds
        i = 0
        names = list(self.paths)
        next_at = time.monotonic()
        while not (done is not None and done.is_set()) and (end is None or time.monotonic() < end):
            name = names[i % len(names)]
            i += 1
            try:
                latency = self.rest.timed_get(self.paths[name])
            except Exception:
                self.errors += 1
            else:
                self.latencies.append(latency)
                self.by_path[name].append(latency)
            next_at += self.interval_s
            time.sleep(max(0.0, next_at - time.monotonic()))
            next_at = max(next_at, time.monotonic() - self.interval_s)  # no catch-up bursts

    def figures(self) -> dict[str, Any]:
        """p50, p99 and more of the latencies, in milliseconds."""
        return {
            **summary(self.latencies, digits=2, scale=1000),
            "p50": rounded(percentile(self.latencies, 50) * 1000, 2),
            "errors": self.errors,
            "by_path_median": {
                name: rounded(percentile(v, 50) * 1000, 2) for name, v in self.by_path.items()
            },
        }


def _loaded_window(
    server: Any, workspace: Path, cfg: LiveConfig, count: int
) -> tuple[list[Follower], Sampler, float | None]:
    """Start ``count`` jobs; sample REST from their first batches until the first one ends."""
    control = Rest(server.url, server.token)
    ended = threading.Event()
    followers = []
    try:
        for _ in range(count):
            job_id = control.request("POST", "/yolo/jobs", cfg.body())["id"]
            followers.append(Follower(server.url, server.token, job_id, ended))
    finally:
        control.close()
    for follower in followers:
        follower.start()
    for follower in followers:
        follower.training.wait(timeout=600)
    paths = {
        "job": f"/yolo/jobs/{followers[0].job_id}",
        "jobs": "/yolo/jobs",
        "usage": "/yolo/accelerators/usage",
    }
    sampler = Sampler(Rest(server.url, server.token), paths, cfg.interval_ms / 1000)
    before = cpu_times()
    sampler.run_until(ended)
    busy = busy_percent(before, cpu_times())
    sampler.rest.close()
    for follower in followers:
        follower.join(timeout=1800)
        follower.check(workspace)
    return followers, sampler, busy


def _long_polls(server: Any, job_id: str, cfg: LiveConfig, clients: int) -> dict[str, Any]:
    """The server's CPU use while ``clients`` long-poll the ended job (see live_idle.py)."""
    assert server.proc is not None
    return measure_long_polls(
        server.proc.pid,
        server.url,
        server.token,
        job_id,
        clients=clients,
        seconds=cfg.longpoll_s,
    )


def _idle_long_polls(server: Any, job_id: str, cfg: LiveConfig, log: Log) -> dict[str, Any]:
    """No client, then ``longpoll_clients`` long polls, on the default (notified) server."""
    log(
        f"live: server CPU with no client, then {cfg.longpoll_clients} long polls of the ended "
        f"job, {cfg.longpoll_s:.0f} s each, with inotify; then the same with polling"
    )
    time.sleep(1.0)  # the REST sampler's last answers are out
    return {
        "none": _long_polls(server, job_id, cfg, 0),
        "auto": _long_polls(server, job_id, cfg, cfg.longpoll_clients),
    }


def run(
    *, quick: bool, workdir: Path, log: Log, config: LiveConfig | None = None
) -> dict[str, Any]:
    """Measure live-event delay and REST latency; return ``{"live": {...}, "rest": {...}}``."""
    cfg = config or LiveConfig.for_mode(quick)
    root = workdir / "live"
    workspace = root / "workspace"
    workspace.mkdir(parents=True, exist_ok=True)
    make_shapes(workspace, seed=0)
    cpus = usable_cpus()
    threads = thread_env(cpus)
    saturate = jobs_to_saturate(cpus, int(threads["OMP_NUM_THREADS"]))
    server = start_server(
        root,
        workspace,
        threads,
        extra_args=(f"--YoloApp.max_jobs_per_device={saturate}", *QUIET),
    )
    try:
        log(
            f"live: one training job of {cfg.epochs} epochs (imgsz {cfg.imgsz}, batch "
            f"{cfg.batch}), REST sampled every {cfg.interval_ms:.0f} ms"
        )
        (single,), one_job, one_busy = _loaded_window(server, workspace, cfg, 1)
        log(f"live: job done ({len(single.received)} events); {cfg.idle_s:.0f} s of REST idle")
        time.sleep(1.0)  # let the server notice the runner's exit
        paths = {
            "job": f"/yolo/jobs/{single.job_id}",
            "jobs": "/yolo/jobs",
            "usage": "/yolo/accelerators/usage",
        }
        idle = Sampler(Rest(server.url, server.token), paths, cfg.interval_ms / 1000)
        before = cpu_times()
        idle.run_until(None, cfg.idle_s)
        idle_busy = busy_percent(before, cpu_times())
        idle.rest.close()
        if saturate > 1:
            log(f"live: {saturate} concurrent jobs to keep {cpus} CPUs busy")
            _, loaded, loaded_busy = _loaded_window(server, workspace, cfg, saturate)
        else:
            loaded, loaded_busy = one_job, one_busy
        polls = _idle_long_polls(server, single.job_id, cfg, log)
    finally:
        server.stop()
    poll_server = start_server(
        root, workspace, threads, extra_args=("--YoloApp.event_notification=poll", *QUIET)
    )
    try:
        polls["poll"] = _long_polls(poll_server, single.job_id, cfg, cfg.longpoll_clients)
    finally:
        poll_server.stop()
    log(
        f"live: {cfg.longpoll_clients} idle long polls: server CPU {polls['auto']['cpu_percent']}"
        f" % notified, {polls['poll']['cpu_percent']} % polling"
        f" ({polls['none']['cpu_percent']} % with no client)"
    )

    kinds = ("batch", "epoch")
    delays = [at - event["time"] for event, at in single.received if event.get("type") in kinds]
    stats = summary(delays, digits=4)
    under, quiet, one = loaded.figures(), idle.figures(), one_job.figures()
    return {
        "live": {
            "callback_to_rest_median_s": stats["median"],
            "callback_to_rest_p95_s": stats["p95"],
            "callback_to_rest_max_s": stats["max"],
            "events_measured": stats["count"],
            "idle_longpoll_cpu_percent": polls["auto"]["cpu_percent"],
            "idle_longpoll_cpu_percent_poll": polls["poll"]["cpu_percent"],
            "idle_server_cpu_percent": polls["none"]["cpu_percent"],
            "idle_longpoll_loop_wakeups_per_s": polls["auto"]["loop_wakeups_per_s"],
            "idle_longpoll_loop_wakeups_per_s_poll": polls["poll"]["loop_wakeups_per_s"],
            "idle_server_loop_wakeups_per_s": polls["none"]["loop_wakeups_per_s"],
            "idle_longpoll_clients": cfg.longpoll_clients,
            "idle_longpoll_seconds": cfg.longpoll_s,
            "idle_longpoll": polls,
            "settings": {
                "epochs": cfg.epochs,
                "imgsz": cfg.imgsz,
                "batch": cfg.batch,
                "long_poll_timeout_s": 30,
                "threads": threads,
            },
        },
        "rest": {
            "p50_ms_under_load": under["p50"],
            "p99_ms_under_load": under["p99"],
            "p50_ms_idle": quiet["p50"],
            "p99_ms_idle": quiet["p99"],
            "p50_ms_one_job": one["p50"],
            "p99_ms_one_job": one["p99"],
            "max_ms_under_load": under["max"],
            "max_ms_idle": quiet["max"],
            "requests": {
                "under_load": under["count"],
                "idle": quiet["count"],
                "one_job": one["count"],
            },
            "errors": under["errors"] + quiet["errors"] + one["errors"],
            "jobs_under_load": saturate,
            "cpu_busy_percent_under_load": loaded_busy,
            "cpu_busy_percent_one_job": one_busy,
            "cpu_busy_percent_idle": idle_busy,
            "median_ms_under_load": under["by_path_median"],
            "median_ms_idle": quiet["by_path_median"],
            "paths": {
                "job": "/yolo/jobs/{id}",
                "jobs": "/yolo/jobs",
                "usage": "/yolo/accelerators/usage",
            },
            "interval_ms": cfg.interval_ms,
        },
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.live [--quick]``: this section alone, JSON on stdout."""
    import argparse
    import tempfile

    from .common import stderr_log

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-live-") as tmp:
        result = run(quick=args.quick, workdir=Path(tmp), log=stderr_log)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
