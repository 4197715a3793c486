"""The Python client on the warm inference service (``POST /yolo/predict``) of a real server with
a trained detector: images as bytes, local files, numpy arrays or workspace paths, one or several
per request; thresholds and the class filter applied by the service; no job per call; clear
errors for bad input; one retry on 429/503 after Retry-After (against a tiny HTTP stub that
answers like an overloaded server); the old ``client.predict(model, source)`` still makes a job."""

from __future__ import annotations

import base64
import http.server
import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from PIL import Image

from jupyter_yolo.client import BadRequestError, ServerUnavailable, YoloClient, YoloClientError
from jupyter_yolo.client_predict import encode_image, pixel_map_png, service_reads, to_png
from jupyter_yolo.contract.payloads import ImagePrediction

from .conftest import install_dataset
from .inference_models import trained_model
from .server_process import ServerProcess, serving

MODEL = "shapes-n.pt"
IMAGES = "uploads/shapes-val"


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, shapes_template: Path
) -> Iterator[ServerProcess]:
    """A real server whose workspace has the shapes dataset and the trained detector."""
    model = trained_model(tmp_path_factory.getbasetemp())
    workspace = tmp_path_factory.mktemp("client-predict") / "workspace"
    install_dataset(shapes_template, workspace / "datasets" / "shapes")
    (workspace / "weights").mkdir(parents=True, exist_ok=True)
    shutil.copy2(model.weights, workspace / "weights" / MODEL)
    # images like those it was trained on (128 px), where a plateau-trained model finds shapes
    shutil.copytree(model.data.parent / "images" / "val", workspace / IMAGES)
    with serving(workspace) as process:
        yield process


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> YoloClient:
    return YoloClient(server.url, server.token, timeout=60)


@pytest.fixture(scope="module")
def val_images(server: ServerProcess) -> list[Path]:
    folder = server.workspace / IMAGES
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".png"))[:3]


def boxes(image: ImagePrediction) -> list[tuple[int, tuple[float, ...]]]:
    return sorted(
        (d["cls"], tuple(round(float(v or 0), 1) for v in d["box_xyxy"]))
        for d in image["detections"]
    )


@pytest.mark.slow
def test_predict_images_from_bytes_files_arrays_and_workspace_paths(
    client: YoloClient, server: ServerProcess, val_images: list[Path]
) -> None:
    jobs_before = len(client.jobs())
    first = val_images[0]
    relative = first.relative_to(server.workspace).as_posix()

    by_bytes = client.predict_images(first.read_bytes(), model=MODEL, conf=0.25)
    assert by_bytes["task"] == "detect" and by_bytes["model"] == MODEL
    assert by_bytes["backend"]["name"] and by_bytes["backend"]["requested"] == "auto"
    timing = by_bytes["timing"]
    for key in ("queue_ms", "preprocess_ms", "inference_ms", "postprocess_ms", "total_ms"):
        assert timing[key] >= 0, key
    assert timing["total_ms"] >= timing["inference_ms"]
    [image] = by_bytes["images"]
    width, height = Image.open(first).size
    assert (image["width"], image["height"]) == (width, height)
    assert image["detections"], "the trained detector finds the shapes"

    by_file = client.predict_images(first, model=MODEL, conf=0.25)  # a local Path
    by_name = client.predict_images(str(first), model=MODEL, conf=0.25)  # a local str path
    by_path = client.predict_images(paths=[relative], model=MODEL, conf=0.25)
    for other in (by_file, by_name, by_path):
        assert boxes(other["images"][0]) == boxes(image)
    assert by_file["worker"]["key"] == by_bytes["worker"]["key"]  # the same warm worker

    rgb = np.asarray(Image.open(first).convert("RGB"))
    by_array = client.predict_images(rgb[..., ::-1].copy(), model=MODEL, conf=0.25)  # BGR
    assert (by_array["images"][0]["width"], by_array["images"][0]["height"]) == (width, height)
    assert {d["cls"] for d in by_array["images"][0]["detections"]} == {
        d["cls"] for d in image["detections"]
    }

    several = client.predict_images(val_images, model=MODEL, conf=0.25)  # multipart
    assert len(several["images"]) == len(val_images)
    assert boxes(several["images"][0]) == boxes(image)
    for answer, path in zip(several["images"], val_images, strict=True):
        assert (answer["width"], answer["height"]) == Image.open(path).size

    # the dispatching form the issue names: images first, model by keyword
    dispatched = client.predict(first.read_bytes(), model=MODEL, conf=0.25)
    assert boxes(dispatched["images"][0]) == boxes(image)
    assert len(client.jobs()) == jobs_before, "the service never creates a job"


@pytest.mark.slow
def test_thresholds_and_classes_are_applied_by_the_service(
    client: YoloClient, val_images: list[Path]
) -> None:
    data = val_images[0].read_bytes()
    low = client.predict_images(data, model=MODEL, conf=0.01)["images"][0]["detections"]
    high = client.predict_images(data, model=MODEL, conf=0.9)["images"][0]["detections"]
    assert len(high) < len(low)
    assert all(float(d["conf"] or 0) >= 0.9 for d in high)
    wanted = low[0]["cls"]
    only = client.predict_images(data, model=MODEL, conf=0.01, classes=[wanted])
    kept = only["images"][0]["detections"]
    assert kept and {d["cls"] for d in kept} == {wanted}
    assert len(kept) == sum(1 for d in low if d["cls"] == wanted)


@pytest.mark.slow
def test_bad_input_is_a_clear_error_and_the_next_request_works(
    client: YoloClient, val_images: list[Path], tmp_path: Path
) -> None:
    truncated = val_images[0].read_bytes()[:200]  # a JPEG header and nothing after it
    with pytest.raises(BadRequestError) as refused:
        client.predict_images(truncated, model=MODEL)
    assert refused.value.status is not None and 400 <= refused.value.status < 500
    assert refused.value.message
    with pytest.raises(YoloClientError) as unknown:
        client.predict_images(val_images[0], model="no-such-weights.pt")
    assert unknown.value.status is not None and 400 <= unknown.value.status < 500
    assert "no-such-weights.pt" in unknown.value.message
    with pytest.raises(YoloClientError) as outside:
        client.predict_images(paths=["../../etc/passwd"], model=MODEL)
    assert outside.value.status is not None and 400 <= outside.value.status < 500
    answer = client.predict_images(val_images[0], model=MODEL, conf=0.25)
    assert answer["images"][0]["detections"]

    # refused before anything is sent: not an image, a missing local file, a bad array
    with pytest.raises(ValueError, match="not an image this client can read"):
        client.predict_images(b"GIF89a...", model=MODEL)
    with pytest.raises(FileNotFoundError, match="paths="):
        client.predict_images(tmp_path / "missing.jpg", model=MODEL)
    with pytest.raises(ValueError, match="uint8"):
        client.predict_images(np.zeros((8, 8, 3), np.float32), model=MODEL)
    with pytest.raises(ValueError, match="either images"):
        client.predict_images(model=MODEL)


@pytest.mark.slow
def test_the_old_predict_form_still_creates_a_job(
    client: YoloClient, server: ServerProcess, val_images: list[Path]
) -> None:
    source = val_images[0].relative_to(server.workspace).as_posix()
    job = client.predict(MODEL, source, conf=0.25, backend="pytorch")
    assert job["kind"] == "predict" and job["id"]
    client.stop(job["id"])


# ------------------------------------------------------------------ retries (HTTP stub)


class Overloaded(http.server.BaseHTTPRequestHandler):
    """Answers POSTs with the queued statuses (429/503 carry Retry-After: 0), then 200."""

    statuses: ClassVar[list[int]] = []
    seen: ClassVar[list[str]] = []
    paths: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.seen.append(self.headers.get("Content-Type") or "")
        self.paths.append(self.path.split("?")[0])
        status = self.statuses.pop(0) if self.statuses else 200
        if status == 200:
            body: dict[str, Any] = {"task": "detect", "images": [], "timing": {}}
        else:
            body = {"message": f"busy ({status}), try again"}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status != 200:
            self.send_header("Retry-After", "0")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def stub() -> Iterator[str]:
    Overloaded.statuses, Overloaded.seen, Overloaded.paths = [], [], []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Overloaded)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()


PNG = encode_image(np.zeros((4, 4, 3), np.uint8))[1]


def test_one_retry_on_429_or_503_then_the_servers_message(stub: str) -> None:
    client = YoloClient(stub, "t")
    Overloaded.statuses = [503]
    assert client.predict_images(PNG, model="m")["task"] == "detect"
    assert len(Overloaded.seen) == 2  # retried once
    Overloaded.statuses, Overloaded.seen = [429, 429], []
    with pytest.raises(BadRequestError, match=r"busy \(429\), try again") as busy:
        client.predict_images(PNG, model="m")
    assert busy.value.status == 429 and busy.value.headers.get("Retry-After") == "0"
    assert len(Overloaded.seen) == 2  # one retry, not more
    Overloaded.statuses, Overloaded.seen = [503, 503], []
    with pytest.raises(ServerUnavailable):
        client.predict_images([PNG, PNG], model="m")
    assert all(kind.startswith("multipart/form-data; boundary=") for kind in Overloaded.seen)


def test_predict_dispatches_by_its_arguments(stub: str) -> None:
    client = YoloClient(stub, "t")
    client.predict(PNG, model="m", conf=0.5)  # images first, model by keyword: the service
    client.predict(paths=["a.jpg"], model="m")
    client.predict("m", "videos/a.mp4", conf=0.5)  # the job form, unchanged
    client.predict(model="m", source="videos/a.mp4")
    assert Overloaded.paths == ["/yolo/predict", "/yolo/predict", "/yolo/jobs", "/yolo/jobs"]
    assert Overloaded.seen[:2] == ["image/png", "application/json"]
    with pytest.raises(TypeError, match="starts a job"):
        client.predict("m", "s", model="other")


def test_inline_pixel_maps_decode_to_png() -> None:
    png = encode_image(np.zeros((3, 5), np.uint8))[1]
    image: ImagePrediction = {
        "file": "a.png",
        "width": 5,
        "height": 3,
        "detections": [],
        "pixel_map": {
            "png_base64": base64.b64encode(png).decode(),
            "width": 5,
            "height": 3,
            "summary": {},
        },
    }
    assert pixel_map_png(image) == png
    assert pixel_map_png({"file": "b", "width": 1, "height": 1, "detections": []}) is None


# ------------------------------------------------------------------ other image formats


def pixels_of(png: bytes) -> np.ndarray:
    import io

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def image_bytes(array: np.ndarray, kind: str) -> bytes:
    import io

    out = io.BytesIO()
    Image.fromarray(array).save(out, format=kind)
    return out.getvalue()


@pytest.mark.parametrize("kind", ["BMP", "TIFF", "GIF"])
def test_other_formats_are_sent_as_png_with_the_same_pixels(
    stub: str, kind: str, tmp_path: Path
) -> None:
    rgb = np.zeros((6, 8, 3), np.uint8)
    rgb[1:4, 2:6] = (255, 0, 0) if kind != "GIF" else (255, 255, 255)  # GIF: a palette
    data = image_bytes(rgb, kind)
    _, sent, content_type = encode_image(data)
    assert content_type == "image/png" and sent[:8] == b"\x89PNG\r\n\x1a\n"
    assert np.array_equal(pixels_of(sent), rgb)
    local = tmp_path / f"photo.{kind.lower()}"
    local.write_bytes(data)
    assert encode_image(local)[0] == local.name and encode_image(local)[2] == "image/png"
    client = YoloClient(stub, "t")
    client.predict_images(local, model="m")
    assert Overloaded.seen == ["image/png"]


def test_service_reads_its_own_formats_and_an_unreadable_image_is_named() -> None:
    assert service_reads("datasets/a/images/val/x.JPG") and service_reads("u/x.webp")
    assert not service_reads("datasets/a/images/val/x.bmp") and not service_reads("x.tiff")
    with pytest.raises(ValueError, match=r"^scan\.tif: not an image this client can read"):
        to_png(b"II*\x00 truncated", "scan.tif")
