"""One training run of each kind the training section compares, with its wall time and phases.

* :func:`run_cli`: ``yolo train`` (or the :mod:`bench.cli_chosen` shim: the same CLI with the
  job's speed choices applied) in a fresh process, its output through a pipe to a thread that
  writes the log, as the runner's log capture does;
* :func:`run_job`: a training job through the server, followed over the events long-poll until
  ``GET /yolo/jobs/{id}`` says it ended.

Both are cut into the same phases from their logged lines (the job's come as ``log`` events with
the time of the trainer's log call): start to "Starting training", training, "N epochs completed"
to the end of the work (final validation with best.pt), and the end of the work to the end of
the process.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from .common import (
    TERMINAL,
    THREAD_VARS,
    Rest,
    follow_events,
    job_log_tail,
    wait_registry_terminal,
)


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
    """The CLI's environment: as the runner's, with the same config dir and offline.

    ``threads`` (OMP/MKL/OpenBLAS counts) are set when given; without them the thread variables
    are removed, so plain ultralytics makes its own choice (``OMP_NUM_THREADS=1`` at import,
    torch at ``min(8, os.cpu_count() - 1)`` threads for CPU training).
    """
    from jupyter_yolo.runner import offline

    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("JUPYTER_TOKEN") and (threads or k not in THREAD_VARS)
    }
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
    data_yaml: Path,
    project: Path,
    params: dict[str, Any],
    env: dict[str, str],
    command: list[str] | None = None,
) -> dict[str, Any]:
    """Run ``yolo train`` (or ``command``) once; return its wall time, phases and final mAP50.

    Its output goes through a pipe (as the runner's does) to a thread that writes ``log.txt``
    and notes when the start and end of training are logged.
    """
    project.mkdir(parents=True, exist_ok=True)
    args = [
        *(command or yolo_command()),
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
    return {
        "wall_s": wall,
        "phases": _phases(launched, marks, last_output[0], ended),
        "mAP50": final_map50(project / "run" / "results.csv"),
    }


def run_job(
    rest: Rest, workspace: Path, params: dict[str, Any], timeout_s: float = 1800
) -> dict[str, Any]:
    """Run one training job; return its wall times and phases."""
    body = {"kind": "train", "model": "yolov8n.yaml", "data": "shapes", **params}
    posted = time.time()
    started = time.perf_counter()
    job_id = rest.request("POST", "/yolo/jobs", body)["id"]
    events: list[dict[str, Any]] = []
    end_event: dict[str, Any] = {}
    end_received = 0.0
    end_result: dict[str, Any] | None = None
    for event, received in follow_events(rest, job_id, timeout_s=timeout_s):
        events.append(event)
        if event.get("type") == "result":
            end_result = event
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
        "mAP50": final_map50(workspace / "jobs" / job_id / "run" / "results.csv"),
        "speed": ((end_result or {}).get("speed") or None),
    }


def final_map50(results_csv: Path) -> float | None:
    """The box mAP50 of the last epoch in ultralytics' ``results.csv`` (None when missing)."""
    try:
        with results_csv.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
    except OSError:
        return None
    if not rows:
        return None
    row = {key.strip(): value for key, value in rows[-1].items() if key}
    value = row.get("metrics/mAP50(B)")
    try:
        return float(value) if value not in (None, "") else None
    except ValueError:
        return None
