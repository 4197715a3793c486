"""A real Ray cluster on this machine for tests: a head and worker nodes, started and ended here.

Each node is ``ray start --block`` in a session of its own, on free ports and a private temp
folder, so several clusters (other test sessions on the same machine) never meet, and stopping
one kills exactly its processes (``ray stop`` would kill every Ray process of the machine).
Use it through the session fixture ``ray_cluster``, which tests/conftest.py registers (do not
import it into a test module: a second definition would start a second cluster)::

    def test_x(ray_cluster: RayCluster) -> None:
        ray_cluster.address      # http://127.0.0.1:PORT, the Jobs API
        node = ray_cluster.worker("jy_worker")   # a worker with 1 of custom resource jy_worker
        node.kill()              # kill -9 the whole node, as a dead machine
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from jupyter_yolo.jobs.process import signal_session

RAY = str(Path(sys.executable).with_name("ray"))
START_TIMEOUT = 240.0  # a hang guard per attempt: a loaded 2-core machine took over 120 s
OBJECT_STORE_BYTES = 100 * 2**20
#: A node whose start fails is started again on fresh ports: on a loaded machine a raylet gives
#: up when its agents take over ~15 s to come up ("Timed out waiting for file ..."), and a port
#: picked free may be taken before Ray binds it.
START_ATTEMPTS = 3


class NodeStartFailed(RuntimeError):
    """``ray start`` ended or did not bring its node up in time."""


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _agent_ports() -> list[str]:
    """Fixed ports for a node's agents: with port 0 the raylet waits for the agent to write its
    port to a file and aborts after about 15 s, which a loaded 2-core machine overruns."""
    return [
        f"--dashboard-agent-grpc-port={free_port()}",
        f"--runtime-env-agent-port={free_port()}",
        f"--metrics-export-port={free_port()}",
    ]


def _kill_session(session_id: int) -> None:
    signal_session(session_id, signal.SIGKILL)


@dataclass
class RayNode:
    """One ``ray start --block`` process and its session."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    resources: dict[str, float] = field(default_factory=dict)

    @property
    def session(self) -> int:
        """The node's session id (the ``ray start`` process leads it)."""
        return self.process.pid

    def kill(self) -> None:
        """Kill -9 every process of the node at once, as when its machine dies."""
        _kill_session(self.session)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)

    def stop(self) -> None:
        """End the node: ``ray start --block`` ends its processes on SIGTERM; then kill the rest."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=20)
        self.kill()

    def log_text(self) -> str:
        """What ``ray start`` printed (for failure messages)."""
        try:
            return self.log.read_text(errors="replace")[-3000:]
        except OSError:
            return ""


@dataclass
class RayCluster:
    """A head node (2 CPUs) and the workers a test adds."""

    temp_dir: Path
    gcs_port: int
    dashboard_port: int
    head: RayNode | None = None
    workers: list[RayNode] = field(default_factory=list)

    @property
    def address(self) -> str:
        """The Jobs API (dashboard) URL: what ``YoloApp.ray_address`` takes."""
        return f"http://127.0.0.1:{self.dashboard_port}"

    def get(self, path: str) -> object:
        """GET a dashboard path as JSON."""
        with urllib.request.urlopen(self.address + path, timeout=10) as response:
            return json.loads(response.read())

    def alive_nodes(self) -> list[dict[str, object]]:
        """The nodes Ray reports alive."""
        try:
            answer = self.get("/api/v0/nodes?limit=1000")
        except OSError:
            return []
        rows = answer["data"]["result"]["result"] if isinstance(answer, dict) else []
        return [row for row in rows if row.get("state") == "ALIVE"]

    def _start(self, name: str, args: list[str], unshare_mount: Path | None = None) -> RayNode:
        log = self.temp_dir / f"{name}.log"
        command = [RAY, "start", *args, "--block", "--disable-usage-stats"]
        if unshare_mount is not None:
            # a node in a mount namespace of its own where the workspace folder is an empty
            # tmpfs: it does not see the server's files (an unshared workspace)
            script = 'mount -t tmpfs tmpfs "$1" && shift && exec "$@"'
            command = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
                       "sh", str(unshare_mount), *command]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        env["RAY_USAGE_STATS_ENABLED"] = "0"
        # a graceful SIGTERM gets time to save last.pt before Ray's SIGKILL
        env["RAY_JOB_STOP_WAIT_TIME_S"] = "30"
        # a loaded 2-core machine starts a raylet slowly (Ray's default wait is 30 s)
        env["RAY_raylet_start_wait_time_s"] = "180"
        with log.open("wb") as out:
            process = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=env,
                cwd=self.temp_dir,
            )
        return RayNode(name, process, log)

    def start_head(self) -> None:
        """Start the head (2 CPUs, the dashboard with the Jobs API on 127.0.0.1)."""
        for attempt in range(1, START_ATTEMPTS + 1):
            self.head = self._start(
                "head",
                [
                    "--head",
                    "--num-cpus=2",
                    f"--port={self.gcs_port}",
                    "--node-ip-address=127.0.0.1",
                    "--include-dashboard=true",
                    "--dashboard-host=127.0.0.1",
                    f"--dashboard-port={self.dashboard_port}",
                    f"--ray-client-server-port={free_port()}",
                    f"--dashboard-agent-listen-port={free_port()}",
                    *_agent_ports(),
                    f"--object-store-memory={OBJECT_STORE_BYTES}",
                    f"--temp-dir={self.temp_dir}",
                ],
            )
            try:
                self._wait_for_new_node(set(), self.head)
                return
            except NodeStartFailed:
                self.head.kill()
                if attempt == START_ATTEMPTS:
                    raise
                self.gcs_port, self.dashboard_port = free_port(), free_port()

    def worker(
        self,
        resource: str | None = None,
        *,
        num_cpus: int = 1,
        unshare_mount: Path | None = None,
    ) -> RayNode:
        """Join a worker node with ``num_cpus`` and one unit of ``resource``; wait until alive."""
        resources = {resource: 1.0} if resource else {}
        before = self.alive_ids()
        for attempt in range(1, START_ATTEMPTS + 1):
            node = self._start(
                f"worker{len(self.workers) + 1}",
                [
                    f"--address=127.0.0.1:{self.gcs_port}",
                    "--node-ip-address=127.0.0.1",
                    f"--num-cpus={num_cpus}",
                    f"--resources={json.dumps(resources)}",
                    f"--dashboard-agent-listen-port={free_port()}",
                    *_agent_ports(),
                    f"--object-store-memory={OBJECT_STORE_BYTES}",
                    f"--temp-dir={self.temp_dir}",
                ],
                unshare_mount=unshare_mount,
            )
            node.resources = resources
            try:
                self._wait_for_new_node(before, node)
            except NodeStartFailed:
                node.kill()
                if attempt == START_ATTEMPTS:
                    raise
                continue
            self.workers.append(node)
            return node
        raise AssertionError("unreachable")

    def alive_ids(self) -> set[str]:
        """Node ids Ray reports alive now."""
        return {str(row.get("node_id")) for row in self.alive_nodes()}

    def _wait_for_new_node(self, before: set[str], node: RayNode) -> None:
        """Wait until an alive node that was not in ``before`` appears (this one: the only one
        being started; a node stopped just before may still count as alive for a while)."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if node.process.poll() is not None:
                raise NodeStartFailed(f"ray start ({node.name}) ended:\n{node.log_text()}")
            if self.alive_ids() - before:
                return
            time.sleep(0.5)
        raise NodeStartFailed(
            f"the Ray node {node.name} was not alive after {START_TIMEOUT:.0f} s:\n"
            f"{node.log_text()}"
        )

    def wait_alive(self, count: int, timeout: float = 120.0) -> None:
        """Wait until Ray counts exactly ``count`` alive nodes (after a kill, a join)."""
        deadline = time.monotonic() + timeout
        while len(self.alive_nodes()) != count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"Ray did not reach {count} alive node(s) in {timeout:.0f} s")
            time.sleep(0.5)

    def stop(self) -> None:
        """Stop every node of this cluster and remove its temp folder."""
        for node in reversed(self.workers):
            node.stop()
        if self.head is not None:
            self.head.stop()
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def start_cluster() -> RayCluster:
    """Start a head node on free ports (the caller stops it)."""
    if not Path(RAY).exists():
        raise RuntimeError(f"{RAY} is missing: install the 'ray' extra (scripts/setup.sh test)")
    # Ray's unix sockets live under the temp folder: keep its path short
    temp_dir = Path(tempfile.mkdtemp(prefix="jyray-", dir="/tmp"))
    cluster = RayCluster(temp_dir, gcs_port=free_port(), dashboard_port=free_port())
    try:
        cluster.start_head()
    except BaseException:
        cluster.stop()
        raise
    return cluster


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    """A real Ray cluster for the whole test session: a head with 2 CPUs (workers on demand)."""
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        cluster.stop()
