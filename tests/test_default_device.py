"""The default job device (YOLO_DEVICE / YoloApp.default_device) and the queue slot of jobs
that name no device."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from jupyter_yolo.jobs.schema import JobValidator, device_keys
from jupyter_yolo.workspace import Workspace


def _validator(root: Path, *, cuda: bool, default_device: str | None) -> JobValidator:
    workspace = Workspace(root)
    workspace.create()
    (workspace.weights / "w.pt").write_bytes(b"weights")  # the validator only checks it exists
    return JobValidator(workspace, cuda_available=lambda: cuda, default_device=default_device)


def test_jobs_without_device_share_the_slot_of_the_device_they_run_on() -> None:
    assert device_keys(None, cuda=False) == ("cpu",) == device_keys("cpu")
    assert device_keys(None, cuda=True) == ("cuda:0",) == device_keys("0")
    assert device_keys("", cuda=False) == ("cpu",)


def test_default_device_fills_requests_that_name_none(tmp_path: Path) -> None:
    validator = _validator(tmp_path, cuda=False, default_device="cpu")
    spec = validator.validate({"kind": "export", "model": "w.pt"})
    assert spec.params["device"] == "cpu"
    assert spec.devices == ("cpu",)
    named = validator.validate({"kind": "export", "model": "w.pt", "device": "0"})
    assert named.params["device"] == "0"
    assert named.devices == ("cuda:0",)


def test_no_default_device_leaves_the_choice_to_ultralytics(tmp_path: Path) -> None:
    spec = _validator(tmp_path, cuda=False, default_device=None).validate(
        {"kind": "export", "model": "w.pt"}
    )
    assert "device" not in spec.params
    assert spec.devices == ("cpu",)


def test_unknown_default_device_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a device ultralytics knows"):
        _validator(tmp_path, cuda=False, default_device="gpu0")


@pytest.fixture(autouse=True)
def _yolo_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YOLO_DEVICE", "cpu")


async def test_yolo_device_reaches_jobs_over_rest(jp_fetch: Any, yolo_workspace: Path) -> None:
    (yolo_workspace / "weights").mkdir(parents=True, exist_ok=True)
    (yolo_workspace / "weights" / "w.pt").write_bytes(b"weights")
    body = {"kind": "export", "model": "w.pt", "format": "onnx", "name": "device-default"}
    response = await jp_fetch(
        "yolo", "jobs", method="POST", body=json.dumps(body), raise_error=False
    )
    assert response.code == 201, response.body
    job = json.loads(response.body)
    stop = await jp_fetch("yolo", "jobs", job["id"], "stop", method="POST", body="")
    assert stop.code in (200, 202)
    spec = json.loads((yolo_workspace / "jobs" / job["id"] / "job.json").read_text())
    assert spec["params"]["device"] == "cpu"
