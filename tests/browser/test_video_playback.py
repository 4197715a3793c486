"""A video made by the test (frames of the shapes the detector was trained on) predicted end to
end by a predict job started from the media panel in a real JupyterLab, and the annotated H.264
mp4 played by Chromium in the notebook: the page can play ``avc1`` in mp4, the video has a
duration, and after ``play()`` its current time and decoded frames advance."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import av
import nbformat
import numpy as np
import pytest
from PIL import Image

from ..inference_models import trained_model
from ..server_process import ServerProcess
from .notebook_ui import open_notebook, panel_screenshot, run_code_cell, wait_for_text

MEDIA = ".yolo-media-panel"
MODEL = "shapes-n.pt"
SOURCE = "videos/shapes.mp4"
FRAMES = 30
FPS = 10
H264 = 'video/mp4; codecs="avc1.42E01E"'

PLAY = """async (selector) => {
    const video = document.querySelector(selector);
    video.muted = true;  // headless autoplay policy: a muted video may play without a gesture
    if (video.readyState < 1) {
        await new Promise((done) => { video.onloadedmetadata = done; setTimeout(done, 20000); });
    }
    const before = {time: video.currentTime,
                    frames: video.getVideoPlaybackQuality().totalVideoFrames};
    await video.play();
    const deadline = performance.now() + 20000;
    while (video.currentTime < 0.5 && !video.ended && performance.now() < deadline) {
        await new Promise((done) => setTimeout(done, 50));
    }
    return {duration: video.duration, before, after: {time: video.currentTime,
            frames: video.getVideoPlaybackQuality().totalVideoFrames},
            width: video.videoWidth, height: video.videoHeight,
            error: video.error ? video.error.code : null};
}"""


def make_video(path: Path, images: Path, frames: int = FRAMES) -> Path:
    """An H.264 mp4 whose frames are the shapes dataset's validation images, in order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sources = sorted(images.glob("*.jpg")) or sorted(images.glob("*.png"))
    assert len(sources) >= frames, f"{images} has {len(sources)} images"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 128, 128, "yuv420p"
        for source in sources[:frames]:
            rgb = np.asarray(Image.open(source).convert("RGB").resize((128, 128)))
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.mark.slow
def test_a_predicted_video_plays_in_jupyterlab(
    page: Any, lab: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> None:
    model = trained_model(tmp_path_factory.getbasetemp())
    (lab.workspace / "weights").mkdir(parents=True, exist_ok=True)
    shutil.copy2(model.weights, lab.workspace / "weights" / MODEL)
    make_video(lab.workspace / SOURCE, model.data.parent / "images" / "val")
    code = (
        "from jupyter_yolo.widgets import MediaPanel\n"
        f"panel = MediaPanel(model={MODEL!r}, source={SOURCE!r}, conf=0.25)\npanel"
    )
    # a video over the panel's limit streams from the server (the page's cookie, Range requests)
    served = "panel.max_video_bytes = 1\npanel.show_video(panel.job_id)"
    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(code), nbformat.v4.new_code_cell(served)]
    )
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nbformat.write(notebook, lab.root / "media.ipynb")
    page.set_viewport_size({"width": 1400, "height": 1400})

    open_notebook(page, lab, "media.ipynb")
    run_code_cell(page, 0)
    page.locator(f"{MEDIA} button:has-text('Run')").click()
    wait_for_text(page, MEDIA, "succeeded", timeout=600)
    wait_for_text(page, f"{MEDIA} .yolo-progress", f"frames {FRAMES}/{FRAMES}", timeout=30)
    video = f"{MEDIA} video"
    page.wait_for_selector(video, timeout=60_000)

    jobs = lab.request("GET", "/yolo/jobs")["jobs"]
    [job] = [j for j in jobs if j["kind"] == "predict"]
    lines = lab_artifact(lab, job["id"], "run/predictions.jsonl").decode().splitlines()
    frames = [json.loads(line) for line in lines if line.strip()]
    assert [f["frame"] for f in frames] == list(range(1, FRAMES + 1))
    assert sum(len(f["detections"]) for f in frames) > 0, "the detector found shapes"

    can_play = page.evaluate(f"(s) => document.querySelector(s).canPlayType('{H264}')", video)
    # Debian's chromium plays H.264; a browser that cannot is a failure of the product's claim
    assert can_play, f"this Chromium cannot play H.264: canPlayType({H264!r}) is empty"
    played = page.evaluate(PLAY, video)
    print(f"video in the page: {played}")
    assert played["error"] is None, played
    assert (played["width"], played["height"]) == (128, 128)
    assert abs(played["duration"] - FRAMES / FPS) < 0.5, played
    assert played["after"]["time"] > played["before"]["time"], "the video did not advance"
    assert played["after"]["frames"] > played["before"]["frames"], "no frame was decoded"
    panel_screenshot(page, MEDIA, "panel-media-video")

    run_code_cell(page, 1)
    streamed = f"{MEDIA} video.yolo-media-served"
    page.wait_for_selector(streamed, timeout=60_000)
    wait_for_text(page, MEDIA, "streams from the server")
    played = page.evaluate(PLAY, streamed)
    print(f"video streamed from the server: {played}")
    assert played["error"] is None, played
    assert abs(played["duration"] - FRAMES / FPS) < 0.5, played
    assert played["after"]["time"] > played["before"]["time"], "the video did not advance"


def lab_artifact(lab: ServerProcess, job_id: str, path: str) -> bytes:
    """One artifact's bytes over REST with the lab's token."""
    import urllib.request

    request = urllib.request.Request(
        f"{lab.url}/yolo/jobs/{job_id}/artifacts/{path}",
        headers={"Authorization": f"token {lab.token}"},
    )
    with urllib.request.urlopen(request, timeout=60) as answer:
        data: bytes = answer.read()
        return data
