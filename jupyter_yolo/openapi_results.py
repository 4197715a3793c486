"""The OpenAPI section of ``GET /yolo/jobs/{id}/results`` (a run's results): path and schemas.

Built from :mod:`.openapi`'s helpers; :func:`.openapi.build_spec` puts it in the document. The
shapes are :mod:`jupyter_yolo.contract.results`'s TypedDicts.
"""

from __future__ import annotations

from typing import Any

from .contract.results import CURVE_POINTS, MAX_VAL_IMAGES
from .jobs.results import MAX_USAGE_SAMPLES
from .openapi import INTEGER, JOB_ID, NUMBER, OBJECT, STRING, _nullable, _object, _ok, _op, _ref

NULLABLE_NUMBER = _nullable(NUMBER)
METRICS = {"type": "object", "additionalProperties": NULLABLE_NUMBER}


def results_paths() -> dict[str, Any]:
    """The ``/yolo/jobs/{job_id}/results`` route."""
    return {
        "/yolo/jobs/{job_id}/results": {
            "get": _op(
                "A run's results as far as they exist: best and last epoch, every epoch's "
                "metrics, system usage over the run and, once the final validation ran, the "
                "validator's per-class metrics, curves, confusion matrix and validation images",
                {"200": _ok("the run's results", _ref("RunResults"))},
                ("404",),
                parameters=[JOB_ID],
            )
        }
    }


def _list(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": schema}


RESULTS_SCHEMAS: dict[str, Any] = {
    "EpochSummary": _object(
        ["epoch", "metrics", "fitness", "time"],
        epoch=INTEGER,
        metrics=METRICS,
        fitness=NULLABLE_NUMBER,
        time=NUMBER,
        loss=METRICS,
        val_loss=_nullable(METRICS),
    ),
    "GpuUsage": _object(
        ["index", "name", "util_percent", "memory_used_bytes", "memory_total_bytes"],
        index=INTEGER,
        name=STRING,
        util_percent=NULLABLE_NUMBER,
        memory_used_bytes=_nullable(INTEGER),
        memory_total_bytes=_nullable(INTEGER),
    ),
    "UsageSample": _object(
        ["cpu_percent", "memory_bytes", "memory_limit_bytes", "gpus"],
        cpu_percent={**NULLABLE_NUMBER, "description": "share of the CPUs the container may use"},
        memory_bytes=_nullable(INTEGER),
        memory_limit_bytes=_nullable(INTEGER),
        gpus=_list(_ref("GpuUsage")),
        time=NUMBER,
    ),
    "ClassMetrics": _object(
        ["cls", "name", "images", "instances", "metrics"],
        cls=INTEGER,
        name=STRING,
        images=_nullable(INTEGER),
        instances=_nullable(INTEGER),
        metrics=METRICS,
    ),
    "Curve": _object(
        ["name", "kind", "x_label", "y_label", "x", "per_class", "mean"],
        name=STRING,
        kind={"type": "string", "description": "B (box), M (mask), P (pose)"},
        x_label=STRING,
        y_label=STRING,
        x={**_list(NUMBER), "maxItems": CURVE_POINTS},
        per_class={"type": "object", "additionalProperties": _list(NUMBER)},
        mean=_list(NUMBER),
    ),
    "ConfusionMatrix": _object(
        ["names", "matrix"],
        names=_list(STRING),
        matrix={**_list(_list(NUMBER)), "description": "matrix[predicted][true]"},
    ),
    "ValImage": _object(
        ["image", "width", "height", "truth", "predicted"],
        image={"type": "string", "description": "workspace-relative"},
        width=INTEGER,
        height=INTEGER,
        truth=_list(OBJECT),
        predicted=_list(OBJECT),
        truth_class=STRING,
        predicted_classes=_list(STRING),
    ),
    "ValidatorResults": _object(
        ["task", "names", "weights", "metrics", "per_class", "curves", "confusion", "val_images"],
        task=STRING,
        names=_list(STRING),
        weights=_nullable(STRING),
        metrics=METRICS,
        per_class=_list(_ref("ClassMetrics")),
        curves=_list(_ref("Curve")),
        confusion=_nullable(_ref("ConfusionMatrix")),
        val_images={**_list(_ref("ValImage")), "maxItems": MAX_VAL_IMAGES},
        speed_ms=METRICS,
    ),
    "RunResults": _object(
        [
            "job_id",
            "kind",
            "status",
            "task",
            "params",
            "headline",
            "best",
            "last",
            "epochs",
            "final",
            "usage",
        ],
        job_id=STRING,
        kind=STRING,
        status=STRING,
        task=STRING,
        name=_nullable(STRING),
        created=_nullable(NUMBER),
        started=_nullable(NUMBER),
        ended=_nullable(NUMBER),
        params=OBJECT,
        headline={"type": "string", "description": "the task's headline metric key"},
        best=_nullable(_ref("EpochSummary")),
        last=_nullable(_ref("EpochSummary")),
        epochs={"type": "integer", "description": "epochs planned"},
        final=_nullable(_ref("ValidatorResults")),
        usage={**_list(_ref("UsageSample")), "maxItems": MAX_USAGE_SAMPLES},
        history=_list(_ref("EpochSummary")),
        tune={
            **_nullable(_ref("TuneResult")),
            "description": "a tune job's trials table (absent for other kinds)",
        },
    ),
}
