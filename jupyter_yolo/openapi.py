"""The REST API described as OpenAPI 3: routes, real bounds, content types and error codes.

What can be generated is generated from the tables the server validates with: the job request
schemas from :data:`jupyter_yolo.jobs.schema.SCHEMAS` (types, minimum / maximum, enums, the
device and dataset-name patterns), the statuses from the registry, the backends from the
inference module, the notebook name from :mod:`jupyter_yolo.notebooks`. The few checks a
``Param`` runs as code (``imgsz`` a multiple of 32, a job ``name`` of 1 to 100 characters,
``classes`` indices) are stated in :data:`PARAM_EXTRAS`; ``tests/test_openapi.py`` checks every
bound against the validator, and ``tests/test_api_fuzz.py`` fuzzes a real server with this
document.

Errors are JSON objects ``{"message", "reason", "details"?}`` with the codes each operation lists:
400 bad input (including text with control characters or lone surrogates, ``NaN`` or
``Infinity``, JSON nested deeper than 32 levels), 403 no or a wrong token, 404 no such thing,
409 a state that forbids the action, 413 a body over its limit (1 MiB for JSON; the upload limit
for archives), 415 a body of the wrong type, 502/504 a failed or slow hardware probe, 507 a full
disk.
"""

from __future__ import annotations

from typing import Any

from . import __version__
from .contract.executors import EXECUTORS
from .contract.status import KINDS as JOB_KINDS
from .contract.status import STATUSES
from .contract.tasks import TASK_NAMES
from .handlers.base import MAX_JSON_BODY, MAX_QUERY_BYTES
from .inference.backends import BACKEND_CHOICES
from .jobs.placement import (
    ACCELERATOR_NAME,
    MAX_CUSTOM_RESOURCES,
    MAX_RESOURCE_AMOUNT,
    RESOURCE_NAME,
)
from .jobs.schema import (
    DATASET_NAME,
    DEVICE,
    MAX_CLASSES,
    MAX_NAME_CHARS,
    REQUIRED,
    SCHEMAS,
    Param,
)
from .notebooks import NAME as NOTEBOOK_NAME
from .strict import MAX_JSON_DEPTH, MAX_PATH_BYTES

_JSON_TYPES = {int: "integer", float: "number", bool: "boolean", str: "string", list: "array"}

#: Largest dataset archive by default (``YoloApp.max_upload_bytes``).
DEFAULT_MAX_UPLOAD_BYTES = 2 * 1024**3
#: No C0 or C1 control character (lone surrogates are refused too; JSON Schema cannot say so).
TEXT_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*$"
#: At least one character that is neither a space nor a control character.
NOT_BLANK_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
JOB_ID_PATTERN = r"^[0-9a-f]{12}$"
#: Class indices of a predict job's ``classes`` (``jobs.schema._classes``).
MAX_CLASS_INDEX = 9999

#: What a ``Param``'s ``check`` function adds to the bounds of its table row, by key.
PARAM_EXTRAS: dict[str, dict[str, Any]] = {
    "name": {"minLength": 1, "maxLength": MAX_NAME_CHARS, "pattern": NOT_BLANK_PATTERN},
    "device": {
        "pattern": DEVICE.pattern,
        "description": "an ultralytics device that exists on this server (GET "
        "/yolo/accelerators lists them); an unknown one is refused with those it has",
    },
    "imgsz": {"multipleOf": 32},
    "classes": {
        "minItems": 1,
        "maxItems": MAX_CLASSES,
        "items": {"type": "integer", "minimum": 0, "maximum": MAX_CLASS_INDEX},
    },
    # batch 0 is no batch size: -1 is ultralytics' automatic batch
    "batch": {"not": {"enum": [0]}},
    # predict jobs on media (see jupyter_yolo.jobs.media_source and runner.throughput)
    "source": {
        "maxLength": MAX_PATH_BYTES,
        "pattern": TEXT_PATTERN,
        "description": "predict: a workspace-relative image, folder of images or video file "
        "(.mp4 .avi .mkv .webm .mov .m4v); a stream URL (rtsp, rtmp, http(s) MJPEG or HLS) "
        "whose host is listed in the server setting allowed_stream_sources (else 400); or a "
        "capture device /dev/videoN mapped into the container",
    },
    "track": {
        "description": "predict: follow objects across frames (ultralytics' trackers); "
        "each detection gets a track_id; frames go one by one"
    },
    "tracker": {"description": "predict with track: the tracker (ByteTrack or BoT-SORT)"},
    "save": {
        "description": "predict: write annotated output (default true): an H.264 mp4 "
        "for videos, streams and devices, annotated images for images and folders"
    },
    "vid_stride": {"description": "predict on videos and streams: every Nth frame"},
    "max_frames": {
        "description": "predict: stop (succeeded) after this many images or "
        "frames; a live stream otherwise runs until stopped"
    },
    "reconnects": {
        "description": "predict on streams and devices: reconnect attempts in a "
        "row before the job fails (default 5)"
    },
}
#: Strings without a tighter rule: workspace-relative paths, names and references.
PATH_STRING: dict[str, Any] = {
    "maxLength": MAX_PATH_BYTES,
    "pattern": TEXT_PATTERN,
}


def _regex(pattern: str) -> str:
    """A Python ``re`` pattern anchored the way JSON Schema reads it (a search, not a match)."""
    anchored = pattern if pattern.startswith("^") else "^" + pattern
    return anchored if anchored.endswith("$") else anchored + "$"


DATASET_NAME_PATTERN = _regex(DATASET_NAME.pattern)
NOTEBOOK_NAME_PATTERN = _regex(NOTEBOOK_NAME.pattern)


def param_schema(key: str, param: Param) -> dict[str, Any]:
    """The JSON Schema of one request key, from its validator table row."""
    schema: dict[str, Any] = {"type": _JSON_TYPES[param.kind]}
    if param.low is not None:
        schema["minimum"] = param.low
    if param.high is not None:
        schema["maximum"] = param.high
    if param.choices is not None:
        schema["enum"] = list(param.choices)
    if param.kind is list:
        schema["items"] = {"type": "integer", "minimum": 0}
    if param.kind is str and param.choices is None and key not in PARAM_EXTRAS:
        schema.update(PATH_STRING)
    extras = dict(PARAM_EXTRAS.get(key, {}))
    if "not" in extras and not (
        param.low is not None and param.high is not None and param.low <= 0 <= param.high
    ):
        del extras["not"]
    schema.update(extras)
    return schema


#: Where a job runs (jobs/placement.py): every job request may carry them.
PLACEMENT_PROPERTIES: dict[str, Any] = {
    "executor": {
        "type": "string",
        "enum": list(EXECUTORS),
        "description": "where the job runs (default: YoloApp.executor); 'ray' needs "
        "YoloApp.ray_address",
    },
    "resources": {
        "type": "object",
        "description": "Ray jobs: custom Ray resources and amounts the job needs (names "
        f"match {RESOURCE_NAME.pattern}; CPU, GPU and memory come from workers and device)",
        "maxProperties": MAX_CUSTOM_RESOURCES,
        "additionalProperties": {
            "type": "number",
            "minimum": 0,
            "maximum": MAX_RESOURCE_AMOUNT,
            "description": "above 0",
        },
    },
    "accelerator_type": {
        "type": "string",
        "description": "Ray jobs: the GPU type the node must have (Ray's accelerator_type)",
        "pattern": f"^{ACCELERATOR_NAME.pattern}$",
    },
}


REQUEST_KINDS = (*SCHEMAS, "tune")
"""Every job kind's request schema (a tune request: jupyter_yolo/openapi_tune.py)."""


def job_request_schemas() -> dict[str, Any]:
    """One request schema per job kind, built from the same table that validates requests."""
    schemas: dict[str, Any] = {}
    for kind, params in SCHEMAS.items():
        properties = {"kind": {"type": "string", "enum": [kind]}}
        properties.update({key: param_schema(key, param) for key, param in params.items()})
        properties.update(PLACEMENT_PROPERTIES)
        schemas[f"{kind.capitalize()}JobRequest"] = {
            "type": "object",
            "additionalProperties": False,
            "required": ["kind", *REQUIRED[kind]],
            "properties": properties,
        }
    from .openapi_tune import tune_request_schema  # it builds on this module

    schemas["TuneJobRequest"] = tune_request_schema(schemas["TrainJobRequest"])
    return schemas


# ---------------------------------------------------------------------------- building blocks

ERRORS = {
    "400": (
        "BadRequest",
        "Bad input: a value out of bounds, text with control characters or "
        "lone surrogates, NaN or Infinity, JSON nested too deeply, a path leaving the "
        "workspace. The message says which value and why.",
    ),
    "403": ("Forbidden", "No token, a wrong token, or a user not authorized for this resource."),
    "404": ("NotFound", "The named dataset, job, file or notebook does not exist."),
    "409": (
        "Conflict",
        "The thing exists but its state does not allow this (in use, arriving, "
        "not stoppable or resumable, already exists).",
    ),
    "413": (
        "PayloadTooLarge",
        f"The body is over its limit: {MAX_JSON_BODY} bytes for JSON "
        "(refused from its Content-Length before it is read); max_upload_bytes or an "
        "extraction limit for archives.",
    ),
    "415": ("UnsupportedMediaType", "The body's Content-Type is not one this operation takes."),
    "429": (
        "TooManyRequests",
        "Too many requests wait for the same inference worker (predict_queue_size); the "
        "answer has a Retry-After header.",
    ),
    "503": (
        "ServiceUnavailable",
        "An inference worker crashed, hung or could not start (it is restarted by the next "
        "request), all may-start workers are busy, or the server is shutting down; the "
        "answer has a Retry-After header when a retry can help.",
    ),
    "502": (
        "ProbeFailed",
        "The hardware probe subprocess crashed or printed something unreadable.",
    ),
    "504": ("ProbeTimeout", "The hardware probe subprocess did not answer within probe_timeout."),
    "507": ("InsufficientStorage", "The workspace's disk is full."),
}
#: Codes every operation can answer: bad query or path text, authentication, an oversize body.
COMMON_ERRORS = ("400", "403", "413")


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _op(
    summary: str,
    responses: dict[str, Any],
    errors: tuple[str, ...] = (),
    **extra: Any,
) -> dict[str, Any]:
    """An operation with its success responses and every error code it can answer."""
    codes = sorted({*COMMON_ERRORS, *errors})
    error_responses = {
        code: {"$ref": f"#/components/responses/{ERRORS[code][0]}"} for code in codes
    }
    return {"summary": summary, "responses": {**responses, **error_responses}, **extra}


def _ok(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, "content": _json(schema or {"type": "object"})}


def _files(description: str, media_types: tuple[str, ...]) -> dict[str, Any]:
    binary = {"type": "string", "format": "binary"}
    return {"description": description, "content": {m: {"schema": binary} for m in media_types}}


def _path_param(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": schema,
    }


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


def _int(low: int, high: int) -> dict[str, Any]:
    return {"type": "integer", "minimum": low, "maximum": high}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "nullable": True}


QUERY_TEXT = {"type": "string", "maxLength": MAX_QUERY_BYTES, "pattern": TEXT_PATTERN}
JOB_ID = _path_param(
    "job_id", "job id (12 lowercase hex digits)", {"type": "string", "pattern": JOB_ID_PATTERN}
)
RELATIVE_PATH = _path_param(
    "path",
    f"a relative path inside the folder: no '..', no leading '/', no backslash, no control "
    f"characters, {MAX_QUERY_BYTES} UTF-8 bytes at most",
    {"type": "string", "minLength": 1, "maxLength": MAX_QUERY_BYTES, "pattern": TEXT_PATTERN},
)
#: What a job's artifact is served as (``handlers.jobs.INLINE_TYPES`` or a download).
ARTIFACT_TYPES = (
    "image/png",
    "image/jpeg",
    "text/csv",
    "application/json",
    "text/plain",
    "application/octet-stream",
)


# ---------------------------------------------------------------------------- paths


def job_paths() -> dict[str, Any]:
    """The ``/yolo/jobs`` and ``/yolo/models`` routes."""
    job = _ref("Job")
    return {
        "/yolo/models": {
            "get": _op(
                "Models a job can use: architectures, weights, trained jobs, backends",
                {"200": _ok("the models", _ref("Models"))},
            )
        },
        "/yolo/tasks": {
            "get": _op(
                "The task profile table: each YOLO task's labels, metrics, losses, geometry, "
                "and the architectures the installed ultralytics offers",
                {"200": _ok("the task table", _ref("TaskTable"))},
            )
        },
        "/yolo/jobs": {
            "get": _op(
                "Jobs, newest first, and the queue",
                {"200": _ok("jobs and queue", _ref("JobList"))},
                parameters=[
                    _query(
                        "limit",
                        "only the newest N jobs and every job that has not ended (default: all)",
                        _int(1, 1_000_000),
                    )
                ],
            ),
            "post": _op(
                "Create a train, val, predict, export or tune job",
                {"201": _ok("the queued job", job)},
                ("415", "507"),
                requestBody={
                    "required": True,
                    "description": f"a JSON object of {MAX_JSON_BODY} bytes at most, nested "
                    f"{MAX_JSON_DEPTH} levels at most; no NaN or Infinity, no control "
                    "characters or lone surrogates in strings",
                    "content": _json(
                        {
                            "oneOf": [
                                _ref(f"{kind.capitalize()}JobRequest") for kind in REQUEST_KINDS
                            ],
                            "discriminator": {
                                "propertyName": "kind",
                                "mapping": {
                                    kind: f"#/components/schemas/{kind.capitalize()}JobRequest"
                                    for kind in REQUEST_KINDS
                                },
                            },
                        }
                    ),
                },
            ),
        },
        "/yolo/jobs/{job_id}": {
            "get": _op("One job", {"200": _ok("the job", job)}, ("404",), parameters=[JOB_ID])
        },
        "/yolo/jobs/{job_id}/stop": {
            "post": _op(
                "Stop gracefully (409 when the job has already ended)",
                {"202": _ok("the stopping job", job)},
                ("404", "409"),
                parameters=[JOB_ID],
            )
        },
        "/yolo/jobs/{job_id}/resume": {
            "post": _op(
                "Resume a stopped or interrupted training (409 for other jobs and states)",
                {"202": _ok("the queued job", job)},
                ("404", "409", "507"),
                parameters=[JOB_ID],
            )
        },
        "/yolo/jobs/{job_id}/events": {
            "get": _op(
                "Events after a sequence number (long poll with timeout)",
                {"200": _ok("events", _ref("EventPage"))},
                ("404",),
                parameters=[
                    JOB_ID,
                    _query("after", "return events with seq > after", _int(0, 2**62)),
                    _query("limit", "most events in one answer (default 1000)", _int(1, 10000)),
                    _query("timeout", "seconds to wait for a new event (default 0)", _int(0, 60)),
                    _query(
                        "status",
                        "the status last seen: the wait ends when the job's differs, and an "
                        "ended job is waited on too (without it an ended job answers at once)",
                        {"type": "string", "enum": list(STATUSES)},
                    ),
                ],
            )
        },
        "/yolo/jobs/{job_id}/log": {
            "get": _op(
                "Tail of the job's log",
                {
                    "200": {
                        "description": "log text (UTF-8)",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
                ("404",),
                parameters=[
                    JOB_ID,
                    _query(
                        "bytes", "how many bytes from the end (default 65536)", _int(1, 4 * 1024**2)
                    ),
                ],
            )
        },
        "/yolo/jobs/{job_id}/artifacts": {
            "get": _op(
                "Result files",
                {"200": _ok("the list", _ref("ArtifactList"))},
                ("404",),
                parameters=[JOB_ID],
            )
        },
        "/yolo/jobs/{job_id}/artifacts/{path}": {
            "get": _op(
                "One result file: images, CSV, JSON and text inline, anything else as an "
                "attachment (Content-Disposition)",
                {
                    "200": {
                        **_files("the file", ARTIFACT_TYPES),
                        "headers": {
                            "Content-Disposition": {
                                "description": 'attachment; filename="<ASCII stand-in>"; '
                                "filename*=UTF-8''<exact name, percent-encoded> (RFC 6266); "
                                "absent for inline types",
                                "schema": {"type": "string", "pattern": "^attachment"},
                            }
                        },
                    }
                },
                ("404",),
                parameters=[JOB_ID, RELATIVE_PATH],
            )
        },
    }


def lab_paths() -> dict[str, Any]:
    """The routes the JupyterLab front end uses besides jobs and accelerators."""
    return {
        "/yolo/workspace": {
            "get": _op(
                "The workspace's path relative to the server root (null when outside it)",
                {
                    "200": _ok(
                        "the location",
                        {
                            "type": "object",
                            "required": ["server_path"],
                            "properties": {"server_path": _nullable({"type": "string"})},
                        },
                    )
                },
            )
        },
        "/yolo/static/plotly-widget.js": {
            "get": _op(
                "plotly's FigureWidget front end (a JavaScript module), imported once per page "
                "by the panels' figures instead of travelling in each figure's state",
                {
                    "200": {
                        "description": "the module",
                        "content": {"text/javascript": {"schema": {"type": "string"}}},
                    }
                },
                ("404",),
                parameters=[
                    _query(
                        "v",
                        "plotly version the kernel has; another version than the server's is 404",
                        {"type": "string"},
                    )
                ],
            )
        },
        "/yolo/notebooks/{name}": {
            "post": _op(
                "Copy a shipped example notebook (e.g. quickstart) into the workspace, or the "
                "server root when the workspace is outside it, never overwriting a file",
                {
                    "201": _ok(
                        "the copy's path relative to the server root",
                        {
                            "type": "object",
                            "required": ["name", "path"],
                            "properties": {
                                "name": {"type": "string"},
                                "path": _nullable({"type": "string"}),
                            },
                        },
                    )
                },
                ("404", "409", "507"),
                parameters=[
                    _path_param(
                        "name",
                        "notebook name without .ipynb, e.g. quickstart",
                        {"type": "string", "pattern": NOTEBOOK_NAME_PATTERN},
                    )
                ],
            )
        },
    }


def accelerator_paths() -> dict[str, Any]:
    """The ``/yolo/accelerators`` routes."""
    return {
        "/yolo/accelerators": {
            "get": _op(
                "Hardware report and recommendation (cached; the first call probes), the "
                "executors a job may choose and, with YoloApp.ray_address set, the Ray cluster "
                "(nodes, CPUs, GPUs by type, use; an unreachable one shows its error)",
                {"200": _ok("the report", _ref("AcceleratorReport"))},
                ("502", "504"),
                parameters=[
                    _query(
                        "refresh",
                        "1, true, yes or on: probe again (a subprocess that imports torch)",
                        QUERY_TEXT,
                    )
                ],
            )
        },
        "/yolo/accelerators/usage": {
            "get": _op(
                "Live CPU, memory and GPU utilisation, and the Ray cluster's free and used "
                "resources when one is configured",
                {"200": _ok("a reading", _ref("Usage"))},
            )
        },
    }


# ---------------------------------------------------------------------------- schemas

NUMBER = {"type": "number"}
INTEGER = {"type": "integer"}
STRING = {"type": "string"}
OBJECT = {"type": "object"}


def _object(required: list[str], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties}


JOB_ACTIONS = {
    **_object(["stop", "resume"], stop={"type": "boolean"}, resume={"type": "boolean"}),
    "description": "whether POST .../stop and .../resume would be accepted now",
}

JOB_SCHEMAS: dict[str, Any] = {
    "Job": _object(
        ["id", "kind", "status"],
        id={"type": "string", "pattern": JOB_ID_PATTERN},
        kind={"type": "string", "enum": list(JOB_KINDS)},
        task={"type": "string", "enum": list(TASK_NAMES)},
        name=_nullable(STRING),
        status={"type": "string", "enum": list(STATUSES)},
        request=OBJECT,
        model=_nullable(STRING),
        data=_nullable(STRING),
        devices={"type": "array", "items": STRING},
        created=_nullable(NUMBER),
        started=_nullable(NUMBER),
        ended=_nullable(NUMBER),
        attempts=INTEGER,
        queue_position=_nullable(INTEGER),
        progress=OBJECT,
        result=_nullable(OBJECT),
        error=_nullable(STRING),
        exit_reason=_nullable(STRING),
        executor={"type": "string", "enum": list(EXECUTORS)},
        ray=_nullable(
            {
                **_object(
                    ["submission_id", "status", "message", "node_id"],
                    submission_id=_nullable(STRING),
                    status=_nullable(STRING),
                    message=_nullable(STRING),
                    node_id=_nullable(STRING),
                ),
                "description": "a Ray job's submission and Ray's last word about it",
            }
        ),
        queue_reason={
            **_nullable(STRING),
            "description": "what a queued job waits for (for a Ray job: Ray's message)",
        },
        resumable={"type": "boolean"},
        actions=JOB_ACTIONS,
        folder=_nullable(STRING),
    ),
    "JobList": _object(
        ["jobs", "queue"],
        jobs={"type": "array", "items": _ref("Job")},
        queue={"type": "array", "items": {"type": "string", "pattern": JOB_ID_PATTERN}},
        total={"type": "integer", "minimum": 0, "description": "every job, listed or not"},
        max_jobs_per_device=INTEGER,
    ),
    "EventPage": _object(
        ["events", "last_seq", "status", "more"],
        id=STRING,
        events={"type": "array", "items": _ref("Event")},
        last_seq={"type": "integer", "minimum": 0},
        status={"type": "string", "enum": list(STATUSES)},
        actions=JOB_ACTIONS,
        more={"type": "boolean"},
    ),
    "Event": _object(
        ["seq", "time", "type"],
        seq={"type": "integer", "minimum": 1},
        time=NUMBER,
        type={
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
    ),
    "ArtifactList": _object(
        ["id", "artifacts"],
        id=STRING,
        artifacts={
            "type": "array",
            "items": _object(
                ["path", "size"],
                path=STRING,
                size=INTEGER,
                modified=NUMBER,
                type=_nullable(STRING),
            ),
        },
    ),
    "Models": _object(
        ["architectures", "weights", "trained", "backends"],
        architectures={"type": "array", "items": STRING},
        weights={
            "type": "array",
            "items": _object(
                ["model", "task"],
                model=STRING,
                task={"type": "string", "enum": list(TASK_NAMES)},
                size=INTEGER,
            ),
        },
        trained={
            "type": "array",
            "items": _object(
                ["model", "job", "task"],
                model=STRING,
                job=STRING,
                task={"type": "string", "enum": list(TASK_NAMES)},
                dataset={"type": "string", "nullable": True},
                metric={"type": "string", "nullable": True, "description": "headline metric key"},
                metric_label={"type": "string", "nullable": True},
                metric_value={
                    "type": "number",
                    "nullable": True,
                    "description": "the headline metric of the final validation (best.pt)",
                },
                higher_is_better={"type": "boolean"},
                created={"type": "string", "nullable": True, "format": "date-time"},
                ended={"type": "string", "nullable": True, "format": "date-time"},
            ),
        },
        backends={
            "type": "array",
            "items": _object(["name"], name={"type": "string", "enum": [*BACKEND_CHOICES]}),
        },
    ),
    "TaskTable": _object(
        ["tasks", "architectures", "default", "ultralytics"],
        tasks={
            "type": "array",
            "items": _object(
                ["name", "title", "model_suffix", "metric_keys", "loss_keys", "headline_metric"],
                name={"type": "string", "enum": list(TASK_NAMES)},
                title=STRING,
                model_suffix=STRING,
                label_format=STRING,
                required_keys={"type": "array", "items": STRING},
                metric_keys={"type": "array", "items": STRING},
                loss_keys={"type": "array", "items": STRING},
                headline_metric=STRING,
                geometry=STRING,
                agreement=OBJECT,
                trains_offline={"type": "boolean"},
                offline_note=STRING,
                label_line=STRING,
                optional_keys={"type": "array", "items": STRING},
                layouts={"type": "array", "items": STRING},
                higher_is_better={"type": "boolean"},
            ),
        },
        architectures={
            "type": "array",
            "items": _object(
                ["name", "task", "family"],
                name=STRING,
                task={"type": "string", "enum": list(TASK_NAMES)},
                family=STRING,
                scale=_nullable(STRING),
                file=STRING,
            ),
        },
        default=STRING,
        ultralytics=_nullable(STRING),
        metric_labels={
            "type": "object",
            "description": "short label of each metric key (metrics/mAP50-95(M): mask mAP50-95)",
            "additionalProperties": STRING,
        },
        statuses=_object(
            ["all", "terminal", "active", "unfinished"],
            **{
                group: {"type": "array", "items": {"type": "string", "enum": list(STATUSES)}}
                for group in ("all", "terminal", "active", "unfinished")
            },
        ),
    ),
}

HOST_SCHEMAS: dict[str, Any] = {
    "AcceleratorReport": _object(
        ["host", "torch", "devices", "primary", "recommendation", "warnings"],
        host=OBJECT,
        torch=_nullable(OBJECT),
        devices=OBJECT,
        unusable_device_nodes={"type": "array"},
        primary=_object(["kind", "label"], kind=STRING, label=STRING),
        recommendation=OBJECT,
        warnings={"type": "array", "items": _object(["message"], message=STRING)},
        probe=OBJECT,
        generated_at=_nullable(STRING),
        executors=_ref("Executors"),
        cluster={"allOf": [_ref("ClusterReport")], "nullable": True},
    ),
    "Usage": _object(
        ["time", "cpu", "memory"],
        time=NUMBER,
        cpu=OBJECT,
        memory=OBJECT,
        cluster={"allOf": [_ref("ClusterUsage")], "nullable": True},
    ),
}


RETRY_AFTER = {
    "headers": {
        "Retry-After": {
            "description": "seconds after which the request may be retried",
            "schema": {"type": "integer", "minimum": 0},
        }
    }
}


def build_spec(*, max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES) -> dict[str, Any]:
    """The OpenAPI 3 document of everything under ``/yolo/`` (the server's own limits)."""
    from .openapi_cluster import CLUSTER_SCHEMAS
    from .openapi_datasets import DATASET_SCHEMAS, dataset_paths  # they build on this module
    from .openapi_predict import PREDICT_SCHEMAS, predict_paths
    from .openapi_results import RESULTS_SCHEMAS, results_paths
    from .openapi_tune import TUNE_SCHEMAS

    requests = job_request_schemas()
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "jupyter-yolo",
            "version": __version__,
            "description": (__doc__ or "").split("\n\n", 1)[0]
            + " Authenticate with the server's token: 'Authorization: token <token>'. "
            "Errors are JSON objects with a 'message' a person can act on, a 'reason' (the "
            "error's class) and, for some, 'details'.",
        },
        "security": [{"token": []}],
        "paths": {
            "/yolo/openapi.json": {"get": _op("This document", {"200": _ok("OpenAPI 3")})},
            **accelerator_paths(),
            **dataset_paths(max_upload_bytes),
            **lab_paths(),
            **job_paths(),
            **predict_paths(),
            **results_paths(),
        },
        "components": {
            "securitySchemes": {
                "token": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "'token <the server's token>'",
                }
            },
            "responses": {
                name: {
                    "description": description,
                    "content": _json(_ref("Error")),
                    **(RETRY_AFTER if name in ("TooManyRequests", "ServiceUnavailable") else {}),
                }
                for name, description in ERRORS.values()
            },
            "schemas": {
                **requests,
                **DATASET_SCHEMAS,
                **JOB_SCHEMAS,
                **HOST_SCHEMAS,
                **CLUSTER_SCHEMAS,
                **PREDICT_SCHEMAS,
                **RESULTS_SCHEMAS,
                **TUNE_SCHEMAS,
                "Error": {
                    "type": "object",
                    "required": ["message", "reason"],
                    "properties": {
                        "message": {"type": "string", "minLength": 1},
                        "reason": {"type": "string"},
                        "details": {"type": "object"},
                    },
                },
            },
        },
    }
