"""Jobs of every YOLO task: the task of a model and of a dataset, events, predictions, exports.

The REST tests run a real server (one for the module, a subprocess) and real ultralytics
training on tiny generated datasets (tests/task_data.py) at imgsz 64: the seven trainings are
submitted together when the module starts (two run at a time on the CPU, the rest queue), and
each test checks its task's run and runs its own predict (and export) job on it. The unit tests
read the task of those real checkpoints and of a hostile pickle.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jupyter_yolo.contract.tasks import TASKS, headline
from jupyter_yolo.jobs.task_check import dataset_task
from jupyter_yolo.jobs.weights_task import task_in_pickle, task_of_weights

from .conftest import expect_error, post_json, wait_for_job
from .server_process import ServerProcess
from .task_data import make_dataset

ARCH = {
    "detect": "yolov8n.yaml",
    "segment": "yolov8n-seg.yaml",
    "pose": "yolov8n-pose.yaml",
    "obb": "yolov8n-obb.yaml",
    "classify": "yolov8n-cls.yaml",
}
TRAIN = {"epochs": 1, "imgsz": 64, "batch": 8, "device": "cpu", "workers": 0, "plots": False}


# -- the module's server and its trainings --------------------------------------------------------
PER_PIXEL = {"semantic": "yolo26n-sem.yaml", "depth": "yolo26n-depth.yaml"}
#: The one task whose predict job here chooses its backend by measurement ("auto": three
#: exports, INT8 calibration and timed rounds, 1-2 minutes a task on 2 cores); the others ask for
#: PyTorch. The choice itself per task, with models that find objects to compare, is
#: tests/test_inference_tasks.py's subject; "auto" through a predict job, test_jobs_predict_export.
AUTO_BACKEND_TASK = "segment"
ENDED = {"succeeded", "failed", "stopped"}


class TaskRuns:
    """One real server for the module and the training job of every task, submitted at once."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.workspace = server.workspace
        self.jobs: dict[str, dict[str, Any]] = {}
        self.data: dict[str, str] = {}  # task -> the workspace-relative data value

    def get(self, path: str) -> Any:
        """GET a JSON answer."""
        return self.server.request("GET", path)

    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create a job; the job as the server answers it."""
        job: dict[str, Any] = self.server.request("POST", "/yolo/jobs", body)
        return job

    def log(self, job_id: str) -> str:
        """A job's log (text)."""
        request = urllib.request.Request(
            f"{self.server.url}/yolo/jobs/{job_id}/log",
            headers={"Authorization": f"token {self.server.token}"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            text: str = response.read().decode(errors="replace")
            return text

    def wait(self, job_id: str, timeout: float = 900.0) -> dict[str, Any]:
        """Poll a job until it ends; fail with its log unless it succeeded."""
        deadline = time.monotonic() + timeout
        while True:
            job: dict[str, Any] = self.get(f"/yolo/jobs/{job_id}")
            if job["status"] in ENDED:
                assert job["status"] == "succeeded", f"{job}\n{self.log(job_id)[-3000:]}"
                return job
            assert time.monotonic() < deadline, f"{job}\n{self.log(job_id)[-3000:]}"
            time.sleep(0.5)

    def events(self, job_id: str) -> list[dict[str, Any]]:
        """Every event of a job, read page by page."""
        events: list[dict[str, Any]] = []
        while True:
            after = events[-1]["seq"] if events else 0
            page = self.get(f"/yolo/jobs/{job_id}/events?after={after}")
            events.extend(page["events"])
            if not page["more"]:
                return events

    def trained(self, task: str) -> dict[str, Any]:
        """The task's training job, once it succeeded."""
        return self.wait(self.jobs[task]["id"])


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TaskRuns]:
    """The server, with every task's training job submitted (two run at a time)."""
    from jupyter_yolo.datasets.synthetic_tasks import generate_task_dataset

    root = tmp_path_factory.mktemp("tasks-jobs")
    workspace = root / "workspace"
    workspace.mkdir()
    process = ServerProcess(
        root,
        workspace,
        extra_args=("--YoloApp.builtin_dataset=False", "--YoloApp.max_jobs_per_device=2"),
    )
    process.start()
    try:
        runs = TaskRuns(process)
        for task, arch in ARCH.items():
            runs.data[task] = put_dataset(workspace, task, train=16, val=8)
            runs.jobs[task] = runs.post(
                {"kind": "train", "model": arch, "data": runs.data[task], **TRAIN}
            )
        for task, arch in PER_PIXEL.items():
            made = generate_task_dataset(
                task, workspace / "tasks" / task, train=8, val=4, imgsz=64, seed=0
            )
            runs.data[task] = made.relative_to(workspace).as_posix()
            runs.jobs[task] = runs.post(
                {"kind": "train", "model": arch, "data": runs.data[task], **TRAIN}
            )
        yield runs
    finally:
        process.stop()


@pytest.mark.slow
def test_pt_task_read_from_pickle_opcodes(runs: TaskRuns, tmp_path: Path) -> None:
    """Real checkpoints of the module's trainings (segment, pose, obb, classify)."""
    for task in ("segment", "pose", "obb", "classify"):
        job_id = runs.trained(task)["id"]
        path = runs.workspace / "jobs" / job_id / "run" / "weights" / "last.pt"
        # a misleading name: the checkpoint's own metadata decides
        renamed = tmp_path / f"yolov8n-{'pose' if task != 'pose' else 'seg'}-{task}.pt"
        shutil.copy(path, renamed)
        assert task_of_weights(renamed) == task
        assert task_of_weights(path) == task


def test_hostile_pickle_is_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self) -> tuple[Any, ...]:
            return (os.system, (f"touch {marker}",))

    payload = pickle.dumps({"train_args": {"task": "pose"}, "evil": Evil()}, protocol=2)
    assert task_in_pickle(payload) == "pose"
    weights = tmp_path / "evil.pt"
    with zipfile.ZipFile(weights, "w") as archive:
        archive.writestr("evil/data.pkl", payload)
    assert task_of_weights(weights) == "pose"
    assert not marker.exists()


def test_pickle_task_follows_the_memo_and_falls_back_to_the_name(tmp_path: Path) -> None:
    shared = "segment"
    payload = pickle.dumps([{"name": shared}, {"task": shared}], protocol=4)
    assert task_in_pickle(payload) == "segment"
    assert task_in_pickle(b"not a pickle") is None
    assert task_in_pickle(pickle.dumps({"task": "teleport"})) is None
    garbage = tmp_path / "yolo11n-obb.pt"
    garbage.write_bytes(b"PK\x03\x04 damaged")
    assert task_of_weights(garbage) == "obb"
    plain = tmp_path / "custom.pt"
    plain.write_bytes(io.BytesIO(b"x" * 10).getvalue())
    assert task_of_weights(plain) == "detect"


def test_exported_model_metadata(tmp_path: Path) -> None:
    folder = tmp_path / "best_openvino_model"
    folder.mkdir()
    (folder / "metadata.yaml").write_text("task: pose\nimgsz: [64, 64]\n")
    assert task_of_weights(folder) == "pose"
    onnx = tmp_path / "best.onnx"
    onnx.write_bytes(b"\x08\x07graph..." + b"r\x0f\n\x04task\x12\x07segment")
    assert task_of_weights(onnx) == "segment"


def test_dataset_task_from_its_files(tmp_path: Path) -> None:
    import yaml

    for task in ("detect", "segment", "pose", "obb", "classify"):
        made = make_dataset(task, tmp_path / task, train=2, val=2)
        if task == "classify":
            found = dataset_task({}, made)
        else:
            content = yaml.safe_load(made.read_text())
            found = dataset_task(content, Path(content["path"]))
        assert found.task == task
        assert task in found.accepts


# -- over REST ------------------------------------------------------------------------------------
def put_dataset(workspace: Path, task: str, **kwargs: Any) -> str:
    """A tiny dataset of ``task`` in the workspace; the workspace-relative ``data`` value."""
    made = make_dataset(task, workspace / "tasks" / task, **kwargs)
    return made.relative_to(workspace).as_posix()


async def test_model_and_dataset_tasks_must_fit(jp_fetch: Any, yolo_workspace: Path) -> None:
    data = put_dataset(yolo_workspace, "detect", train=2, val=2)
    body = await expect_error(
        jp_fetch,
        400,
        "yolo",
        "jobs",
        method="POST",
        body=json.dumps({"kind": "train", "model": "yolov8n-seg.yaml", "data": data, **TRAIN}),
    )
    assert "segment model" in body["message"] and "detect dataset" in body["message"]
    pose = put_dataset(yolo_workspace, "pose", train=2, val=2)
    body = await expect_error(
        jp_fetch,
        400,
        "yolo",
        "jobs",
        method="POST",
        body=json.dumps({"kind": "train", "model": "yolo11n-obb.yaml", "data": pose, **TRAIN}),
    )
    assert "obb model" in body["message"] and "pose dataset" in body["message"]
    classify = put_dataset(yolo_workspace, "classify", train=2, val=2)
    body = await expect_error(
        jp_fetch,
        400,
        "yolo",
        "jobs",
        method="POST",
        body=json.dumps({"kind": "train", "model": "yolov8n.yaml", "data": classify, **TRAIN}),
    )
    assert "detect model" in body["message"] and "classify dataset" in body["message"]
    # a detect model trains on polygons (ultralytics takes their boxes): accepted
    seg = put_dataset(yolo_workspace, "segment", train=2, val=2)
    job = await post_json(
        jp_fetch, "yolo", "jobs", body={"kind": "train", "model": "yolov8n.yaml", "data": seg}
    )
    assert job["task"] == "detect"
    await jp_fetch("yolo", "jobs", job["id"], "stop", method="POST", body=b"")
    await wait_for_job(jp_fetch, job["id"], {"stopped", "succeeded", "failed"})


def metric_keys_of(task: str) -> set[str]:
    return set(TASKS[task].metric_keys)


@pytest.mark.slow
@pytest.mark.parametrize("task", ["segment", "pose", "obb", "classify", "detect"])
def test_train_and_predict_every_task(runs: TaskRuns, task: str) -> None:
    job = runs.jobs[task]
    assert job["task"] == task
    done = runs.trained(task)
    events = runs.events(job["id"])
    epochs = [e for e in events if e["type"] == "epoch"]
    batches = [e for e in events if e["type"] == "batch"]
    assert epochs and batches
    assert metric_keys_of(task) <= set(epochs[-1]["metrics"]), epochs[-1]
    assert epochs[-1]["headline"] == headline(task)
    losses = set(batches[-1]["loss"])
    assert set(TASKS[task].loss_keys) <= losses, losses
    if task == "classify":
        assert epochs[-1]["mAP50-95"] is None
    summary = done["progress"]
    assert summary["headline"]["key"] == headline(task)
    assert done["result"]["task"] == task

    models = runs.get("/yolo/models")
    trained = [m for m in models["trained"] if m["job"] == job["id"]]
    assert trained and {m["task"] for m in trained} == {task}

    source = f"tasks/{task}/val/square" if task == "classify" else f"tasks/{task}/images/val"
    predict_backend = "auto" if task == AUTO_BACKEND_TASK else "pytorch"
    predict = runs.post(
        {
            "kind": "predict",
            "model": f"job:{job['id']}",
            "source": source,
            "imgsz": 64,
            "device": "cpu",
            "conf": 0.0001,
            "max_det": 5,
            "backend": predict_backend,
        }
    )
    assert predict["task"] == task
    done = runs.wait(predict["id"])
    assert done["result"]["task"] == task
    assert done["result"]["backend"]["requested"] == predict_backend
    folder = runs.workspace / "jobs" / predict["id"] / "run"
    images = json.loads((folder / "predictions.json").read_text())
    assert images and all(i["task"] == task for i in images)
    first = images[0]
    if task == "classify":
        assert first["detections"] == []
        assert 1 <= len(first["classes"]) <= 5
        probs = [c["prob"] for c in first["classes"]]
        assert probs == sorted(probs, reverse=True)
        assert done["result"]["top1"]["name"] in ("square", "triangle")
        return
    found = [d for i in images for d in i["detections"]]
    assert found, "no detections at conf 0.0001"
    det = found[0]
    if task == "segment":
        from jupyter_yolo.rle import decode

        assert len(det["polygon"]) >= 3
        mask = decode(det["mask"])
        assert mask.shape == (first["height"], first["width"])
    elif task == "pose":
        assert len(det["keypoints"]) == 3 and all(len(k) == 3 for k in det["keypoints"])
    elif task == "obb":
        assert len(det["corners"]) == 4 and len(det["xywhr"]) == 5
        assert isinstance(det["angle"], float)
    assert done["result"]["instances"] == len(found)
    if task == "pose":  # an export keeps the task: the ONNX metadata says it, the result too
        export = runs.post(
            {"kind": "export", "model": f"job:{job['id']}", "format": "onnx", "imgsz": 64}
        )
        assert export["task"] == "pose"
        done = runs.wait(export["id"])
        assert done["result"]["task"] == "pose"
        onnx = runs.workspace / "jobs" / export["id"] / done["result"]["path"]
        assert task_of_weights(onnx) == "pose"


def test_rle_round_trip() -> None:
    import numpy as np

    from jupyter_yolo.rle import area, decode, encode

    rng = np.random.default_rng(0)
    for shape in ((1, 1), (5, 7), (48, 64)):
        for fill in (0.0, 0.3, 1.0):
            mask = rng.random(shape) < fill
            rle = encode(mask)
            assert rle["size"] == list(shape)
            assert sum(rle["counts"]) == mask.size
            assert (decode(rle) == mask).all()
            assert area(rle) == int(mask.sum())
    corner = np.zeros((3, 2), bool)
    corner[0, 0] = True  # starts with a 1: the first run of zeros is empty
    assert encode(corner)["counts"] == [0, 1, 5]
    column = np.zeros((2, 2), bool)
    column[:, 1] = True  # column-major: the second column comes after the first
    assert encode(column)["counts"] == [2, 2]


def test_progress_keeps_the_best_headline() -> None:
    from jupyter_yolo.jobs.progress import Progress

    progress = Progress()
    key = headline("segment")
    progress.consume(
        [
            {
                "seq": 1,
                "type": "epoch",
                "epoch": 1,
                "epochs": 3,
                "metrics": {key: 0.2},
                "headline": key,
            },
            {
                "seq": 2,
                "type": "epoch",
                "epoch": 2,
                "epochs": 3,
                "metrics": {key: 0.5},
                "headline": key,
            },
            {
                "seq": 3,
                "type": "epoch",
                "epoch": 3,
                "epochs": 3,
                "metrics": {key: 0.4},
                "headline": key,
            },
        ]
    )
    assert progress.summary()["headline"] == {
        "key": key,
        "value": 0.4,
        "best": 0.5,
        "best_epoch": 2,
    }


def test_progress_best_follows_the_profiles_direction(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every headline today is higher-better; a lower-better one keeps its lowest value."""
    import dataclasses

    from jupyter_yolo.contract.tasks import TASKS, higher_is_better
    from jupyter_yolo.jobs.progress import Progress

    assert all(p.higher_is_better for p in TASKS.values())
    key = headline("depth")
    monkeypatch.setitem(TASKS, "depth", dataclasses.replace(TASKS["depth"], higher_is_better=False))
    assert not higher_is_better(key) and higher_is_better(headline("detect"))
    progress = Progress()
    progress.consume(
        [
            {"seq": i + 1, "type": "epoch", "epoch": i + 1, "epochs": 3, "metrics": {key: value},
             "headline": key}
            for i, value in enumerate([0.5, 0.3, 0.4])
        ]
    )  # fmt: skip
    assert progress.headline_best == 0.3 and progress.headline_best_epoch == 2
    assert progress.headline_value == 0.4


def test_epoch_and_batch_events_have_the_contracts_shape(tmp_path: Path) -> None:
    """The reporter's events carry exactly the contract's EpochEvent/BatchEvent keys."""
    from jupyter_yolo.contract.payloads import BatchEvent, EpochEvent
    from jupyter_yolo.runner.callbacks import metric_fields
    from jupyter_yolo.runner.journal import Journal

    journal = Journal(tmp_path)
    batch = journal.batch(
        {"epoch": 1, "batch": 2, "batches": 3, "loss": {"box": 1.0}, "lr": 0.01,
         "images_per_s": 5.0}
    )  # fmt: skip
    assert set(batch) == set(BatchEvent.__annotations__)
    metrics = {"metrics/mAP50-95(B)": 0.25, "metrics/precision(B)": float("nan")}
    box = metric_fields(metrics)
    assert box == {"precision": None, "recall": None, "mAP50": None, "mAP50-95": 0.25}
    epoch = journal.epoch(
        {**box, "epoch": 1, "epochs": 2, "loss": {}, "val_loss": None, "metrics": {},
         "headline": headline("detect"), "fitness": None, "lr": None, "epoch_time": 1.0,
         "eta_s": 1.0}
    )  # fmt: skip
    assert set(epoch) == set(EpochEvent.__annotations__)


@pytest.mark.slow
@pytest.mark.parametrize("task", list(PER_PIXEL))
def test_per_pixel_tasks_train_and_predict_maps(runs: TaskRuns, task: str) -> None:
    """semantic and depth train offline from their YAML and predict a map file with figures."""
    from PIL import Image

    job = runs.jobs[task]
    assert job["task"] == task
    runs.trained(task)
    events = runs.events(job["id"])
    epoch = [e for e in events if e["type"] == "epoch"][-1]
    assert metric_keys_of(task) <= set(epoch["metrics"]), epoch
    assert epoch["headline"] == headline(task) and epoch["mAP50-95"] is None
    batch = [e for e in events if e["type"] == "batch"][-1]
    assert batch["loss"] and all(v is None or v == v for v in batch["loss"].values())

    predict = runs.post(
        {
            "kind": "predict",
            "model": f"job:{job['id']}",
            "source": f"{Path(runs.data[task]).parent.as_posix()}/images/val",
            "imgsz": 64,
            "device": "cpu",
            "backend": "pytorch",
        }
    )
    assert predict["task"] == task
    runs.wait(predict["id"])
    images = json.loads(
        (runs.workspace / "jobs" / predict["id"] / "run" / "predictions.json").read_text()
    )
    assert len(images) == 4 and all(i["task"] == task and i["detections"] == [] for i in images)
    pixel_map = images[0]["pixel_map"]
    with Image.open(runs.workspace / pixel_map["file"]) as opened:
        assert (
            opened.size
            == (pixel_map["width"], pixel_map["height"])
            == (
                images[0]["width"],
                images[0]["height"],
            )
        )
    assert pixel_map["summary"]
