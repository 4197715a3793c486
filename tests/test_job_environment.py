"""Jobs and the hardware probe inherit an allow-listed environment: what they need, no secrets."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from jupyter_yolo.accelerators.probe import OFFLINE_ENV, VISIBILITY_ENV
from jupyter_yolo.accelerators.service import probe_env
from jupyter_yolo.jobs.process import allowed_environment, runner_environment

from .conftest import fetch_json, post_json, wait_for_job

# What a server's environment may hold that no job may see: cloud credentials, tokens, agent
# sockets, cluster and container access, and secrets behind prefixes that are otherwise allowed.
SECRETS = {
    "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE-must-not-leak",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-must-not-leak",
    "AWS_SESSION_TOKEN": "aws-session-must-not-leak",
    "AWS_PROFILE": "prod-must-not-leak",
    "GOOGLE_APPLICATION_CREDENTIALS": "/secrets/gcp-must-not-leak.json",
    "GOOGLE_CLOUD_PROJECT": "gcp-project-must-not-leak",
    "AZURE_CLIENT_SECRET": "azure-secret-must-not-leak",
    "AZURE_STORAGE_CONNECTION_STRING": "DefaultEndpointsProtocol=https;must-not-leak",
    "JUPYTER_TOKEN": "jupyter-token-must-not-leak",
    "JUPYTERHUB_API_TOKEN": "hub-token-must-not-leak",
    "JUPYTER_SERVER_URL": "http://127.0.0.1:1/must-not-leak",
    "GITHUB_TOKEN": "ghp_must-not-leak",
    "GH_TOKEN": "gh-must-not-leak",
    "HF_TOKEN": "hf_must-not-leak",
    "HUGGING_FACE_HUB_TOKEN": "hf-hub-must-not-leak",
    "WANDB_API_KEY": "wandb-must-not-leak",
    "ULTRALYTICS_API_KEY": "ultralytics-must-not-leak",
    "SSH_AUTH_SOCK": "/tmp/ssh-must-not-leak/agent.1",
    "SSH_AUTHORIZED_KEYS": "ssh-ed25519 AAAA-must-not-leak",
    "GPG_AGENT_INFO": "/run/user/1000/gnupg/S.gpg-agent-must-not-leak",
    "KUBECONFIG": "/home/u/.kube/config-must-not-leak",
    "DOCKER_HOST": "tcp://docker-must-not-leak:2376",
    "DOCKER_AUTH_CONFIG": "{must-not-leak}",
    "HTTPS_PROXY": "http://user:pw-must-not-leak@proxy:3128",
    "DATABASE_URL": "postgres://u:pw-must-not-leak@db/x",
    "SENTRY_DSN": "https://key-must-not-leak@sentry.io/1",
    # allowed prefixes, secret names or values
    "YOLO_API_KEY": "yolo-key-must-not-leak",
    "NVIDIA_API_KEY": "nvapi-must-not-leak",
    "TORCH_HUB_TOKEN": "torch-must-not-leak",
    "PYTHON_KEYRING_PASSWORD": "keyring-must-not-leak",
    "CUDA_SECRET": "cuda-must-not-leak",
    "OMP_AUTH": "omp-must-not-leak",
    "JUPYTER_YOLO_PRIVATE_KEY": "private-must-not-leak",
    "YOLO_DATASET_URL": "https://user:pw-must-not-leak@example.com/data.zip",
}

# What jobs and the probe need, and must keep.
NEEDED = {
    "PATH": "/opt/venv/bin:/usr/bin:/bin",
    "HOME": "/home/yolo",
    "USER": "yolo",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "TZ": "UTC",
    "TMPDIR": "/tmp",
    "VIRTUAL_ENV": "/opt/venv",
    "PYTHONPATH": "/opt/extra",
    "LD_LIBRARY_PATH": "/usr/local/cuda/lib64",
    "CUDA_VISIBLE_DEVICES": "0,1",
    "CUDA_HOME": "/usr/local/cuda",
    "NVIDIA_VISIBLE_DEVICES": "all",
    "NVIDIA_DRIVER_CAPABILITIES": "compute,utility",
    "NCCL_SOCKET_IFNAME": "eth0",
    "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True",
    "HIP_VISIBLE_DEVICES": "0",
    "ROCR_VISIBLE_DEVICES": "0",
    "HSA_OVERRIDE_GFX_VERSION": "10.3.0",
    "ASCEND_RT_VISIBLE_DEVICES": "0",
    "ASCEND_HOME_PATH": "/usr/local/Ascend/ascend-toolkit/latest",
    "ASCEND_OPP_PATH": "/usr/local/Ascend/ascend-toolkit/latest/opp",
    "TOOLCHAIN_HOME": "/usr/local/Ascend/ascend-toolkit/latest/toolkit",
    "ZE_AFFINITY_MASK": "0",
    "OMP_NUM_THREADS": "2",
    "MKL_NUM_THREADS": "2",
    "OPENBLAS_NUM_THREADS": "2",
    "KMP_AFFINITY": "granularity=fine",
    "YOLO_OFFLINE": "1",
    "YOLO_CONFIG_DIR": "/workspace/.ultralytics",
    "YOLO_DEVICE": "cpu",
    "JUPYTER_YOLO_ALLOW_NETWORK": "0",
    "HF_HUB_OFFLINE": "1",
    "MPLBACKEND": "Agg",
    "OPENVINO_LOG_LEVEL": "1",
    "ORT_DISABLE_ALL": "0",
}


def test_jobs_get_what_they_need_and_no_secret() -> None:
    env = runner_environment({**SECRETS, **NEEDED})
    assert env == {**NEEDED, "PYTHONUNBUFFERED": "1"}


def test_the_allow_list_is_not_a_deny_list() -> None:
    unknown = {
        "SOME_NEW_CLOUD_CONFIG": "x",
        "MY_APP_SETTING": "y",
        "DISPLAY": ":0",
        "XDG_RUNTIME_DIR": "/run/user/1000",
        "DBUS_SESSION_BUS_ADDRESS": "unix:path=/x",
    }
    assert allowed_environment({**unknown, "PATH": "/bin"}) == {"PATH": "/bin"}


def test_names_are_case_sensitive() -> None:
    assert allowed_environment({"path": "/x", "cuda_visible_devices": "0"}) == {}


def test_every_device_selection_variable_the_probe_reports_reaches_it() -> None:
    chosen = {name: "0" for name in VISIBILITY_ENV}
    assert allowed_environment(chosen) == chosen


def test_the_probe_is_offline_can_import_the_package_and_sees_no_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in {**SECRETS, **NEEDED}.items():
        monkeypatch.setenv(name, value)
    env = probe_env()
    assert not set(SECRETS) & set(env)
    assert "must-not-leak" not in json.dumps(env)
    for name, value in OFFLINE_ENV.items():
        assert env[name] == value
    package_parent = str(Path(__file__).resolve().parents[1])
    assert env["PYTHONPATH"].split(":")[0] == package_parent
    assert env["PYTHONPATH"].split(":")[1:] == [NEEDED["PYTHONPATH"]]
    assert {k: env[k] for k in NEEDED if k not in ("PYTHONPATH", *OFFLINE_ENV)} == {
        k: v for k, v in NEEDED.items() if k not in ("PYTHONPATH", *OFFLINE_ENV)
    }


# --------------------------------------------------------------------------- a real job


def runner_pid(workspace: Path, job_id: str) -> int:
    """The runner's pid, from the status file it writes as it starts."""
    path = workspace / "jobs" / job_id / "status.json"
    deadline = time.monotonic() + 300
    while not path.exists():
        assert time.monotonic() < deadline, "the runner never wrote status.json"
        time.sleep(0.1)
    return int(json.loads(path.read_text())["pid"])


async def first_batch(jp_fetch: Any, job_id: str, timeout: float = 600.0) -> None:
    """Wait for the job's first training batch (torch and ultralytics work in its environment)."""
    after, deadline = 0, time.monotonic() + timeout
    while time.monotonic() < deadline:
        page = await fetch_json(
            jp_fetch, "yolo", "jobs", job_id, "events", params={"after": str(after), "timeout": "5"}
        )
        for event in page["events"]:
            after = event["seq"]
            if event["type"] == "batch":
                return
            assert not (event["type"] == "status" and event["status"] in ("failed", "succeeded")), (
                event
            )
        await asyncio.sleep(0)
    raise AssertionError(f"job {job_id} trained no batch within {timeout:.0f} s")


@pytest.mark.slow
async def test_a_real_job_sees_no_secret_of_the_servers_environment(
    jp_fetch: Any,
    shapes_dataset: str,
    yolo_workspace: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("VIRTUAL_ENV", sys.prefix)
    monkeypatch.setenv("JUPYTER_YOLO_ENV_CHECK", "kept")
    body = {
        "kind": "train",
        "model": "yolov8n.yaml",
        "data": shapes_dataset,
        "epochs": 200,
        "imgsz": 64,
        "batch": 8,
        "device": "cpu",
        "workers": 0,
        "plots": False,
    }
    job = await post_json(jp_fetch, "yolo", "jobs", body=body)
    await first_batch(jp_fetch, job["id"])
    pid = runner_pid(yolo_workspace, job["id"])
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    await post_json(jp_fetch, "yolo", "jobs", job["id"], "stop", body={})
    final = await wait_for_job(jp_fetch, job["id"], {"stopped", "failed", "succeeded"})
    assert final["status"] == "stopped", final

    environ = dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)
    assert not set(SECRETS) & set(environ), set(SECRETS) & set(environ)
    assert "must-not-leak" not in raw.decode()
    assert environ["PATH"] and environ["HOME"]
    assert environ["VIRTUAL_ENV"] == sys.prefix
    assert environ["JUPYTER_YOLO_ENV_CHECK"] == "kept"
    assert environ["PYTHONUNBUFFERED"] == "1"
