"""``/yolo/accelerators`` on a real jupyter server: auth, caching, refresh, probe failures, usage.

The server runs inside this pytest process, so ``sys.modules`` tells whether the server imported
torch. Nothing in this module may import torch itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from .conftest import fetch_json

FIXTURES = Path(__file__).parent / "fixtures" / "accelerators"

# Stand-ins for the probe interpreter: each is called as `<script> -m jupyter_yolo...probe`.
SCRIPTS = {
    "sleep": (
        "echo $$ > {tmp}/probe.pid\necho 'importing torch' >&2\nsleep 60 &\n"
        "echo $! > {tmp}/child.pid\nwait\n"
    ),
    "crash": (
        "echo 'Traceback (most recent call last):' >&2\necho 'ImportError: boom' >&2\nexit 3\n"
    ),
    "garbage": "echo 'hello, not json'\n",
    "recorded": (f"echo run >> {{tmp}}/runs\nsleep 0.5\ncat {FIXTURES / 'nvidia_h100_x8.json'}\n"),
}


@pytest.fixture
def yolo_config(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """YoloApp settings; ``indirect`` parametrisation with a SCRIPTS key swaps the probe."""
    name = getattr(request, "param", None)
    if name is None:
        return {}
    if name == "missing":
        return {"probe_python": str(tmp_path / "no-such-python"), "probe_timeout": 5.0}
    script = tmp_path / f"probe-{name}.sh"
    script.write_text("#!/bin/sh\n" + SCRIPTS[name].format(tmp=tmp_path))
    script.chmod(0o755)
    return {"probe_python": str(script), "probe_timeout": 1.5}


async def fetch_error(jp_fetch: Any, *parts: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch(*parts, **kwargs)
    response = info.value.response
    assert response is not None
    assert response.headers["Content-Type"].startswith("application/json")
    return info.value.code, json.loads(response.body)


def _gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"  # killed, waiting to be reaped by init


@pytest.mark.parametrize("path", ["yolo/accelerators", "yolo/accelerators/usage"])
@pytest.mark.parametrize("authorization", ["", "token not-the-token"])
async def test_needs_the_token(jp_fetch: Any, path: str, authorization: str) -> None:
    code, _ = await fetch_error(jp_fetch, path, headers={"Authorization": authorization})
    assert code == 403


async def test_report_without_torch_in_the_server(jp_fetch: Any) -> None:
    torch_before = "torch" in sys.modules
    response = await jp_fetch("yolo", "accelerators")
    assert response.code == 200
    report = json.loads(response.body)
    assert report["primary"]["kind"] == "cpu"
    assert report["recommendation"]["device"] == "cpu"
    assert report["host"]["affinity_cpus"] == len(os.sched_getaffinity(0))
    if torch_before:
        pytest.skip("another test imported torch into this process before this one ran")
    assert "torch" not in sys.modules
    assert "ultralytics" not in sys.modules


def test_server_modules_do_not_import_torch() -> None:
    """The same promise, checked in a fresh interpreter whatever other tests imported."""
    code = (
        "import sys, jupyter_yolo.app, jupyter_yolo.cli, jupyter_yolo.accelerators.service, "
        "jupyter_yolo.handlers.accelerators\n"
        "from jupyter_yolo.accelerators.usage import read_usage\nread_usage()\n"
        "print(sorted({'torch', 'ultralytics', 'numpy'} & set(sys.modules)))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


@pytest.mark.parametrize("yolo_config", ["recorded"], indirect=True)
async def test_cached_then_refreshed(jp_fetch: Any, tmp_path: Path) -> None:
    first = await fetch_json(jp_fetch, "yolo", "accelerators")
    cached = await fetch_json(jp_fetch, "yolo", "accelerators")
    assert cached == first
    assert (tmp_path / "runs").read_text().count("run") == 1  # answered from the cache
    await fetch_json(jp_fetch, "yolo", "accelerators", params={"refresh": "1"})
    assert (tmp_path / "runs").read_text().count("run") == 2  # probed again


@pytest.mark.parametrize("yolo_config", ["recorded"], indirect=True)
async def test_concurrent_requests_share_one_probe(jp_fetch: Any, tmp_path: Path) -> None:
    reports = await asyncio.gather(
        fetch_json(jp_fetch, "yolo", "accelerators"),
        fetch_json(jp_fetch, "yolo", "accelerators", params={"refresh": "1"}),
        fetch_json(jp_fetch, "yolo", "accelerators"),
    )
    assert (tmp_path / "runs").read_text().count("run") == 1
    assert all(r == reports[0] for r in reports)
    assert reports[0]["recommendation"]["device"] == "0,1,2,3,4,5,6,7"
    assert reports[0]["primary"]["label"].startswith("8 \u00d7 NVIDIA H100")


@pytest.mark.parametrize("yolo_config", ["sleep"], indirect=True)
async def test_probe_timeout_is_a_prompt_504(jp_fetch: Any, tmp_path: Path) -> None:
    started = time.monotonic()
    code, body = await fetch_error(jp_fetch, "yolo", "accelerators")
    elapsed = time.monotonic() - started
    assert code == 504
    assert body["reason"] == "ProbeTimeout"
    assert "did not answer within 1.5 s" in body["message"]
    assert "probe_timeout" in body["message"]
    assert "importing torch" in body["message"]  # what the probe said before it was stopped
    assert elapsed < 45  # well under the stub's 60 s sleep: the 1.5 s limit stopped it
    # the probe and what it started were killed as a process group
    for name in ("probe.pid", "child.pid"):
        pid = int((tmp_path / name).read_text())
        deadline = time.monotonic() + 5
        while not _gone(pid) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert _gone(pid), name


@pytest.mark.parametrize("yolo_config", ["crash"], indirect=True)
async def test_probe_crash_is_a_502_with_its_stderr(jp_fetch: Any) -> None:
    code, body = await fetch_error(jp_fetch, "yolo", "accelerators")
    assert code == 502
    assert body["reason"] == "ProbeFailed"
    assert "exited with code 3" in body["message"]
    assert "ImportError: boom" in body["message"]


@pytest.mark.parametrize("yolo_config", ["garbage", "missing"], indirect=True)
async def test_unusable_probe_is_a_502(jp_fetch: Any) -> None:
    code, body = await fetch_error(jp_fetch, "yolo", "accelerators")
    assert code == 502
    assert "probe" in body["message"] and "probe_python" in body["message"]


async def test_usage_answers_with_readings(jp_fetch: Any) -> None:
    """Its cost is measured as CPU time in tests/test_usage.py, not as wall time here."""
    await jp_fetch("yolo", "accelerators", "usage")
    usage = await fetch_json(jp_fetch, "yolo", "accelerators", "usage")
    assert 0.0 <= usage["cpu"]["percent"] <= 100.0
    assert usage["memory"]["limit_bytes"] > 0
    assert usage["gpus"] == []
