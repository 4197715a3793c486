"""A run's results: the runner's results.json, usage events and ``GET /yolo/jobs/{id}/results``.

Real tiny trainings (imgsz 64, plots off as the quickstart has them) in runner subprocesses
through the real server: detect on the generated shapes, classify and segment on tests/task_data
datasets; one stopped detect training for the partial results. The figures checked are exact:
per-class rows for the classes of the validation labels, curves of CURVE_POINTS points, a
confusion matrix of classes + 1 whose true-class columns count every validation object once,
validation images whose truth is the label files' boxes in pixels.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from tornado.httpclient import HTTPClientError

from jupyter_yolo.client import NotFoundError, YoloClient
from jupyter_yolo.contract.results import (
    CURVE_POINTS,
    MAX_VAL_IMAGES,
    RESULTS_FILE,
    USAGE_EVENT,
)
from jupyter_yolo.datasets.synthetic_tasks import generate_task_dataset
from jupyter_yolo.jobs.results import best_epoch, decimate, scan_events, shown_params

from .conftest import all_events, expect_error, fetch_json, post_json, wait_for_job
from .task_data import make_dataset

TINY = {"imgsz": 64, "batch": 8, "device": "cpu", "workers": 0, "plots": False}
ENDED = {"succeeded", "failed", "stopped"}


@pytest.fixture
def yolo_config() -> dict[str, Any]:
    """Two jobs at a time: the finished-runs test queues five tiny jobs at once."""
    return {"max_jobs_per_device": 2}


def _strict(body: bytes) -> Any:
    def refuse(name: str) -> Any:
        raise AssertionError(f"{name} in a results answer")

    return json.loads(body, parse_constant=refuse)


async def _results(jp_fetch: Any, job_id: str) -> dict[str, Any]:
    response = await jp_fetch("yolo", "jobs", job_id, "results")
    assert response.headers["Content-Type"].startswith("application/json")
    data: dict[str, Any] = _strict(response.body)
    return data


def _val_labels(data_yaml: Path) -> dict[str, list[list[float]]]:
    """Validation image path (workspace-relative later) → its label rows (cls cx cy w h ...)."""
    data = yaml.safe_load(data_yaml.read_text())
    root = Path(data["path"])
    labels: dict[str, list[list[float]]] = {}
    for image in sorted((root / data["val"]).iterdir()):
        label = root / "labels" / Path(data["val"]).name / f"{image.stem}.txt"
        rows = [
            [float(v) for v in line.split()]
            for line in label.read_text().splitlines()
            if line.strip()
        ]
        labels[str(image.resolve())] = rows
    return labels


def _check_usage(events: list[dict[str, Any]], answer: dict[str, Any]) -> None:
    samples = [e for e in events if e["type"] == USAGE_EVENT]
    assert samples, "no usage event while the job ran"
    for sample in samples:
        assert sample["cpu_percent"] is None or 0 <= sample["cpu_percent"] <= 100
        assert sample["memory_bytes"] > 50 * 2**20  # the runner with torch is far above 50 MiB
        limit = sample["memory_limit_bytes"]
        assert limit is None or limit >= sample["memory_bytes"]
        assert isinstance(sample["gpus"], list)
    last_status = max(e["seq"] for e in events if e["type"] == "status")
    assert max(e["seq"] for e in samples) < last_status  # none after the terminal status
    assert len(answer["usage"]) == len(samples)
    assert [u["time"] for u in answer["usage"]] == [e["time"] for e in samples]


def _check_detect_final(
    final: dict[str, Any], workspace: Path, labels: dict[str, list[list[float]]]
) -> None:
    names = final["names"]
    assert final["task"] == "detect"
    assert final["weights"].endswith("run/weights/best.pt")
    val_classes = {int(row[0]) for rows in labels.values() for row in rows}
    assert {row["cls"] for row in final["per_class"]} == val_classes
    instances = {c: 0 for c in val_classes}
    images = {c: 0 for c in val_classes}
    for rows in labels.values():
        for c in {int(row[0]) for row in rows}:
            images[c] += 1
        for row in rows:
            instances[int(row[0])] += 1
    for row in final["per_class"]:
        assert row["name"] == names[row["cls"]]
        assert row["instances"] == instances[row["cls"]]
        assert row["images"] == images[row["cls"]]
        assert set(row["metrics"]) == {
            "metrics/precision(B)",
            "metrics/recall(B)",
            "metrics/mAP50(B)",
            "metrics/mAP50-95(B)",
        }
    # the curves: PR, F1, P, R of the box, each CURVE_POINTS long, one row per class in val
    assert [c["name"] for c in final["curves"]] == ["PR", "F1", "Precision", "Recall"]
    for curve in final["curves"]:
        assert curve["kind"] == "B"
        assert len(curve["x"]) == CURVE_POINTS and curve["x"][0] == 0 and curve["x"][-1] == 1
        assert set(curve["per_class"]) == {names[c] for c in val_classes}
        for values in [*curve["per_class"].values(), curve["mean"]]:
            assert len(values) == CURVE_POINTS
            assert all(0 <= v <= 1 for v in values)
    # the confusion matrix: classes + background; every validation object is counted once,
    # in its true class's column (matched, confused, or missed in the background row)
    matrix = final["confusion"]["matrix"]
    assert final["confusion"]["names"] == [*names, "background"]
    assert len(matrix) == len(names) + 1 and all(len(r) == len(names) + 1 for r in matrix)
    for cls in range(len(names)):
        assert sum(row[cls] for row in matrix) == instances.get(cls, 0)
    # validation images: truth is the label files' boxes in pixels of the original image
    assert 0 < len(final["val_images"]) <= MAX_VAL_IMAGES
    assert len(final["val_images"]) == min(MAX_VAL_IMAGES, len(labels))
    for image in final["val_images"]:
        path = (workspace / image["image"]).resolve()
        rows = labels[str(path)]
        assert len(image["truth"]) == len(rows)
        for truth, row in zip(image["truth"], rows, strict=True):
            cls, cx, cy, w, h = row[:5]
            assert truth["cls"] == int(cls) and truth["name"] == names[int(cls)]
            assert truth["conf"] is None
            want = [
                (cx - w / 2) * image["width"],
                (cy - h / 2) * image["height"],
                (cx + w / 2) * image["width"],
                (cy + h / 2) * image["height"],
            ]
            assert all(abs(a - b) <= 0.051 for a, b in zip(truth["box_xyxy"], want, strict=True))
        for det in image["predicted"]:
            assert det["conf"] is not None and 0 <= det["conf"] <= 1
            assert len(det["box_xyxy"]) == 4


@pytest.mark.slow
async def test_results_of_finished_runs(
    jp_fetch: Any, yolo_workspace: Path, shapes_dataset: str
) -> None:
    datasets = yolo_workspace / "datasets"
    make_dataset("classify", datasets / "cls", train=8, val=6)
    segment = make_dataset("segment", datasets / "seg", train=8, val=4)
    semantic = generate_task_dataset("semantic", datasets / "sem", train=8, val=4, imgsz=64)
    bodies = {
        "detect": {"kind": "train", "model": "yolov8n.yaml", "data": shapes_dataset, "epochs": 2},
        "classify": {"kind": "train", "model": "yolov8n-cls.yaml", "data": "datasets/cls"},
        "segment": {
            "kind": "train",
            "model": "yolov8n-seg.yaml",
            "data": str(segment.relative_to(yolo_workspace)),
        },
        "semantic": {
            "kind": "train",
            "model": "yolo26n-sem.yaml",
            "data": str(semantic.relative_to(yolo_workspace)),
        },
    }
    jobs = {}
    for task, body in bodies.items():
        jobs[task] = await post_json(jp_fetch, "yolo", "jobs", body={"epochs": 1, **TINY, **body})
    await wait_for_job(jp_fetch, jobs["detect"]["id"], ENDED, 400)
    jobs["val"] = await post_json(  # a val job of the trained detector writes results too
        jp_fetch,
        "yolo",
        "jobs",
        body={
            "kind": "val",
            "model": f"job:{jobs['detect']['id']}:best",
            "data": shapes_dataset,
            **TINY,
        },
    )
    for task, job in jobs.items():
        final_job = await wait_for_job(jp_fetch, job["id"], ENDED, 400)
        if final_job["status"] != "succeeded":
            log = (await jp_fetch("yolo", "jobs", job["id"], "log")).body.decode()[-4000:]
            raise AssertionError(f"{task}: {final_job}\n{log}")

    # -- detect --------------------------------------------------------------------------------
    job_id = jobs["detect"]["id"]
    answer = await _results(jp_fetch, job_id)
    events = await all_events(jp_fetch, job_id)
    epochs = [e for e in events if e["type"] == "epoch"]
    assert answer["job_id"] == job_id and answer["status"] == "succeeded"
    assert answer["kind"] == "train" and answer["task"] == "detect"
    assert answer["headline"] == "metrics/mAP50-95(B)"
    assert answer["epochs"] == 2 and [h["epoch"] for h in answer["history"]] == [1, 2]
    assert answer["last"]["epoch"] == 2
    best = max(epochs, key=lambda e: (e["fitness"], -e["epoch"]))
    assert answer["best"]["epoch"] == best["epoch"]
    assert answer["params"]["epochs"] == 2 and answer["params"]["plots"] is False
    on_disk = _strict((yolo_workspace / "jobs" / job_id / RESULTS_FILE).read_bytes())
    assert answer["final"] == on_disk
    labels = _val_labels(yolo_workspace / "datasets" / shapes_dataset / "data.yaml")
    _check_detect_final(answer["final"], yolo_workspace, labels)
    assert set(answer["final"]["speed_ms"]) >= {"preprocess", "inference", "postprocess"}
    _check_usage(events, answer)
    assert not list((yolo_workspace / "jobs" / job_id / "run").glob("*confusion*.png"))

    # -- val job: the same figures from the val job's own validation of best.pt ---------------
    val = await _results(jp_fetch, jobs["val"]["id"])
    assert val["kind"] == "val" and val["best"] is None and val["history"] == []
    _check_detect_final(val["final"], yolo_workspace, labels)
    assert val["final"]["metrics"] == answer["final"]["metrics"]  # same weights, data, imgsz

    # -- classify: top-1/top-5, a class x class matrix, no AP; images with their true class ----
    final = (await _results(jp_fetch, jobs["classify"]["id"]))["final"]
    names = final["names"]
    assert set(final["metrics"]) >= {"metrics/accuracy_top1", "metrics/accuracy_top5"}
    assert final["curves"] == []
    matrix = final["confusion"]["matrix"]
    assert final["confusion"]["names"] == names
    assert len(matrix) == len(names) and sum(map(sum, matrix)) == 6  # every val image once
    for row in final["per_class"]:
        assert row["images"] == sum(line[row["cls"]] for line in matrix) == 3
        assert set(row["metrics"]) == {"metrics/accuracy_top1"}
    assert len(final["val_images"]) == 6
    for image in final["val_images"]:
        assert image["truth_class"] == Path(image["image"]).parent.name  # its class folder
        assert image["truth"] == [] and image["predicted"] == []
        assert set(image["predicted_classes"]) <= set(names) and image["predicted_classes"]

    # -- segment: box and mask rows and curves, polygons in truth ------------------------------
    final = (await _results(jp_fetch, jobs["segment"]["id"]))["final"]
    assert {c["kind"] for c in final["curves"]} == {"B", "M"}
    assert len(final["curves"]) == 8
    for row in final["per_class"]:
        assert "metrics/mAP50-95(M)" in row["metrics"] and "metrics/mAP50(B)" in row["metrics"]
    assert len(final["confusion"]["matrix"]) == len(final["names"]) + 1
    assert len(final["val_images"]) == 4
    for image in final["val_images"]:
        assert image["truth"] and all(len(t["polygon"]) >= 3 for t in image["truth"])
        assert all("mask" not in det for det in image["predicted"])

    # -- semantic: per-class IoU over ground-truth pixels, a class x class pixel matrix --------
    final = (await _results(jp_fetch, jobs["semantic"]["id"]))["final"]
    assert set(final["metrics"]) == {"metrics/mIoU", "metrics/pixel_acc"}
    assert final["curves"] == [] and final["val_images"] == []
    matrix = final["confusion"]["matrix"]
    assert len(matrix) == len(final["confusion"]["names"]) and final["per_class"]
    for row in final["per_class"]:  # columns are the true classes: their pixels
        assert sum(line[row["cls"]] for line in matrix) == row["instances"] > 0
        assert 0 <= row["metrics"]["metrics/mIoU"] <= 1


@pytest.mark.slow
async def test_results_of_a_stopped_run(
    jp_fetch: Any,
    yolo_workspace: Path,
    shapes_dataset: str,
    jp_http_port: int,
    jp_base_url: str,
    jp_serverapp: Any,
) -> None:
    body = {"kind": "train", "model": "yolov8n.yaml", "data": shapes_dataset, **TINY}
    job = await post_json(jp_fetch, "yolo", "jobs", body={**body, "epochs": 30})
    job_id = job["id"]
    partial: dict[str, Any] = {}
    for _ in range(600):  # until the first epoch and a usage sample are in
        partial = await _results(jp_fetch, job_id)
        if partial["history"] and partial["usage"]:
            break
        await wait_for_job(jp_fetch, job_id, {"running"} | ENDED, 60)
        await asyncio.sleep(0.5)
    assert partial["status"] == "running" and partial["final"] is None
    assert partial["epochs"] == 30 and partial["last"]["epoch"] >= 1
    await post_json(jp_fetch, "yolo", "jobs", job_id, "stop", body={})
    await wait_for_job(jp_fetch, job_id, ENDED, 120)
    answer = await _results(jp_fetch, job_id)
    assert answer["status"] == "stopped" and answer["final"] is None
    assert not (yolo_workspace / "jobs" / job_id / RESULTS_FILE).exists()
    assert 1 <= answer["last"]["epoch"] < 30
    assert answer["best"] is not None and answer["usage"]
    events = await all_events(jp_fetch, job_id)
    _check_usage(events, answer)
    # the Python client answers the same (a blocking client: in a thread beside the server)
    client = YoloClient(
        f"http://localhost:{jp_http_port}{jp_base_url}",
        token=jp_serverapp.identity_provider.token,
    )
    assert await asyncio.to_thread(client.results, job_id) == answer
    with pytest.raises(NotFoundError):
        await asyncio.to_thread(client.results, "0123456789ab")


async def test_results_route_refusals(jp_fetch: Any) -> None:
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch(
            "yolo", "jobs", "0123456789ab", "results", headers={"Authorization": "token wrong"}
        )
    assert info.value.code == 403
    body = await expect_error(jp_fetch, 404, "yolo", "jobs", "0123456789ab", "results")
    assert "0123456789ab" in body["message"]
    await expect_error(jp_fetch, 404, "yolo", "jobs", "nonsense", "results")
    spec = await fetch_json(jp_fetch, "yolo", "openapi.json")
    assert "/yolo/jobs/{job_id}/results" in spec["paths"]


def test_best_epoch_and_decimation() -> None:
    history = [
        {"epoch": 1, "metrics": {"metrics/mAP50-95(B)": 0.1}, "fitness": 0.2, "time": 1.0},
        {"epoch": 2, "metrics": {"metrics/mAP50-95(B)": 0.3}, "fitness": 0.4, "time": 2.0},
        {"epoch": 3, "metrics": {"metrics/mAP50-95(B)": 0.3}, "fitness": 0.4, "time": 3.0},
    ]
    assert best_epoch(history, "detect")["epoch"] == 2  # type: ignore[arg-type,index]
    history[2]["fitness"] = None
    assert best_epoch(history, "detect")["epoch"] == 2  # type: ignore[arg-type,index]
    assert best_epoch([], "detect") is None
    items = list(range(1234))
    kept = decimate(items, 500)
    assert len(kept) == 500 and kept[0] == 0 and kept[-1] == 1233
    assert kept == sorted(set(kept))
    assert decimate(items[:10], 500) == items[:10]


def test_event_scan_reads_what_was_appended(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"

    def line(seq: int, kind: str, **fields: Any) -> str:
        return json.dumps({"seq": seq, "time": float(seq), "type": kind, **fields}) + "\n"

    usage = {"cpu_percent": 50.0, "memory_bytes": 1, "memory_limit_bytes": None, "gpus": []}
    epoch = {
        "epochs": 3,
        "metrics": {"metrics/mAP50-95(B)": 0.5},
        "fitness": 0.5,
        "loss": {"box": 1.5, "cls": None},
        "val_loss": None,
    }
    path.write_text(line(1, "batch", epoch=1) + line(2, "epoch", epoch=1, **epoch))
    history, samples, planned = scan_events(path)
    assert [h["epoch"] for h in history] == [1] and samples == [] and planned == 3
    # the losses per epoch too, so views draw a long run's curves without reading its events
    assert history[0].get("loss") == {"box": 1.5, "cls": None}
    assert history[0].get("val_loss") is None
    with path.open("a") as handle:  # a usage sample, then a line still being written
        handle.write(line(3, USAGE_EVENT, **usage) + line(4, "epoch", epoch=2, **epoch)[:20])
    history, samples, _ = scan_events(path)
    assert [h["epoch"] for h in history] == [1] and [s["time"] for s in samples] == [3.0]
    with path.open("a") as handle:
        handle.write(line(4, "epoch", epoch=2, **epoch)[20:] + line(5, "epoch", epoch=2, **epoch))
    history, samples, _ = scan_events(path)
    # a redone epoch (a resumed run) replaces the earlier event of that epoch
    assert [(h["epoch"], h["time"]) for h in history] == [(1, 2.0), (2, 5.0)]
    path.unlink()  # a replaced file is read from its start
    path.write_text(line(1, "epoch", epoch=7, **epoch))
    history, samples, _ = scan_events(path)
    assert [h["epoch"] for h in history] == [7] and samples == []


def test_results_show_no_credentials_or_server_paths(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    params = {
        "source": "rtsp://admin:secret@cam.local:554/stream?token=abc",
        "model": f"{workspace}/jobs/0123456789ab/run/weights/best.pt",
        "data": f"{workspace}/datasets/shapes/data.yaml",
        "epochs": 3,
        "elsewhere": "/opt/weights/x.pt",
    }

    shown = shown_params(params, workspace)

    assert "secret" not in json.dumps(shown) and "abc" not in json.dumps(shown)
    assert "cam.local" in str(shown["source"])
    assert shown["model"] == "jobs/0123456789ab/run/weights/best.pt"
    assert shown["data"] == "datasets/shapes/data.yaml"
    assert shown["epochs"] == 3 and shown["elsewhere"] == "/opt/weights/x.pt"
