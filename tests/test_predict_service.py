"""``POST /yolo/predict`` on warm inference workers: a real server, the real worker process and
the session's trained shapes detector (tests/inference_models.py).

Every request that is refused by its query or its images is refused before any worker starts
(the worker list stays empty). The worker tests start few workers: each start imports torch
and ultralytics in a fresh process.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import struct
import time
import zlib
from pathlib import Path
from typing import Any

import pytest
from jupyter_server.auth.authorizer import Authorizer
from tornado.httpclient import HTTPClientError

from .conftest import expect_error, fetch_json
from .inference_models import TrainedModel, trained_model
from .media_frames import frame

IMAGE_LIMIT = 4
BODY_LIMIT = 2 * 1024 * 1024
SMALL_LIMITS = {"max_predict_images": IMAGE_LIMIT, "max_predict_body_bytes": BODY_LIMIT}


def jpeg(index: int = 0, width: int = 640) -> bytes:
    """A frame of the shapes kind (a square on a noisy background), ``width`` px wide, as JPEG."""
    from PIL import Image

    rgb = frame(index, 48)[:, :, ::-1]
    image = Image.fromarray(rgb)
    height = round(image.height * width / image.width)
    out = io.BytesIO()
    image.resize((width, height), Image.Resampling.BILINEAR).save(out, "JPEG", quality=92)
    return out.getvalue()


def png_bomb(width: int = 20000, height: int = 20000) -> bytes:
    """A PNG whose header says ``width`` x ``height`` but whose file is a few hundred bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * 4096, 9)  # the start of a huge all-black image
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def multipart(parts: list[tuple[str, bytes]], boundary: str = "predictboundary") -> bytes:
    """A multipart/form-data body with one file part per (filename, JPEG bytes)."""
    out = io.BytesIO()
    for name, data in parts:
        out.write(f"--{boundary}\r\n".encode())
        out.write(
            f'Content-Disposition: form-data; name="image"; filename="{name}"\r\n'
            f"Content-Type: image/jpeg\r\n\r\n".encode()
        )
        out.write(data + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue()


MULTIPART = {"Content-Type": "multipart/form-data; boundary=predictboundary"}
JPEG = {"Content-Type": "image/jpeg"}


async def predict(
    jp_fetch: Any, body: bytes, headers: dict[str, str] | None = None, **params: str
) -> dict[str, Any]:
    params.setdefault("backend", "pytorch")  # "auto" would time backends (exports) at start
    response = await jp_fetch(
        "yolo",
        "predict",
        method="POST",
        body=body,
        headers={**(headers or JPEG)},  # a copy: jp_fetch adds this server's token to it
        params=params,
        request_timeout=600,
    )
    answer: dict[str, Any] = json.loads(response.body)
    return answer


async def workers(jp_fetch: Any) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = (await fetch_json(jp_fetch, "yolo", "predict", "workers"))[
        "workers"
    ]
    return listed


# ---------------------------------------------------------------------------- refused early


@pytest.mark.parametrize("yolo_config", [SMALL_LIMITS])
async def test_bad_requests_are_refused_before_any_worker(
    jp_fetch: Any, yolo_workspace: Path
) -> None:
    image = jpeg(width=64)
    bad_queries = [
        {},  # no model
        {"model": "job:0123456789ab", "conf": "1.5"},
        {"model": "job:0123456789ab", "conf": "nan"},
        {"model": "job:0123456789ab", "iou": "-0.1"},
        {"model": "job:0123456789ab", "imgsz": "100"},
        {"model": "job:0123456789ab", "imgsz": "big"},
        {"model": "job:0123456789ab", "classes": "a,b"},
        {"model": "job:0123456789ab", "classes": "-1"},
        {"model": "job:0123456789ab", "backend": "warp-drive"},
        {"model": "job:0123456789ab", "device": "gpu please"},
        {"model": "job:0123456789ab"},  # no such job
        {"model": "nowhere.pt"},  # not in the weights folder
        {"model": "yolov8n.yaml"},  # untrained
        {"model": "../outside.pt"},
    ]
    for query in bad_queries:
        body = await expect_error(
            jp_fetch,
            400,
            "yolo",
            "predict",
            method="POST",
            body=image,
            headers={**JPEG},
            params=query,
        )
        assert body["reason"] in ("InvalidRequest", "NotFound"), (query, body)

    model = {"model": "job:0123456789ab"}
    # a decompression bomb: 400 million pixels promised by a tiny file
    bomb = png_bomb()
    assert len(bomb) < 1000
    body = await expect_error(
        jp_fetch,
        413,
        "yolo",
        "predict",
        method="POST",
        body=bomb,
        headers={"Content-Type": "image/png"},
        params=model,
    )
    assert "20000x20000" in body["message"] and "max_image_pixels" in body["message"]
    # a body over max_predict_body_bytes
    await expect_error(
        jp_fetch,
        413,
        "yolo",
        "predict",
        method="POST",
        body=b"\xff\xd8" + bytes(BODY_LIMIT),
        headers={**JPEG},
        params=model,
    )
    # more images than max_predict_images
    many = multipart([(f"{i}.jpg", image) for i in range(IMAGE_LIMIT + 1)])
    await expect_error(
        jp_fetch,
        413,
        "yolo",
        "predict",
        method="POST",
        body=many,
        headers={**MULTIPART},
        params=model,
    )
    # not an image, an unknown content type, a truncated header
    await expect_error(
        jp_fetch,
        415,
        "yolo",
        "predict",
        method="POST",
        body=b"GIF89a....",
        headers={**JPEG},
        params=model,
    )
    await expect_error(
        jp_fetch,
        415,
        "yolo",
        "predict",
        method="POST",
        body=image,
        headers={"Content-Type": "text/plain"},
        params=model,
    )
    await expect_error(
        jp_fetch,
        400,
        "yolo",
        "predict",
        method="POST",
        body=image[:40],
        headers={**JPEG},
        params=model,
    )
    # crafted JPEG headers that used to cost a Python loop per byte: refused, and quickly
    for crafted in (b"\xff" * 2**20, b"\xff\xe0\x00\x02" * 2**18):
        body = await expect_error(
            jp_fetch,
            400,
            "yolo",
            "predict",
            method="POST",
            body=b"\xff\xd8" + crafted,
            headers={**JPEG},
            params=model,
        )
        assert "broken or truncated image header" in body["message"]
    # workspace paths: outside, through a link out, missing, not an image, unknown keys
    outside = yolo_workspace.parent / "secret.jpg"
    outside.write_bytes(image)
    (yolo_workspace / "link.jpg").symlink_to(outside)
    (yolo_workspace / "notes.txt").write_text("hello")
    for paths, code in [
        (["../secret.jpg"], 400),
        ([str(outside)], 400),
        (["link.jpg"], 400),
        (["missing.jpg"], 404),
        (["notes.txt"], 415),
        ([], 400),
        ("a.jpg", 400),
    ]:
        await expect_error(
            jp_fetch,
            code,
            "yolo",
            "predict",
            method="POST",
            body=json.dumps({"paths": paths}),
            headers={"Content-Type": "application/json"},
            params=model,
        )
    await expect_error(
        jp_fetch,
        400,
        "yolo",
        "predict",
        method="POST",
        body=json.dumps({"paths": ["a.jpg"], "extra": 1}),
        headers={"Content-Type": "application/json"},
        params=model,
    )
    assert await workers(jp_fetch) == []
    assert not (yolo_workspace / ".predict-workers").exists()


XSRF = "00112233445566778899aabbccddeeff"
PASSES_XSRF = {"Cookie": f"_xsrf={XSRF}", "X-XSRFToken": XSRF}
"""A matching cookie and header: jupyter_server's XSRF check passes, the route's auth decides."""
ROUTES = [
    ("POST", ("yolo", "predict")),
    ("GET", ("yolo", "predict", "workers")),
    ("DELETE", ("yolo", "predict", "workers")),
]


async def test_predict_needs_authentication(jp_fetch: Any, yolo_workspace: Path) -> None:
    for method, parts in ROUTES:
        with pytest.raises(HTTPClientError) as info:
            await jp_fetch(
                *parts,
                method=method,
                body=jpeg(width=64) if method == "POST" else None,
                params={"model": "job:0123456789ab"},
                headers={"Authorization": "token nope", **PASSES_XSRF, **JPEG},
            )
        assert info.value.code == 403, (method, parts)
        assert info.value.response is not None
        message = json.loads(info.value.response.body)["message"]
        assert "xsrf" not in message.lower(), message  # refused by auth, not by the XSRF check
    assert not (yolo_workspace / ".predict-workers").exists()


class NoPredict(Authorizer):
    """Lets everything through except the predict service."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return resource != "jupyter_yolo:predict"


@pytest.mark.parametrize("server_app_config", [{"authorizer_class": NoPredict}])
async def test_predict_needs_authorization(jp_fetch: Any, yolo_workspace: Path) -> None:
    for method, parts in ROUTES:
        with pytest.raises(HTTPClientError) as info:
            await jp_fetch(
                *parts,
                method=method,
                body=jpeg(width=64) if method == "POST" else None,
                params={"model": "job:0123456789ab"},
                headers={**JPEG},
            )
        assert info.value.code == 403, (method, parts)
        assert info.value.response is not None
        message = json.loads(info.value.response.body)["message"]
        assert "not authorized" in message and "jupyter_yolo:predict" in message, message
    assert (await fetch_json(jp_fetch, "yolo", "jobs"))["jobs"] == []  # the rest still works
    assert not (yolo_workspace / ".predict-workers").exists()


@pytest.mark.parametrize(
    ("name", "value", "text"),
    [
        ("max_predict_workers", 0, "at least 1"),
        ("predict_queue_size", -1, "at least 0"),
        ("predict_timeout", 0.0, "above 0"),
        ("predict_start_timeout", -5.0, "above 0"),
        ("predict_idle_timeout", float("nan"), "above 0"),
        ("predict_memory_limit", 0, "above 0"),
        ("max_predict_body_bytes", -1, "above 0"),
        ("max_predict_images", 0, "above 0"),
        ("max_image_pixels", 0, "above 0"),
    ],
)
def test_predict_settings_out_of_bounds_are_refused(name: str, value: Any, text: str) -> None:
    from traitlets import TraitError

    from jupyter_yolo.app import YoloApp

    app = YoloApp()
    with pytest.raises(TraitError) as info:
        setattr(app, name, value)
    assert f"YoloApp.{name}" in str(info.value) and text in str(info.value)
    app.predict_queue_size = 0  # no waiting room is a valid choice
    assert app.predict_queue_size == 0


# ---------------------------------------------------------------------------- warm workers


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> TrainedModel:
    """The session's trained detector; its workspace gets a few JPEGs under media-service/."""
    model = trained_model(tmp_path_factory.getbasetemp())
    folder = model.workspace / "media-service"
    folder.mkdir(exist_ok=True)
    for index in range(3):
        (folder / f"frame{index}.jpg").write_bytes(jpeg(index * 15))
    return model


def squares(answer: dict[str, Any]) -> list[int]:
    """How many objects each image of an answer has."""
    return [len(image["detections"]) for image in answer["images"]]


@pytest.mark.slow
class TestWarmWorker:
    @pytest.fixture
    def yolo_workspace(self, shared: TrainedModel) -> Path:
        return shared.workspace

    @pytest.fixture
    def yolo_config(self) -> dict[str, Any]:
        return {"max_predict_workers": 2}

    async def test_answers_reuses_and_survives_a_kill(
        self, jp_fetch: Any, shared: TrainedModel, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "server-secret")
        monkeypatch.setenv("OMP_API_TOKEN", "server-secret")
        model = {"model": shared.model_ref, "backend": "pytorch"}
        first = await predict(jp_fetch, jpeg(0), **model)
        environ = Path(f"/proc/{first['worker']['pid']}/environ").read_bytes()
        assert b"server-secret" not in environ  # the jobs' environment: no secrets
        assert first["task"] == "detect" and first["model"] == shared.model_ref
        assert first["imgsz"] == 128  # the model's training size: no imgsz was given
        (image,) = first["images"]
        assert (image["width"], image["height"]) == (640, 427)
        assert len(image["detections"]) >= 1
        x1, _, x2, _ = image["detections"][0]["box_xyxy"]
        assert 0 <= x1 < x2 <= 640
        timing = first["timing"]
        assert timing["worker_start_ms"] > 0
        assert timing["total_ms"] >= timing["inference_ms"] > 0
        pid = first["worker"]["pid"]
        assert first["worker"]["requests"] == 1

        # warm: the same worker answers, without a start, also under another name of the file
        second = await predict(jp_fetch, jpeg(1), **model)
        third = await predict(
            jp_fetch, jpeg(2), model=f"jobs/{shared.job_id}/run/weights/last.pt", conf="0.5"
        )
        for answer in (second, third):
            assert "worker_start_ms" not in answer["timing"]
            assert answer["worker"]["pid"] == pid
        assert third["worker"]["requests"] == 3
        assert all(d["conf"] >= 0.5 for d in third["images"][0]["detections"])

        # several images: multipart in order with their names, and named workspace paths
        parts = [("a.jpg", jpeg(3)), ("b.jpg", jpeg(20)), ("c.jpg", jpeg(40))]
        many = await predict(jp_fetch, multipart(parts), MULTIPART, **model)
        assert [i["file"] for i in many["images"]] == ["a.jpg", "b.jpg", "c.jpg"]
        assert all(n >= 1 for n in squares(many))
        paths = [f"media-service/frame{i}.jpg" for i in range(3)]
        named = await predict(
            jp_fetch,
            json.dumps({"paths": paths}).encode(),
            {"Content-Type": "application/json"},
            **model,
        )
        assert [i["file"] for i in named["images"]] == paths
        # the same pixels answer the same, whichever way they came
        direct = await predict(jp_fetch, (shared.workspace / paths[0]).read_bytes(), **model)
        assert direct["images"][0]["detections"] == named["images"][0]["detections"]
        # class filter: a class the shapes detector never predicts leaves nothing
        assert squares(await predict(jp_fetch, jpeg(0), classes="7", **model)) == [0]

        # a corrupt JPEG (a good header, garbage after it) is refused by the worker, which
        # goes on serving
        corrupt = jpeg(5)[:200] + bytes(range(256)) * 8
        await expect_error(
            jp_fetch,
            400,
            "yolo",
            "predict",
            method="POST",
            body=corrupt,
            headers={**JPEG},
            params=model,
        )
        after = await predict(jp_fetch, jpeg(5), **model)
        assert after["worker"]["pid"] == pid

        # another weights file: a second worker beside the first
        best = await predict(jp_fetch, jpeg(0), model=f"job:{shared.job_id}:best")
        listed = {w["pid"]: w for w in await workers(jp_fetch)}
        assert pid in listed and best["worker"]["pid"] in listed
        assert listed[pid]["state"] == "ready" and listed[pid]["requests"] >= 9
        assert listed[pid]["rss_bytes"] > 0

        # the worker is killed between requests: the next request gets 503 with Retry-After
        # (when it finds the dead worker first) or a fresh worker (when the pool noticed the
        # exit first); the one after it is answered by a fresh worker either way
        os.kill(pid, signal.SIGKILL)
        try:
            retried = await predict(jp_fetch, jpeg(0), **model)
            assert retried["worker"]["pid"] != pid
        except HTTPClientError as exc:
            assert exc.code == 503, exc
            assert exc.response is not None
            assert exc.response.headers["Retry-After"] == "2"
            assert "stopped" in json.loads(exc.response.body)["message"]
        again = await predict(jp_fetch, jpeg(0), **model)
        assert again["worker"]["pid"] != pid
        assert squares(again) == squares(first)

        stopped = await fetch_json(jp_fetch, "yolo", "predict", "workers", method="DELETE")
        assert stopped["stopped"] == 2
        assert await workers(jp_fetch) == []
        log_folder = shared.workspace / ".predict-workers"
        assert any(p.stat().st_size > 0 for p in log_folder.glob("*.log"))

        # weights that do not load: the worker says so and exits; the request gets the
        # worker's reason (4xx when the worker says the model is unusable, else 503 with
        # Retry-After), and no worker is left behind
        broken = shared.workspace / "weights" / "broken.pt"
        broken.parent.mkdir(exist_ok=True)
        broken.write_bytes(b"not a checkpoint" * 64)
        with pytest.raises(HTTPClientError) as info:
            await predict(jp_fetch, jpeg(0), model="broken.pt")
        assert info.value.response is not None
        assert info.value.code in (400, 422, 503), info.value.response.body
        assert "broken.pt" in json.loads(info.value.response.body)["message"]
        if info.value.code == 503:
            assert info.value.response.headers["Retry-After"] == "2"
        assert await workers(jp_fetch) == []


@pytest.mark.slow
class TestQueue:
    @pytest.fixture
    def yolo_workspace(self, shared: TrainedModel) -> Path:
        return shared.workspace

    @pytest.fixture
    def yolo_config(self) -> dict[str, Any]:
        return {"predict_queue_size": 1, "predict_timeout": 10.0}

    async def test_a_full_queue_gets_429_and_a_hung_worker_503(
        self, jp_fetch: Any, shared: TrainedModel
    ) -> None:
        model = {"model": shared.model_ref}
        warm = await predict(jp_fetch, jpeg(0), **model)
        pid = warm["worker"]["pid"]

        async def state() -> dict[str, Any]:
            (worker,) = await workers(jp_fetch)
            return worker

        async def until(check: Any) -> None:
            deadline = time.monotonic() + 60
            while not check(await state()):
                assert time.monotonic() < deadline, await state()
                await asyncio.sleep(0.05)

        # the worker hangs (it is paused and never resumed): one request is in flight on it,
        # one more waits, the next is refused at once; no timing is involved, the pause holds
        # them until predict_timeout ends the one in flight
        os.kill(pid, signal.SIGSTOP)
        running = asyncio.ensure_future(predict(jp_fetch, jpeg(1), **model))
        await until(lambda w: w["state"] == "busy")
        waiting = asyncio.ensure_future(predict(jp_fetch, jpeg(2), **model))
        await until(lambda w: w["queued"] == 1)
        with pytest.raises(HTTPClientError) as info:
            await predict(jp_fetch, jpeg(3), **model)
        assert info.value.code == 429
        assert info.value.response is not None
        assert info.value.response.headers["Retry-After"] == "2"
        assert "predict_queue_size" in json.loads(info.value.response.body)["message"]

        # the one in flight: 503 with Retry-After once predict_timeout passes, the worker killed
        with pytest.raises(HTTPClientError) as info:
            await running
        assert info.value.code == 503
        assert info.value.response is not None
        assert info.value.response.headers["Retry-After"] == "2"
        message = json.loads(info.value.response.body)["message"]
        assert "hung" in message and "predict_timeout" in message
        # the one that waited moves to a fresh worker
        moved = await waiting
        assert moved["worker"]["pid"] != pid and "worker_start_ms" in moved["timing"]
        assert moved["timing"]["queue_ms"] > 0
        for _ in range(200):
            if not os.path.exists(f"/proc/{pid}"):
                break
            await asyncio.sleep(0.1)
        assert not os.path.exists(f"/proc/{pid}")


@pytest.mark.slow
class TestIdle:
    @pytest.fixture
    def yolo_workspace(self, shared: TrainedModel) -> Path:
        return shared.workspace

    @pytest.fixture
    def yolo_config(self) -> dict[str, Any]:
        return {"predict_idle_timeout": 1.0}

    async def test_an_idle_worker_is_stopped(self, jp_fetch: Any, shared: TrainedModel) -> None:
        answer = await predict(jp_fetch, jpeg(0), model=shared.model_ref)
        pid = answer["worker"]["pid"]
        # idle longer than predict_idle_timeout: the worker is stopped (polled, generous deadline)
        deadline = time.monotonic() + 120
        while await workers(jp_fetch):
            assert time.monotonic() < deadline, "the idle worker was never evicted"
            await asyncio.sleep(0.5)
        for _ in range(200):
            if not os.path.exists(f"/proc/{pid}"):
                break
            await asyncio.sleep(0.1)
        assert not os.path.exists(f"/proc/{pid}")
        # the next request starts a fresh one
        again = await predict(jp_fetch, jpeg(0), model=shared.model_ref)
        assert again["worker"]["pid"] != pid and "worker_start_ms" in again["timing"]
