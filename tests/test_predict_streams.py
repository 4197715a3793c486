"""Stream predict jobs: an MJPEG stream served by the test on 127.0.0.1, allowed by the server's
``allowed_stream_sources``, predicted live and stopped mid-stream; refused without the setting;
a stream that dies is reconnected, then the job fails with a clear reason and keeps its results.
And the runner's socket guard lets exactly the allowed host through.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from .conftest import REPO_ROOT, all_events, expect_error, fetch_json, post_json, wait_for_job
from .inference_models import TrainedModel, runner_env, trained_model
from .media_frames import MjpegServer
from .test_predict_media import decode_video, read_lines


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> TrainedModel:
    return trained_model(tmp_path_factory.getbasetemp())


@pytest.fixture
def yolo_workspace(shared: TrainedModel) -> Path:
    return shared.workspace


@pytest.fixture
def yolo_config() -> dict[str, Any]:
    return {"allowed_stream_sources": ["127.0.0.1"]}


def stream_job(shared: TrainedModel, url: str, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "predict",
        "model": shared.model_ref,
        "source": url,
        "imgsz": 128,
        "device": "cpu",
        "backend": "pytorch",
        "conf": 0.25,
        **extra,
    }


async def wait_for_progress(jp_fetch: Any, job_id: str, done: int) -> list[dict[str, Any]]:
    """The job's progress events once one says at least ``done`` frames (or the job ended)."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        events = await all_events(jp_fetch, job_id)
        progress = [e for e in events if e["type"] == "progress"]
        if progress and progress[-1]["done"] >= done:
            return progress
        ended = [e for e in events if e["type"] == "status" and e["status"] in ("failed",)]
        assert not ended, (await jp_fetch("yolo", "jobs", job_id, "log")).body.decode()[-3000:]
        await asyncio.sleep(0.5)
    raise AssertionError("no progress")


@pytest.mark.slow
async def test_allowed_stream_runs_live_and_stops(jp_fetch: Any, shared: TrainedModel) -> None:
    with MjpegServer(fps=15) as server:
        job = await post_json(jp_fetch, "yolo", "jobs", body=stream_job(shared, server.url))
        progress = await wait_for_progress(jp_fetch, job["id"], 8)
        assert all(p["total"] is None and p["unit"] == "frames" for p in progress)
        assert progress[-1]["source"] == server.url
        live = await fetch_json(jp_fetch, "yolo", "jobs", job["id"])
        assert live["status"] == "running" and server.sent > 0
        await jp_fetch("yolo", "jobs", job["id"], "stop", method="POST", body=b"")
        done = await wait_for_job(jp_fetch, job["id"], {"stopped", "succeeded", "failed"}, 120)
    assert done["status"] == "stopped", done
    run = shared.workspace / "jobs" / job["id"] / "run"
    result = done["result"]
    assert result["frames"] >= 8 and result["unit"] == "frames"
    lines = read_lines(run / "predictions.jsonl")
    assert len(lines) == result["frames"]
    assert [line["frame"] for line in lines] == list(range(1, len(lines) + 1))
    codec, _, frames, duration, _ = decode_video(run / "stream.mp4")
    assert codec == "h264" and frames == result["frames"] and duration > 0
    assert sum(1 for line in lines if line["detections"]) >= len(lines) * 0.5


async def test_stream_not_allowed_is_refused(jp_fetch: Any, shared: TrainedModel) -> None:
    body = await expect_error(
        jp_fetch,
        400,
        "yolo",
        "jobs",
        method="POST",
        body=json.dumps(stream_job(shared, "http://192.0.2.7:8080/cam.mjpg")),
    )
    message = body["message"]
    assert "allowed_stream_sources" in message and "offline" in message
    assert 'c.YoloApp.allowed_stream_sources = ["192.0.2.7"]' in message
    assert "--YoloApp.allowed_stream_sources=192.0.2.7" in message


@pytest.mark.parametrize("yolo_config", [{}])
async def test_stream_refused_without_the_setting(
    jp_fetch: Any, shared: TrainedModel, yolo_config: dict[str, Any]
) -> None:
    body = await expect_error(
        jp_fetch,
        400,
        "yolo",
        "jobs",
        method="POST",
        body=json.dumps(stream_job(shared, "http://127.0.0.1:9/stream.mjpg")),
    )
    assert "allowed_stream_sources" in body["message"] and "127.0.0.1" in body["message"]


@pytest.mark.slow
async def test_dying_stream_reconnects_then_fails_keeping_results(
    jp_fetch: Any, shared: TrainedModel
) -> None:
    with MjpegServer(fps=15, die_after=12) as server:
        job = await post_json(
            jp_fetch, "yolo", "jobs", body=stream_job(shared, server.url, reconnects=2, batch=2)
        )
        done = await wait_for_job(jp_fetch, job["id"], {"stopped", "succeeded", "failed"}, 300)
    assert done["status"] == "failed", done
    error = done["error"]
    assert f"the stream at {server.url} stopped sending frames" in error, error
    assert "reconnected 2 times, giving up" in error
    run = shared.workspace / "jobs" / job["id"] / "run"
    lines = read_lines(run / "predictions.jsonl")
    assert 1 <= len(lines) <= 12
    _, _, frames, _, _ = decode_video(run / "stream.mp4")
    assert frames == len(lines), "the mp4 was finalised with what was predicted"
    events = await all_events(jp_fetch, job["id"])
    logs = [e["message"] for e in events if e["type"] == "log"]
    assert sum("reconnecting" in m for m in logs) == 2, logs


GUARD_CHECK = """
import json, socket
from jupyter_yolo.runner.offline import NetworkBlocked, install_socket_guard
assert install_socket_guard(("192.0.2.10",))
out = {}
for host in ("192.0.2.10", "192.0.2.11"):
    sock = socket.socket()
    sock.settimeout(0.2)
    try:
        sock.connect((host, 9))
        out[host] = "connected"
    except NetworkBlocked:
        out[host] = "blocked"
    except OSError:
        out[host] = "let through"
    finally:
        sock.close()
try:
    socket.getaddrinfo("other.example", 80)
    out["lookup"] = "resolved"
except socket.gaierror as exc:
    out["lookup"] = "offline" if "offline" in str(exc) else "failed"
print(json.dumps(out))
"""


def test_socket_guard_lets_exactly_the_stream_host_through() -> None:
    env = {k: v for k, v in runner_env().items() if k != "JUPYTER_YOLO_ALLOW_NETWORK"}
    found = subprocess.run(
        [sys.executable, "-c", GUARD_CHECK],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    out = json.loads(found)
    assert out["192.0.2.10"] in ("let through", "connected"), out
    assert out["192.0.2.11"] == "blocked" and out["lookup"] == "offline", out


REDIRECT_CHECK = """
import json, os, sys
from pathlib import Path
from jupyter_yolo.runner.offline import prepare
prepare(Path(sys.argv[1]), 1, allow_hosts=("127.0.0.1",))  # what a stream job's runner does
import cv2
out = {"options": os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"]}
for name, url in (("direct", sys.argv[2]), ("redirected", sys.argv[3])):
    capture = cv2.VideoCapture(url, cv2.CAP_FFMPEG)
    frames = 0
    while capture.isOpened() and frames < 100:
        ok, _ = capture.read()
        if not ok:
            break
        frames += 1
    out[name] = frames
print(json.dumps(out))
"""


def test_a_stream_jobs_decoder_follows_no_redirect_off_the_allowed_host(tmp_path: Path) -> None:
    """FFmpeg's sockets do not pass the runner's guard: max_redirects;0 keeps it on the host."""
    import functools
    import http.server
    import threading

    from .test_widgets_predict import write_long_video

    write_long_video(tmp_path / "clip.mp4", frames=10)
    files = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0),
        functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path)),
    )
    elsewhere = f"http://localhost:{files.server_address[1]}/clip.mp4"  # another host

    class Redirect(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(302)
            self.send_header("Location", elsewhere)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    redirect = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    for server in (files, redirect):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        found = subprocess.run(
            [
                sys.executable,
                "-c",
                REDIRECT_CHECK,
                str(tmp_path / "workspace"),
                f"http://127.0.0.1:{files.server_address[1]}/clip.mp4",
                f"http://127.0.0.1:{redirect.server_address[1]}/live",
            ],
            cwd=REPO_ROOT,
            env={k: v for k, v in runner_env().items() if k != "JUPYTER_YOLO_ALLOW_NETWORK"},
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
    finally:
        files.shutdown()
        redirect.shutdown()
    out = json.loads(found.strip().splitlines()[-1])
    assert "max_redirects;0" in out["options"] and "rtsp_transport;tcp" in out["options"]
    assert out["direct"] == 10, out  # the allowed host itself is read
    assert out["redirected"] == 0, out  # its redirect to another host is not followed


def test_capture_options_keep_an_explicit_value_and_force_no_redirects() -> None:
    from jupyter_yolo.runner.offline import stream_capture_options

    assert stream_capture_options(None) == "rtsp_transport;tcp|max_redirects;0"
    assert stream_capture_options("rtsp_transport;udp|max_redirects;5|stimeout;5000000") == (
        "rtsp_transport;udp|max_redirects;0|stimeout;5000000"
    )


def test_allow_list_matches_host_or_host_port_and_masks_credentials() -> None:
    from jupyter_yolo.jobs.media_source import is_allowed, mask_url

    assert is_allowed("rtsp://cam.local:554/live", ("cam.local",))
    assert is_allowed("rtsp://cam.local:554/live", ("CAM.local:554",))
    assert not is_allowed("rtsp://cam.local:8554/live", ("cam.local:554",))
    assert not is_allowed("rtsp://cam.local.evil.example/live", ("cam.local",))
    assert is_allowed("http://[::1]:8080/x", ("[::1]:8080",))
    assert not is_allowed("http://user@/x", ("user",))
    assert mask_url("rtsp://admin:s3cret@cam:554/a") == "rtsp://***@cam:554/a"
    assert (
        mask_url("see http://a:b@h/x and rtmp://c@d/y") == "see http://***@h/x and rtmp://***@d/y"
    )
    # the user part ends at the last "@", as urlsplit and FFmpeg read it
    assert mask_url("rtsp://admin:p@ss@cam:554/a") == "rtsp://***@cam:554/a"
    assert mask_url("'rtsp://u:p/w@cam/a'") == "'rtsp://***@cam/a'"  # no URL urlsplit reads
    assert mask_url("rtsp://cam/a?user=bob&pwd=s3c&channel=1") == (
        "rtsp://cam/a?user=***&pwd=***&channel=1"
    )
    assert (
        mask_url("http://h/x?Password=a&token=b&sig=c")
        == "http://h/x?Password=***&token=***&sig=***"
    )
    assert mask_url("http://[::1]:8080/x?fps=5") == "http://[::1]:8080/x?fps=5"
    # an entry with a port matches a URL that leaves out its scheme's default port
    assert is_allowed("rtsp://cam/x", ("cam:554",))
    assert is_allowed("rtmp://cam/x", ("cam:1935",))
    assert is_allowed("http://cam/x", ("cam:80",)) and is_allowed("https://cam/x", ("cam:443",))
    assert not is_allowed("rtsp://cam/x", ("cam:8554",))
    assert not is_allowed("https://cam/x", ("cam:80",))


def test_byte_ranges() -> None:
    from jupyter_yolo.handlers.jobs import byte_range

    assert byte_range(None, 100) is None
    assert byte_range("bytes=0-9", 100) == (0, 9)
    assert byte_range("bytes=90-", 100) == (90, 99)
    assert byte_range("bytes=90-500", 100) == (90, 99)
    assert byte_range("bytes=-10", 100) == (90, 99)
    assert byte_range("bytes=-500", 100) == (0, 99)
    assert byte_range("bytes=100-", 100) == "unsatisfiable"
    assert byte_range("bytes=5-2", 100) == "unsatisfiable"
    assert byte_range("bytes=0-1,5-6", 100) is None  # several ranges: the whole file
    assert byte_range("bytes=a-b", 100) is None
    assert byte_range("items=0-1", 100) is None
    assert byte_range("bytes=\u00b2-", 100) is None  # a digit to str.isdigit, not to int()
    assert byte_range("bytes=-\u0663", 100) is None
    assert byte_range("bytes=" + "9" * 5000 + "-", 100) is None  # beyond int()'s digit limit
    assert byte_range("bytes=-", 100) is None
    assert byte_range(" bytes=0-9 ", 100) == (0, 9)


def test_progress_events_at_most_once_a_second_and_folded_into_the_job() -> None:
    from jupyter_yolo.jobs.progress import Progress
    from jupyter_yolo.runner.throughput import ProgressMeter

    now = [100.0]
    sent: list[dict[str, Any]] = []
    meter = ProgressMeter(
        lambda **fields: sent.append(fields), "frames", 200, "v.mp4", clock=lambda: now[0]
    )
    for step in range(1, 21):  # 5 frames every 0.25 s: 20 frames a second, for 5 seconds
        now[0] += 0.25
        meter.update(step * 5)
    assert 5 <= len(sent) <= 6, sent
    last = sent[-1]
    assert last["unit"] == "frames" and last["total"] == 200 and last["fps"] == 20.0
    assert last["eta_s"] == round((200 - last["done"]) / 20.0, 1)
    meter.update(100, final=True)
    assert sent[-1]["done"] == 100

    progress = Progress()
    events = [{"seq": i + 1, "type": "progress", **fields} for i, fields in enumerate(sent)]
    progress.consume(events)
    media = progress.summary()["media"]
    assert media["done"] == 100 and media["total"] == 200 and media["fps"] == 20.0
    assert progress.fraction == 0.5
