"""The REST API described as OpenAPI 3; the job request schemas come from the validator's table."""

from __future__ import annotations

from typing import Any

from . import __version__
from .jobs.registry import STATUSES
from .jobs.schema import REQUIRED, SCHEMAS, Param

_JSON_TYPES = {int: "integer", float: "number", bool: "boolean", str: "string", list: "array"}
ERROR = {"$ref": "#/components/responses/Error"}


def _param_schema(param: Param) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": _JSON_TYPES[param.kind]}
    if param.low is not None:
        schema["minimum"] = param.low
    if param.high is not None:
        schema["maximum"] = param.high
    if param.choices is not None:
        schema["enum"] = list(param.choices)
    if param.kind is list:
        schema["items"] = {"type": "integer", "minimum": 0}
    return schema


def job_request_schemas() -> dict[str, Any]:
    """One request schema per job kind, built from the same table that validates requests."""
    schemas: dict[str, Any] = {}
    for kind, params in SCHEMAS.items():
        properties = {"kind": {"type": "string", "enum": [kind]}}
        properties.update({key: _param_schema(param) for key, param in params.items()})
        schemas[f"{kind.capitalize()}JobRequest"] = {
            "type": "object",
            "additionalProperties": False,
            "required": ["kind", *REQUIRED[kind]],
            "properties": properties,
        }
    return schemas


def _op(summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "responses": {**responses, "default": ERROR}, **extra}


def _ok(
    description: str, schema: dict[str, Any] | None = None, media: str = "application/json"
) -> dict[str, Any]:
    return {
        "description": description,
        "content": {media: {"schema": schema or {"type": "object"}}},
    }


def _path_param(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string"},
    }


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


JOB_ID = _path_param("job_id", "job id (12 hex digits)")
JOB = {"$ref": "#/components/schemas/Job"}
DATASET_NAME = _path_param("name", "dataset name (letters, digits, '_', '.', '-'; 1-64)")
DATASET = {"$ref": "#/components/schemas/Dataset"}


def dataset_paths() -> dict[str, Any]:
    """The ``/yolo/datasets`` routes."""
    return {
        "/yolo/datasets": {
            "get": _op(
                "Datasets with format, counts, status, size and source (built-in first)",
                {"200": _ok("the list", {"$ref": "#/components/schemas/DatasetList"})},
            ),
            "post": _op(
                "Upload a zip archive (streamed body, ?name=) or import a workspace zip or folder",
                {
                    "201": _ok("the dataset and its validation report", DATASET),
                    "409": {"description": "a dataset with this name exists or is arriving"},
                    "413": {"description": "over max_upload_bytes or an extraction limit"},
                    "415": {"description": "the body is not a zip archive"},
                },
                parameters=[
                    _query("name", "dataset name, for an archive upload",
                           {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"}),
                    _query("filename", "original file name, shown as the source",
                           {"type": "string"}),
                ],
                requestBody={
                    "required": True,
                    "content": {
                        "application/zip": {"schema": {"type": "string", "format": "binary"}},
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/DatasetImportRequest"}
                        },
                    },
                },
            ),
        },
        "/yolo/datasets/uploads": {
            "get": _op(
                "Uploads and imports in flight (bytes received, stage) and recently ended",
                {"200": _ok("the operations")},
            )
        },
        "/yolo/datasets/{name}": {
            "get": _op(
                "The dataset with its validation report",
                {"200": _ok("the dataset", DATASET)},
                parameters=[DATASET_NAME],
            ),
            "delete": _op(
                "Delete the dataset (409 while a queued or running job uses it)",
                {"204": {"description": "deleted"}},
                parameters=[DATASET_NAME],
            ),
        },
        "/yolo/datasets/{name}/samples": {
            "get": _op(
                "A few images with their boxes (pixels and normalised) and class names",
                {"200": _ok("the samples")},
                parameters=[
                    DATASET_NAME,
                    _query("split", "train, val or test (default val)",
                           {"type": "string", "enum": ["train", "val", "test"]}),
                    _query("count", "how many images (default 8)",
                           {"type": "integer", "minimum": 1, "maximum": 64}),
                    _query("seed", "which images (default 0)", {"type": "integer", "minimum": 0}),
                    _query("thumbnail", "inline JPEG thumbnails of this many pixels (0: none)",
                           {"type": "integer", "minimum": 0, "maximum": 1024}),
                ],
            )
        },
        "/yolo/datasets/{name}/files/{path}": {
            "get": _op(
                "An image, label or yaml file of the dataset",
                {
                    "200": {
                        "description": "the file",
                        "content": {"image/*": {}, "text/plain": {}},
                    }
                },
                parameters=[DATASET_NAME, _path_param("path", "path inside the dataset folder")],
            )
        },
    }


def lab_paths() -> dict[str, Any]:
    """The routes the JupyterLab front end uses besides jobs and accelerators."""
    return {
        "/yolo/workspace": {
            "get": _op(
                "The workspace's path relative to the server root (null when outside it)",
                {"200": _ok("the location", {
                    "type": "object",
                    "required": ["server_path"],
                    "properties": {"server_path": {"type": "string", "nullable": True}},
                })},
            )
        },
        "/yolo/notebooks/{name}": {
            "post": _op(
                "Copy a shipped example notebook (e.g. quickstart) into the workspace, or the "
                "server root when the workspace is outside it, never overwriting a file",
                {"201": _ok("the copy's path relative to the server root", {
                    "type": "object",
                    "required": ["name", "path"],
                    "properties": {"name": {"type": "string"}, "path": {"type": "string"}},
                })},
                parameters=[_path_param("name", "notebook name without .ipynb, e.g. quickstart")],
            )
        },
    }


DATASET_SCHEMAS: dict[str, Any] = {
    "DatasetImportRequest": {
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "path"],
        "properties": {
            "name": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"},
            "path": {"type": "string", "description": "workspace-relative .zip or folder"},
        },
    },
    "DatasetList": {
        "type": "object",
        "required": ["datasets"],
        "properties": {"datasets": {"type": "array", "items": DATASET}},
    },
    "Dataset": {
        "type": "object",
        "required": ["name", "status"],
        "properties": {
            "name": {"type": "string"},
            "builtin": {"type": "boolean"},
            "format": {"type": "string", "enum": ["yolo", "coco", "voc"]},
            "source": {"type": "string"},
            "created": {"type": "number"},
            "size": {"type": "integer"},
            "status": {"type": "string", "enum": ["ok", "has_errors", "preparing"]},
            "errors": {"type": "integer"},
            "warnings": {"type": "integer"},
            "classes": {"type": "integer"},
            "images": {"type": "integer"},
            "instances": {"type": "integer"},
            "splits": {"type": "object"},
            "notes": {"type": "array", "items": {"type": "string"}},
            "report": {"$ref": "#/components/schemas/DatasetReport"},
        },
    },
    "DatasetReport": {
        "type": "object",
        "properties": {
            "status": {"type": "string", "enum": ["ok", "has_errors"]},
            "splits": {"type": "object"},
            "class_histogram": {"type": "array", "items": {"type": "object"}},
            "box_sizes": {"type": "object"},
            "problem_counts": {"type": "object"},
            "problems": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["severity", "code", "message"],
                    "properties": {
                        "severity": {"type": "string", "enum": ["error", "warning"]},
                        "code": {"type": "string"},
                        "file": {"type": "string", "nullable": True},
                        "line": {"type": "integer", "nullable": True},
                        "message": {"type": "string"},
                    },
                },
            },
        },
    },
}


def build_spec() -> dict[str, Any]:
    """The OpenAPI 3 document of everything under ``/yolo/``."""
    requests = job_request_schemas()
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "jupyter-yolo",
            "version": __version__,
            "description": "Ultralytics YOLO jobs, datasets and accelerators in a Jupyter server. "
            "Authenticate with the server's token: 'Authorization: token <token>'.",
        },
        "security": [{"token": []}],
        "paths": {
            "/yolo/openapi.json": {"get": _op("This document", {"200": _ok("OpenAPI 3")})},
            "/yolo/accelerators": {
                "get": _op(
                    "Hardware report and recommendation (cached)",
                    {"200": _ok("the report")},
                    parameters=[_query("refresh", "1 probes again", {"type": "string"})],
                )
            },
            "/yolo/accelerators/usage": {
                "get": _op("Live CPU, memory and GPU utilisation", {"200": _ok("a reading")})
            },
            **dataset_paths(),
            **lab_paths(),
            "/yolo/models": {
                "get": _op(
                    "Models a job can use", {"200": _ok("architectures, weights, trained jobs")}
                )
            },
            "/yolo/jobs": {
                "get": _op("Jobs, newest first, and the queue", {"200": _ok("jobs and queue")}),
                "post": _op(
                    "Create a train, val, predict or export job",
                    {"201": _ok("the queued job", JOB)},
                    requestBody={
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        {"$ref": f"#/components/schemas/{n}"} for n in requests
                                    ],
                                    "discriminator": {"propertyName": "kind"},
                                }
                            }
                        },
                    },
                ),
            },
            "/yolo/jobs/{job_id}": {
                "get": _op("One job", {"200": _ok("the job", JOB)}, parameters=[JOB_ID])
            },
            "/yolo/jobs/{job_id}/stop": {
                "post": _op(
                    "Stop gracefully", {"202": _ok("the stopping job", JOB)}, parameters=[JOB_ID]
                )
            },
            "/yolo/jobs/{job_id}/resume": {
                "post": _op(
                    "Resume a stopped or interrupted training",
                    {"202": _ok("the queued job", JOB)},
                    parameters=[JOB_ID],
                )
            },
            "/yolo/jobs/{job_id}/events": {
                "get": _op(
                    "Events after a sequence number (long poll with timeout)",
                    {"200": _ok("events", {"$ref": "#/components/schemas/EventPage"})},
                    parameters=[
                        JOB_ID,
                        _query(
                            "after",
                            "return events with seq > after",
                            {"type": "integer", "minimum": 0},
                        ),
                        _query(
                            "limit",
                            "most events in one answer",
                            {"type": "integer", "minimum": 1, "maximum": 10000},
                        ),
                        _query(
                            "timeout",
                            "seconds to wait for a new event",
                            {"type": "integer", "minimum": 0, "maximum": 60},
                        ),
                    ],
                )
            },
            "/yolo/jobs/{job_id}/log": {
                "get": _op(
                    "Tail of the job's log",
                    {"200": _ok("log text", {"type": "string"}, "text/plain")},
                    parameters=[
                        JOB_ID,
                        _query(
                            "bytes",
                            "how many bytes from the end",
                            {"type": "integer", "minimum": 1},
                        ),
                    ],
                )
            },
            "/yolo/jobs/{job_id}/artifacts": {
                "get": _op("Result files", {"200": _ok("the list")}, parameters=[JOB_ID])
            },
            "/yolo/jobs/{job_id}/artifacts/{path}": {
                "get": _op(
                    "One result file",
                    {
                        "200": {
                            "description": "the file",
                            "content": {"application/octet-stream": {}},
                        }
                    },
                    parameters=[JOB_ID, _path_param("path", "path inside the job folder")],
                )
            },
        },
        "components": {
            "securitySchemes": {
                "token": {"type": "apiKey", "in": "header", "name": "Authorization"}
            },
            "responses": {
                "Error": _ok("an error a person can act on", {"$ref": "#/components/schemas/Error"})
            },
            "schemas": {
                **requests,
                **DATASET_SCHEMAS,
                "Error": {
                    "type": "object",
                    "required": ["message"],
                    "properties": {"message": {"type": "string"}, "reason": {"type": "string"}},
                },
                "Job": {
                    "type": "object",
                    "required": ["id", "kind", "status"],
                    "properties": {
                        "id": {"type": "string"},
                        "kind": {"type": "string", "enum": list(SCHEMAS)},
                        "status": {"type": "string", "enum": list(STATUSES)},
                        "progress": {"type": "object"},
                        "result": {"type": "object", "nullable": True},
                        "error": {"type": "string", "nullable": True},
                        "queue_position": {"type": "integer", "nullable": True},
                        "resumable": {"type": "boolean"},
                    },
                },
                "EventPage": {
                    "type": "object",
                    "required": ["events", "last_seq", "status", "more"],
                    "properties": {
                        "events": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/Event"},
                        },
                        "last_seq": {"type": "integer"},
                        "status": {"type": "string", "enum": list(STATUSES)},
                        "more": {"type": "boolean"},
                    },
                },
                "Event": {
                    "type": "object",
                    "required": ["seq", "time", "type"],
                    "properties": {
                        "seq": {"type": "integer", "minimum": 1},
                        "time": {"type": "number"},
                        "type": {
                            "type": "string",
                            "enum": [
                                "status",
                                "batch",
                                "epoch",
                                "log",
                                "artifact",
                                "warning",
                                "error",
                                "result",
                                "phase",
                            ],
                        },
                    },
                },
            },
        },
    }
