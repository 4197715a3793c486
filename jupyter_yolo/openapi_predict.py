"""The OpenAPI section of ``/yolo/predict`` (warm inference workers): its paths and schemas.

Built from :mod:`.openapi`'s helpers; :func:`.openapi.build_spec` puts it in the document.
"""

from __future__ import annotations

from typing import Any

from .contract.serving import MULTIPART_TYPE, PREDICT_IMAGE_TYPES
from .handlers.base import MAX_QUERY_BYTES
from .inference.backends import BACKEND_CHOICES
from .openapi import (
    INTEGER,
    NUMBER,
    OBJECT,
    QUERY_TEXT,
    STRING,
    _nullable,
    _object,
    _ok,
    _op,
    _query,
    _ref,
)
from .strict import MAX_PATH_BYTES


def predict_paths() -> dict[str, Any]:
    """The ``/yolo/predict`` routes (warm inference workers)."""
    binary = {"type": "string", "format": "binary"}
    body = {
        **{media: {"schema": binary} for media in PREDICT_IMAGE_TYPES},
        MULTIPART_TYPE: {
            "schema": {"type": "object", "additionalProperties": binary},
        },
        "application/json": {"schema": _ref("PredictPathsRequest")},
    }
    fraction = {"type": "number", "minimum": 0, "maximum": 1}
    parameters = [
        {
            **_query(
                "model",
                "'job:<id>[:best|:last]', a .pt file in the weights folder, or a "
                "workspace-relative weights file or export",
                {**QUERY_TEXT, "minLength": 1},
            ),
            "required": True,
        },
        _query("conf", "confidence threshold (default 0.25)", fraction),
        _query("iou", "NMS IoU threshold (default 0.7)", fraction),
        _query(
            "imgsz",
            "inference size, a multiple of 32 (default: the model's training size, else 640)",
            {"type": "integer", "minimum": 32, "maximum": 4096, "multipleOf": 32},
        ),
        _query(
            "classes",
            "comma-separated class indices to keep, e.g. '0,2'",
            {"type": "string", "maxLength": MAX_QUERY_BYTES, "pattern": r"^\d{1,4}(,\d{1,4})*$"},
        ),
        _query("backend", "'auto' (default) or a backend name", {"enum": list(BACKEND_CHOICES)}),
        _query("device", "ultralytics device (default: the server's, else cpu)", QUERY_TEXT),
    ]
    return {
        "/yolo/predict": {
            "post": _op(
                "Predict images on a warm inference worker: one image body, a multipart of "
                "several (max_predict_images), or JSON naming workspace images; bodies up to "
                "max_predict_body_bytes, images up to max_image_pixels (checked from headers)",
                {"200": _ok("results per image and a timing breakdown", _ref("PredictResponse"))},
                ("404", "415", "429", "503"),
                parameters=parameters,
                requestBody={"required": True, "content": body},
            )
        },
        "/yolo/predict/workers": {
            "get": _op(
                "The warm inference workers",
                {"200": _ok("the workers", _ref("WorkerList"))},
            ),
            "delete": _op(
                "Stop every warm inference worker",
                {"200": _ok("how many were stopped", _object(["stopped"], stopped=INTEGER))},
            ),
        },
    }


PREDICT_SCHEMAS: dict[str, Any] = {
    "PredictPathsRequest": {
        "type": "object",
        "required": ["paths"],
        "additionalProperties": False,
        "properties": {
            "paths": {
                "type": "array",
                "minItems": 1,
                "items": {"type": "string", "minLength": 1, "maxLength": MAX_PATH_BYTES},
            }
        },
    },
    "WorkerInfo": _object(
        [
            "key",
            "model",
            "task",
            "backend",
            "imgsz",
            "device",
            "pid",
            "state",
            "requests",
            "queued",
            "rss_bytes",
            "idle_s",
            "started",
        ],
        key=STRING,
        model=STRING,
        task=STRING,
        backend=STRING,
        imgsz=INTEGER,
        device=STRING,
        pid=_nullable(INTEGER),
        state={"enum": ["starting", "ready", "busy", "stopped"]},
        requests=INTEGER,
        queued=INTEGER,
        rss_bytes=_nullable(INTEGER),
        idle_s=NUMBER,
        started=NUMBER,
    ),
    "Preparation": _object(
        [
            "model",
            "key",
            "reason",
            "state",
            "message",
            "pid",
            "queued_at",
            "started_at",
            "finished_at",
            "yielded_to",
            "choice",
        ],
        model=STRING,
        key=STRING,
        reason=STRING,
        state={"enum": ["waiting", "running", "warming", "done", "failed", "cancelled", "dropped"]},
        message=_nullable(STRING),
        pid=_nullable(INTEGER),
        queued_at=NUMBER,
        started_at=_nullable(NUMBER),
        finished_at=_nullable(NUMBER),
        yielded_to={"type": "array", "items": STRING},
        choice=_nullable(STRING),
    ),
    "WorkerList": _object(
        ["workers", "preparations"],
        workers={"type": "array", "items": _ref("WorkerInfo")},
        preparations={
            "type": "array",
            "items": _ref("Preparation"),
            "description": "background preparations of trained models for backend=auto",
        },
    ),
    "PredictResponse": _object(
        ["task", "model", "backend", "imgsz", "images", "timing", "worker"],
        task=STRING,
        model=STRING,
        backend=_object(["name", "requested"], name=STRING, requested=STRING, report=OBJECT),
        imgsz=INTEGER,
        images={
            "type": "array",
            "items": _object(
                ["file", "width", "height", "detections"],
                file=STRING,
                width=INTEGER,
                height=INTEGER,
                detections={"type": "array", "items": OBJECT},
                task=STRING,
                classes={"type": "array", "items": OBJECT},
                pixel_map=OBJECT,
            ),
        },
        timing=_object(
            ["queue_ms", "preprocess_ms", "inference_ms", "postprocess_ms", "total_ms"],
            queue_ms=NUMBER,
            preprocess_ms=NUMBER,
            inference_ms=NUMBER,
            postprocess_ms=NUMBER,
            total_ms=NUMBER,
            worker_start_ms=NUMBER,
        ),
        worker=_ref("WorkerInfo"),
    ),
}
