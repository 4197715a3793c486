"""Server startup time and resident memory with and without the jupyter_yolo extension.

Each repeat starts a real ``jupyter lab`` server twice, alternating the order, and measures the
time until ``/api/status`` answers and the server's resident memory at that moment. A first
round of each (not counted) warms the page cache and lets the extension generate its built-in
dataset in the shared workspace, so every counted start finds the same state.

This is the ``footprint`` section of ``python -m bench`` (keys ``server.*``); alone:
``python -m bench.startup [REPEATS]`` prints JSON.
"""

from __future__ import annotations

import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.server_process import free_port

from .common import Log


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_once(with_extension: bool, root: Path) -> tuple[float, float, bool]:
    """Start JupyterLab once; return (seconds to first answer, RSS in MB, torch loaded?)."""
    port = free_port()
    token = secrets.token_hex(16)
    enabled = f"jupyter_yolo={with_extension}"
    args = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--allow-root",
        f"--port={port}",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.root_dir={root}",
        f"--IdentityProvider.token={token}",
        "--ServerApp.jpserver_extensions",
        enabled,
        f"--YoloApp.workspace={root / 'ws'}",
    ]
    started = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/api/status")
            request.add_header("Authorization", f"token {token}")
            try:
                with urllib.request.urlopen(request, timeout=5):
                    break
            except (urllib.error.URLError, ConnectionError):
                if proc.poll() is not None:
                    raise RuntimeError("server exited during startup") from None
                time.sleep(0.02)
        elapsed = time.perf_counter() - started
        rss = _rss_mb(proc.pid)
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
        torch_loaded = "libtorch" in maps
        return elapsed, rss, torch_loaded
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def measure(repeats: int = 5, workdir: Path | None = None, warmup: bool = True) -> dict[str, Any]:
    """Median startup time and RSS with and without the extension, and their deltas."""
    with_ext: list[tuple[float, float, bool]] = []
    without: list[tuple[float, float, bool]] = []
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        root = Path(tmp)
        if warmup:
            start_once(True, root)
            start_once(False, root)
        for i in range(repeats):
            order = (True, False) if i % 2 == 0 else (False, True)
            for flag in order:
                (with_ext if flag else without).append(start_once(flag, root))
    med = statistics.median
    return {
        "repeats": repeats,
        "startup_with_s": round(med(t for t, _, _ in with_ext), 3),
        "startup_without_s": round(med(t for t, _, _ in without), 3),
        "startup_delta_s": round(med(t for t, _, _ in with_ext) - med(t for t, _, _ in without), 3),
        "rss_with_mb": round(med(r for _, r, _ in with_ext), 1),
        "rss_without_mb": round(med(r for _, r, _ in without), 1),
        "rss_delta_mb": round(med(r for _, r, _ in with_ext) - med(r for _, r, _ in without), 1),
        "torch_loaded_in_server": any(t for _, _, t in with_ext),
        "startup_with_all_s": [round(t, 3) for t, _, _ in with_ext],
        "startup_without_all_s": [round(t, 3) for t, _, _ in without],
    }


def run(*, quick: bool, workdir: Path, log: Log) -> dict[str, Any]:
    """The ``footprint`` section: ``{"server": {...}}`` (quick: 3 repeats, else 7)."""
    repeats = 3 if quick else 7
    log(f"footprint: {repeats} starts of JupyterLab with and without the extension")
    workdir.mkdir(parents=True, exist_ok=True)
    return {"server": measure(repeats, workdir=workdir)}


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    print(json.dumps(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 5), indent=2))
