"""What the benchmark sections share: statistics, a keep-alive REST client, the thread settings,
a server on a generated workspace and the facts of the machine.

Nothing here imports torch or ultralytics: the sections that measure servers and jobs keep the
benchmark process itself light, so it does not compete with what it measures.
"""

from __future__ import annotations

import contextlib
import http.client
import importlib.metadata
import json
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

Log = Callable[[str], None]
"""How a section reports progress: one line of text at a time."""

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
TERMINAL = frozenset({"succeeded", "failed", "stopped", "interrupted"})


# --------------------------------------------------------------------------------- statistics


def median(values: Iterable[float]) -> float:
    """The median (NaN for no values)."""
    data = list(values)
    return statistics.median(data) if data else math.nan


def percentile(values: Iterable[float], q: float) -> float:
    """The q-th percentile (0-100), linear between the closest ranks (NaN for no values)."""
    data = sorted(values)
    if not data:
        return math.nan
    pos = (len(data) - 1) * q / 100
    low = math.floor(pos)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (pos - low)


def rounded(value: float | None, digits: int = 3) -> float | None:
    """``value`` rounded, or None when it is missing or not finite (JSON has no NaN)."""
    if value is None or not math.isfinite(value):
        return None
    return round(value, digits)


def summary(values: list[float], digits: int = 3, scale: float = 1.0) -> dict[str, Any]:
    """Median, p95, p99, min, max and count of ``values`` (each multiplied by ``scale``)."""
    data = [v * scale for v in values]
    return {
        "median": rounded(median(data), digits),
        "p95": rounded(percentile(data, 95), digits),
        "p99": rounded(percentile(data, 99), digits),
        "min": rounded(min(data), digits) if data else None,
        "max": rounded(max(data), digits) if data else None,
        "count": len(data),
    }


# --------------------------------------------------------------------------------- environment


def thread_env(cpus: int) -> dict[str, str]:
    """OpenMP/MKL/OpenBLAS thread counts: the values in the environment, else ``cpus``.

    The job runner keeps explicit values and otherwise uses the CPUs usable under the cgroup
    quota; ``import ultralytics`` alone would set ``OMP_NUM_THREADS=1``. Giving both sides of a
    comparison these explicit values makes them run with the same threads.
    """
    return {name: os.environ.get(name) or str(cpus) for name in THREAD_VARS}


@contextlib.contextmanager
def environ(overrides: Mapping[str, str | None]) -> Iterator[None]:
    """Set (or, with None, remove) environment variables for the block, then restore them."""
    saved = {name: os.environ.get(name) for name in overrides}
    try:
        for name, value in overrides.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def usable_cpus() -> int:
    """CPUs usable under the affinity mask and the cgroup quota (as the runner counts them)."""
    from jupyter_yolo.runner.resources import usable_cpus as runner_cpus

    return runner_cpus()


def loadavg() -> list[float]:
    """The 1, 5 and 15 minute load averages (empty where /proc/loadavg is missing)."""
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except (OSError, ValueError):
        return []


def cpu_times() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs from /proc/stat (zeros where it is missing)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return 0.0, 0.0
    values = [float(x) for x in fields]
    idle = values[3] + (values[4] if len(values) > 4 else 0.0)  # idle + iowait
    total = sum(values[:8])  # guest time is already counted in user
    return total - idle, total


def busy_percent(before: tuple[float, float], after: tuple[float, float]) -> float | None:
    """Share of all CPUs' time spent busy between two :func:`cpu_times` readings, in percent."""
    busy, total = after[0] - before[0], after[1] - before[1]
    return rounded(100 * busy / total, 1) if total > 0 else None


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_facts() -> dict[str, Any]:
    """CPU model, usable CPUs, memory and the versions that matter, without importing torch."""
    from jupyter_yolo.accelerators import host

    facts = host.read_host()
    return {
        "cpu_model": facts.get("cpu_model"),
        "cpu_count": facts.get("cpu_count"),
        "cpus_usable": facts.get("cpus_usable"),
        "cpu_quota": facts.get("cpu_quota"),
        "memory_effective_gb": rounded((facts.get("memory_effective_bytes") or 0) / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": {
            name: _version(name)
            for name in (
                "jupyter-yolo",
                "torch",
                "torchvision",
                "ultralytics",
                "jupyter_server",
                "jupyterlab",
                "onnxruntime",
                "openvino",
            )
        },
        "thread_env": {name: os.environ.get(name) for name in THREAD_VARS},
        "loadavg_at_start": loadavg(),
    }


# --------------------------------------------------------------------------------- REST


class RestError(RuntimeError):
    """A request answered with an HTTP error status."""

    def __init__(self, status: int, method: str, path: str, body: bytes) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {body[:500]!r}")
        self.status = status


class Rest:
    """A tiny JSON client on one keep-alive HTTP connection (one instance per thread).

    Keeping the connection open means a latency sample is the server's answer time plus the
    loopback round trip, without a TCP handshake and without urllib's per-request set-up.
    """

    def __init__(self, url: str, token: str, timeout: float = 120.0) -> None:
        self.host, _, port = url.removeprefix("http://").rstrip("/").partition(":")
        self.port = int(port or 80)
        self.token = token
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return self._conn

    def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """Send a request and return the decoded JSON answer (None for an empty body)."""
        payload = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"token {self.token}", "Connection": "keep-alive"}
        if payload is not None:
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            conn = self._connection()
            try:
                conn.request(method, path, body=payload, headers=headers)
                response = conn.getresponse()
                data = response.read()
            except (http.client.HTTPException, ConnectionError):
                self.close()  # the server closed an idle keep-alive connection: once more
                if attempt == 2:
                    raise
                continue
            if response.status >= 400:
                raise RestError(response.status, method, path, data)
            return json.loads(data) if data else None
        raise AssertionError("unreachable")

    def get(self, path: str) -> Any:
        """``GET path``."""
        return self.request("GET", path)

    def timed_get(self, path: str) -> float:
        """Seconds one ``GET path`` takes, the whole answer read."""
        started = time.perf_counter()
        self.request("GET", path)
        return time.perf_counter() - started


# --------------------------------------------------------------------------------- servers


def start_server(
    root: Path, workspace: Path, env: Mapping[str, str | None], extra_args: tuple[str, ...] = ()
) -> Any:
    """A started ``tests.server_process.ServerProcess`` whose environment has ``env`` on top.

    The generated workspace brings its own datasets, so the built-in one is not generated.
    """
    from tests.server_process import ServerProcess

    server = ServerProcess(
        root, workspace, extra_args=("--YoloApp.builtin_dataset=False", *extra_args)
    )
    with environ(env):  # the runners the server spawns inherit this environment
        server.start()
    return server


def make_shapes(workspace: Path, **kwargs: Any) -> Path:
    """The synthetic shapes dataset as ``workspace/datasets/shapes``; returns its data.yaml."""
    from jupyter_yolo.datasets.synthetic import generate_shapes

    dest = workspace / "datasets" / "shapes"
    if (dest / "data.yaml").is_file():
        return dest / "data.yaml"
    return generate_shapes(dest, **kwargs)


def follow_events(
    rest: Rest, job_id: str, *, timeout_s: float, poll_s: int = 30
) -> Iterator[tuple[dict[str, Any], float]]:
    """Long-poll a job's events; yield (event, wall-clock receipt time) until a terminal status.

    Raises ``TimeoutError`` after ``timeout_s`` seconds without a terminal status event.
    """
    after = 0
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        page = rest.get(f"/yolo/jobs/{job_id}/events?after={after}&timeout={poll_s}&limit=10000")
        received = time.time()
        for event in page["events"]:
            after = event["seq"]
            yield event, received
            if event.get("type") == "status" and event.get("status") in TERMINAL:
                return
    raise TimeoutError(f"job {job_id} did not end within {timeout_s:.0f} s")


def wait_registry_terminal(rest: Rest, job_id: str, timeout_s: float = 60.0) -> dict[str, Any]:
    """Poll ``GET /yolo/jobs/{id}`` every 20 ms until its status is terminal; return the job."""
    deadline = time.monotonic() + timeout_s
    while True:
        job: dict[str, Any] = rest.get(f"/yolo/jobs/{job_id}")
        if job["status"] in TERMINAL:
            return job
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} is still {job['status']} after {timeout_s:.0f} s")
        time.sleep(0.02)


def job_log_tail(workspace: Path, job_id: str, lines: int = 30) -> str:
    """The end of a job's log, for error messages."""
    path = workspace / "jobs" / job_id / "log.txt"
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def stderr_log(line: str) -> None:
    """The default progress log: a time-stamped line on stderr."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)
