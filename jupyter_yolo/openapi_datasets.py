"""The OpenAPI section of the ``/yolo/datasets`` routes: paths and schemas.

Built from :mod:`.openapi`'s helpers; :func:`.openapi.build_spec` puts it in the document.
"""

from __future__ import annotations

from typing import Any

from .contract.tasks import TASK_NAMES
from .handlers.datasets import ARCHIVE_TYPES as ARCHIVE_MEDIA_TYPES
from .handlers.datasets import JSON_LIMIT as MAX_IMPORT_BODY
from .openapi import (
    DATASET_NAME_PATTERN,
    INTEGER,
    NUMBER,
    OBJECT,
    PATH_STRING,
    QUERY_TEXT,
    RELATIVE_PATH,
    STRING,
    _files,
    _int,
    _json,
    _nullable,
    _object,
    _ok,
    _op,
    _path_param,
    _query,
    _ref,
)

DATASET_NAME_PARAM = _path_param(
    "name",
    "dataset name (a letter or digit, then letters, digits, '_', '.', '-'; 64 at most)",
    {"type": "string", "pattern": DATASET_NAME_PATTERN},
)


#: What a dataset's file is served as (``handlers.datasets``).
DATASET_FILE_TYPES = ("image/*", "text/plain", "application/json", "application/octet-stream")


#: Content types an archive upload may declare.
ARCHIVE_TYPES = tuple(sorted(ARCHIVE_MEDIA_TYPES))


def dataset_paths(max_upload_bytes: int) -> dict[str, Any]:
    """The ``/yolo/datasets`` routes."""
    archive = {
        "type": "string",
        "format": "binary",
        "maxLength": max_upload_bytes,
        "description": f"a zip archive of {max_upload_bytes} bytes at most, streamed to disk",
    }
    return {
        "/yolo/datasets": {
            "get": _op(
                "Datasets with format, counts, status, size and source (built-in first)",
                {"200": _ok("the list", _ref("DatasetList"))},
            ),
            "post": _op(
                "Upload a zip archive (the body, with ?name=) or import a workspace zip or "
                "folder (a JSON body, without ?name=)",
                {"201": _ok("the dataset and its validation report", _ref("Dataset"))},
                ("404", "409", "415", "507"),
                parameters=[
                    _query(
                        "name",
                        "dataset name, for an archive upload (a JSON body must come without it)",
                        {"type": "string", "pattern": DATASET_NAME_PATTERN},
                    ),
                    _query("filename", "original file name, shown as the source", QUERY_TEXT),
                    _query(
                        "task",
                        "force the dataset's task (otherwise told from its contents); one that "
                        "contradicts the contents is a 400",
                        {"type": "string", "enum": list(TASK_NAMES)},
                    ),
                ],
                requestBody={
                    "required": True,
                    "content": {
                        **{media: {"schema": archive} for media in ARCHIVE_TYPES},
                        **_json(_ref("DatasetImportRequest")),
                    },
                },
            ),
        },
        "/yolo/datasets/uploads": {
            "get": _op(
                "Uploads and imports in flight (bytes received, stage) and recently ended",
                {"200": _ok("the operations", _ref("DatasetOperations"))},
            )
        },
        "/yolo/datasets/{name}": {
            "get": _op(
                "The dataset with its validation report",
                {"200": _ok("the dataset", _ref("Dataset"))},
                ("404", "409"),
                parameters=[DATASET_NAME_PARAM],
            ),
            "delete": _op(
                "Delete the dataset (409 while a queued or running job uses it)",
                {"204": {"description": "deleted"}},
                ("404", "409"),
                parameters=[DATASET_NAME_PARAM],
            ),
        },
        "/yolo/datasets/{name}/samples": {
            "get": _op(
                "A few images with their boxes (pixels and normalised) and class names",
                {"200": _ok("the samples", _ref("DatasetSamples"))},
                ("404", "409"),
                parameters=[
                    DATASET_NAME_PARAM,
                    _query(
                        "split",
                        "train, val or test (default val)",
                        {"type": "string", "enum": ["train", "val", "test"]},
                    ),
                    _query("count", "how many images (default 8)", _int(1, 64)),
                    _query("seed", "which images (default 0)", _int(0, 2**31 - 1)),
                    _query(
                        "thumbnail",
                        "inline JPEG thumbnails of this many pixels (default 0: none)",
                        _int(0, 1024),
                    ),
                ],
            )
        },
        "/yolo/datasets/{name}/files/{path}": {
            "get": _op(
                "An image, label or yaml/json file of the dataset",
                {"200": _files("the file", DATASET_FILE_TYPES)},
                ("404", "409"),
                parameters=[DATASET_NAME_PARAM, RELATIVE_PATH],
            )
        },
    }


DATASET_SCHEMAS: dict[str, Any] = {
    "DatasetImportRequest": {
        "type": "object",
        "additionalProperties": False,
        "description": f"a JSON object of {MAX_IMPORT_BODY} bytes at most: an import "
        f"('name' and 'path', optionally 'task'), or a synthetic dataset ('synthetic', "
        f"optionally 'name')",
        "properties": {
            "name": {"type": "string", "pattern": DATASET_NAME_PATTERN},
            "path": {**PATH_STRING, "description": "workspace-relative .zip or folder"},
            "task": {
                "type": "string",
                "enum": list(TASK_NAMES),
                "description": "force the task (otherwise told from the contents)",
            },
            "synthetic": {
                "type": "string",
                "enum": list(TASK_NAMES),
                "description": "generate this task's built-in synthetic dataset (name defaults "
                "to its synthetic name, e.g. shapes-seg)",
            },
        },
    },
    "DatasetList": _object(
        ["datasets"],
        datasets={"type": "array", "items": _ref("Dataset")},
        warnings={
            "type": "array",
            "items": STRING,
            "description": "entries of datasets/ that were left out (links, bad names ...)",
        },
    ),
    "Dataset": _object(
        ["name", "status"],
        name=STRING,
        builtin={"type": "boolean"},
        format={"type": "string", "enum": ["yolo", "coco", "voc", "class-folders", "dota"]},
        task={"type": "string", "enum": list(TASK_NAMES)},
        task_source=_nullable(STRING),
        source=STRING,
        created=NUMBER,
        size=INTEGER,
        status={"type": "string", "enum": ["ok", "has_errors", "preparing"]},
        errors=INTEGER,
        warnings=INTEGER,
        classes=INTEGER,
        images=INTEGER,
        instances=INTEGER,
        splits=OBJECT,
        notes={"type": "array", "items": STRING},
        report=_ref("DatasetReport"),
    ),
    "DatasetReport": {
        "type": "object",
        "properties": {
            "status": {"type": "string", "enum": ["ok", "has_errors"]},
            "task": {"type": "string", "enum": list(TASK_NAMES)},
            "task_source": STRING,
            "task_stats": _nullable(OBJECT),
            "splits": OBJECT,
            "class_histogram": {"type": "array", "items": OBJECT},
            "box_sizes": OBJECT,
            "problem_counts": OBJECT,
            "problems": {
                "type": "array",
                "items": _object(
                    ["severity", "code", "message"],
                    severity={"type": "string", "enum": ["error", "warning"]},
                    code=STRING,
                    file=_nullable(STRING),
                    line=_nullable(INTEGER),
                    message=STRING,
                ),
            },
        },
    },
    "DatasetOperations": _object(
        ["uploads", "recent", "max_upload_bytes"],
        uploads={"type": "array", "items": _ref("DatasetOperation")},
        recent={"type": "array", "items": _ref("DatasetOperation")},
        max_upload_bytes=INTEGER,
    ),
    "DatasetOperation": _object(
        ["id", "name", "kind", "stage"],
        id=STRING,
        name=STRING,
        kind=STRING,
        source=_nullable(STRING),
        stage=STRING,
        bytes_received=_nullable(INTEGER),
        bytes_total=_nullable(INTEGER),
        stage_done=_nullable(INTEGER),
        stage_total=_nullable(INTEGER),
        stage_fraction=_nullable(NUMBER),
        started=_nullable(NUMBER),
    ),
    "DatasetSamples": _object(
        ["name", "split", "samples"],
        name=STRING,
        task={"type": "string", "enum": list(TASK_NAMES)},
        split={"type": "string", "enum": ["train", "val", "test"]},
        images_in_split=INTEGER,
        names=OBJECT,
        samples={
            "type": "array",
            "items": _object(
                ["path", "boxes"],
                path=STRING,
                url=_nullable(STRING),
                width=_nullable(INTEGER),
                height=_nullable(INTEGER),
                thumbnail={"type": "string", "pattern": "^data:image/jpeg;base64,"},
                boxes={"type": "array", "items": OBJECT},
                polygons={"type": "array", "items": OBJECT, "description": "segment"},
                keypoints={"type": "array", "items": OBJECT, "description": "pose"},
                corners={"type": "array", "items": OBJECT, "description": "obb"},
                class_id=_nullable(INTEGER),
                class_name=_nullable(STRING),
                overlay=_nullable({"type": "string", "pattern": "^data:image/png;base64,"}),
            ),
        },
    ),
}
