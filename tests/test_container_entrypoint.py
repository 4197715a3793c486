"""The container entrypoint (docker/entrypoint.sh -> ``jupyter-yolo serve``) run on this host.

As the issue asks, the entrypoint runs directly on the host in a temporary workspace (CI runs as
root, so it adds ``--allow-root`` by itself): authentication is always on, a generated token is
kept with mode 0600 and printed once, an empty token or arguments and config files that would
turn authentication or XSRF checks off are refused, and SIGTERM stops a running training job
gracefully (a loadable ``last.pt``) before the entrypoint exits.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import signal
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from jupyter_yolo.container import ContainerError
from jupyter_yolo.container.auth import (
    check_server_args,
    read_kept_token,
    token_path,
    write_kept_token,
)
from jupyter_yolo.container.config import ContainerConfig
from jupyter_yolo.container.supervisor import lab_environment, provision_weights
from jupyter_yolo.jobs.process import runner_environment

from .conftest import REPO_ROOT, install_dataset
from .server_process import free_port
from .test_jobs_api import load_weights_in_subprocess

ENTRYPOINT = REPO_ROOT / "docker" / "entrypoint.sh"
BIN = Path(sys.executable).parent


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a redirect to the login page is an answer of its own


NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


def entrypoint_env(tmp_path: Path, workspace: Path, **extra: str) -> dict[str, str]:
    """A clean environment for the entrypoint: no inherited Jupyter, SSH or YOLO settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("JUPYTER_", "SSH_", "YOLO_", "JPY_"))
    }
    (tmp_path / "jupyter-config").mkdir(exist_ok=True)
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        YOLO_WORKSPACE=str(workspace),
        YOLO_WEIGHTS_DIR=str(tmp_path / "no-baked-weights"),
        JUPYTER_IP="127.0.0.1",
        JUPYTER_PORT=str(free_port()),
        JUPYTER_CONFIG_DIR=str(tmp_path / "jupyter-config"),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "jupyter-runtime"),
    )
    env.update(extra)
    return env


class Entrypoint:
    """docker/entrypoint.sh in a child process, its output in a file."""

    def __init__(self, env: dict[str, str], log: Path, args: tuple[str, ...] = ()) -> None:
        self.env = env
        self.log = log
        self.args = args
        self.port = int(env["JUPYTER_PORT"])
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def start(self, timeout: float = 90.0) -> Entrypoint:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(ENTRYPOINT), *self.args],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=REPO_ROOT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"entrypoint exited {self.proc.returncode}:\n{self.output()}")
            if status(self.url + "/api") == 200:
                return self
            time.sleep(0.2)
        raise AssertionError(f"JupyterLab did not answer:\n{self.output()[-4000:]}")

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 60.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"entrypoint did not exit within {timeout}s") from None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.stop(signal.SIGTERM, timeout=90)


def status(url: str, token: str | None = None, method: str = "GET") -> int:
    """HTTP status of a request (0 when nothing answers)."""
    request = urllib.request.Request(url, method=method)
    if token is not None:
        request.add_header("Authorization", f"token {token}")
    try:
        with NO_PROXY.open(request, timeout=10) as response:
            code: int = response.status
            return code
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def request_json(url: str, token: str, body: Any = None, method: str = "GET") -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Authorization", f"token {token}")
    request.add_header("Content-Type", "application/json")
    with NO_PROXY.open(request, timeout=30) as response:
        return json.loads(response.read())


def process_tree_cmdlines(pid: int) -> list[str]:
    """Command lines of a process and all its descendants, as ``ps`` shows them."""
    import psutil

    root = psutil.Process(pid)
    return [" ".join(p.cmdline()) for p in [root, *root.children(recursive=True)]]


def run_refused(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ENTRYPOINT), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )


# --------------------------------------------------------------------------- the token


def test_token_is_required_xsrf_stays_on_and_the_token_never_shows(tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    token = "t0k3n-" + os.urandom(16).hex()
    baked = tmp_path / "baked"
    baked.mkdir()
    (baked / "yolov8n.pt").write_bytes(b"baked weights")
    env = entrypoint_env(tmp_path, workspace, JUPYTER_TOKEN=token, YOLO_WEIGHTS_DIR=str(baked))
    lab = Entrypoint(env, tmp_path / "entrypoint.log").start()
    try:
        for path in ("/api/status", "/yolo/jobs", "/yolo/accelerators", "/api/contents"):
            assert status(lab.url + path) == 403, path
            assert status(lab.url + path, token="wrong") == 403, path
        assert status(lab.url + "/lab") == 302, "the lab page sends a browser to the login page"
        assert status(lab.url + "/lab", token=token) == 200
        assert status(lab.url + "/api/status") == 403
        assert status(lab.url + "/api/status", token=token) == 200
        assert status(lab.url + "/yolo/jobs", token=token) == 200
        # the health check needs no token and is what the image's HEALTHCHECK runs
        assert status(lab.url + "/api") == 200
        health = subprocess.run(
            [str(BIN / "jupyter-yolo"), "healthcheck"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert health.returncode == 0, health.stderr
        assert_xsrf_enforced(lab.url, token)

        assert lab.proc is not None
        cmdlines = process_tree_cmdlines(lab.proc.pid)
        assert any("jupyter_yolo.container.lab" in c for c in cmdlines), cmdlines
        assert not [c for c in cmdlines if token in c], "the token must never be on a command line"
        # the baked weights were copied (not linked) into the workspace
        copied = workspace / "weights" / "yolov8n.pt"
        assert copied.read_bytes() == b"baked weights" and not copied.is_symlink()
        assert not token_path(workspace).exists(), "a given token is not written anywhere"
    finally:
        code = lab.stop()
    assert code == 0, lab.output()[-3000:]
    assert token not in lab.output(), "the token must never be printed or logged"
    assert "SIGTERM: stopping JupyterLab" in lab.output()


def assert_xsrf_enforced(url: str, token: str) -> None:
    """Log in with the token as a browser does; a cookie request without the XSRF token fails."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPCookieProcessor(jar)
    )
    opener.open(url + "/login", timeout=10).read()
    xsrf = next(c.value for c in jar if c.name == "_xsrf")
    form = urllib.parse.urlencode({"_xsrf": xsrf, "password": token}).encode()
    opener.open(urllib.request.Request(url + "/login", data=form), timeout=10).read()
    assert any(c.name.startswith("username-") for c in jar), "token login set no session cookie"
    probe = url + "/api/contents/no-such-folder/no-such-file.txt"
    with pytest.raises(urllib.error.HTTPError) as without:
        opener.open(urllib.request.Request(probe, method="DELETE"), timeout=10)
    assert without.value.code == 403, "a cookie-authenticated DELETE without XSRF token passed"
    with pytest.raises(urllib.error.HTTPError) as with_xsrf:
        opener.open(
            urllib.request.Request(probe, method="DELETE", headers={"X-XSRFToken": xsrf}),
            timeout=10,
        )
    assert with_xsrf.value.code == 404, "the session cookie alone should reach the handler"


def test_generated_token_is_kept_mode_0600_printed_once_and_reused(tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    env = entrypoint_env(tmp_path, workspace)
    first = Entrypoint(env, tmp_path / "first.log").start()
    try:
        path = token_path(workspace)
        info = path.stat()
        assert stat.S_IMODE(info.st_mode) == 0o600 and info.st_uid == os.geteuid()
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        token = path.read_text().strip()
        assert len(token) >= 43  # secrets.token_urlsafe(32): 256 random bits
        assert status(first.url + "/api/status") == 403
        assert status(first.url + "/api/status", token=token) == 200
    finally:
        assert first.stop() == 0
    assert first.output().count(token) == 1, "a generated token is printed exactly once"

    second = Entrypoint({**env, "JUPYTER_PORT": str(free_port())}, tmp_path / "second.log")
    second.start()
    try:
        assert path.read_text().strip() == token, "a restart keeps the token"
        assert status(second.url + "/api/status", token=token) == 200
        assert status(second.url + "/api/status") == 403
    finally:
        assert second.stop() == 0
    assert token not in second.output(), "a kept token is not printed again"
    assert f"using the token kept in {path}" in second.output()


# --------------------------------------------------------------------------- refusals


REFUSALS: list[tuple[dict[str, str], tuple[str, ...], str]] = [
    ({"JUPYTER_TOKEN": ""}, (), "JUPYTER_TOKEN is empty"),
    ({"JUPYTER_TOKEN": "   "}, (), "JUPYTER_TOKEN is empty"),
    ({"JUPYTER_TOKEN": " padded-token-123456 "}, (), "white space"),
    ({"JUPYTER_TOKEN": "ok-token-1234567890"}, ("--IdentityProvider.token=",), "ps"),
    ({"JUPYTER_TOKEN": "ok-token-1234567890"}, ("--ServerApp.token", "x"), "ps"),
    ({"JUPYTER_TOKEN": "ok-token-1234567890"}, ("--ServerApp.disable_check_xsrf=True",), "XSRF"),
    ({"JUPYTER_TOKEN": "ok-token-1234567890"}, ("--ServerApp.disable_check_xsrf",), "XSRF"),
    (
        {"JUPYTER_TOKEN": "ok-token-1234567890"},
        ('--ServerApp.tornado_settings={"disable_check_xsrf": true}',),
        "XSRF",
    ),
    ({"JUPYTER_TOKEN": "ok-token-1234567890"}, ("--ServerApp.password=",), "empty password"),
    (
        {"JUPYTER_TOKEN": "ok-token-1234567890"},
        ("--PasswordIdentityProvider.hashed_password=''",),
        "empty password",
    ),
    ({"JUPYTER_PORT": "88888"}, (), "JUPYTER_PORT must be a port number"),
    ({"YOLO_STOP_TIMEOUT": "soon"}, (), "YOLO_STOP_TIMEOUT"),
    ({"YOLO_EXECUTOR": "slurm"}, (), "YOLO_EXECUTOR must be local"),
    ({"YOLO_EXECUTOR": "ray"}, (), "YOLO_EXECUTOR=ray needs YOLO_RAY_ADDRESS"),
]


@pytest.mark.parametrize(("extra_env", "args", "fragment"), REFUSALS)
def test_insecure_or_bad_settings_are_refused_before_anything_listens(
    tmp_path: Path, extra_env: dict[str, str], args: tuple[str, ...], fragment: str
) -> None:
    workspace = tmp_path / "workspace"
    env = entrypoint_env(tmp_path, workspace, **extra_env)
    done = run_refused(env, *args)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("jupyter-yolo serve: refused: "), lines
    assert fragment in lines[0]
    assert not token_path(workspace).exists()
    if extra_env.get("JUPYTER_TOKEN", "").strip():
        assert extra_env["JUPYTER_TOKEN"].strip() not in done.stdout + done.stderr


def test_token_file_secret_empty_both_set_and_loose_kept_file_are_refused(tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    secret = tmp_path / "secret"
    secret.write_text("\n")
    done = run_refused(entrypoint_env(tmp_path, workspace, JUPYTER_TOKEN_FILE=str(secret)))
    assert done.returncode == 2 and "JUPYTER_TOKEN_FILE" in done.stderr, done.stderr
    secret.write_text("from-a-secret-0123456789\n")
    both = entrypoint_env(tmp_path, workspace, JUPYTER_TOKEN_FILE=str(secret), JUPYTER_TOKEN="x")
    done = run_refused(both)
    assert done.returncode == 2 and "set only one" in done.stderr, done.stderr

    kept = token_path(workspace)
    kept.parent.mkdir(parents=True)
    kept.write_text("readable-by-everyone-0123456789\n")
    kept.chmod(0o644)
    done = run_refused(entrypoint_env(tmp_path, workspace))
    assert done.returncode == 2 and "can be read by others" in done.stderr, done.stderr
    assert "readable-by-everyone" not in done.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="checks the refusal of sshd as root (CI is root)")
def test_ssh_as_root_is_refused(tmp_path: Path) -> None:
    env = entrypoint_env(
        tmp_path,
        tmp_path / "workspace",
        JUPYTER_TOKEN="ok-token-1234567890",
        SSH_AUTHORIZED_KEYS="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB7xS4Zjq9v3yP0u root@x",
    )
    done = run_refused(env)
    assert done.returncode == 2 and "runs as root" in done.stderr, done.stderr


def test_a_config_file_cannot_turn_authentication_or_xsrf_off(tmp_path: Path) -> None:
    """Config files are read by Jupyter itself: the guarded launcher checks the result."""
    workspace = tmp_path / "workspace"
    env = entrypoint_env(tmp_path, workspace, JUPYTER_TOKEN="ok-token-1234567890")
    config = Path(env["JUPYTER_CONFIG_DIR"]) / "jupyter_server_config.json"
    config.write_text(
        json.dumps(
            {
                "IdentityProvider": {"token": ""},
                "ServerApp": {"tornado_settings": {"disable_check_xsrf": True}},
            }
        )
    )
    lab = Entrypoint(env, tmp_path / "entrypoint.log")
    with pytest.raises(AssertionError, match="entrypoint exited 2"):
        lab.start()
    out = lab.output()
    assert "refusing to start JupyterLab: the token is empty" in out
    assert "XSRF checks are turned off" in out
    assert status(lab.url + "/api") == 0, "nothing may answer"


# --------------------------------------------------------------------------- units


def test_kept_token_file_is_private_from_its_creation(tmp_path: Path) -> None:
    path = token_path(tmp_path)
    old = os.umask(0)  # even with a permissive umask
    try:
        assert write_kept_token(path, "first-token-0123456789")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_kept_token(path) == "first-token-0123456789"
    assert not write_kept_token(path, "second-token-0123456789"), "never replaced"
    assert read_kept_token(path) == "first-token-0123456789"
    assert [p.name for p in path.parent.iterdir()] == ["token"], "no temporary file left"
    link = tmp_path / "link"
    link.symlink_to(path)
    with pytest.raises(ContainerError, match="symbolic link"):
        read_kept_token(link)


def test_argument_guard_allows_ordinary_arguments() -> None:
    check_server_args(
        [
            "--YoloApp.max_jobs_per_device=2",
            "--ServerApp.disable_check_xsrf=False",
            "--ServerApp.tornado_settings={'autoreload': False}",
            "--debug",
        ]
    )


def test_weights_are_copied_once_and_never_overwritten(tmp_path: Path) -> None:
    baked = tmp_path / "baked"
    baked.mkdir()
    (baked / "yolov8n.pt").write_bytes(b"image")
    (baked / "yolov8s.pt").write_bytes(b"image")
    workspace = tmp_path / "ws"
    (workspace / "weights").mkdir(parents=True)
    (workspace / "weights" / "yolov8s.pt").write_bytes(b"mine")
    assert provision_weights(baked, workspace) == ["yolov8n.pt"]
    assert provision_weights(baked, workspace) == []
    assert (workspace / "weights" / "yolov8s.pt").read_bytes() == b"mine"
    assert provision_weights(tmp_path / "missing", workspace) == []


def test_secrets_stop_at_jupyterlab_and_never_reach_jobs(tmp_path: Path) -> None:
    base = {
        "PATH": "/usr/bin",
        "SSH_AUTHORIZED_KEYS": "ssh-ed25519 AAAA",
        "HOME": "/home/yolo",
        "JUPYTER_TOKEN_FILE": "/run/secrets/token",
        "YOLO_OFFLINE": "0",
    }
    config = ContainerConfig.from_environ({"YOLO_WORKSPACE": str(tmp_path)})
    lab = lab_environment(config, "the-token-0123456789", base)
    assert "SSH_AUTHORIZED_KEYS" not in lab and "JUPYTER_TOKEN_FILE" not in lab
    assert lab["JUPYTER_TOKEN"] == "the-token-0123456789"
    assert lab["YOLO_OFFLINE"] == "0", "an explicit setting is kept"
    assert lab["YOLO_CONFIG_DIR"] == str(tmp_path / ".ultralytics")
    job = runner_environment({**lab, **base})
    assert not {"JUPYTER_TOKEN", "JUPYTER_TOKEN_FILE", "SSH_AUTHORIZED_KEYS"} & set(job)


# --------------------------------------------------------------------------- signals


@pytest.mark.slow
def test_sigterm_stops_a_running_training_gracefully(tmp_path: Path, shapes_template: Path) -> None:
    workspace = tmp_path / "workspace"
    install_dataset(shapes_template, workspace / "datasets" / "shapes")
    token = "sigterm-" + os.urandom(12).hex()
    env = entrypoint_env(tmp_path, workspace, JUPYTER_TOKEN=token)
    lab = Entrypoint(env, tmp_path / "entrypoint.log").start()
    try:
        job = request_json(
            lab.url + "/yolo/jobs",
            token,
            method="POST",
            body={
                "kind": "train",
                "model": "yolov8n.yaml",
                "data": "shapes",
                "epochs": 50,
                "imgsz": 64,
                "batch": 8,
                "device": "cpu",
                "workers": 0,
                "plots": False,
            },
        )
        job_id = job["id"]
        after, deadline = 0, time.monotonic() + 180
        while time.monotonic() < deadline:
            page = request_json(
                f"{lab.url}/yolo/jobs/{job_id}/events?after={after}&timeout=10", token
            )
            after = page["last_seq"]
            if any(e["type"] == "batch" for e in page["events"]):
                break
            assert page["status"] in ("queued", "running"), page
        else:
            pytest.fail(f"no batch within 180 s:\n{lab.output()[-3000:]}")
        status_file = workspace / "jobs" / job_id / "status.json"
        runner_pid = json.loads(status_file.read_text())["pid"]
    except BaseException:
        lab.kill()
        raise
    code = lab.stop(signal.SIGTERM, timeout=120)
    assert code == 0, lab.output()[-3000:]

    final = json.loads(status_file.read_text())
    assert final["status"] == "stopped", final
    import psutil

    assert not psutil.pid_exists(runner_pid) or psutil.Process(runner_pid).status() == "zombie"
    last = workspace / "jobs" / job_id / "run" / "weights" / "last.pt"
    assert "DetectionModel" in load_weights_in_subprocess(last)
