"""One ``predict`` request inside a warm worker: check it, decode its images, answer ``result``.

Worker processes only (OpenCV, ultralytics). Each image runs on its own (batch 1, ultralytics'
rectangular letterbox), exactly as a predict job runs a folder one image at a time, so an answer
equals the job's entry for the same image and backend. The predictor ultralytics built at the
warm-up is reused: only its thresholds change between calls (conf, iou and classes are not
among the arguments that make ultralytics build a new predictor).
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from typing import Any

from ..contract.payloads import ImagePrediction
from .imagesize import image_size
from .warm import WarmModel

DEFAULT_CONF = 0.25
DEFAULT_IOU = 0.7
DEFAULT_MAX_PIXELS = 40_000_000
"""The server's ``max_image_pixels`` default; the worker's own line of defence behind it."""
MAX_CLASSES = 10_000


class RequestError(Exception):
    """A request that cannot be answered as asked; ``status`` is the HTTP status it deserves."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class PredictRequest:
    """A checked ``predict`` header."""

    id: int
    conf: float
    iou: float
    classes: list[int] | None
    names: list[str]
    max_pixels: int


def _fraction(header: dict[str, Any], key: str, default: float) -> float:
    value = header.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RequestError(400, f"'{key}' must be a number between 0 and 1, not {value!r}")
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise RequestError(400, f"'{key}' must be between 0 and 1, not {value}")
    return float(value)


def parse_request(header: dict[str, Any], blobs: list[bytes], max_pixels: int) -> PredictRequest:
    """The request's parameters, or :class:`RequestError` (400) saying what is wrong."""
    rid = header.get("id")
    conf = _fraction(header, "conf", DEFAULT_CONF)
    iou = _fraction(header, "iou", DEFAULT_IOU)
    classes = header.get("classes")
    if classes is not None and (
        not isinstance(classes, list)
        or len(classes) > MAX_CLASSES
        or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in classes)
    ):
        raise RequestError(400, "'classes' must be a list of class indices (integers >= 0)")
    if not blobs:
        raise RequestError(400, "the request carries no image")
    names = header.get("names")
    if names is None:
        names = [f"image{i + 1}" for i in range(len(blobs))]
    if (
        not isinstance(names, list)
        or len(names) != len(blobs)
        or not all(isinstance(n, str) for n in names)
    ):
        raise RequestError(400, "'names' must be a list of texts, one per image")
    limit = header.get("max_pixels")
    if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0:
        max_pixels = min(max_pixels, limit)
    return PredictRequest(
        id=rid if isinstance(rid, int) else 0,
        conf=conf,
        iou=iou,
        classes=list(classes) if classes is not None else None,
        names=list(names),
        max_pixels=max_pixels,
    )


def _too_many(name: str, width: int, height: int, limit: int) -> RequestError:
    return RequestError(
        413,
        f"image {name!r} is {width} x {height} pixels, more than the {limit} allowed "
        "(max_image_pixels): send a smaller image",
    )


def check_size(blob: bytes, name: str, max_pixels: int) -> None:
    """413 when the image's header says it has more than ``max_pixels`` (nothing decoded)."""
    size = image_size(blob)
    if size is not None and size[0] * size[1] > max_pixels:
        raise _too_many(name, size[0], size[1], max_pixels)


def decode_image(blob: bytes, name: str, max_pixels: int) -> Any:
    """The image as a BGR array; 413 over the pixel limit (by its header), 400 if not an image."""
    import cv2
    import numpy as np

    check_size(blob, name, max_pixels)
    array = cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_COLOR)
    if array is None or array.size == 0:
        raise RequestError(
            400,
            f"image {name!r} could not be decoded ({len(blob)} bytes): send a JPEG, PNG or WebP "
            "file (or it is larger than the pixel limit)",
        )
    height, width = array.shape[:2]
    if width * height > max_pixels:  # a format whose header we do not read
        raise _too_many(name, width, height, max_pixels)
    return array


class Answerer:
    """Answers ``predict`` requests with one warm model."""

    def __init__(self, warm: WarmModel, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        self.warm = warm
        self.max_pixels = max_pixels
        self.rebuilds = 0
        """Times ultralytics built a new predictor after the warm-up (expected: never)."""
        self._predictor = getattr(warm.model, "predictor", None)
        from ..runner.outputs import inline_prediction

        self._convert = inline_prediction

    def _run(self, array: Any, request: PredictRequest) -> Any:
        results = self.warm.model.predict(
            array,
            conf=request.conf,
            iou=request.iou,
            imgsz=self.warm.imgsz,
            classes=request.classes,
            device=self.warm.device,
            verbose=False,
            save=False,
        )
        predictor = getattr(self.warm.model, "predictor", None)
        if predictor is not self._predictor:  # a per-request set-up would cost every request
            self._predictor = predictor
            self.rebuilds += 1
            print(
                f"jupyter-yolo worker: ultralytics built a new predictor ({self.rebuilds})",
                file=sys.stderr,
                flush=True,
            )
        return results[0]

    def predict(self, header: dict[str, Any], blobs: list[bytes]) -> dict[str, Any]:
        """The ``result`` header for a ``predict`` request; :class:`RequestError` if refused."""
        started = time.perf_counter()
        request = parse_request(header, blobs, self.max_pixels)
        for blob, name in zip(blobs, request.names, strict=True):  # refuse before any work
            check_size(blob, name, request.max_pixels)
        decode_ms = pre = inference = post = 0.0
        images: list[ImagePrediction] = []
        for blob, name in zip(blobs, request.names, strict=True):  # one decoded image at a time
            decoding = time.perf_counter()
            array = decode_image(blob, name, request.max_pixels)
            decode_ms += (time.perf_counter() - decoding) * 1000.0
            result = self._run(array, request)
            del array
            speed = getattr(result, "speed", None) or {}
            pre += float(speed.get("preprocess") or 0.0)
            inference += float(speed.get("inference") or 0.0)
            post += float(speed.get("postprocess") or 0.0)
            converting = time.perf_counter()
            images.append(self._convert(result, self.warm.task, name))
            post += (time.perf_counter() - converting) * 1000.0
            del result
        return {
            "op": "result",
            "id": request.id,
            "images": images,
            "timing": {
                "preprocess_ms": round(pre + decode_ms, 3),
                "inference_ms": round(inference, 3),
                "postprocess_ms": round(post, 3),
                "worker_ms": round((time.perf_counter() - started) * 1000.0, 3),
            },
        }
