"""Training overhead: one short training as a job through the server and as plain ``yolo train``.

Both sides train ``yolov8n.yaml`` from scratch on the same generated shapes dataset with the same
arguments (epochs, imgsz, batch, ``workers=0``, ``device=cpu``, ``plots=False``, ``seed=0``), with
the same thread settings (``OMP_NUM_THREADS``, ``MKL_NUM_THREADS`` and ``OPENBLAS_NUM_THREADS``
set explicitly to the CPUs usable under the cgroup quota unless the environment sets them; in
both, ultralytics' ``select_device`` then sets torch to ``min(8, os.cpu_count() - 1)`` threads
for CPU training), the same ultralytics settings file and fonts (``YOLO_CONFIG_DIR``: the
workspace's ``.ultralytics``, prepared as the runner prepares it: ``sync`` off, integrations
off), offline (``YOLO_OFFLINE=1``: no update check, no telemetry, no downloads), and their
output going through a pipe to a thread that writes the log (as the runner's log capture does).

* job: wall time from sending ``POST /yolo/jobs`` until ``GET /yolo/jobs/{id}`` (polled every
  20 ms once the job's terminal status event has arrived through the long-poll
  ``GET /yolo/jobs/{id}/events?timeout=30``) says it ended: its runner process has exited and
  the server has noticed, as the CLI's process has exited. ``overhead_ratio_events`` ends the
  job instead at the arrival of its terminal status event (the first moment a REST client can
  know it ended; the runner exits just after).
* cli: wall time of the ``yolo train ...`` process.

A warm-up of each (one epoch, not counted) fills the label caches and the page cache. Then the
pairs alternate their order (job-cli, cli-job, ...); ``overhead_ratio`` is the median job time
over the median CLI time; the spread is shown with min/max and the per-pair ratios. Both sides
are cut into the same phases from their logged lines (the job's come as ``log`` events with the
time of the trainer's log call): start to "Starting training", training, "N epochs completed"
to the end of the work (final validation with best.pt), and the end of the work to the end of
the process; the job also reports POST to ``running``, its terminal event to its arrival over
REST, and its runner's own start and end from ``status.json``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from .common import (
    TERMINAL,
    Log,
    Rest,
    follow_events,
    job_log_tail,
    make_shapes,
    median,
    rounded,
    start_server,
    thread_env,
    usable_cpus,
    wait_registry_terminal,
)


@dataclass(frozen=True)
class TrainingConfig:
    """What is trained, how often."""

    epochs: int
    repeats: int
    imgsz: int = 128
    batch: int = 16
    train_images: int = 96
    val_images: int = 24
    warmup: bool = True

    @classmethod
    def for_mode(cls, quick: bool) -> TrainingConfig:
        """Quick: 5 epochs (~21 s a run on 2 CPU cores), 5 pairs; full: 8 epochs, 9 pairs."""
        return cls(epochs=5, repeats=5) if quick else cls(epochs=8, repeats=9)

    def params(self, epochs: int | None = None) -> dict[str, Any]:
        """The training arguments both sides get (besides model, data and output folder)."""
        return {
            "epochs": epochs or self.epochs,
            "imgsz": self.imgsz,
            "batch": self.batch,
            "workers": 0,
            "device": "cpu",
            "plots": False,
            "seed": 0,
        }


def yolo_command() -> list[str]:
    """The ``yolo`` console script of this Python environment."""
    script = Path(sys.executable).with_name("yolo")
    if script.is_file():
        return [str(script)]
    found = shutil.which("yolo")
    if found:
        return [found]
    return [sys.executable, "-c", "from ultralytics.cfg import entrypoint; entrypoint()"]


def cli_environment(workspace: Path, threads: dict[str, str]) -> dict[str, str]:
    """The CLI's environment: as the runner's, with the same config dir, threads and offline."""
    from jupyter_yolo.runner import offline

    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER_TOKEN")}
    env.update(threads)
    env.update(
        YOLO_OFFLINE="1",
        YOLO_AUTOINSTALL="False",
        YOLO_CONFIG_DIR=str(offline.config_dir(workspace)),
        HF_HUB_OFFLINE="1",
        MPLBACKEND=env.get("MPLBACKEND") or "Agg",
        PYTHONUNBUFFERED="1",
    )
    return env


def prepare_config_dir(workspace: Path) -> None:
    """Write ultralytics' settings and fonts into the workspace as the runner does."""
    from jupyter_yolo.runner import offline

    offline.write_settings(workspace)
    offline.install_fonts(offline.user_config_dir(workspace))


#: Lines both sides log (the job forwards them as ``log`` events): training starts / ends.
TRAIN_START = re.compile(r"Starting training for \d+ epochs")
TRAIN_DONE = re.compile(r"\d+ epochs completed in")


def _phases(launch: float, marks: dict[str, float], done: float, ended: float) -> dict[str, Any]:
    """Comparable phases of one run, from wall-clock moments (``time.time()``)."""
    start, trained = marks.get("train_start"), marks.get("train_done")
    return {
        "startup_s": start - launch if start else None,
        "training_s": trained - start if start and trained else None,
        "final_s": done - trained if trained else None,
        "exit_s": ended - done,
    }


def run_cli(
    data_yaml: Path, project: Path, params: dict[str, Any], env: dict[str, str]
) -> dict[str, Any]:
    """Run ``yolo train`` once; return its wall time and phases.

    Its output goes through a pipe (as the runner's does) to a thread that writes ``log.txt``
    and notes when the start and end of training are logged.
    """
    project.mkdir(parents=True, exist_ok=True)
    args = [
        *yolo_command(),
        "train",
        "model=yolov8n.yaml",
        f"data={data_yaml}",
        *(f"{key}={value}" for key, value in params.items()),
        f"project={project}",
        "name=run",
        "exist_ok=True",
    ]
    log_path = project / "log.txt"
    marks: dict[str, float] = {}
    last_output = [0.0]

    def drain(stream: IO[bytes], log: IO[bytes]) -> None:
        pending = b""
        while chunk := stream.read1(65536):  # type: ignore[attr-defined]
            now = time.time()
            last_output[0] = now
            log.write(chunk)
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                text = line.decode(errors="replace")
                if "train_start" not in marks and TRAIN_START.search(text):
                    marks["train_start"] = now
                elif TRAIN_DONE.search(text):
                    marks["train_done"] = now

    with log_path.open("wb") as log:
        launched = time.time()
        started = time.perf_counter()
        proc = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            stdin=subprocess.DEVNULL,
        )
        assert proc.stdout is not None
        reader = threading.Thread(target=drain, args=(proc.stdout, log), daemon=True)
        reader.start()
        returncode = proc.wait()
        wall = time.perf_counter() - started
        ended = time.time()
        reader.join(timeout=10)
    if returncode != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])
        raise RuntimeError(f"yolo train exited with {returncode}:\n{tail}")
    return {"wall_s": wall, "phases": _phases(launched, marks, last_output[0], ended)}


def run_job(
    rest: Rest, workspace: Path, params: dict[str, Any], timeout_s: float = 900
) -> dict[str, Any]:
    """Run one training job; return its wall times and phases."""
    body = {"kind": "train", "model": "yolov8n.yaml", "data": "shapes", **params}
    posted = time.time()
    started = time.perf_counter()
    job_id = rest.request("POST", "/yolo/jobs", body)["id"]
    events: list[dict[str, Any]] = []
    end_event: dict[str, Any] = {}
    end_received = 0.0
    for event, received in follow_events(rest, job_id, timeout_s=timeout_s):
        events.append(event)
        if event.get("type") == "status" and event.get("status") in TERMINAL:
            end_event, end_received = event, received
    event_wall = time.perf_counter() - started
    job = wait_registry_terminal(rest, job_id)
    wall = time.perf_counter() - started
    ended = time.time()
    if end_event.get("status") != "succeeded":
        raise RuntimeError(
            f"job {job_id} ended {end_event.get('status')}: {end_event.get('error') or ''}\n"
            f"{job_log_tail(workspace, job_id)}"
        )
    marks: dict[str, float] = {}
    for event in events:
        kind, text = event.get("type"), str(event.get("message") or "")
        if kind == "status" and event.get("status") == "running":
            marks.setdefault("running", event["time"])
        elif kind == "log" and "train_start" not in marks and TRAIN_START.search(text):
            marks["train_start"] = event["time"]
        elif kind == "log" and TRAIN_DONE.search(text):
            marks["train_done"] = event["time"]
    status_file: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        status_file = json.loads((workspace / "jobs" / job_id / "status.json").read_text())
    phases = _phases(posted, marks, end_event["time"], ended)
    phases.update(
        post_to_running_s=marks["running"] - posted if "running" in marks else None,
        end_event_to_rest_s=end_received - end_event["time"],
        rest_to_registry_s=wall - event_wall,
    )
    return {
        "id": job_id,
        "status": job["status"],
        "wall_s": wall,
        "event_wall_s": event_wall,
        "phases": phases,
        "runner_s": (status_file["ended"] - status_file["started"])
        if status_file.get("ended") and status_file.get("started")
        else None,
        "events": len(events),
    }


def run(
    *, quick: bool, workdir: Path, log: Log, config: TrainingConfig | None = None
) -> dict[str, Any]:
    """Measure the training overhead; return ``{"training": {...}}``."""
    cfg = config or TrainingConfig.for_mode(quick)
    root = workdir / "training"
    workspace = root / "workspace"
    workspace.mkdir(parents=True, exist_ok=True)
    data_yaml = make_shapes(workspace, train=cfg.train_images, val=cfg.val_images, seed=0)
    prepare_config_dir(workspace)
    cpus = usable_cpus()
    threads = thread_env(cpus)
    env = cli_environment(workspace, threads)
    log(
        f"training: {cfg.repeats} pairs of {cfg.epochs} epochs, imgsz {cfg.imgsz}, batch "
        f"{cfg.batch}, threads {threads['OMP_NUM_THREADS']}"
    )
    server = start_server(root, workspace, threads)
    rest = Rest(server.url, server.token)
    jobs: list[dict[str, Any]] = []
    clis: list[dict[str, Any]] = []
    try:
        if cfg.warmup:
            warm = cfg.params(epochs=1)
            log("training: warm-up (1 epoch each, not counted)")
            run_cli(data_yaml, root / "cli" / "warmup", warm, env)
            run_job(rest, workspace, warm)
        for i in range(cfg.repeats):
            order = ("job", "cli") if i % 2 == 0 else ("cli", "job")
            for side in order:
                if side == "job":
                    result = run_job(rest, workspace, cfg.params())
                    jobs.append(result)
                else:
                    result = run_cli(data_yaml, root / "cli" / f"run{i}", cfg.params(), env)
                    clis.append(result)
                log(f"training: pair {i + 1}/{cfg.repeats} {side} {result['wall_s']:.2f} s")
    finally:
        rest.close()
        server.stop()
    return {"training": summarise(cfg, jobs, clis, threads)}


def summarise(
    cfg: TrainingConfig,
    jobs: list[dict[str, Any]],
    clis: list[dict[str, Any]],
    threads: dict[str, str],
) -> dict[str, Any]:
    """The section's figures from the individual runs.

    ``overhead_ratio`` counts a job as ended when ``GET /yolo/jobs/{id}`` says so (its runner has
    exited, as the CLI's process has); ``overhead_ratio_events`` when its terminal status event
    arrived over REST (the runner still exits after that); ``overhead_ratio_work`` compares the
    two up to the end of their work, the process exits left out on both sides (the job until its
    terminal event arrived, the CLI until its last line of output).
    """
    job_walls = [j["wall_s"] for j in jobs]
    event_walls = [j["event_wall_s"] for j in jobs]
    cli_walls = [c["wall_s"] for c in clis]
    job_med, event_med, cli_med = median(job_walls), median(event_walls), median(cli_walls)
    cli_work = median(c["wall_s"] - c["phases"]["exit_s"] for c in clis)
    pair_ratios = [j / c for j, c in zip(job_walls, cli_walls, strict=False)]
    runner = [j["runner_s"] for j in jobs if j["runner_s"] is not None]
    return {
        "overhead_ratio": rounded(job_med / cli_med, 4),
        "overhead_ratio_events": rounded(event_med / cli_med, 4),
        "overhead_ratio_work": rounded(event_med / cli_work, 4),
        "overhead_s": rounded(job_med - cli_med, 3),
        "job_median_s": rounded(job_med, 3),
        "job_event_median_s": rounded(event_med, 3),
        "cli_median_s": rounded(cli_med, 3),
        "job_min_max_s": [rounded(min(job_walls), 3), rounded(max(job_walls), 3)],
        "cli_min_max_s": [rounded(min(cli_walls), 3), rounded(max(cli_walls), 3)],
        "pair_ratios": [rounded(r, 4) for r in pair_ratios],
        "pair_ratio_median": rounded(median(pair_ratios), 4),
        "runner_median_s": rounded(median(runner), 3) if runner else None,
        "job_phases_median_s": _median_phases(jobs),
        "cli_phases_median_s": _median_phases(clis),
        "job_walls_s": [rounded(w, 3) for w in job_walls],
        "job_event_walls_s": [rounded(w, 3) for w in event_walls],
        "cli_walls_s": [rounded(w, 3) for w in cli_walls],
        "settings": {
            **cfg.params(),
            "model": "yolov8n.yaml",
            "dataset": f"shapes {cfg.train_images}+{cfg.val_images} images",
            "pairs": cfg.repeats,
            "threads": threads,
        },
    }


def _median_phases(runs: list[dict[str, Any]]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for name in runs[0]["phases"] if runs else ():
        values = [r["phases"][name] for r in runs if r["phases"].get(name) is not None]
        out[name] = rounded(median(values), 3) if values else None
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.training [--quick]``: this section alone, JSON on stdout."""
    import argparse
    import tempfile

    from .common import stderr_log

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--repeats", type=int)
    args = parser.parse_args(argv)
    cfg = TrainingConfig.for_mode(args.quick)
    if args.epochs or args.repeats:
        cfg = TrainingConfig(epochs=args.epochs or cfg.epochs, repeats=args.repeats or cfg.repeats)
    with tempfile.TemporaryDirectory(prefix="bench-training-") as tmp:
        result = run(quick=args.quick, workdir=Path(tmp), log=stderr_log, config=cfg)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
