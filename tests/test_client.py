"""The Python client against a real jupyter server: remote use with only a URL and a token,
clear errors carrying the server's message, and discovery of the server from inside a kernel's
environment (the Jupyter runtime folder)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from jupyter_yolo.client import (
    AuthenticationError,
    BadRequestError,
    ConflictError,
    NotFoundError,
    ServerUnavailable,
    YoloClient,
    discover_server,
)

from .conftest import REPO_ROOT, install_dataset
from .server_process import ServerProcess, free_port, serving

TRAIN = {
    "model": "yolov8n.yaml",
    "epochs": 30,
    "imgsz": 64,
    "batch": 8,
    "device": "cpu",
    "workers": 0,
    "plots": False,
}


@pytest.fixture(scope="module")
def runtime_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private Jupyter runtime folder, so discovery sees only this module's server."""
    path = tmp_path_factory.mktemp("runtime")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_RUNTIME_DIR", str(path))
        patch.delenv("JUPYTER_SERVER_URL", raising=False)
        patch.delenv("JUPYTER_TOKEN", raising=False)
        yield path


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, shapes_template: Path, runtime_dir: Path
) -> Iterator[ServerProcess]:
    """One jupyter server with the extension and the shapes dataset for the module."""
    root = tmp_path_factory.mktemp("client")
    workspace = root / "workspace"
    install_dataset(shapes_template, workspace / "datasets" / "shapes")
    with serving(workspace) as process:
        yield process


REMOTE_SCRIPT = textwrap.dedent("""
    import json, sys
    from jupyter_yolo.client import AuthenticationError, YoloClient

    url, token, train = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    out = {}
    client = YoloClient(url, token=token)
    out["before"] = [job["id"] for job in client.jobs()]
    job = client.train(data="shapes", **train)
    out["created"] = job["status"]
    for event in client.iter_events(job["id"]):
        if event["type"] == "batch":
            break
    out["listed"] = {j["id"]: j["status"] for j in client.jobs()}
    out["stop"] = client.stop(job["id"])["status"]
    out["final"] = client.wait(job["id"], timeout=120)["status"]
    out["resumable"] = client.job(job["id"])["resumable"]
    out["id"] = job["id"]
    try:
        YoloClient(url, token="not-the-token").jobs()
    except AuthenticationError as exc:
        out["wrong_token"] = {"status": exc.status, "message": str(exc)}
    print(json.dumps(out))
""")


@pytest.mark.slow
def test_remote_process_lists_starts_and_stops_jobs_with_url_and_token(
    server: ServerProcess, tmp_path: Path
) -> None:
    # a separate process that knows only the URL and the token: no runtime folder to find
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER_")}
    env["JUPYTER_RUNTIME_DIR"] = str(tmp_path / "empty-runtime")
    env["PYTHONPATH"] = str(REPO_ROOT)
    done = subprocess.run(
        [sys.executable, "-c", REMOTE_SCRIPT, server.url, server.token, json.dumps(TRAIN)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["before"] == []
    assert out["created"] == "queued"
    assert out["listed"][out["id"]] in ("running", "stopping")
    assert out["stop"] in ("stopping", "stopped")
    assert out["final"] == "stopped"
    assert out["resumable"] is True
    assert out["wrong_token"]["status"] == 403
    assert "token was refused" in out["wrong_token"]["message"]
    assert server.url in out["wrong_token"]["message"]


def test_errors_carry_the_servers_message(server: ServerProcess) -> None:
    client = YoloClient(server.url, server.token)
    with pytest.raises(NotFoundError) as missing:
        client.job("0123456789ab")
    assert missing.value.status == 404
    assert "There is no job '0123456789ab'" in str(missing.value)

    with pytest.raises(BadRequestError) as bad:
        client.train(data="shapes", colour="red")
    assert bad.value.status == 400
    assert "Unknown key(s) for a train job: colour" in bad.value.message

    with pytest.raises(BadRequestError, match="no dataset named 'nope'"):
        client.train(data="nope")

    with pytest.raises(NotFoundError):
        client.dataset("nope")

    with pytest.raises(AuthenticationError, match="no token was given"):
        YoloClient(server.url, token="").usage()

    closed = YoloClient(f"http://127.0.0.1:{free_port()}", "x", timeout=5)
    with pytest.raises(ServerUnavailable) as down:
        closed.usage()
    assert down.value.status is None
    assert "did not answer" in str(down.value)


def test_conflict_and_workspace_files(server: ServerProcess) -> None:
    client = YoloClient(server.url, server.token)
    job = client.create_job("train", data="shapes", **{**TRAIN, "epochs": 1})
    client.stop(job["id"])  # stopped while queued or just started
    assert client.wait(job["id"], timeout=120)["status"] == "stopped"
    with pytest.raises(ConflictError, match="nothing to stop"):
        client.stop(job["id"])

    path = client.put_workspace_file("uploads/detect/hello.txt", b"hello")
    assert path == "uploads/detect/hello.txt"
    assert (server.workspace / path).read_bytes() == b"hello"
    assert client.models()["architectures"][0] == "yolov8n.yaml"
    assert client.openapi()["openapi"].startswith("3.")


def test_discovery_from_the_runtime_folder_skips_servers_that_do_not_answer(
    server: ServerProcess, runtime_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a record of a live process (this one) whose port answers nothing
    stale = runtime_dir / "jpserver-1.json"
    stale.write_text(
        json.dumps(
            {
                "url": f"http://127.0.0.1:{free_port()}/",
                "token": "t",
                "pid": os.getpid(),
                "root_dir": str(server.root),
            }
        )
    )
    try:
        monkeypatch.chdir(server.root)
        info = discover_server()
        assert info.url.rstrip("/") == server.url
        assert info.token == server.token
        assert info.source == "runtime"
        assert YoloClient().usage()["cpu"]["cpus"] >= 1

        monkeypatch.setenv("JUPYTER_SERVER_URL", server.url)
        monkeypatch.setenv("JUPYTER_TOKEN", server.token)
        assert discover_server().source == "environment"
    finally:
        stale.unlink()


def test_discovery_explains_what_to_do_when_nothing_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path))
    monkeypatch.delenv("JUPYTER_SERVER_URL", raising=False)
    with pytest.raises(ServerUnavailable, match="pass the URL and token"):
        YoloClient()
