"""Media predict jobs over REST: a video into an H.264 mp4 with per-frame JSON lines, progress
and tracking; a folder in throughput mode (batched) agreeing with batch 1; bad sources refused.

The server's workspace is the one the session's shared shapes detector was trained in (see
tests/inference_models.py); the frames show a square like the synthetic dataset's.
"""

from __future__ import annotations

import collections
import json
import os
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from .conftest import all_events, expect_error, fetch_json, run_job
from .inference_models import TrainedModel, trained_model
from .media_frames import write_images, write_video

FRAMES = 48


def video_route(job_id: str) -> tuple[str, ...]:
    return ("yolo", "jobs", job_id, "artifacts", "run/moving.mp4")


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> TrainedModel:
    model = trained_model(tmp_path_factory.getbasetemp())
    write_video(model.workspace / "media" / "moving.mp4", FRAMES)
    write_images(model.workspace / "media" / "folder", 12)
    return model


@pytest.fixture
def yolo_workspace(shared: TrainedModel) -> Path:
    return shared.workspace


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def decode_video(path: Path) -> tuple[str, str, int, float, tuple[int, int]]:
    """Codec, pixel format, decoded frames, duration (s) and size of an mp4, read with PyAV."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        codec = stream.codec_context.name
        pix_fmt = str(stream.codec_context.pix_fmt)
        size = (stream.width, stream.height)
        duration = float(container.duration or 0) / 1e6
        frames = sum(1 for _ in container.decode(video=0))
    return codec, pix_fmt, frames, duration, size


@pytest.mark.slow
async def test_video_job_writes_h264_lines_progress_and_tracks(
    jp_fetch: Any, shared: TrainedModel
) -> None:
    base = {
        "kind": "predict",
        "model": shared.model_ref,
        "source": "media/moving.mp4",
        "imgsz": 128,
        "device": "cpu",
        "backend": "pytorch",
        "conf": 0.25,
        "batch": 4,
    }
    done = await run_job(jp_fetch, base)
    run = shared.workspace / "jobs" / done["id"] / "run"
    result = done["result"]
    assert result["frames"] == FRAMES and result["unit"] == "frames"
    assert result["video"] == "run/moving.mp4" and result["batch"] == 4
    codec, pix_fmt, frames, duration, size = decode_video(run / "moving.mp4")
    assert (codec, pix_fmt, frames) == ("h264", "yuv420p", FRAMES)
    assert duration > 0 and size[0] % 2 == 0 and size[1] % 2 == 0
    assert not list(run.glob(".*.partial")), "the partial file was renamed into place"
    lines = read_lines(run / "predictions.jsonl")
    assert [line["frame"] for line in lines] == list(range(1, FRAMES + 1))
    with_square = [line for line in lines if line["detections"]]
    assert len(with_square) >= FRAMES * 0.8, "the detector sees the square in most frames"
    events = await all_events(jp_fetch, done["id"])
    progress = [e for e in events if e["type"] == "progress"]
    assert progress and progress[-1]["done"] == FRAMES and progress[-1]["total"] == FRAMES
    assert progress[-1]["unit"] == "frames" and progress[-1]["fps"] > 0
    assert [e["done"] for e in progress] == sorted(e["done"] for e in progress)
    artifacts = {e["path"] for e in events if e["type"] == "artifact"}
    assert {"run/moving.mp4", "run/predictions.jsonl", "run/predictions.json"} <= artifacts
    served = await jp_fetch("yolo", "jobs", done["id"], "artifacts", "run/moving.mp4")
    assert served.headers["Content-Type"] == "video/mp4"
    whole = (run / "moving.mp4").read_bytes()
    assert served.body == whole and served.headers["Accept-Ranges"] == "bytes"
    part = await jp_fetch(*video_route(done["id"]), headers={"Range": "bytes=100-199"})
    assert part.code == 206 and part.body == whole[100:200]
    assert part.headers["Content-Range"] == f"bytes 100-199/{len(whole)}"
    tail = await jp_fetch(*video_route(done["id"]), headers={"Range": "bytes=-10"})
    assert tail.code == 206 and tail.body == whole[-10:]
    with pytest.raises(HTTPClientError) as beyond:
        await jp_fetch(*video_route(done["id"]), headers={"Range": f"bytes={len(whole)}-"})
    assert beyond.value.code == 416

    tracked = await run_job(jp_fetch, {**base, "track": True, "tracker": "bytetrack"})
    lines = read_lines(shared.workspace / "jobs" / tracked["id"] / "run" / "predictions.jsonl")
    ids = collections.Counter(
        d["track_id"] for line in lines for d in line["detections"] if "track_id" in d
    )
    assert ids, "tracked detections carry track ids"
    _, most = ids.most_common(1)[0]
    assert most >= FRAMES * 0.7, f"the moving square keeps one id over most frames: {ids}"
    assert tracked["result"]["tracker"] == "bytetrack" and tracked["result"]["tracks"] >= 1


def boxes(lines: list[dict[str, Any]]) -> dict[str, list[tuple[int, list[float], float]]]:
    return {
        line["file"]: sorted((d["cls"], d["box_xyxy"], d["conf"]) for d in line["detections"])
        for line in lines
    }


@pytest.mark.slow
async def test_folder_in_throughput_mode_matches_batch_one(
    jp_fetch: Any, shared: TrainedModel
) -> None:
    base = {
        "kind": "predict",
        "model": shared.model_ref,
        "source": "media/folder",
        "imgsz": 128,
        "device": "cpu",
        "backend": "pytorch",
        "conf": 0.25,
    }
    single = await run_job(jp_fetch, {**base, "batch": 1})
    batched = await run_job(jp_fetch, {**base, "batch": 5})
    assert single["result"]["images"] == batched["result"]["images"] == 12
    assert batched["result"]["unit"] == "images" and batched["result"]["batch"] == 5
    one = boxes(read_lines(shared.workspace / "jobs" / single["id"] / "run" / "predictions.jsonl"))
    many = boxes(
        read_lines(shared.workspace / "jobs" / batched["id"] / "run" / "predictions.jsonl")
    )
    assert one.keys() == many.keys() and len(one) == 12
    for name, found in one.items():
        other = many[name]
        assert [c for c, _, _ in found] == [c for c, _, _ in other], name
        for (_, a, ca), (_, b, cb) in zip(found, other, strict=True):
            assert max(abs(x - y) for x, y in zip(a, b, strict=True)) <= 1.0, name
            assert abs(ca - cb) <= 0.01, name
    folder = shared.workspace / "jobs" / batched["id"] / "run"
    assert len(list(folder.glob("img*.png"))) == 12, "annotated images beside the results"
    stored = json.loads((folder / "predictions.json").read_text())
    assert [s["file"] for s in stored] == sorted(one)


@pytest.mark.slow  # the module's model is trained once, for all its tests
async def test_bad_sources_are_refused(jp_fetch: Any, shared: TrainedModel) -> None:
    base = {"kind": "predict", "model": shared.model_ref, "device": "cpu"}

    async def refused(source: str) -> str:
        body = await expect_error(
            jp_fetch,
            400,
            "yolo",
            "jobs",
            method="POST",
            body=json.dumps({**base, "source": source}),
        )
        message: str = body["message"]
        return message

    assert "does not exist" in (await refused("media/nothing-here.mp4"))
    assert "/dev/video99" in (message := await refused("/dev/video99"))
    assert "does not exist" in message and "--device" in message
    assert "not a capture device" in (await refused("/dev/null"))
    (shared.workspace / "media" / "notes.txt").write_text("not an image")
    assert "neither an image" in (await refused("media/notes.txt"))
    message = await refused("file:///etc/passwd")
    assert "'file'" in message and "workspace-relative" in message
    message = await refused("rtsp://admin:hunter2@camera.example:554/live")
    assert "hunter2" not in message and "admin" not in message and "***@" in message
    assert "allowed_stream_sources" in message and "camera.example" in message
    message = await refused("../outside.mp4")
    assert "inside" in message
    body = await expect_error(
        jp_fetch,
        400,
        "yolo",
        "jobs",
        method="POST",
        body=json.dumps({**base, "source": "media/moving.mp4", "batch": 65}),
    )
    assert "'batch'" in body["message"]
    body = await expect_error(
        jp_fetch,
        400,
        "yolo",
        "jobs",
        method="POST",
        body=json.dumps({**base, "source": "media/moving.mp4", "tracker": "sort"}),
    )
    assert "'tracker'" in body["message"]
    jobs = await fetch_json(jp_fetch, "yolo", "jobs")
    assert "hunter2" not in json.dumps(jobs)
    assert not os.path.exists("/dev/video99")


@pytest.mark.slow
async def test_openvino_folder_on_parallel_requests_matches_latency_mode(
    jp_fetch: Any, shared: TrainedModel
) -> None:
    """Throughput mode on OpenVINO: a batch's images on 2 parallel infer requests (THROUGHPUT
    hint), annotated behind on a thread; the same detections as batch 1 (LATENCY, one request)."""
    base = {
        "kind": "predict",
        "model": shared.model_ref,
        "source": "media/folder",
        "imgsz": 128,
        "device": "cpu",
        "backend": "openvino",
        "conf": 0.25,
    }
    single = await run_job(jp_fetch, {**base, "batch": 1})
    batched = await run_job(jp_fetch, {**base, "batch": 4})
    assert single["result"]["images"] == batched["result"]["images"] == 12
    assert batched["result"]["backend"]["lanes"] == 2
    assert "lanes" not in single["result"]["backend"]
    runs = shared.workspace / "jobs"
    one = boxes(read_lines(runs / single["id"] / "run" / "predictions.jsonl"))
    many = boxes(read_lines(runs / batched["id"] / "run" / "predictions.jsonl"))
    assert one.keys() == many.keys() and len(one) == 12
    for name, found in one.items():
        other = many[name]
        assert [c for c, _, _ in found] == [c for c, _, _ in other], name
        for (_, a, ca), (_, b, cb) in zip(found, other, strict=True):
            assert max(abs(x - y) for x, y in zip(a, b, strict=True)) <= 1.0, name
            assert abs(ca - cb) <= 0.01, name
    annotated = sorted(p.name for p in (runs / batched["id"] / "run").glob("img*.png"))
    assert annotated == sorted(one), "every annotated image written, none half-written"
