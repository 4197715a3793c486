"""Scaling: how the cost grows with CPUs, with the dataset and with finished jobs.

Every training job trains ``yolov8n.yaml`` from scratch through a real server on generated
shapes datasets (``jupyter_yolo.datasets.synthetic.generate_shapes``: ``shapes-N`` with N
training images and the same 16 validation images), imgsz 128, batch 16, ``device=cpu``,
``plots=False``, ``seed=0``; the request sets no threads or workers, and no thread variable
(``OMP_NUM_THREADS``...) is passed on, so the job plans them for the CPUs it can use. The
servers run with ``prepare_after_training`` off: a finished job's background export and backend
measurement would otherwise run beside the next measured job.

* ``scaling.cpus``: the same training with 1 and with 2 usable CPUs. The benchmark starts the
  server with the CPU affinity ``{0}`` or ``{0, 1}``; its runners inherit the mask and count
  their CPUs from it (``jupyter_yolo.runner.resources.usable_cpus``). Throughput is training
  images x epochs / training seconds, the training phase cut from the job's log events as
  ``bench/training.py`` cuts it ("Starting training" to "N epochs completed", so the per-epoch
  validation of the 16 images is included); ``loop_images_per_s`` is the trainer loop's own
  rate (the last ``batch`` event of each epoch, validation left out), median over epochs.
  Whatever the job's result records of its choices (a ``speed`` key) is shown as it is.
* ``scaling.dataset``: one epoch on 100, 500 and 2,000 images with all
  usable CPUs: seconds per training image, the runner's peak memory (``VmHWM`` of the runner
  process from ``/proc``, its pid from the job's ``status.json``; and the largest ``memory_bytes``
  of the job's ``usage`` events: the proportional set size of the runner and its dataloader
  workers, sampled every few seconds) and the server's memory after each job (``VmRSS`` and
  ``Pss`` from ``/proc/<server pid>``), and ``dataset_report_s``: ``GET /yolo/datasets/<name>``
  (the validation report and statistics) the first time and again.
* ``scaling.registry``: 10, 100 and 1,000 finished jobs (``bench/scaling_jobs.py``): server
  start (adopting the folders, then with the registry already holding them), the first
  ``GET /yolo/jobs`` after the start (it reads every job's events once), then ``GET /yolo/jobs``
  (every job: grows with the list, about 1.5-2.5 kB a job), ``GET /yolo/jobs?limit=10`` (the
  same ten at every size: flat) and event reads p50/p95, and event reads of a job with 100 and
  100,000 events (the first read builds the job's index once).

Quick mode: one run per CPU count, 20 requests per latency (full: two runs on 200 images and 3
epochs, 50 requests). About 4 minutes quick on an idle 2-CPU box, most of it the 2,000-image epoch
and generating its images.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .common import (
    THREAD_VARS,
    Log,
    Rest,
    follow_events,
    job_log_tail,
    median,
    rounded,
    start_server,
    usable_cpus,
    wait_registry_terminal,
)
from .scaling_jobs import run_registry

#: The trainer's log lines that open and close the training phase (as ``bench/training.py``).
TRAIN_START = re.compile(r"Starting training for \d+ epochs")
TRAIN_DONE = re.compile(r"\d+ epochs completed in")


def prepare_config_dir(workspace: Path) -> None:
    """Write ultralytics' settings and fonts into the workspace as the runner does."""
    from jupyter_yolo.runner import offline

    offline.write_settings(workspace)
    offline.install_fonts(offline.user_config_dir(workspace))


@dataclass(frozen=True)
class ScalingConfig:
    """What is trained, on how many images, how often."""

    sizes: tuple[int, ...]
    cpu_images: int
    cpu_epochs: int
    cpu_repeats: int
    val_images: int = 16
    imgsz: int = 128
    batch: int = 16

    @classmethod
    def for_mode(cls, quick: bool) -> ScalingConfig:
        """Quick: one run per CPU count on 100 images; full: two each on 200 images."""
        if quick:
            return cls(sizes=(100, 500, 2000), cpu_images=100, cpu_epochs=2, cpu_repeats=1)
        return cls(sizes=(100, 500, 2000), cpu_images=200, cpu_epochs=3, cpu_repeats=2)

    def body(self, images: int, epochs: int) -> dict[str, Any]:
        """The ``POST /yolo/jobs`` body: what a person would send, no thread or worker count."""
        return {
            "kind": "train",
            "model": "yolov8n.yaml",
            "data": f"shapes-{images}",
            "epochs": epochs,
            "imgsz": self.imgsz,
            "batch": self.batch,
            "device": "cpu",
            "plots": False,
            "seed": 0,
        }


def make_datasets(workspace: Path, cfg: ScalingConfig, log: Log) -> dict[int, float]:
    """Generate ``datasets/shapes-N`` for every size used; return seconds each took."""
    from jupyter_yolo.datasets.synthetic import generate_shapes

    took: dict[int, float] = {}
    for images in sorted({*cfg.sizes, cfg.cpu_images}):
        dest = workspace / "datasets" / f"shapes-{images}"
        if not (dest / "data.yaml").is_file():
            started = time.perf_counter()
            generate_shapes(dest, train=images, val=cfg.val_images, imgsz=cfg.imgsz, seed=0)
            took[images] = time.perf_counter() - started
            log(f"scaling: generated {images} images in {took[images]:.1f} s")
    return took


def proc_memory(pid: int) -> dict[str, int]:
    """``VmRSS``/``VmHWM`` (from status) and ``Pss`` (from smaps_rollup) of a process, bytes."""
    out: dict[str, int] = {}
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                out["Pss"] = int(line.split()[1]) * 1024
    return out


class PeakWatcher(threading.Thread):
    """Follows a job's runner (pid from ``status.json``) and keeps its last ``VmHWM``."""

    def __init__(self, folder: Path) -> None:
        super().__init__(name="bench-peak", daemon=True)
        self.folder = folder
        self.peak = 0
        self.done = threading.Event()

    def run(self) -> None:
        """Poll every 0.2 s until :attr:`done` is set."""
        pid: int | None = None
        while not self.done.wait(0.2):
            if pid is None:
                with contextlib.suppress(OSError, ValueError):
                    found = json.loads((self.folder / "status.json").read_text()).get("pid")
                    pid = found if isinstance(found, int) else None
                continue
            self.peak = max(self.peak, proc_memory(pid).get("VmHWM", 0))


def train_job(rest: Rest, workspace: Path, body: dict[str, Any], images: int) -> dict[str, Any]:
    """Run one training job; return its throughput, phases, memory and recorded choices."""
    job_id = rest.request("POST", "/yolo/jobs", body)["id"]
    watcher = PeakWatcher(workspace / "jobs" / job_id)
    watcher.start()
    marks: dict[str, float] = {}
    loop_rates: dict[int, float] = {}
    usage_peak = 0
    end: dict[str, Any] = {}
    try:
        for event, _ in follow_events(rest, job_id, timeout_s=1800):
            kind, text = event.get("type"), str(event.get("message") or "")
            if kind == "log" and "start" not in marks and TRAIN_START.search(text):
                marks["start"] = event["time"]
            elif kind == "log" and TRAIN_DONE.search(text):
                marks["done"] = event["time"]
            elif kind == "batch" and isinstance(event.get("images_per_s"), (int, float)):
                loop_rates[int(event.get("epoch") or 0)] = float(event["images_per_s"])
            elif kind == "usage" and isinstance(event.get("memory_bytes"), int):
                usage_peak = max(usage_peak, event["memory_bytes"])
            end = event
    finally:
        watcher.done.set()
        watcher.join(timeout=5)
    if end.get("status") != "succeeded":
        raise RuntimeError(
            f"job {job_id} ended {end.get('status')}:\n{job_log_tail(workspace, job_id)}"
        )
    job = wait_registry_terminal(rest, job_id)  # its result is in the record once it ended
    result = job.get("result") or {}
    training_s = marks["done"] - marks["start"] if "done" in marks and "start" in marks else None
    epochs = int(body["epochs"])
    return {
        "id": job_id,
        "training_s": rounded(training_s, 3),
        "images_per_s": rounded(images * epochs / training_s, 2) if training_s else None,
        "s_per_image": rounded(training_s / (images * epochs), 5) if training_s else None,
        "loop_images_per_s": rounded(median(loop_rates.values()), 2) if loop_rates else None,
        "runner_peak_rss_mb": rounded(watcher.peak / 2**20, 1) if watcher.peak else None,
        "runner_tree_pss_max_mb": rounded(usage_peak / 2**20, 1) if usage_peak else None,
        "speed": result.get("speed"),
        "choices": _choices(result.get("speed")),
        "wall_s": rounded(job["ended"] - job["created"], 2)
        if job.get("ended") and job.get("created")
        else None,
    }


@contextlib.contextmanager
def affinity(cpus: set[int]) -> Any:
    """Run the block with this thread's CPU affinity set to ``cpus`` (children inherit it)."""
    saved = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, saved)


#: The server setting that keeps a finished training's background preparation (export and
#: backend measurement for the prediction panel) from running beside the next measured job.
NO_PREPARE = ("--YoloApp.prepare_after_training=False",)


def no_thread_vars() -> dict[str, str | None]:
    """Environment overrides that remove the thread variables: the job chooses."""
    return dict.fromkeys(THREAD_VARS)


def run_cpus(root: Path, workspace: Path, cfg: ScalingConfig, log: Log) -> dict[str, Any]:
    """The same training with 1 and 2 usable CPUs (affinity of the server and its runners)."""
    available = sorted(os.sched_getaffinity(0))
    counts = [n for n in (1, 2) if n <= len(available)]
    runs: dict[int, list[dict[str, Any]]] = {n: [] for n in counts}
    for repeat in range(cfg.cpu_repeats):
        for n in counts if repeat % 2 == 0 else counts[::-1]:
            (root / f"cpus{n}").mkdir(parents=True, exist_ok=True)
            with affinity(set(available[:n])):
                server = start_server(root / f"cpus{n}", workspace, no_thread_vars(), NO_PREPARE)
            rest = Rest(server.url, server.token)
            try:
                body = cfg.body(cfg.cpu_images, cfg.cpu_epochs)
                result = train_job(rest, workspace, body, cfg.cpu_images)
            finally:
                rest.close()
                server.stop()
            runs[n].append(result)
            log(f"scaling: {n} CPU(s): {result['images_per_s']} images/s, {result['choices']}")
    out: dict[str, Any] = {}
    for n, results in runs.items():
        out[f"cpu{n}"] = {
            "images_per_s": _median_of(results, "images_per_s"),
            "loop_images_per_s": _median_of(results, "loop_images_per_s"),
            "runs": results,
        }
    if 1 in runs and 2 in runs and out["cpu1"]["images_per_s"]:
        out["ratio_2_over_1"] = rounded(
            (out["cpu2"]["images_per_s"] or 0) / out["cpu1"]["images_per_s"], 3
        )
    out["settings"] = {
        "images": cfg.cpu_images,
        "epochs": cfg.cpu_epochs,
        "repeats": cfg.cpu_repeats,
        "cpus_available": len(available),
    }
    return out


def run_dataset(
    root: Path, workspace: Path, cfg: ScalingConfig, log: Log
) -> tuple[dict[str, Any], str]:
    """One epoch per dataset size with all CPUs; return the figures and the first job's id."""
    (root / "dataset").mkdir(parents=True, exist_ok=True)
    server = start_server(root / "dataset", workspace, no_thread_vars(), NO_PREPARE)
    rest = Rest(server.url, server.token)
    out: dict[str, Any] = {}
    first = ""
    try:
        out["server_before"] = _mb(proc_memory(server.proc.pid))
        for images in cfg.sizes:
            report = [rest.timed_get(f"/yolo/datasets/shapes-{images}") for _ in range(2)]
            result = train_job(rest, workspace, cfg.body(images, 1), images)
            result["dataset_report_s"] = {
                "first": rounded(report[0], 3),
                "again": rounded(report[1], 3),
            }
            first = first or result["id"]
            result["server_after"] = _mb(proc_memory(server.proc.pid))
            out[str(images)] = result
            log(
                f"scaling: {images} images: {result['s_per_image']} s/image, runner peak "
                f"{result['runner_peak_rss_mb']} MB, server {result['server_after']}"
            )
    finally:
        rest.close()
        server.stop()
    low, high = out[str(cfg.sizes[0])], out[str(cfg.sizes[-1])]
    if low["s_per_image"] and high["s_per_image"]:
        out["s_per_image_ratio_largest_over_smallest"] = rounded(
            high["s_per_image"] / low["s_per_image"], 3
        )
    return out, first


def _choices(speed: Any) -> dict[str, Any] | None:
    """``{name: value}`` of the choices a job's result records under ``speed``, if any."""
    if not isinstance(speed, dict) or not isinstance(speed.get("choices"), list):
        return None
    return {
        str(c["name"]): c.get("value")
        for c in speed["choices"]
        if isinstance(c, dict) and "name" in c
    }


def _median_of(results: list[dict[str, Any]], key: str) -> float | None:
    """The median of a figure over runs (those that measured it), or None."""
    return rounded(median(r[key] for r in results if r[key] is not None), 2)


def _mb(memory: dict[str, int]) -> dict[str, float | None]:
    return {
        "rss_mb": rounded(memory.get("VmRSS", 0) / 2**20, 1),
        "pss_mb": rounded(memory.get("Pss", 0) / 2**20, 1),
    }


def run(
    *, quick: bool, workdir: Path, log: Log, config: ScalingConfig | None = None
) -> dict[str, Any]:
    """Measure the scaling table; return ``{"scaling": {...}}``."""
    cfg = config or ScalingConfig.for_mode(quick)
    root = workdir / "scaling"
    workspace = root / "workspace"
    workspace.mkdir(parents=True, exist_ok=True)
    prepare_config_dir(workspace)
    generated = make_datasets(workspace, cfg, log)
    log(
        f"scaling: sizes {cfg.sizes}; CPUs 1 and 2 on {cfg.cpu_images} images, "
        f"{cfg.cpu_epochs} epochs, {cfg.cpu_repeats} run(s) each"
        + (" (quick: one run each, 20 requests a latency)" if quick else "")
    )
    dataset, template = run_dataset(root, workspace, cfg, log)
    cpus = run_cpus(root, workspace, cfg, log)
    registry = run_registry(workspace / "jobs" / template, workspace, root, quick=quick, log=log)
    return {
        "scaling": {
            "cpus": cpus,
            "cpu_ratio_2_over_1": cpus.get("ratio_2_over_1"),
            "dataset": dataset,
            "dataset_generate_s": {str(k): rounded(v, 2) for k, v in generated.items()},
            "registry": registry,
            "usable_cpus": usable_cpus(),
            "quick": quick,
        }
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.scaling [--quick]``: this section alone, JSON on stdout."""
    import argparse
    import tempfile

    from .common import stderr_log

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-scaling-") as tmp:
        result = run(quick=args.quick, workdir=args.workdir or Path(tmp), log=stderr_log)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
