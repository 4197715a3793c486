"""The warm inference worker on its own: started as the pool starts it, spoken to in frames.

No server: the test is the worker's other end (jupyter_yolo.serving.protocol over its pipes).
The detector is the session's shared shapes model (tests/inference_models.py); its answers are
compared with a predict job's ``predictions.json`` for the same images on PyTorch, run by the real
job runner. ultralytics runs only in the worker, runner and helper processes.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jupyter_yolo.jobs.process import runner_environment
from jupyter_yolo.rle import decode
from jupyter_yolo.serving.imagesize import image_size
from jupyter_yolo.serving.protocol import encode, read_sync

from .conftest import REPO_ROOT
from .inference_models import TrainedModel, runner_env, trained_model
from .test_serving_imagesize import png_header

VAL = "datasets/shapes/images/val"
IMGSZ = 128
REPLY_TIMEOUT = 300.0
"""Only a hang hits this: a reply either comes or the worker is broken."""


class Worker:
    """A worker process and its two pipes, as the pool holds them."""

    def __init__(self, workspace: Path, model: Path, log: Path, *extra: str) -> None:
        self.log = log
        command = [
            sys.executable,
            "-m",
            "jupyter_yolo.serving.worker",
            "--workspace",
            str(workspace),
            "--model",
            str(model),
            "--backend",
            "pytorch",
            "--imgsz",
            str(IMGSZ),
            "--device",
            "cpu",
            "--cpus",
            "2",
            *extra,
        ]
        with log.open("wb") as stderr:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                cwd=REPO_ROOT,
                env=runner_environment(os.environ),
                start_new_session=True,
            )
        self.next_id = 0

    def read(self) -> dict[str, Any]:
        """The next answer header (the worker is killed if none comes: the test then fails)."""
        assert self.process.stdout is not None
        watchdog = threading.Timer(REPLY_TIMEOUT, self.process.kill)
        watchdog.start()
        try:
            frame = read_sync(self.process.stdout)
        finally:
            watchdog.cancel()
        assert frame is not None, f"the worker ended without answering:\n{self.log_text()}"
        return frame[0]

    def call(self, header: dict[str, Any], blobs: list[bytes] | None = None) -> dict[str, Any]:
        """Send one request; its answer (with the same id)."""
        assert self.process.stdin is not None
        self.next_id += 1
        self.process.stdin.write(encode({**header, "id": self.next_id}, blobs or []))
        self.process.stdin.flush()
        answer = self.read()
        assert answer.get("id") == self.next_id, answer
        return answer

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def close(self) -> int:
        """End of stdin: the worker exits by itself; its exit code."""
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()
        try:
            return self.process.wait(timeout=60)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> TrainedModel:
    return trained_model(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def reference(shared: TrainedModel, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A PyTorch predict job's entries for the validation images, by file name."""
    job_id = "00000000a0b1"
    job_dir = tmp_path_factory.mktemp("reference") / job_id
    job_dir.mkdir()
    params = {
        "model": str(shared.weights),
        "source": str(shared.workspace / VAL),
        "imgsz": IMGSZ,
        "conf": 0.01,
        "device": "cpu",
        "backend": "pytorch",
        "save": False,
    }
    job = {
        "id": job_id,
        "kind": "predict",
        "name": "reference",
        "workspace": str(shared.workspace),
        "params": params,
        "request": params,
        "devices": ["cpu"],
    }
    (job_dir / "job.json").write_text(json.dumps(job), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "jupyter_yolo.runner", str(job_dir)],
        cwd=job_dir,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=600,
        env=runner_env(),
        check=False,
    )
    log = (job_dir / "log.txt").read_text(errors="replace")[-4000:]
    assert done.returncode == 0, log
    entries = json.loads((job_dir / "run" / "predictions.json").read_text())
    return {entry["file"]: entry for entry in entries}


@pytest.fixture(scope="module")
def detector(shared: TrainedModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    worker = Worker(
        shared.workspace, shared.weights, tmp_path_factory.mktemp("worker") / "worker.log"
    )
    yield worker
    worker.close()


def same_detections(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
    """Equal up to the last rounded digit (a thread count may move a float's last bit)."""
    if len(a) != len(b):
        return False
    return all(
        x["cls"] == y["cls"]
        and abs(x["conf"] - y["conf"]) <= 2e-4
        and all(abs(p - q) <= 0.02 for p, q in zip(x["box_xyxy"], y["box_xyxy"], strict=True))
        for x, y in zip(a, b, strict=True)
    )


@pytest.mark.slow
def test_ready_ping_and_predictions_equal_a_predict_job(
    detector: Worker, shared: TrainedModel, reference: dict[str, Any]
) -> None:
    ready = detector.read()
    assert ready["op"] == "ready", (ready, detector.log_text())
    assert ready["task"] == "detect"
    assert ready["backend"]["name"] == "pytorch"
    assert ready["backend"]["requested"] == "pytorch"
    assert ready["imgsz"] == IMGSZ
    assert ready["load_ms"] > 0
    assert ready["pid"] == detector.process.pid

    pong = detector.call({"op": "ping"})
    assert pong["op"] == "pong"
    assert pong["rss_bytes"] > 50 * 2**20  # torch and a model are loaded

    files = sorted((shared.workspace / VAL).iterdir())[:8]
    blobs = [path.read_bytes() for path in files]
    names = [path.name for path in files]
    answer = detector.call({"op": "predict", "conf": 0.01, "names": names}, blobs)
    assert answer["op"] == "result", answer
    images = answer["images"]
    assert [image["file"] for image in images] == names
    confident = 0
    for image in images:
        expected = reference[image["file"]]
        assert (image["width"], image["height"]) == (expected["width"], expected["height"])
        assert image["task"] == "detect"
        assert same_detections(image["detections"], expected["detections"]), (
            image["file"],
            image["detections"][:3],
            expected["detections"][:3],
        )
        confident += sum(1 for det in image["detections"] if det["conf"] >= 0.5)
    assert confident >= len(files), "the trained detector finds its shapes"
    timing = answer["timing"]
    assert timing["inference_ms"] > 0
    assert timing["worker_ms"] >= timing["inference_ms"]

    # thresholds and classes change per request; the predictor built at the warm-up is reused
    strict = detector.call({"op": "predict", "conf": 0.5, "names": names}, blobs)
    for loose, tight in zip(images, strict["images"], strict=True):
        kept = [d for d in loose["detections"] if d["conf"] >= 0.5]
        assert same_detections(tight["detections"], kept)
    wanted = images[0]["detections"][0]["cls"]
    only = detector.call(
        {"op": "predict", "conf": 0.01, "classes": [wanted], "names": names}, blobs
    )
    found = [d["cls"] for image in only["images"] for d in image["detections"]]
    assert found and set(found) == {wanted}
    assert "built a new predictor" not in detector.log_text()


@pytest.mark.slow
def test_bad_requests_get_errors_and_the_worker_goes_on(
    detector: Worker, shared: TrainedModel
) -> None:
    if detector.next_id == 0:  # run alone: the ready frame is still unread
        assert detector.read()["op"] == "ready"
    image = next(iter(sorted((shared.workspace / VAL).iterdir())))
    good = image.read_bytes()
    corrupt = detector.call({"op": "predict", "names": ["x.jpg", "broken.jpg"]}, [good, b"nope"])
    assert corrupt["op"] == "error" and corrupt["status"] == 400
    assert "broken.jpg" in corrupt["message"] and "could not be decoded" in corrupt["message"]

    bomb = detector.call({"op": "predict", "names": ["bomb.png"]}, [png_header(50_000, 50_000)])
    assert bomb["op"] == "error" and bomb["status"] == 413
    assert "50000 x 50000" in bomb["message"]
    width, height = image_size(good) or (0, 0)
    limited = detector.call(
        {"op": "predict", "names": ["x.jpg"], "max_pixels": width * height - 1}, [good]
    )
    assert limited["status"] == 413

    for header in (
        {"op": "predict", "conf": 1.5},
        {"op": "predict", "iou": "high"},
        {"op": "predict", "classes": [-1]},
        {"op": "predict", "names": ["a", "b"]},
        {"op": "dance"},
    ):
        refused = detector.call(header, [good])
        assert refused["op"] == "error" and refused["status"] == 400, (header, refused)
    empty = detector.call({"op": "predict", "names": []}, [])
    assert empty["op"] == "error" and empty["status"] == 400

    after = detector.call({"op": "predict", "names": ["x.jpg"]}, [good])
    assert after["op"] == "result" and after["images"][0]["width"] == width


@pytest.mark.slow
def test_end_of_stdin_exits_0_and_sigterm_ends_a_busy_worker(
    shared: TrainedModel, tmp_path: Path
) -> None:
    worker = Worker(shared.workspace, shared.weights, tmp_path / "eof.log")
    assert worker.read()["op"] == "ready"
    assert worker.close() == 0, worker.log_text()

    worker = Worker(shared.workspace, shared.weights, tmp_path / "term.log")
    assert worker.read()["op"] == "ready"
    blobs = [path.read_bytes() for path in sorted((shared.workspace / VAL).iterdir())]
    assert worker.process.stdin is not None
    worker.process.stdin.write(encode({"op": "predict", "id": 1, "names": None}, blobs))
    worker.process.stdin.flush()
    worker.process.send_signal(signal.SIGTERM)
    assert worker.process.wait(timeout=30) == -signal.SIGTERM


@pytest.mark.slow
def test_a_model_that_does_not_exist_fails_with_a_reason(
    shared: TrainedModel, tmp_path: Path
) -> None:
    worker = Worker(shared.workspace, Path("weights/missing.pt"), tmp_path / "missing.log")
    failed = worker.read()
    assert failed["op"] == "failed" and failed["status"] == 400
    assert "weights/missing.pt does not exist" in failed["message"]
    assert worker.process.wait(timeout=60) == 1

    worker = Worker(shared.workspace, shared.weights, tmp_path / "args.log", "--imgsz", "big")
    failed = worker.read()
    assert failed["op"] == "failed" and "--imgsz" in failed["message"]
    assert worker.process.wait(timeout=60) == 1


def agreement(reference: dict[str, Any], images: list[dict[str, Any]], min_conf: float) -> float:
    """Share of the reference's confident boxes another backend finds (same class, IoU >= 0.8)."""

    def iou(a: list[float], b: list[float]) -> float:
        w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
        return w * h / union if union > 0 else 0.0

    wanted = found = 0
    for image in images:
        for det in reference[image["file"]]["detections"]:
            if det["conf"] < min_conf:
                continue
            wanted += 1
            found += any(
                o["cls"] == det["cls"] and iou(o["box_xyxy"], det["box_xyxy"]) >= 0.8
                for o in image["detections"]
            )
    assert wanted, "nothing confident to compare"
    return found / wanted


@pytest.mark.slow
def test_export_backends_run_like_a_job_runs_them(
    shared: TrainedModel, reference: dict[str, Any], tmp_path: Path
) -> None:
    files = sorted((shared.workspace / VAL).iterdir())[:8]
    blobs = [path.read_bytes() for path in files]
    request = {"op": "predict", "conf": 0.01, "names": [path.name for path in files]}
    forced = Worker(
        shared.workspace, shared.weights, tmp_path / "onnx.log", "--backend", "onnxruntime"
    )
    try:
        ready = forced.read()
        assert ready["op"] == "ready", forced.log_text()
        assert ready["backend"]["name"] == "onnxruntime"
        exported = str(ready["backend"]["report"]["model"])
        assert exported.endswith(".onnx") and not Path(exported).is_absolute()
        answer = forced.call(request, blobs)
        assert agreement(reference, answer["images"], 0.3) >= 0.9
    finally:
        forced.close()

    as_is = Worker(shared.workspace, Path(exported), tmp_path / "as-is.log", "--backend", "auto")
    try:
        ready = as_is.read()
        assert ready["op"] == "ready", as_is.log_text()
        assert ready["backend"]["name"] == "onnxruntime"
        assert ready["backend"]["requested"] == "auto"
        assert (ready["task"], ready["imgsz"]) == ("detect", IMGSZ)
        again = as_is.call(request, blobs)
        assert [i["detections"] for i in again["images"]] == [
            i["detections"] for i in answer["images"]
        ]
    finally:
        as_is.close()

    wrong = Worker(shared.workspace, Path(exported), tmp_path / "wrong.log")  # pytorch asked
    failed = wrong.read()
    assert failed["op"] == "failed" and failed["status"] == 400
    assert "already a onnxruntime model" in failed["message"]
    assert wrong.process.wait(timeout=60) == 1


@pytest.fixture(scope="module")
def task_models(shared: TrainedModel, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A tiny segment model and an (untrained) depth model, made in a helper process."""
    out = tmp_path_factory.mktemp("tasks") / "models.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.predict_worker_check",
            "tasks",
            str(out),
            str(shared.workspace),
            str(out.parent / "datasets"),
            "segment",
            "depth",
        ],
        cwd=REPO_ROOT,
        env=runner_env(),
        capture_output=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-4000:]
    models: dict[str, str] = json.loads(out.read_text())
    return {**models, "datasets": str(out.parent / "datasets")}


@pytest.mark.slow
def test_segment_masks_and_depth_maps_come_inline(
    shared: TrainedModel, task_models: dict[str, str], tmp_path: Path
) -> None:
    val = Path(task_models["datasets"]) / "segment" / "images" / "val"
    photo = sorted(p for p in val.iterdir() if p.suffix in (".jpg", ".png"))[0]
    blob = photo.read_bytes()
    width, height = image_size(blob) or (0, 0)
    assert width and height

    segment = Worker(shared.workspace, Path(task_models["segment"]), tmp_path / "seg.log")
    try:
        ready = segment.read()
        assert ready["op"] == "ready" and ready["task"] == "segment", segment.log_text()
        answer = segment.call({"op": "predict", "conf": 0.01, "names": ["p.jpg"]}, [blob])
        assert answer["op"] == "result", answer
        detections = answer["images"][0]["detections"]
        assert detections, "a low threshold keeps some instances"
        for det in detections:
            mask = decode(det["mask"])
            assert mask.shape == (height, width)
            assert det["polygon"]
    finally:
        segment.close()

    depth = Worker(shared.workspace, Path(task_models["depth"]), tmp_path / "depth.log")
    try:
        ready = depth.read()
        assert ready["op"] == "ready" and ready["task"] == "depth", depth.log_text()
        answer = depth.call({"op": "predict", "names": ["p.jpg"]}, [blob])
        assert answer["op"] == "result", answer
        pixel_map = answer["images"][0]["pixel_map"]
        assert "file" not in pixel_map
        png = base64.b64decode(pixel_map["png_base64"], validate=True)
        assert image_size(png) == (width, height)
        assert (pixel_map["width"], pixel_map["height"]) == (width, height)
        assert pixel_map["summary"]["unit"] == "mm"
    finally:
        depth.close()
    assert not list(shared.workspace.glob("**/maps/*-p.png")), "a worker writes no map file"


def test_job_entries_keep_their_map_files(tmp_path: Path) -> None:
    """Jobs still write the map beside their results; the inline form holds the same PNG."""
    run_dir = tmp_path / "job" / "run"
    run_dir.mkdir(parents=True)
    out = tmp_path / "entries.json"
    subprocess.run(
        [sys.executable, "-m", "tests.predict_worker_check", "outputs", str(out), str(run_dir)],
        cwd=REPO_ROOT,
        env=runner_env(),
        capture_output=True,
        timeout=300,
        check=True,
    )
    entries = json.loads(out.read_text())
    for task in ("semantic", "depth"):
        as_file = entries[task]["file"]["pixel_map"]
        inline = entries[task]["inline"]["pixel_map"]
        assert as_file["file"] == f"run/maps/00001-{task}.png" and "png_base64" not in as_file
        assert "file" not in inline
        written = (run_dir.parent / as_file["file"]).read_bytes()
        assert base64.b64decode(inline["png_base64"]) == written
        assert image_size(written) == (60, 40)
        assert inline["summary"] == as_file["summary"]
    assert entries["semantic"]["inline"]["pixel_map"]["summary"]["shares"] == {
        "sky": 0.5,
        "road": 0.5,
    }
