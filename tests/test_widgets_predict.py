"""The prediction panel's request queue to the warm service: the latest request wins, stale
answers are never drawn, an error leaves the next request working; the timing line it shows; the
media panel's progress text. And the panel on a real server with the trained detector: moving
the threshold redraws from the service with no job, a bad image shows a clear message and the
next image draws."""

from __future__ import annotations

import datetime
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jupyter_yolo.client import YoloClient, YoloClientError
from jupyter_yolo.widgets.detection import DetectionPanel
from jupyter_yolo.widgets.media import MediaPanel, progress_text, video_artifact, video_width
from jupyter_yolo.widgets.predict_service import LatestOnly, timing_html

from .conftest import install_dataset
from .inference_models import trained_model
from .server_process import ServerProcess, serving

MODEL = "shapes-n.pt"
LONG_VIDEO = "videos/long.mp4"
LONG_FRAMES = 3000  # far more than a job predicts between its first progress event and Stop


def test_latest_request_wins_and_stale_answers_are_dropped() -> None:
    started = threading.Event()
    release = threading.Event()
    sent: list[int] = []
    drawn: list[tuple[int, int]] = []

    def send(request: int) -> int:
        sent.append(request)
        if request == 1:
            started.set()
            assert release.wait(60)
        return request * 10

    queue: LatestOnly[int, int] = LatestOnly(
        send, lambda req, res: drawn.append((req, res)), lambda exc: None, debounce=0
    )
    queue.submit(1)
    assert started.wait(60)
    for request in (2, 3, 4):  # while 1 is in flight: each replaces the one before
        queue.submit(request)
    release.set()
    assert queue.idle(60)
    assert sent == [1, 4]  # 2 and 3 were never sent
    assert drawn == [(4, 40)]  # 1's answer came after 4 was asked for: dropped
    assert queue.dropped == 1 and queue.answered == 1
    queue.close()


def test_an_error_is_shown_and_the_next_request_works() -> None:
    errors: list[str] = []
    drawn: list[str] = []

    def send(request: str) -> str:
        if request == "bad":
            raise ValueError("not an image")
        return request.upper()

    queue: LatestOnly[str, str] = LatestOnly(
        send, lambda req, res: drawn.append(res), lambda exc: errors.append(str(exc)), debounce=0
    )
    queue.submit("bad")
    assert queue.idle(60)
    assert errors == ["not an image"] and drawn == []
    queue.submit("good")
    assert queue.idle(60)
    assert drawn == ["GOOD"]
    queue.close()


def test_a_failing_drawing_does_not_stop_the_queue() -> None:
    errors: list[str] = []
    drawn: list[int] = []

    def draw(request: int, result: int) -> None:
        if request == 1:
            raise RuntimeError("plotly fell over")
        drawn.append(result)

    queue: LatestOnly[int, int] = LatestOnly(
        lambda r: r, draw, lambda exc: errors.append(str(exc)), debounce=0
    )
    queue.submit(1)
    assert queue.idle(60)
    queue.submit(2)
    assert queue.idle(60)
    assert errors == ["plotly fell over"] and drawn == [2]
    queue.close()


def test_timing_line_names_every_stage_and_the_backend() -> None:
    line = timing_html(
        {
            "queue_ms": 0.25,
            "preprocess_ms": 2.0,
            "inference_ms": 21.04,
            "postprocess_ms": 1.5,
            "total_ms": 27.0,
            "worker_start_ms": 4200.0,
        },
        {"name": "openvino", "requested": "auto"},
    )
    assert "queue 0.2 \u00b7 pre 2.0 \u00b7 inference 21.0 \u00b7 post 1.5" in line
    assert "<b>total 27.0</b> ms" in line
    assert "started the worker: 4.2 s" in line
    assert "backend <b>openvino</b> (auto)" in line
    assert "(forced)" in timing_html({"total_ms": 1.0}, {"name": "pytorch", "requested": "pytorch"})
    assert timing_html(None, None) == ""


def test_progress_text_reads_well_for_videos_folders_and_streams() -> None:
    video = {"unit": "frames", "done": 120, "total": 300, "fps": 24.46, "eta_s": 7.4}
    assert progress_text(video) == "frames 120/300 \u00b7 24.5 frames/s \u00b7 ETA 7 s"
    folder = {"unit": "images", "done": 3, "total": 200, "fps": None, "eta_s": None}
    assert progress_text(folder) == "images 3/200"
    stream = {"unit": "frames", "done": 50, "total": None, "fps": 10.0, "reconnects": 2}
    assert (
        progress_text(stream) == "frames 50 (live) \u00b7 10.0 frames/s \u00b7 reconnected 2\u00d7"
    )


def test_the_annotated_video_is_the_run_folders_mp4() -> None:
    artifacts = [
        {"path": "run/predictions.jsonl", "size": 10},
        {"path": "run/frames/clip.mp4", "size": 5},
        {"path": "run/clip.mp4", "size": 100},
    ]
    assert video_artifact(artifacts) == {"path": "run/clip.mp4", "size": 100}
    assert video_artifact(artifacts[:1]) is None


class GatedClient:
    """The few client calls the media panel makes, with ``predict`` held until released.

    It stands in for the server only to hold the moment between a click and the job's
    creation open (what two quick clicks race through); the real-server tests below run
    the panel against jupyter_server and ultralytics.
    """

    url = "http://127.0.0.1:8888/"

    def __init__(self, video: bytes = b"", fail: bool = False) -> None:
        self.video = video
        self.fail = fail
        self.started = threading.Event()
        self.release = threading.Event()
        self.predicts: list[str] = []

    def models(self) -> dict[str, Any]:
        return {"trained": [], "weights": [{"model": MODEL}]}

    def predict(self, model: str, source: str, **params: Any) -> dict[str, Any]:
        self.predicts.append(source)
        self.started.set()
        assert self.release.wait(60)
        if self.fail:
            raise YoloClientError(400, f"The source {source!r} does not exist in the workspace.")
        return {"id": f"job{len(self.predicts)}", "status": "queued"}

    def iter_pages(self, job_id: str, after: int, **_: Any) -> Iterator[dict[str, Any]]:
        yield {"events": [{"seq": 1, "type": "status", "status": "succeeded"}], "more": False}

    def events(self, job_id: str, after: int = 0, **_: Any) -> dict[str, Any]:
        ended = [{"seq": 1, "type": "status", "status": "succeeded"}] if after < 1 else []
        return {"id": job_id, "events": ended, "status": "succeeded", "more": False}

    def job(self, job_id: str) -> dict[str, Any]:
        return {"id": job_id, "status": "succeeded"}

    def artifacts(self, job_id: str) -> list[dict[str, Any]]:
        return [{"path": "run/clip.mp4", "size": len(self.video)}] if self.video else []

    def artifact(self, job_id: str, path: str) -> bytes:
        return self.video


def wait_until(condition: Any) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, "the panel never got there"
        time.sleep(0.02)


def test_two_quick_clicks_start_one_job_and_stop_is_grey_when_idle(tmp_path: Path) -> None:
    write_long_video(tmp_path / "small.mp4", frames=5)  # 64 px wide
    client = GatedClient((tmp_path / "small.mp4").read_bytes())
    panel = MediaPanel(client, model=MODEL, source="videos/clip.mp4")  # type: ignore[arg-type]
    try:
        assert panel.stop_button.disabled and panel.stop_button.button_style == ""
        panel.run_button.click()
        panel.run_button.click()  # before the first job exists
        assert panel.run_button.disabled and panel.stop_button.disabled
        assert panel.run() is None and "Stop it first" in panel.status_w.value
        assert client.started.wait(60)
        client.release.set()
        assert panel.ended.wait(60)
        assert client.predicts == ["videos/clip.mp4"]
        assert panel.run_button.disabled is False
        assert panel.stop_button.disabled is True and panel.stop_button.button_style == ""
        # a small video is shown at its own size, not scaled up to the panel's 720 px
        assert panel.video is not None and panel.video.layout.width == "64px"
        assert panel.video.layout.max_width == "720px"
    finally:
        panel.close()


def test_a_job_that_fails_to_start_leaves_run_enabled_and_stop_grey() -> None:
    client = GatedClient(fail=True)
    client.release.set()
    panel = MediaPanel(client, model=MODEL, source="missing.mp4")  # type: ignore[arg-type]
    try:
        panel.run_button.click()
        wait_until(lambda: "does not exist" in panel.status_w.value)
        wait_until(lambda: not panel.run_button.disabled)
        assert panel.stop_button.disabled and panel.stop_button.button_style == ""
        assert client.predicts == ["missing.mp4"]
    finally:
        panel.close()


def test_video_width_reads_the_mp4_or_gives_up(tmp_path: Path) -> None:
    write_long_video(tmp_path / "small.mp4", frames=3)
    assert video_width((tmp_path / "small.mp4").read_bytes()) == 64
    assert video_width(b"not a video") is None


# ------------------------------------------------------------------ on a real server


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, shapes_template: Path
) -> Iterator[ServerProcess]:
    model = trained_model(tmp_path_factory.getbasetemp())
    workspace = tmp_path_factory.mktemp("widgets-predict") / "workspace"
    install_dataset(shapes_template, workspace / "datasets" / "shapes")
    (workspace / "weights").mkdir(parents=True, exist_ok=True)
    shutil.copy2(model.weights, workspace / "weights" / MODEL)
    with serving(workspace) as process:
        yield process


@pytest.mark.slow
def test_panel_redraws_from_the_service_and_recovers_from_a_bad_image(
    server: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> None:
    client = YoloClient(server.url, server.token, timeout=60)
    val = trained_model(tmp_path_factory.getbasetemp()).data.parent / "images" / "val"
    photo = sorted(val.iterdir())[0]
    jobs_before = len(client.jobs())
    panel = DetectionPanel(client, model=MODEL, conf=0.01)
    try:
        panel.add_image("uploads/photo.jpg", photo.read_bytes(), select=False)
        low = panel.predict("uploads/photo.jpg")
        assert panel.last_error is None, panel.status_w.value
        assert low and panel.figure.layout.meta["shown"] == len(low)
        assert "inference" in panel.backend_info_w.value
        assert "backend <b>" in panel.backend_info_w.value
        assert "warm service" in panel.status_w.value

        panel.conf_w.value = 0.9  # the observer sends the request in the background
        assert panel.idle(300)
        high = panel.detections
        assert len(high) < len(low) and all(float(d["conf"]) >= 0.9 for d in high)
        assert panel.figure.layout.meta["conf"] == 0.9

        redraws = panel.redraws
        panel.add_image("uploads/broken.jpg", photo.read_bytes()[:300])  # a truncated JPEG
        assert panel.idle(300)
        assert panel.last_error is not None
        assert "yolo-note-error" in panel.status_w.value
        assert panel.redraws == redraws  # nothing drawn from a failed request
        panel.image_w.value = "uploads/photo.jpg"  # the next action works
        assert panel.idle(300)
        assert panel.last_error is None and panel.redraws == redraws + 1
        assert len(panel.detections) == len(high)
        assert len(client.jobs()) == jobs_before, "the panel made a job"
    finally:
        panel.close()


@pytest.mark.slow
def test_panel_predicts_bmp_and_tiff_uploads_and_dataset_images(
    server: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The service reads JPEG, PNG, WebP: the panel sends other formats converted to PNG."""
    import io

    from PIL import Image

    client = YoloClient(server.url, server.token, timeout=60)
    val = trained_model(tmp_path_factory.getbasetemp()).data.parent / "images" / "val"
    photo = sorted(val.iterdir())[0]
    pixels = Image.open(photo).convert("RGB")
    lossless = io.BytesIO()
    pixels.save(lossless, format="PNG")
    other: dict[str, bytes] = {}
    for kind, suffix in (("BMP", "bmp"), ("TIFF", "tif")):
        out = io.BytesIO()
        pixels.save(out, format=kind)
        other[suffix] = out.getvalue()
    extra = server.workspace / "datasets" / "shapes" / "extra"
    extra.mkdir(exist_ok=True)
    for suffix, data in other.items():
        (extra / f"photo.{suffix}").write_bytes(data)
    panel = DetectionPanel(client, model=MODEL, conf=0.25)
    try:
        panel.add_image("uploads/photo.png", lossless.getvalue(), select=False)
        reference = panel.predict("uploads/photo.png")
        assert panel.last_error is None and reference, panel.status_w.value
        boxes = sorted((d["name"], round(float(d["conf"]), 3)) for d in reference)
        panel.upload_w.value = tuple(
            {
                "name": f"photo.{s}",
                "type": "",
                "size": len(d),
                "content": memoryview(d),
                "last_modified": datetime.datetime.now(datetime.timezone.utc),
            }
            for s, d in other.items()
        )  # the upload widget's own form, handled in the background
        wait_until(lambda: "upload:photo.tif" in {v for _, v in panel.image_w.options})
        assert panel.idle(300)
        for path in ("upload:photo.bmp", "upload:photo.tif", *(
            f"datasets/shapes/extra/photo.{s}" for s in other
        )):  # fmt: skip
            if path.startswith("datasets/"):
                panel.add_image(path, select=False)
            found = panel.predict(path)
            assert panel.last_error is None, (path, panel.status_w.value)
            assert sorted((d["name"], round(float(d["conf"]), 3)) for d in found) == boxes, path
        (extra / "broken.tif").write_bytes(other["tif"][:40])
        panel.add_image("datasets/shapes/extra/broken.tif", select=False)
        panel.predict("datasets/shapes/extra/broken.tif")
        assert panel.last_error is not None
        assert "broken.tif: not an image this client can read" in panel.status_w.value
    finally:
        panel.close()


def write_long_video(path: Path, frames: int = LONG_FRAMES) -> None:
    """A 64 px H.264 video of a square moving over grey (PyAV; small and quick to write)."""
    import av
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for index in range(frames):
            image = np.full((64, 64, 3), 120, np.uint8)
            x = index % 40
            image[20:40, x : x + 20] = (230, 40, 40)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.mark.slow
def test_media_panel_follows_progress_stops_and_keeps_the_video(server: ServerProcess) -> None:
    client = YoloClient(server.url, server.token, timeout=60)
    write_long_video(server.workspace / LONG_VIDEO)
    panel = MediaPanel(client, model=MODEL, source=LONG_VIDEO)
    try:
        job_id = panel.run()
        assert job_id is not None and not panel.stop_button.disabled
        deadline = time.monotonic() + 600
        while panel.last_progress is None and not panel.ended.is_set():
            assert time.monotonic() < deadline, "no progress event came"
            time.sleep(0.1)
        panel.stop()
        assert panel.ended.wait(600)
        assert client.job(job_id)["status"] == "stopped"
        progress = panel.last_progress or {}
        assert progress.get("total") == LONG_FRAMES and 0 < int(progress["done"]) < LONG_FRAMES
        assert f"/{LONG_FRAMES}" in panel.progress_text_w.value
        assert (
            "stopped" in panel.status_w.value and "annotated video is below" in panel.status_w.value
        )
        assert panel.video is not None and panel.video.value[4:8] == b"ftyp"  # an mp4, kept
        assert panel.run_button.disabled is False and panel.stop_button.disabled is True
    finally:
        panel.close()
