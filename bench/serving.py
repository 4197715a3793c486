"""Inference as a service: warm-worker REST latency, folder, video and concurrency figures.

The ``serving`` section of ``python -m bench`` (keys ``serving.*``); alone:
``python -m bench.serving [--quick]`` prints JSON. One real jupyter server with the extension,
the shapes detector of the ``inference`` section (reused when that section trained it, else
trained here), 640 px images; side by side in one run, medians over repeats:

* **interactive**: sequential ``POST /yolo/predict?imgsz=640`` of one 640 px JPEG on the warm
  worker, the client's round trip (p50, p99) against the worker's own time on the image: its
  decode + preprocess, inference and postprocess (``timing.preprocess_ms + inference_ms +
  postprocess_ms``; ``rest_over_compute_p50``, target at most 1.25: what REST adds), and
  against ``inference_ms`` alone (``rest_over_inference_p50``, an extra figure), and a
  predict job on that one image (POST to terminal record; ``job_over_rest``);
* **folder**: a predict job on a folder (throughput mode: batches read and letterboxed ahead,
  annotated behind, OpenVINO on parallel infer requests: :mod:`jupyter_yolo.runner.staged`) against
  plain ``yolo predict source=<folder>`` in a fresh process (``folder_over_cli``, target at
  least 2x, both end to end, both saving annotated images as they do by default) and against the
  same job in latency mode (``batch=1``); images/s end to end and the job's own steady rate;
* **video**: a predict job on a generated H.264 video, frames/s (the job's own and end to end);
* **concurrent**: 20 clients (threads, each on its own connection) sending requests at once:
  errors (target: none) and the p99 they saw;
* **raw limit**: the chosen backend's bare throughput on this CPU (OpenVINO: its THROUGHPUT hint
  with an ``AsyncInferQueue``; see :mod:`bench.media`), and the folder job as a fraction of it.

The backend is ``auto`` (the measured choice, shared by the jobs and the warm worker); quick mode
names ``openvino`` to skip the trial, uses fewer images, frames and requests, and trains a
2-epoch model when the inference section's is not there.
"""

from __future__ import annotations

import http.client
import json
import random
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .common import (
    Log,
    Rest,
    RestError,
    job_log_tail,
    median,
    percentile,
    rounded,
    start_server,
    thread_env,
    usable_cpus,
    wait_registry_terminal,
)
from .inference import EPOCHS, IMGSZ, JOB_ID, _clean_env, ensure_model, plain_env
from .media import make_images, make_video, plain_cli, raw_limit

CLIENTS = 20


@dataclass(frozen=True)
class ServingConfig:
    """How much each measurement does."""

    backend: str
    epochs: int
    requests: int
    folder_images: int
    video_frames: int
    rounds: int
    per_client: int
    raw_seconds: float

    @classmethod
    def for_mode(cls, quick: bool) -> ServingConfig:
        """Quick: every path once on small inputs (~1-2 min); full: the issue's sizes."""
        if quick:
            return cls("openvino", 2, 12, 8, 20, 1, 2, 2.0)
        return cls("auto", EPOCHS, 200, 200, 300, 3, 10, 15.0)


class PredictClient(Rest):
    """:class:`Rest` plus ``POST /yolo/predict`` with an image body on the same connection."""

    def predict(self, query: dict[str, Any], image: bytes) -> tuple[float, dict[str, Any]]:
        """(seconds the round trip took, the answer) of one image."""
        path = "/yolo/predict?" + urllib.parse.urlencode(query)
        headers = {
            "Authorization": f"token {self.token}",
            "Content-Type": "image/jpeg",
            "Connection": "keep-alive",
        }
        for attempt in (1, 2):
            conn = self._connection()
            started = time.perf_counter()
            try:
                conn.request("POST", path, body=image, headers=headers)
                response = conn.getresponse()
                data = response.read()
            except (http.client.HTTPException, ConnectionError):
                self.close()
                if attempt == 2:
                    raise
                continue
            took = time.perf_counter() - started
            if response.status >= 400:
                raise RestError(response.status, "POST", path, data)
            answer: dict[str, Any] = json.loads(data)
            return took, answer
        raise AssertionError("unreachable")


def _job(rest: Rest, workspace: Path, body: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    """(seconds from POST to the terminal job record, the job) of a job that must succeed."""
    started = time.perf_counter()
    job_id = rest.request("POST", "/yolo/jobs", body)["id"]
    job = wait_registry_terminal(rest, job_id, timeout_s=3600)
    wall = time.perf_counter() - started
    if job["status"] != "succeeded":
        raise RuntimeError(f"job {job_id} {job['status']}:\n{job_log_tail(workspace, job_id)}")
    return wall, job


def _ms(values: list[float], q: float) -> float | None:
    return rounded(percentile(values, q) * 1000, 2)


def interactive(client: PredictClient, query: dict[str, Any], images: list[bytes], n: int) -> Any:
    """Sequential requests on the warm worker; client and worker timings per request."""
    rest, inference, compute, total, queue = [], [], [], [], []
    for index in range(n):
        took, answer = client.predict(query, images[index % len(images)])
        timing = answer["timing"]
        rest.append(took)
        inference.append(timing["inference_ms"] / 1000)
        compute.append(
            (timing["preprocess_ms"] + timing["inference_ms"] + timing["postprocess_ms"]) / 1000
        )
        total.append(timing["total_ms"] / 1000)
        queue.append(timing["queue_ms"] / 1000)
    return {
        "requests": n,
        "rest_p50_ms": _ms(rest, 50),
        "rest_p99_ms": _ms(rest, 99),
        "worker_inference_p50_ms": _ms(inference, 50),
        "worker_compute_p50_ms": _ms(compute, 50),
        "server_total_p50_ms": _ms(total, 50),
        "queue_p50_ms": _ms(queue, 50),
        "rest_over_inference_p50": rounded(median(rest) / median(inference)),
        "rest_over_compute_p50": rounded(median(rest) / median(compute)),
        "rest_over_inference_per_request_median": rounded(
            median(r / i for r, i in zip(rest, inference, strict=True) if i > 0)
        ),
    }


def concurrent(server: Any, query: dict[str, Any], images: list[bytes], requests: int) -> Any:
    """``CLIENTS`` threads at once, each ``requests`` requests on its own connection.

    ``client_spread``: the slowest client's time for its requests over the fastest one's (near
    1 when the queue serves the clients fairly).
    """
    start = threading.Barrier(CLIENTS)
    latencies: list[float] = []
    queued: list[float] = []
    per_client: dict[int, float] = {}  # seconds each client took for all its requests
    errors: list[str] = []
    lock = threading.Lock()

    def client(number: int) -> None:
        rest = PredictClient(server.url, server.token, timeout=600)
        try:
            start.wait()
            began = time.perf_counter()
            for index in range(requests):
                try:
                    took, answer = rest.predict(query, images[(number + index) % len(images)])
                except Exception as exc:
                    with lock:
                        errors.append(f"{type(exc).__name__}: {exc}"[:300])
                else:
                    with lock:
                        latencies.append(took)
                        queued.append(answer["timing"]["queue_ms"] / 1000)
            per_client[number] = time.perf_counter() - began
        finally:
            rest.close()

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(CLIENTS)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=1800)
    wall = time.perf_counter() - began
    return {
        "clients": CLIENTS,
        "requests": CLIENTS * requests,
        "errors": len(errors),
        "error_examples": errors[:3],
        "p50_ms": _ms(latencies, 50),
        "p99_ms": _ms(latencies, 99),
        "queue_p50_ms": _ms(queued, 50),
        "queue_p99_ms": _ms(queued, 99),
        "requests_per_s": rounded(len(latencies) / wall),
        "client_spread": rounded(max(per_client.values()) / min(per_client.values()))
        if per_client and min(per_client.values()) > 0
        else None,
    }


@dataclass(frozen=True)
class Inputs:
    """The model and the media of one run, in the server's workspace."""

    workspace: Path
    weights: Path
    folder: list[Path]
    video: Path

    def rel(self, path: Path) -> str:
        """``path`` relative to the workspace (what job requests name)."""
        return path.relative_to(self.workspace).as_posix()

    @property
    def model(self) -> str:
        """The weights as a workspace path (a model reference jobs and requests take)."""
        return self.rel(self.weights)

    def requests(self) -> list[bytes]:
        """The JPEGs the interactive and concurrent requests send, in turn."""
        return [p.read_bytes() for p in self.folder[:8]]


def prepare(cfg: ServingConfig, workdir: Path, log: Log) -> Inputs:
    """The shapes detector (the inference section's when it is there) and the media."""
    shared = workdir.parent / "inference"  # the inference section's model and backend choice
    trained = shared / "workspace" / "jobs" / f"{JOB_ID[:-2]}{EPOCHS:02d}" / "run" / "weights"
    epochs = EPOCHS if (trained / "last.pt").exists() else cfg.epochs
    workspace, weights, _ = ensure_model(shared, epochs, log)
    media = workspace / "bench-serving"
    folder = make_images(media / f"folder-{cfg.folder_images}", cfg.folder_images)
    video = make_video(media / f"video-{cfg.video_frames}.mp4", cfg.video_frames)
    return Inputs(workspace, weights, folder, video)


def folder_rounds(
    rest: Rest, inputs: Inputs, job: dict[str, Any], rounds: int, workdir: Path
) -> dict[str, Any]:
    """Throughput-mode job, latency-mode job and plain CLI on the folder, shuffled per round."""
    walls: dict[str, list[float]] = {"job": [], "latency_mode": [], "cli": []}
    fps: dict[str, list[float]] = {"job": [], "latency_mode": []}
    batch = None
    env = plain_env(workdir)
    project = workdir / "cli-runs"
    project.mkdir(parents=True, exist_ok=True)
    folder = inputs.folder[0].parent
    for index in range(rounds):
        order = list(walls)
        random.Random(index).shuffle(order)  # no side always follows the same one
        for side in order:
            if side == "cli":
                walls[side].append(plain_cli(inputs.weights, folder, IMGSZ, env, project)["wall_s"])
                continue
            extra = {"batch": 1} if side == "latency_mode" else {}
            wall, done = _job(
                rest, inputs.workspace, {**job, "source": inputs.rel(folder), **extra}
            )
            walls[side].append(wall)
            fps[side].append(float(done["result"]["fps"] or 0.0))
            batch = done["result"]["batch"] if side == "job" else batch
    n = len(inputs.folder)
    per_s = {side: n / median(values) for side, values in walls.items()}
    return {
        "folder_images": n,
        "folder_batch": batch,
        "folder_job_images_per_s": rounded(per_s["job"]),
        "folder_job_fps": rounded(median(fps["job"])),
        "folder_latency_mode_images_per_s": rounded(per_s["latency_mode"]),
        "folder_latency_mode_fps": rounded(median(fps["latency_mode"])),
        "folder_cli_images_per_s": rounded(per_s["cli"]),
        "folder_over_cli": rounded(per_s["job"] / per_s["cli"]),
        "folder_over_latency_mode": rounded(per_s["job"] / per_s["latency_mode"]),
        "folder_walls_s": {k: [rounded(v, 2) for v in vs] for k, vs in walls.items()},
    }


def video_runs(rest: Rest, inputs: Inputs, job: dict[str, Any], repeats: int) -> dict[str, Any]:
    """Predict jobs on the generated video (annotated H.264 mp4 written, as by default)."""
    runs = [
        _job(rest, inputs.workspace, {**job, "source": inputs.rel(inputs.video)})
        for _ in range(repeats)
    ]
    frames = runs[0][1]["result"]["frames"]
    return {
        "video_frames": frames,
        "video_fps": rounded(median(float(done["result"]["fps"] or 0.0) for _, done in runs)),
        "video_frames_per_s_end_to_end": rounded(frames / median(wall for wall, _ in runs)),
        "video_written": runs[0][1]["result"].get("video"),
    }


def measure(server: Any, cfg: ServingConfig, inputs: Inputs, workdir: Path, log: Log) -> Any:
    """Every figure that needs the server: (figures, the backend's report)."""
    rest = Rest(server.url, server.token, timeout=600)
    client = PredictClient(server.url, server.token, timeout=600)
    common = {"kind": "predict", "model": inputs.model, "imgsz": IMGSZ, "device": "cpu"}
    images = inputs.requests()
    one = inputs.rel(inputs.folder[0])
    try:
        log(f"serving: first predict job ({cfg.backend}: chooses and prepares the backend)")
        _, first = _job(rest, inputs.workspace, {**common, "backend": cfg.backend, "source": one})
        chosen: dict[str, Any] = first["result"]["backend"]
        name = str(chosen["name"])
        job = {**common, "backend": name}  # every later job and request: the same backend
        query = {"model": inputs.model, "imgsz": IMGSZ, "backend": name, "device": "cpu"}
        log(f"serving: backend {name}; warm worker, {cfg.requests} sequential requests")
        cold, answer = client.predict(query, images[0])
        for image in images[:5]:
            client.predict(query, image)
        latency = interactive(client, query, images, cfg.requests)
        one_job = median(
            _job(rest, inputs.workspace, {**job, "source": one})[0] for _ in range(cfg.rounds)
        )
        log(f"serving: folder of {cfg.folder_images} images, {cfg.rounds} round(s)")
        folder = folder_rounds(rest, inputs, job, cfg.rounds, workdir)
        log(f"serving: video of {cfg.video_frames} frames")
        video = video_runs(rest, inputs, job, max(1, cfg.rounds - 1))
        log(f"serving: {CLIENTS} concurrent clients, {cfg.per_client} requests each")
        crowd = concurrent(server, query, images, cfg.per_client)
    finally:
        rest.close()
        client.close()
    return {
        "backend": name,
        "requested_backend": cfg.backend,
        "imgsz": IMGSZ,
        **latency,
        "worker_start_ms": rounded(answer["timing"].get("worker_start_ms"), 1),
        "first_request_ms": rounded(cold * 1000, 1),
        "job_one_image_s": rounded(one_job, 3),
        "job_over_rest": rounded(one_job / (latency["rest_p50_ms"] / 1000), 1),
        **folder,
        **video,
        "concurrent": crowd,
        "concurrent_errors": crowd["errors"],
        "concurrent_p99_ms": crowd["p99_ms"],
    }, chosen


def run(*, quick: bool, workdir: Path, log: Log) -> dict[str, Any]:
    """Measure the serving figures; a flat JSON-able dict (``python -m bench`` section)."""
    cfg = ServingConfig.for_mode(quick)
    started = time.monotonic()
    inputs = prepare(cfg, workdir, log)
    cpus = usable_cpus()
    threads = thread_env(cpus)
    root = workdir / "server"
    root.mkdir(parents=True, exist_ok=True)
    server = start_server(root, inputs.workspace, threads)
    try:
        figures, chosen = measure(server, cfg, inputs, workdir, log)
    finally:
        server.stop()
    log("serving: the backend's raw limit on random input (server stopped)")
    raw_config = {
        "backend": figures["backend"],
        "model": str(inputs.workspace / str(chosen.get("model") or inputs.weights)),
        "imgsz": IMGSZ,
        "seconds": cfg.raw_seconds,
        "cpus": cpus,
    }
    raw = raw_limit(raw_config, workdir, _clean_env())
    raw_fps = raw.get("frames_per_s")
    job_fps = figures["folder_job_fps"]
    job_per_s = figures["folder_job_images_per_s"]
    return {
        **figures,
        "raw": raw,
        "raw_fps": rounded(raw_fps),
        "folder_over_raw": rounded(job_fps / raw_fps) if raw_fps and job_fps else None,
        "folder_end_to_end_over_raw": rounded(job_per_s / raw_fps) if raw_fps else None,
        "rounds": cfg.rounds,
        "threads": threads,
        "section_s": round(time.monotonic() - started, 1),
        "quick": quick,
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.serving [--quick] [--workdir DIR]``: this section alone, JSON on stdout."""
    import argparse
    import tempfile

    from .common import stderr_log

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workdir", type=Path, help="keep the work files (and model) here")
    args = parser.parse_args(argv)
    if args.workdir is not None:
        folder = args.workdir.absolute() / "serving"
        folder.mkdir(parents=True, exist_ok=True)
        result = run(quick=args.quick, workdir=folder, log=stderr_log)
    else:
        with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
            folder = Path(tmp) / "serving"
            folder.mkdir()
            result = run(quick=args.quick, workdir=folder, log=stderr_log)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
