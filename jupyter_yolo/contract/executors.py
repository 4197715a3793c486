"""Where a job's runner runs: the executors, and what the server and a Ray node agree on.

``local`` runs the runner as a subprocess of the server's machine. ``ray`` submits the same
runner (``python -m jupyter_yolo.runner.ray_entry JOB_DIR MARKER``) to a Ray cluster through
Ray's Jobs API; the workspace is shared storage mounted at the same path on every node, so the
job folder contract (``job.json``, ``status.json``, ``events.jsonl``, ``stop``) is unchanged.
"""

from __future__ import annotations

from typing import Literal, TypedDict

Executor = Literal["local", "ray"]
EXECUTORS: tuple[Executor, ...] = ("local", "ray")
DEFAULT_EXECUTOR: Executor = "local"

RAY_VERSION = "2.60.0"
"""The one Ray version of client and cluster; the server refuses a cluster that runs another."""

SUBMISSION_PREFIX = "jupyter-yolo-"


def submission_id(job_id: str, attempt: int) -> str:
    """Ray's submission id of one attempt of a job (Ray keeps ids forever: one per attempt)."""
    return f"{SUBMISSION_PREFIX}{job_id}-{attempt}"


SHARED_MARKER_FILE = ".ray-marker"
"""Written into the job folder by the server before a Ray submission; it holds a random token
the entrypoint must read back, proving the node sees the server's workspace."""

WORKSPACE_NOT_SHARED_EXIT = 75
"""Exit status of the Ray entrypoint when the node cannot see the marker the server wrote."""

WORKSPACE_NOT_SHARED = "the workspace is not shared with the Ray node"
"""The message of a job that failed fast because the node does not see the workspace."""

RayJobStatus = Literal["PENDING", "RUNNING", "STOPPED", "SUCCEEDED", "FAILED"]
"""Ray's own job statuses (``ray.job_submission.JobStatus``)."""


class RayJobInfo(TypedDict):
    """What Ray's Jobs API says about one submission (the fields the server reads)."""

    submission_id: str
    status: RayJobStatus
    message: str
    error_type: str | None
    driver_exit_code: int | None
    driver_node_id: str | None
    start_time: int | None
    end_time: int | None


class ClusterNode(TypedDict):
    """One node of a Ray cluster, as the hardware report shows it."""

    node_id: str
    address: str
    head: bool
    state: str
    cpus: float
    gpus: float
    gpu_type: str | None
    memory_bytes: int
    resources: dict[str, float]
    """Custom resources (everything but CPU, GPU, memory, object store and node markers)."""


class ClusterUsage(TypedDict):
    """Cluster-wide totals of one resource: how much exists and how much is in use."""

    total: float
    used: float


class ClusterReport(TypedDict):
    """The Ray cluster behind the ``ray`` executor (``cluster`` in GET /yolo/accelerators)."""

    address: str
    reachable: bool
    ray_version: str | None
    version_ok: bool
    error: str | None
    """Why the cluster cannot take jobs (unreachable, another Ray version), or None."""
    nodes: list[ClusterNode]
    usage: dict[str, ClusterUsage]
    """Per resource name (``CPU``, ``GPU``, ``memory``, custom ones): total and in use."""
    gpu_types: dict[str, int]
    """GPUs by type across alive nodes (``{"H100": 8}``); ``unknown`` when Ray names none."""
