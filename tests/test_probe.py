"""The real probe subprocess on this machine (no mocks): what it finds and how it behaves.

Nothing in this module imports torch: the server tests in the same pytest process check that
torch never gets into ``sys.modules``.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from importlib.metadata import version
from importlib.util import find_spec
from typing import Any

import pytest

from jupyter_yolo.accelerators import host
from jupyter_yolo.accelerators.service import probe_command, probe_env, run_probe_sync

PYTHON = sys.executable


@pytest.fixture(scope="module")
def raw() -> tuple[subprocess.CompletedProcess[str], float]:
    """Run the probe once for the module: its completed process and wall time."""
    started = time.perf_counter()
    proc = subprocess.run(
        probe_command(PYTHON),
        capture_output=True,
        text=True,
        env=probe_env(),
        timeout=120,
        check=False,
    )
    return proc, time.perf_counter() - started


@pytest.fixture(scope="module")
def facts(raw: tuple[subprocess.CompletedProcess[str], float]) -> dict[str, Any]:
    proc, _ = raw
    assert proc.returncode == 0, proc.stderr
    parsed: dict[str, Any] = json.loads(proc.stdout)
    return parsed


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    return run_probe_sync(PYTHON, 120)


def test_stdout_is_one_json_object(raw: tuple[subprocess.CompletedProcess[str], float]) -> None:
    proc, wall = raw
    lines = proc.stdout.splitlines()
    assert len(lines) == 1
    assert isinstance(json.loads(lines[0]), dict)
    print(f"the probe took {wall:.1f} s")


def test_facts_on_this_machine(facts: dict[str, Any]) -> None:
    assert facts["errors"] == []
    assert facts["torch"]["version"].split("+")[0] == version("torch").split("+")[0]
    assert facts["torch"]["cuda_available"] is False
    assert facts["cuda"] == [] and facts["rocm"] == []
    assert facts["host"]["affinity_cpus"] == len(os.sched_getaffinity(0))
    assert facts["python"]["executable"] == PYTHON
    assert isinstance(facts["duration_s"], float)


def test_report_on_this_machine(report: dict[str, Any]) -> None:
    quota = host.cgroup_cpu_quota()
    affinity = len(os.sched_getaffinity(0))
    usable = max(1, min(affinity, math.ceil(quota))) if quota else affinity
    assert report["primary"]["kind"] == "cpu"
    assert report["primary"]["label"] == f"CPU {usable} core{'s' if usable != 1 else ''}"
    assert report["host"]["cpus_usable"] == usable
    rec = report["recommendation"]
    assert rec["device"] == "cpu"
    assert rec["model"] in {"yolov8n.yaml", "yolov8s.yaml"}
    assert rec["amp"] is False
    assert 0 <= rec["workers"] <= usable
    assert "no_accelerator" in {w["code"] for w in report["warnings"]}


@pytest.mark.skipif(find_spec("openvino") is None, reason="OpenVINO is not installed")
def test_lists_openvino(report: dict[str, Any]) -> None:
    openvino = report["devices"]["openvino"]
    assert openvino["version"].startswith(version("openvino").split(".")[0])
    assert "CPU" in [d["name"] for d in openvino["devices"]]


@pytest.mark.skipif(find_spec("onnxruntime") is None, reason="ONNX Runtime is not installed")
def test_lists_onnxruntime(report: dict[str, Any]) -> None:
    ort = report["devices"]["onnxruntime"]
    assert ort["version"] == version("onnxruntime")
    assert "CPUExecutionProvider" in ort["providers"]


def _run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-c", code],
        capture_output=True,
        text=True,
        env=probe_env(),
        timeout=120,
        check=False,
    )


def test_failing_and_chatty_subprobes_do_not_break_the_report() -> None:
    code = """
import sys
from jupyter_yolo.accelerators import probe

def noisy(facts):
    print("a library printing to stdout")
    import os; os.write(1, b"and C code writing to fd 1\\n")

def broken(facts):
    raise RuntimeError("boom")

probe.SUBPROBES = (("host", probe.probe_host), ("noisy", noisy), ("broken", broken))
sys.exit(probe.main())
"""
    proc = _run_python(code)
    assert proc.returncode == 0, proc.stderr
    facts = json.loads(proc.stdout)  # still exactly one JSON object
    assert facts["errors"] == ["broken: RuntimeError: boom"]
    assert facts["host"]["cpus_usable"] >= 1
    assert "a library printing to stdout" in proc.stderr
    assert "and C code writing to fd 1" in proc.stderr


def test_probe_is_offline_and_never_imports_ultralytics() -> None:
    code = """
import io, os, sys, contextlib
from jupyter_yolo.accelerators import probe
with contextlib.redirect_stdout(io.StringIO()):
    probe.main()
print("ultralytics" in sys.modules, os.environ.get("YOLO_OFFLINE"))
"""
    proc = _run_python(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[-2:] == ["False", "1"]
