"""``jupyter-yolo info`` as a person runs it: the console script from the venv, in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
CLI = BIN / "jupyter-yolo"


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLI), *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module", autouse=True)
def _installed() -> None:
    if not CLI.exists():
        pytest.fail(f"{CLI} is missing: install the package (pip install -e .) into this venv")


def test_info_json() -> None:
    proc = run("info", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["primary"]["kind"] == "cpu"
    assert report["recommendation"]["device"] == "cpu"
    assert report["host"]["affinity_cpus"] == len(os.sched_getaffinity(0))


def test_info_text() -> None:
    proc = run("info")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith("jupyter-yolo ")
    assert "Primary      CPU " in out
    assert "Recommended  device=cpu model=yolov8" in out
    for heading in ("Host", "Backends", "/dev/shm", "torch", "OpenVINO", "ONNX Runtime"):
        assert heading in out
    assert "[no_accelerator]" in out


def test_info_timeout_is_an_error_a_person_can_read() -> None:
    proc = run("info", "--refresh-timeout", "0.01")
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert "did not answer within 0.01 s" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_info_with_a_broken_python(tmp_path: Path) -> None:
    proc = run("info", "--python", str(tmp_path / "no-such-python"))
    assert proc.returncode == 1
    assert "--python" in proc.stderr and "Traceback" not in proc.stderr


def test_no_command_prints_help() -> None:
    proc = run()
    assert proc.returncode == 2
    assert "info" in proc.stderr


def test_jupyter_subcommand() -> None:
    proc = subprocess.run(
        [str(BIN / "jupyter"), "yolo", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("jupyter-yolo ")


def test_init_prepares_workspace_idempotently(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    exe = str(Path(sys.executable).parent / "jupyter-yolo")
    first = subprocess.run(
        [exe, "init", "--workspace", str(workspace)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "generated the shapes dataset" in first.stdout
    data = workspace / "datasets" / "shapes" / "data.yaml"
    before = data.read_bytes()
    labels = sorted((workspace / "datasets" / "shapes" / "labels" / "train").iterdir())
    assert labels and all(p.read_text().strip() for p in labels)
    second = subprocess.run(
        [exe, "init", "--workspace", str(workspace)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "is there" in second.stdout
    assert data.read_bytes() == before
    assert {p.name for p in workspace.iterdir()} >= {"datasets", "weights", "jobs"}
