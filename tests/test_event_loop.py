"""GET /yolo/models does its file and hashing work off the event loop: other requests go on."""

from __future__ import annotations

import fcntl
import hashlib
import http.client
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from jupyter_yolo.inference.cache import DIGEST_CACHE_FILE, exports_root

from .server_process import ServerProcess, serving

PAST_NS = 1_600_000_000 * 10**9
WAIT_S = 300.0  # only a bound for a broken server; nothing here is timed


def get(server: ServerProcess, path: str) -> Any:
    """``GET path`` with the token, on a connection of its own; the decoded JSON answer."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=WAIT_S)
    try:
        connection.request("GET", path, headers={"Authorization": f"token {server.token}"})
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    assert response.status == 200, (path, response.status, body[:500])
    return json.loads(body)


def waiting_for_flock(pid: int, path: Path) -> bool:
    """Whether process ``pid`` is blocked waiting for a ``flock`` on ``path`` (/proc/locks)."""
    inode = str(path.stat().st_ino)
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "->" in fields and fields[fields.index("->") + 1] == "FLOCK":
            rest = fields[fields.index("->") + 1 :]
            if rest[3] == str(pid) and rest[4].rsplit(":", 1)[-1] == inode:
                return True
    return False


def test_other_requests_are_answered_while_models_is_busy(tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    exports = exports_root(workspace)
    exports.mkdir(parents=True)  # as after a first predict job: /yolo/models reads digests
    data = os.urandom(16 * 1024 * 1024)
    weights = workspace / "weights" / "big.pt"
    weights.write_bytes(data)
    os.utime(weights, ns=(PAST_NS, PAST_NS))

    # Holding the digest cache's lock keeps GET /yolo/models busy, deterministically: after
    # hashing big.pt it waits for the lock to store the digest.
    lock_path = exports / (DIGEST_CACHE_FILE + ".lock")
    lock = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX)
    released = False
    try:
        with serving(workspace) as server:
            assert server.proc is not None
            answers: list[Any] = []
            failures: list[BaseException] = []

            def ask_models() -> None:
                try:
                    answers.append(get(server, "/yolo/models"))
                except BaseException as exc:
                    failures.append(exc)

            models = threading.Thread(target=ask_models, daemon=True)
            models.start()
            deadline = time.monotonic() + WAIT_S
            while not waiting_for_flock(server.proc.pid, lock_path):
                assert models.is_alive() and time.monotonic() < deadline, failures or answers
                time.sleep(0.05)

            # models() is blocked inside the server; the event loop still serves everyone else
            assert get(server, "/yolo/jobs")["jobs"] == []
            assert "cpu" in get(server, "/yolo/accelerators/usage")
            assert get(server, "/yolo/openapi.json")["openapi"]
            assert models.is_alive() and not answers

            fcntl.flock(lock, fcntl.LOCK_UN)
            released = True
            models.join(timeout=WAIT_S)
            assert not failures and len(answers) == 1
            assert [w["model"] for w in answers[0]["weights"]] == ["big.pt"]
            cached = json.loads((exports / DIGEST_CACHE_FILE).read_text())["entries"]
            assert [e["sha256_prefix"] for e in cached] == [hashlib.sha256(data).hexdigest()[:16]]
    finally:
        if not released:
            fcntl.flock(lock, fcntl.LOCK_UN)
        os.close(lock)
