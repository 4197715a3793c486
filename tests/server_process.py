"""A real ``jupyter server`` in a child process, for tests that kill and restart it."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """Starts, queries and kills a jupyter server with the extension on a temporary workspace."""

    def __init__(
        self,
        root: Path,
        workspace: Path,
        token: str | None = None,
        module: str = "jupyter_server",
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.module = module
        self.extra_args = extra_args
        self.root = root
        self.workspace = workspace
        self.token = token or secrets.token_hex(16)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = root / "server.log"

    def _defaults(self) -> tuple[str, ...]:
        """Settings a test server gets unless ``extra_args`` sets them: no background
        preparation of trained models (the preparation's own tests switch it on)."""
        if any(a.startswith("--YoloApp.prepare_after_training") for a in self.extra_args):
            return ()
        return ("--YoloApp.prepare_after_training=False",)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER_TOKEN")}
        args = [
            sys.executable,
            "-m",
            self.module,
            "--no-browser",
            "--allow-root",
            f"--port={self.port}",
            "--port-retries=0",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.root_dir={self.root}",
            f"--IdentityProvider.token={self.token}",
            f"--YoloApp.workspace={self.workspace}",
            *self._defaults(),
            *self.extra_args,
        ]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-3000:]}")
            try:
                self.request("GET", "/api/status")
                return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
        raise RuntimeError(f"server did not answer: {self.log_path.read_text()[-3000:]}")

    def request(self, method: str, path: str, body: Any = None, token: str | None = "") -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        use = self.token if token == "" else token
        if use:
            request.add_header("Authorization", f"token {use}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=30) as response:
            payload = response.read()
        return json.loads(payload) if payload else None

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            # SIGTERM shuts down without the interactive confirmation SIGINT asks for
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextmanager
def serving(workspace: Path, **kwargs: Any) -> Iterator[ServerProcess]:
    """A started server whose root folder is the workspace, stopped when the block ends."""
    process = ServerProcess(workspace, workspace, **kwargs)
    process.start()
    try:
        yield process
    finally:
        process.stop()
