"""Ray's Jobs API and cluster state over HTTP: the server's only way of talking to Ray.

The server never imports ``ray`` (it would start threads and gRPC in the Jupyter process and tie
the server to a Ray build); it speaks the dashboard's REST API with the standard library. Every
call blocks: callers run it in a worker thread, never on the event loop.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, cast

from ..contract.executors import (
    RAY_VERSION,
    ClusterNode,
    ClusterReport,
    ClusterUsage,
    RayJobInfo,
)

DEFAULT_TIMEOUT = 10.0
MAX_RESPONSE_BYTES = 16 * 2**20
#: Resource names that are Ray's own bookkeeping, not something a job asks for.
_BUILTIN_RESOURCES = ("CPU", "GPU", "memory", "object_store_memory", "objectStoreMemory")


class RayError(Exception):
    """Ray answered, but not as expected (a refused submission, a malformed answer)."""


class RayUnavailable(RayError):
    """The Ray head cannot be reached (down, wrong address, timeout)."""


class RayVersionMismatch(RayError):
    """The cluster runs another Ray version than the one this product pins."""


def check_address(address: str) -> str:
    """The Jobs API address without a trailing slash; refuse anything but a plain http(s) URL."""
    parsed = urllib.parse.urlsplit(address.strip())
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValueError(
            f"The Ray address must be the http(s) URL of the head's dashboard (Jobs API), e.g. "
            f"http://ray-head:8265, not {address!r}."
        )
    if parsed.username or parsed.password or parsed.query or parsed.fragment:
        raise ValueError(
            "The Ray address must be a plain http(s) URL: no credentials, query or fragment."
        )
    return address.strip().rstrip("/")


class RayJobsApi:
    """A client of one Ray head's Jobs API and state API."""

    def __init__(self, address: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.address = check_address(address)
        self.timeout = timeout

    # ------------------------------------------------------------------ transport

    def _request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        data = None if body is None else json.dumps(body, allow_nan=False).encode()
        request = urllib.request.Request(
            self.address + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.status, response.read(MAX_RESPONSE_BYTES)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(MAX_RESPONSE_BYTES)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise RayUnavailable(
                f"The Ray cluster at {self.address} cannot be reached ({reason})."
            ) from None

    def _transient(self, status: int, raw: bytes, what: str) -> None:
        """Raise :class:`RayUnavailable` for a 5xx answer.

        A head whose control store is reconnecting, or a proxy in front of it (502, 503, 504),
        answers again later.
        """
        if status >= 500:
            raise RayUnavailable(
                f"The Ray cluster at {self.address} answered {status} to {what} ({_text(raw)})."
            )

    def _json(self, method: str, path: str, body: Any = None) -> Any:
        status, raw = self._request(method, path, body)
        self._transient(status, raw, f"{method} {path}")
        if status >= 400:
            raise RayError(f"Ray answered {status} to {method} {path}: {_text(raw)}")
        try:
            return json.loads(raw)
        except ValueError:
            raise RayError(f"Ray's answer to {method} {path} is not JSON: {_text(raw)}") from None

    # ------------------------------------------------------------------ version

    def ray_version(self) -> str:
        """The Ray version the head runs."""
        answer = self._json("GET", "/api/version")
        version = answer.get("ray_version") if isinstance(answer, dict) else None
        if not isinstance(version, str):
            raise RayError(f"Ray's /api/version has no ray_version: {answer!r}")
        return version

    def check_version(self) -> str:
        """The head's Ray version; :class:`RayVersionMismatch` when it is not the pinned one."""
        version = self.ray_version()
        if version != RAY_VERSION:
            raise RayVersionMismatch(
                f"The Ray cluster at {self.address} runs Ray {version}, but jupyter-yolo runs "
                f"Ray {RAY_VERSION} (client and cluster must match): run the cluster from the "
                f"product's images or install ray=={RAY_VERSION} on its nodes."
            )
        return version

    # ------------------------------------------------------------------ jobs

    def submit(
        self,
        submission_id: str,
        entrypoint: str,
        *,
        env_vars: dict[str, str],
        num_cpus: float,
        num_gpus: float,
        resources: dict[str, float],
        metadata: dict[str, str],
    ) -> None:
        """Submit an entrypoint; a submission id Ray already has counts as submitted."""
        body: dict[str, Any] = {
            "entrypoint": entrypoint,
            "submission_id": submission_id,
            "runtime_env": {"env_vars": env_vars},
            "metadata": metadata,
            "entrypoint_num_cpus": num_cpus,
        }
        if num_gpus:
            body["entrypoint_num_gpus"] = num_gpus
        if resources:
            body["entrypoint_resources"] = resources
        status, raw = self._request("POST", "/api/jobs/", body)
        if status < 400:
            return
        if b"already exists" in raw and self.info(submission_id) is not None:
            return  # submitted before a crash of the server: the same attempt
        self._transient(status, raw, f"the submission of {submission_id}")
        raise RayError(f"Ray refused the job {submission_id}: {_text(raw)}")

    def info(self, submission_id: str) -> RayJobInfo | None:
        """Ray's view of a submission, or None when Ray does not know it."""
        status, raw = self._request("GET", f"/api/jobs/{urllib.parse.quote(submission_id)}")
        if status == 404:
            return None
        self._transient(status, raw, f"a question about job {submission_id}")
        if status >= 400:
            raise RayError(f"Ray answered {status} about job {submission_id}: {_text(raw)}")
        try:
            answer = json.loads(raw)
        except ValueError:
            raise RayError(f"Ray's answer about job {submission_id} is not JSON") from None
        return {
            "submission_id": str(answer.get("submission_id") or submission_id),
            "status": answer.get("status", "PENDING"),
            "message": str(answer.get("message") or ""),
            "error_type": answer.get("error_type"),
            "driver_exit_code": answer.get("driver_exit_code"),
            "driver_node_id": answer.get("driver_node_id"),
            "start_time": answer.get("start_time"),
            "end_time": answer.get("end_time"),
        }

    def stop(self, submission_id: str) -> bool:
        """Ask Ray to stop a submission (SIGTERM, then SIGKILL); whether Ray had it running."""
        status, raw = self._request("POST", f"/api/jobs/{urllib.parse.quote(submission_id)}/stop")
        if status == 404:
            return False
        self._transient(status, raw, f"the stop of {submission_id}")
        if status >= 400:
            raise RayError(f"Ray could not stop job {submission_id}: {_text(raw)}")
        try:
            return bool(json.loads(raw).get("stopped"))
        except (ValueError, AttributeError):
            return False

    def logs(self, submission_id: str) -> str:
        """The driver log Ray kept for a submission (empty when Ray has none)."""
        status, raw = self._request("GET", f"/api/jobs/{urllib.parse.quote(submission_id)}/logs")
        if status >= 400:
            return ""
        try:
            return str(json.loads(raw).get("logs") or "")
        except (ValueError, AttributeError):
            return ""

    # ------------------------------------------------------------------ cluster

    def nodes(self) -> list[ClusterNode]:
        """Every node the cluster knows, alive or dead, with its resources."""
        answer = self._json("GET", "/api/v0/nodes?limit=1000")
        rows = answer.get("data", {}).get("result", {}).get("result", [])
        return [_node(row) for row in rows if isinstance(row, dict)]

    def usage(self) -> dict[str, ClusterUsage]:
        """Cluster-wide total and used amount of each resource, from the autoscaler's report."""
        answer = self._json("GET", "/api/cluster_status")
        report = answer.get("data", {}).get("clusterStatus", {}).get("loadMetricsReport", {})
        found: dict[str, ClusterUsage] = {}
        for name, pair in (report.get("usage") or {}).items():
            if name.startswith("node:") or not isinstance(pair, list) or len(pair) != 2:
                continue
            found[name] = {"used": float(pair[0]), "total": float(pair[1])}
        return found

    def report(self) -> ClusterReport:
        """The cluster as the hardware report shows it; never raises."""
        result: ClusterReport = {
            "address": self.address,
            "reachable": False,
            "ray_version": None,
            "version_ok": False,
            "error": None,
            "nodes": [],
            "usage": {},
            "gpu_types": {},
        }
        try:
            result["ray_version"] = self.ray_version()
            result["reachable"] = True
            result["version_ok"] = result["ray_version"] == RAY_VERSION
            if not result["version_ok"]:
                try:
                    self.check_version()
                except RayVersionMismatch as exc:
                    result["error"] = str(exc)
            result["nodes"] = self.nodes()
            # the dashboard camelCases resource names in this report (jy_gpu -> jyGpu): give
            # the nodes' own names back
            names = {_camel(n): n for node in result["nodes"] for n in node["resources"]}
            result["usage"] = {names.get(k, k): v for k, v in self.usage().items()}
        except RayError as exc:
            result["error"] = result["error"] or str(exc)
        types: dict[str, int] = {}
        for node in result["nodes"]:
            if node["state"] == "ALIVE" and node["gpus"]:
                key = node["gpu_type"] or "unknown"
                types[key] = types.get(key, 0) + int(node["gpus"])
        result["gpu_types"] = types
        return result


def _node(row: dict[str, Any]) -> ClusterNode:
    total = {str(k): float(v) for k, v in (row.get("resources_total") or {}).items()}
    labels = cast(dict[str, str], row.get("labels") or {})
    gpu_type = labels.get("ray.io/accelerator-type")
    if gpu_type is None:
        gpu_type = next(
            (k.split(":", 1)[1] for k in total if k.startswith("accelerator_type:")), None
        )
    custom = {
        name: amount
        for name, amount in total.items()
        if name not in _BUILTIN_RESOURCES and not name.startswith(("node:", "accelerator_type:"))
    }
    return {
        "node_id": str(row.get("node_id", "")),
        "address": str(row.get("node_ip", "")),
        "head": bool(row.get("is_head_node")),
        "state": str(row.get("state", "")),
        "cpus": total.get("CPU", 0.0),
        "gpus": total.get("GPU", 0.0),
        "gpu_type": gpu_type,
        "memory_bytes": int(total.get("memory", 0.0)),
        "resources": custom,
    }


def _camel(name: str) -> str:
    """A resource name as Ray's dashboard writes it in /api/cluster_status (to_camel_case)."""
    first, *rest = name.split("_")
    return first + "".join(part.title() for part in rest)


def _text(raw: bytes) -> str:
    """A short, single-paragraph excerpt of an error answer (Ray sends Python tracebacks)."""
    text = raw.decode("utf-8", errors="replace").strip()
    lines = [line for line in text.splitlines() if line.strip()]
    # the last line of a traceback is the error itself
    last = lines[-1] if lines else ""
    for line in reversed(lines):
        if "Error:" in line or "Exception:" in line:
            last = line
            break
    return last[:500]
