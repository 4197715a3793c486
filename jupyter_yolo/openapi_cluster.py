"""The OpenAPI section of the Ray cluster in ``GET /yolo/accelerators`` and its usage route.

Built from :mod:`.openapi`'s helpers; :func:`.openapi.build_spec` puts the schemas in the
document. The shapes are :mod:`jupyter_yolo.contract.executors`'s ``ClusterReport`` and
:mod:`jupyter_yolo.accelerators.cluster`'s ``ExecutorsReport`` and ``ClusterLiveUsage``.
"""

from __future__ import annotations

from typing import Any

from .contract.executors import EXECUTORS
from .openapi import NUMBER, STRING, _nullable, _object, _ref

AMOUNTS = {"type": "object", "additionalProperties": NUMBER}
COUNTS = {"type": "object", "additionalProperties": {"type": "integer"}}
NULLABLE_STRING = _nullable(STRING)
EXECUTOR = {"type": "string", "enum": list(EXECUTORS)}
BOOLEAN = {"type": "boolean"}


def _use(description: str) -> dict[str, Any]:
    return {
        **_object(["total", "used", "free"], total=NUMBER, used=NUMBER, free=NUMBER),
        "description": description,
    }


CLUSTER_SCHEMAS: dict[str, Any] = {
    "Executors": {
        **_object(
            ["available", "default"],
            available={"type": "array", "items": EXECUTOR},
            default=EXECUTOR,
        ),
        "description": "the executors a job request may choose ('executor') and the default",
    },
    "ClusterNode": _object(
        ["node_id", "address", "head", "state", "cpus", "gpus", "gpu_type", "resources"],
        node_id=STRING,
        address={**STRING, "description": "the node's IP address"},
        head=BOOLEAN,
        state={**STRING, "description": "Ray's node state: ALIVE or DEAD"},
        cpus=NUMBER,
        gpus=NUMBER,
        gpu_type=NULLABLE_STRING,
        memory_bytes={"type": "integer"},
        resources={**AMOUNTS, "description": "custom resources (e.g. an accelerator type)"},
    ),
    "ClusterReport": {
        **_object(
            ["address", "reachable", "version_ok", "error", "nodes", "usage", "gpu_types"],
            address={**STRING, "description": "the head's Jobs API URL (YoloApp.ray_address)"},
            reachable=BOOLEAN,
            ray_version=NULLABLE_STRING,
            version_ok=BOOLEAN,
            error={
                **NULLABLE_STRING,
                "description": "why the cluster cannot take jobs (unreachable, another Ray "
                "version), or null",
            },
            nodes={"type": "array", "items": _ref("ClusterNode")},
            usage={
                "type": "object",
                "additionalProperties": _object(["total", "used"], total=NUMBER, used=NUMBER),
                "description": "per resource name (CPU, GPU, memory, custom ones)",
            },
            gpu_types={**COUNTS, "description": "GPUs by type across alive nodes"},
        ),
        "description": "the Ray cluster of the ray executor; null when no cluster is configured",
    },
    "ClusterUsage": {
        **_object(
            [
                "address",
                "reachable",
                "error",
                "nodes",
                "cpu",
                "gpu",
                "gpu_types",
                "resources",
                "members",
            ],
            address=STRING,
            reachable=BOOLEAN,
            error=NULLABLE_STRING,
            nodes={"type": "integer", "description": "alive nodes"},
            cpu=_use("CPUs across the cluster"),
            gpu=_use("GPUs across the cluster"),
            gpu_types={**COUNTS, "description": "GPUs by type across alive nodes"},
            resources={
                "type": "object",
                "additionalProperties": _use("one custom resource"),
            },
            members={"type": "array", "items": _ref("ClusterNode")},
        ),
        "description": "the Ray cluster's free and used resources now; null without a cluster",
    },
}
