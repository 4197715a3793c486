"""Scheduling overhead of the Ray executor: the same short training as a local and a Ray job.

``python -m bench --only ray`` (or ``python -m bench.ray_overhead``) starts its own Ray head on
free ports (``tests/ray_cluster.py``'s ``start_cluster``, 2 CPUs in a private temp folder, ended
with exactly its processes) and a real jupyter server with ``YoloApp.ray_address`` set, then runs
the same yolov8n.yaml training (embedded synthetic shapes, imgsz 64, 2 epochs, CPU) as a job with
``"executor": "local"`` and with ``"executor": "ray"``, alternating which goes first in each pair.

For each job: seconds from ``POST /yolo/jobs`` to its first batch event (the event's own time,
written by the runner on the same machine) and to ``GET /yolo/jobs/{id}`` saying it ended (total
wall time); the report gives each side's median, the Ray / local ratios and the difference.
A warm-up pair (1 epoch, not counted) comes first: the first Ray job of a fresh cluster also
starts Ray's job supervisor machinery. On a shared 2-core machine these figures are noisy:
the load average before and after is reported with them.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from .common import (
    TERMINAL,
    Log,
    Rest,
    follow_events,
    job_log_tail,
    loadavg,
    make_shapes,
    median,
    rounded,
    start_server,
    thread_env,
    usable_cpus,
    wait_registry_terminal,
)

EPOCHS = 2
PARAMS: dict[str, Any] = {
    "imgsz": 64,
    "batch": 16,
    "workers": 0,
    "device": "cpu",
    "plots": False,
    "val": False,
    "seed": 0,
}
JOB_TIMEOUT_S = 900.0


def run_job(rest: Rest, workspace: Path, executor: str, epochs: int) -> dict[str, Any]:
    """One training job on ``executor``: POST to first batch event, and to its terminal record."""
    body = {"kind": "train", "model": "yolov8n.yaml", "data": "shapes", "epochs": epochs,
            "executor": executor, **PARAMS}  # fmt: skip
    posted = time.time()
    started = time.perf_counter()
    created = rest.request("POST", "/yolo/jobs", body)
    job_id = created["id"]
    first_batch: float | None = None
    running: float | None = None
    end: dict[str, Any] = {}
    for event, _received in follow_events(rest, job_id, timeout_s=JOB_TIMEOUT_S):
        kind = event.get("type")
        if kind == "batch" and first_batch is None:
            first_batch = float(event["time"])
        elif kind == "status" and event.get("status") == "running" and running is None:
            running = float(event["time"])
        if kind == "status" and event.get("status") in TERMINAL:
            end = event
    job = wait_registry_terminal(rest, job_id)
    wall = time.perf_counter() - started
    if job["status"] != "succeeded" or end.get("status") != "succeeded":
        raise RuntimeError(
            f"{executor} job {job_id} ended {job['status']}: {job.get('error') or ''}\n"
            f"{job_log_tail(workspace, job_id)}"
        )
    if job.get("executor", executor) != executor:
        raise RuntimeError(f"job {job_id} ran on {job.get('executor')}, not {executor}")
    return {
        "id": job_id,
        "executor": executor,
        "first_batch_s": first_batch - posted if first_batch is not None else None,
        "running_s": running - posted if running is not None else None,
        "wall_s": wall,
        "node_id": (job.get("ray") or {}).get("node_id"),
    }


def run(*, quick: bool, workdir: Path, log: Log, pairs: int | None = None) -> dict[str, Any]:
    """Measure local against Ray jobs; return ``{"ray": {...}}``."""
    from tests.ray_cluster import start_cluster  # the suite's cluster: free ports, own processes

    count = pairs or (2 if quick else 3)
    root = workdir / "ray"
    workspace = root / "workspace"
    workspace.mkdir(parents=True, exist_ok=True)
    make_shapes(workspace, train=32, val=8, seed=0)
    threads = thread_env(usable_cpus())
    load_before = loadavg()
    log("ray: starting a Ray head (2 CPUs) on free ports")
    started = time.perf_counter()
    cluster = start_cluster()
    cluster_start_s = time.perf_counter() - started
    locals_: list[dict[str, Any]] = []
    rays: list[dict[str, Any]] = []
    try:
        server = start_server(
            root,
            workspace,
            threads,
            extra_args=(
                f"--YoloApp.ray_address={cluster.address}",
                f"--YoloApp.ray_python={sys.executable}",
            ),
        )
        rest = Rest(server.url, server.token)
        try:
            log("ray: warm-up (1 epoch on each executor, not counted)")
            run_job(rest, workspace, "local", 1)
            run_job(rest, workspace, "ray", 1)
            for i in range(count):
                order = ("local", "ray") if i % 2 == 0 else ("ray", "local")
                for executor in order:
                    result = run_job(rest, workspace, executor, EPOCHS)
                    (locals_ if executor == "local" else rays).append(result)
                    log(
                        f"ray: pair {i + 1}/{count} {executor}: first batch "
                        f"{result['first_batch_s']:.2f} s, total {result['wall_s']:.2f} s"
                    )
        finally:
            rest.close()
            server.stop()
    finally:
        cluster.stop()
    return {"ray": summarise(locals_, rays, threads, cluster_start_s, load_before, loadavg())}


def _median_of(runs: list[dict[str, Any]], key: str) -> float:
    return median(float(r[key]) for r in runs if r[key] is not None)


def summarise(
    locals_: list[dict[str, Any]],
    rays: list[dict[str, Any]],
    threads: dict[str, str],
    cluster_start_s: float,
    load_before: list[float],
    load_after: list[float],
) -> dict[str, Any]:
    """Each side's medians, the Ray / local ratios and differences, and every run."""
    local_first, ray_first = _median_of(locals_, "first_batch_s"), _median_of(rays, "first_batch_s")
    local_wall, ray_wall = _median_of(locals_, "wall_s"), _median_of(rays, "wall_s")
    return {
        "local_first_batch_s": rounded(local_first, 3),
        "ray_first_batch_s": rounded(ray_first, 3),
        "first_batch_ratio": rounded(ray_first / local_first, 3),
        "first_batch_overhead_s": rounded(ray_first - local_first, 3),
        "local_wall_s": rounded(local_wall, 3),
        "ray_wall_s": rounded(ray_wall, 3),
        "wall_ratio": rounded(ray_wall / local_wall, 3),
        "wall_overhead_s": rounded(ray_wall - local_wall, 3),
        "local_post_to_running_s": rounded(_median_of(locals_, "running_s"), 3),
        "ray_post_to_running_s": rounded(_median_of(rays, "running_s"), 3),
        "cluster_start_s": rounded(cluster_start_s, 1),
        "pairs": len(rays),
        "runs": [
            {k: rounded(v, 3) if isinstance(v, float) else v for k, v in r.items()}
            for r in locals_ + rays
        ],
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "settings": {
            **PARAMS,
            "epochs": EPOCHS,
            "model": "yolov8n.yaml",
            "dataset": "shapes 32+8 images",
            "ray_head_cpus": 2,
            "threads": threads,
        },
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.ray_overhead [--pairs N] [--out FILE]``: this section alone, JSON."""
    import argparse
    import tempfile

    from .common import stderr_log

    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--out", type=Path, help="also write the JSON here (e.g. artifacts/)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp:
        result = run(quick=True, workdir=Path(tmp), log=stderr_log, pairs=args.pairs)
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
