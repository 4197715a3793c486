"""The client's side of the warm inference service, ``POST /yolo/predict``.

:class:`PredictServiceMixin` gives :class:`~jupyter_yolo.client.YoloClient` its
:meth:`~PredictServiceMixin.predict_images`: images in, the parsed
:class:`~jupyter_yolo.contract.serving.PredictResponse` out, on a model the server keeps warm
in a worker process (no job, no model load per call once warm)::

    answer = client.predict_images("photo.jpg", model="job:0123456789ab:best", conf=0.4)
    for det in answer["images"][0]["detections"]:
        print(det["name"], det["conf"], det["box_xyxy"])
    answer = client.predict_images(paths=["datasets/shapes/images/val/a.jpg"], model=...)

Images are sent as the request body: one image as it is (``image/jpeg|png|webp``), several as
``multipart/form-data``; workspace paths (``paths=``) as JSON, read by the server. Only the
standard library is needed; numpy arrays are encoded with OpenCV (or Pillow) when given, and an
image in another format (BMP, TIFF, GIF...) is converted to PNG with them before it is sent.
"""

from __future__ import annotations

import base64
import io
import json
import os
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from .contract.payloads import ImagePrediction
from .contract.serving import MULTIPART_TYPE, RETRY_AFTER_S, PredictResponse

__all__ = [
    "MAX_RETRY_WAIT_S",
    "SERVICE_IMAGE_SUFFIXES",
    "PredictServiceMixin",
    "encode_image",
    "pixel_map_png",
    "service_reads",
    "to_png",
]

MAX_RETRY_WAIT_S = 10.0
"""The longest ``Retry-After`` the client honours before its one retry."""
PREDICT_TIMEOUT_S = 300.0
"""A first request may start the worker (model load, backend measurement): it may take long."""
RETRIED = (429, 503)
SERVICE_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
"""Files the service reads as they are (``paths=``); others are sent converted to PNG."""

ImageInput = Any
"""bytes, a local file (``str`` or :class:`pathlib.Path`) or a numpy array (H x W [x C])."""


def _sniff(data: bytes) -> str | None:
    """The image content type from the first bytes (None: not an image the service takes)."""
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def service_reads(path: str) -> bool:
    """Whether the service reads the image file ``path`` itself (JPEG, PNG, WebP by suffix)."""
    return path.lower().endswith(SERVICE_IMAGE_SUFFIXES)


def _decode_with_opencv(data: bytes) -> bytes | None:
    """PNG bytes of ``data`` decoded as ultralytics reads a file (3 channels); None if it can't."""
    try:
        import cv2
        import numpy as np
    except ImportError:
        return None
    try:
        decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:
        return None
    if decoded is None:
        return None
    ok, buffer = cv2.imencode(".png", decoded)
    return bytes(buffer.tobytes()) if ok else None


def _decode_with_pillow(data: bytes) -> bytes | None:
    """PNG bytes of ``data``'s first frame as RGB (GIF, which OpenCV may not read); or None."""
    try:
        from PIL import Image
    except ImportError:
        return None
    try:
        with Image.open(io.BytesIO(data)) as image:
            out = io.BytesIO()
            image.convert("RGB").save(out, format="PNG")
            return out.getvalue()
    except Exception:  # not an image Pillow reads (or a decompression bomb): the caller says so
        return None


def to_png(data: bytes, name: str = "image") -> bytes:
    """``data`` (a BMP, TIFF, GIF... image) as PNG bytes the service takes.

    Decoded with OpenCV as ultralytics reads an image file (so the predictions are those a
    job on the file gives), else with Pillow. Raises ``ValueError`` naming ``name`` when
    neither can read it.
    """
    png = _decode_with_opencv(data) or _decode_with_pillow(data)
    if png is None:
        raise ValueError(
            f"{name}: not an image this client can read. JPEG, PNG and WebP are sent as they "
            "are; BMP, TIFF, GIF and other formats OpenCV or Pillow decode are converted to PNG "
            "first (is the file complete, and is opencv-python or Pillow installed?)."
        )
    return png


def _encode_array(array: Any) -> bytes:
    """PNG bytes of a numpy image: BGR channel order (OpenCV's and ultralytics' convention)."""
    shape: tuple[int, ...] = tuple(getattr(array, "shape", ()))
    if len(shape) not in (2, 3) or (len(shape) == 3 and shape[2] not in (1, 3, 4)):
        raise ValueError(f"a numpy image must be H x W, H x W x 1, 3 or 4; got shape {shape}.")
    if str(getattr(array, "dtype", "")) != "uint8":
        raise ValueError(f"a numpy image must be uint8; got {getattr(array, 'dtype', '?')}.")
    try:
        import cv2
    except ImportError:
        pass
    else:
        ok, buffer = cv2.imencode(".png", array)
        if not ok:
            raise ValueError("OpenCV could not encode the array as PNG.")
        return bytes(buffer.tobytes())
    import io

    from PIL import Image

    if len(shape) == 3 and shape[2] in (3, 4):  # BGR(A) -> RGB(A), as OpenCV would read it
        order = [2, 1, 0] + ([3] if shape[2] == 4 else [])
        array = array[..., order]
    if len(shape) == 3 and shape[2] == 1:
        array = array[..., 0]
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="PNG")
    return out.getvalue()


def encode_image(image: ImageInput) -> tuple[str, bytes, str]:
    """``(name, bytes, content type)`` of one image given as bytes, a local file or an array.

    Raises ``ValueError`` (or ``FileNotFoundError``) with what was wrong with it.
    """
    name = "image"
    if isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
    elif isinstance(image, (str, os.PathLike)):
        path = Path(image)
        if not path.is_file():
            raise FileNotFoundError(
                f"{str(image)!r} is not a local image file. A file in the server's workspace "
                "is named with predict_images(paths=[...]) instead."
            )
        data = path.read_bytes()
        name = path.name
    elif hasattr(image, "shape") and hasattr(image, "dtype"):
        data = _encode_array(image)
        name = "array.png"
    else:
        raise ValueError(
            f"cannot send a {type(image).__name__} as an image: give bytes, a local file path "
            "or a numpy array."
        )
    kind = _sniff(data)
    if kind is None:  # the service takes PREDICT_IMAGE_TYPES: anything else goes as PNG
        data, kind = to_png(data, name), "image/png"
    return name, data, kind


def _multipart(parts: list[tuple[str, bytes, str]]) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body with one ``image`` part per image, and its content type."""
    boundary = "yolo-" + uuid.uuid4().hex
    chunks: list[bytes] = []
    for index, (name, data, kind) in enumerate(parts):
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in name) or "image"
        chunks.append(
            (
                f"--{boundary}\r\n"
                f'Content-Disposition: form-data; name="image{index}"; filename="{safe}"\r\n'
                f"Content-Type: {kind}\r\n\r\n"
            ).encode()
        )
        chunks.append(data)
        chunks.append(b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f"{MULTIPART_TYPE}; boundary={boundary}"


def pixel_map_png(image: ImagePrediction) -> bytes | None:
    """The PNG bytes of an answered image's per-pixel map (semantic, depth), or None.

    A ``POST /yolo/predict`` answer carries the map inline (``pixel_map.png_base64``):
    semantic maps are 8-bit class indices, depth maps 16-bit millimetres.
    """
    pixel_map = image.get("pixel_map")
    if not pixel_map or not pixel_map.get("png_base64"):
        return None
    return base64.b64decode(pixel_map["png_base64"])


def _retry_after(exc: Any) -> float:
    """Seconds to wait before the retry: the answer's ``Retry-After``, bounded."""
    headers = getattr(exc, "headers", None) or {}
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    try:
        seconds = float(value) if value is not None else float(RETRY_AFTER_S)
    except ValueError:
        seconds = float(RETRY_AFTER_S)
    return min(max(seconds, 0.0), MAX_RETRY_WAIT_S)


class PredictServiceMixin:
    """``predict_images``: synchronous prediction on the server's warm inference workers."""

    timeout: float

    def request_raw(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json_body: Any = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """The transport (:meth:`jupyter_yolo.client.YoloClient.request_raw`)."""
        raise NotImplementedError

    def predict_images(
        self,
        images: ImageInput | Sequence[ImageInput] | None = None,
        *,
        model: str,
        paths: str | Sequence[str] | None = None,
        conf: float | None = None,
        iou: float | None = None,
        imgsz: int | None = None,
        classes: Sequence[int] | None = None,
        backend: str | None = None,
        device: str | None = None,
        timeout: float | None = None,
    ) -> PredictResponse:
        """Predict with ``model`` on images, on a warm worker; return the parsed answer.

        ``images``: one image or a list; each bytes (JPEG, PNG, WebP as they are; BMP, TIFF, GIF
        and other formats converted to PNG first), a *local* file path
        (``str`` or :class:`~pathlib.Path`, read here and sent) or a numpy array (BGR, uint8).
        ``paths``: instead, workspace-relative image paths the server reads itself (a dataset
        image, an upload). ``model`` is any reference jobs take (``job:<id>:best``, a weights
        file, an export). ``classes`` keeps only those class indices.

        The answer (:class:`~jupyter_yolo.contract.serving.PredictResponse`) has one
        ``images`` entry per image in order, the backend that ran and the timing breakdown;
        :func:`pixel_map_png` decodes a semantic / depth map. A 429 (queue full) or 503
        (worker restarting) is retried once after its ``Retry-After`` (at most
        :data:`MAX_RETRY_WAIT_S`); then, as every other failure, it raises a
        :class:`~jupyter_yolo.client.YoloClientError` with the server's message.
        """
        if (images is None) == (paths is None):
            raise ValueError("give either images (bytes, local files, arrays) or paths=[...]")
        params: dict[str, Any] = {
            "model": model,
            "conf": conf,
            "iou": iou,
            "imgsz": imgsz,
            "backend": backend,
            "device": device,
        }
        if classes is not None:
            params["classes"] = ",".join(str(int(c)) for c in classes)
        if paths is not None:
            listed = [paths] if isinstance(paths, str) else list(paths)
            body = json.dumps({"paths": listed}).encode()
            kind = "application/json"
        else:
            items = images if isinstance(images, (list, tuple)) else [images]
            if not items:
                raise ValueError("no image given")
            parts = [encode_image(item) for item in items]
            if len(parts) == 1:
                _, body, kind = parts[0]
            else:
                body, kind = _multipart(parts)
        answer = self._post_predict(params, body, kind, timeout)
        return cast(PredictResponse, answer)

    def _post_predict(
        self, params: dict[str, Any], body: bytes, kind: str, timeout: float | None
    ) -> dict[str, Any]:
        from .client import YoloClientError  # the client module imports this one

        wait = max(self.timeout, PREDICT_TIMEOUT_S) if timeout is None else timeout
        for attempt in (1, 2):
            try:
                _, _, raw = self.request_raw(
                    "POST",
                    "yolo/predict",
                    params=params,
                    data=body,
                    headers={"Content-Type": kind, "Content-Length": str(len(body))},
                    timeout=wait,
                )
                break
            except YoloClientError as exc:
                if attempt == 2 or exc.status not in RETRIED:
                    raise
                time.sleep(_retry_after(exc))
        try:
            answer = json.loads(raw)
        except ValueError:
            raise YoloClientError(
                None, "POST yolo/predict: the server answered with something other than JSON."
            ) from None
        if not isinstance(answer, dict) or not isinstance(answer.get("images"), list):
            raise YoloClientError(None, "POST yolo/predict: the answer has no 'images' list.")
        return answer
