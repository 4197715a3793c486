"""The entrypoint's settings: every environment variable it reads, with its default."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from . import ContainerError


@dataclass(frozen=True)
class EnvVar:
    """One environment variable of the container contract."""

    name: str
    default: str
    meaning: str


#: What the entrypoint reads (docker/CONTRACT.md documents each; a test keeps them in step).
ENVIRONMENT: tuple[EnvVar, ...] = (
    EnvVar("JUPYTER_TOKEN", "(generated)", "JupyterLab token; empty or blank is refused"),
    EnvVar("JUPYTER_TOKEN_FILE", "(unset)", "file holding the token (Docker/Kubernetes secret)"),
    EnvVar("JUPYTER_PORT", "8888", "JupyterLab port"),
    EnvVar("JUPYTER_IP", "0.0.0.0", "address JupyterLab listens on"),
    EnvVar("JUPYTER_BASE_URL", "/", "URL prefix of the server (behind a reverse proxy)"),
    EnvVar("SSH_AUTHORIZED_KEYS", "(unset)", "public keys; sshd starts only when set"),
    EnvVar("SSH_PORT", "22", "sshd port"),
    EnvVar("SSH_LISTEN", "(all addresses)", "address sshd listens on"),
    EnvVar("YOLO_WORKSPACE", "/workspace", "datasets, weights, jobs; the mounted volume"),
    EnvVar("YOLO_WEIGHTS_DIR", "/opt/jupyter-yolo/weights", "weights baked into the image"),
    EnvVar("YOLO_STOP_TIMEOUT", "50", "seconds to wait for JupyterLab after a stop signal"),
    EnvVar(
        "YOLO_ALLOWED_STREAM_SOURCES",
        "(empty)",
        "comma-separated hosts (host or host:port) whose streams predict jobs may read",
    ),
    EnvVar("YOLO_EXECUTOR", "local", "where jobs run: local (this container) or ray"),
    EnvVar("YOLO_RAY_ADDRESS", "(unset)", "Ray Jobs API (dashboard) URL of the head; ray only"),
    EnvVar("YOLO_RAY_PYTHON", "python3", "the Python on the Ray nodes that runs the job runner"),
)

DEFAULT_WORKSPACE = "/workspace"
DEFAULT_WEIGHTS_DIR = "/opt/jupyter-yolo/weights"
DEFAULT_STOP_TIMEOUT = 50.0


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ContainerError(f"{name} must be a port number from 1 to 65535, not {raw!r}.")
    return int(raw)


def _stream_sources(raw: str) -> tuple[str, ...]:
    """``YOLO_ALLOWED_STREAM_SOURCES`` as hosts; a URL, a path or a user name is refused."""
    hosts = tuple(part.strip() for part in raw.split(",") if part.strip())
    for host in hosts:
        if any(c in host for c in "/@?#\\ \t"):
            raise ContainerError(
                "YOLO_ALLOWED_STREAM_SOURCES must be hosts separated by commas, each a name or "
                f"an IP address with an optional port (camera1.local,10.0.0.7:554), not {host!r}."
            )
    return hosts


EXECUTORS = ("local", "ray")


def _executor(raw: str) -> str | None:
    """``YOLO_EXECUTOR``: ``local`` or ``ray``; unset or blank leaves the server's own default."""
    value = raw.strip().lower()
    if value and value not in EXECUTORS:
        raise ContainerError(
            f"YOLO_EXECUTOR must be local (jobs run in this container) or ray (jobs run on the "
            f"Ray cluster at YOLO_RAY_ADDRESS), not {raw.strip()!r}."
        )
    return value or None


def _ray_address(raw: str, executor: str | None) -> str | None:
    """``YOLO_RAY_ADDRESS``: the head's Jobs API as an http(s) URL without credentials."""
    address = raw.strip()
    if not address:
        if executor == "ray":
            raise ContainerError(
                "YOLO_EXECUTOR=ray needs YOLO_RAY_ADDRESS, the Ray Jobs API (dashboard) URL of "
                "the head, e.g. http://ray-head:8265."
            )
        return None
    example = (
        "an http(s) URL such as http://ray-head:8265 (the head's dashboard and Jobs API; not "
        "the GCS address host:6379 nor a ray:// client address)"
    )
    if "@" in address or "?" in address or "#" in address:
        # never echo such a value: it may hold a user name, a password or a token
        raise ContainerError(
            "YOLO_RAY_ADDRESS must hold no user name, password, query or fragment; give "
            f"{example}. The Jobs API has no login of its own: restrict who can reach it."
        )
    try:
        parts = urlsplit(address)
        port = parts.port  # raises ValueError on a port that is not a number from 0 to 65535
    except ValueError:
        raise ContainerError(f"YOLO_RAY_ADDRESS must be {example}, not {address!r}.") from None
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or any(c.isspace() for c in address)
        or port == 0
    ):
        raise ContainerError(f"YOLO_RAY_ADDRESS must be {example}, not {address!r}.")
    return address.rstrip("/")


def _ray_python(raw: str) -> str | None:
    """``YOLO_RAY_PYTHON``: a command name or an absolute path, nothing a shell would expand."""
    python = raw.strip()
    if not python:
        return None
    if not re.fullmatch(r"[A-Za-z0-9_.+/-]+", python) or python.startswith("-"):
        raise ContainerError(
            "YOLO_RAY_PYTHON must be the Python command on the Ray nodes, a name or an absolute "
            f"path such as python3 or /opt/venv/bin/python, not {raw.strip()!r}."
        )
    return python


def _base_url(raw: str) -> str:
    url = raw.strip() or "/"
    if any(c in url for c in "?#\\ ") or "//" in url:
        raise ContainerError(f"JUPYTER_BASE_URL must be a URL path such as /lab-1/, not {raw!r}.")
    return "/" + url.strip("/") + "/" if url != "/" else "/"


@dataclass(frozen=True)
class ContainerConfig:
    """The settings of one start, read from the environment and checked."""

    workspace: Path
    jupyter_ip: str
    jupyter_port: int
    base_url: str
    token: str | None
    token_file: Path | None
    ssh_authorized_keys: str | None
    ssh_port: int
    ssh_listen: str
    weights_dir: Path
    stop_timeout: float
    allowed_stream_sources: tuple[str, ...] = ()
    executor: str | None = None
    ray_address: str | None = None
    ray_python: str | None = None

    @classmethod
    def from_environ(cls, env: Mapping[str, str] | None = None) -> ContainerConfig:
        """Read and check the settings; raise :class:`ContainerError` with a fix on bad values."""
        env = os.environ if env is None else env
        raw_timeout = env.get("YOLO_STOP_TIMEOUT", "").strip()
        try:
            stop_timeout = float(raw_timeout) if raw_timeout else DEFAULT_STOP_TIMEOUT
        except ValueError:
            stop_timeout = -1.0
        if not 0 < stop_timeout <= 3600:
            raise ContainerError(
                f"YOLO_STOP_TIMEOUT must be a number of seconds (0-3600], not {raw_timeout!r}."
            )
        workspace = env.get("YOLO_WORKSPACE", "").strip() or DEFAULT_WORKSPACE
        token_file = env.get("JUPYTER_TOKEN_FILE", "").strip()
        keys = env.get("SSH_AUTHORIZED_KEYS")
        executor = _executor(env.get("YOLO_EXECUTOR", ""))
        return cls(
            workspace=Path(workspace).expanduser().absolute(),
            jupyter_ip=env.get("JUPYTER_IP", "").strip() or "0.0.0.0",
            jupyter_port=_port(env, "JUPYTER_PORT", 8888),
            base_url=_base_url(env.get("JUPYTER_BASE_URL", "/")),
            token=env.get("JUPYTER_TOKEN"),
            token_file=Path(token_file) if token_file else None,
            ssh_authorized_keys=keys if keys and keys.strip() else None,
            ssh_port=_port(env, "SSH_PORT", 22),
            ssh_listen=env.get("SSH_LISTEN", "").strip(),
            weights_dir=Path(env.get("YOLO_WEIGHTS_DIR", "").strip() or DEFAULT_WEIGHTS_DIR),
            stop_timeout=stop_timeout,
            allowed_stream_sources=_stream_sources(env.get("YOLO_ALLOWED_STREAM_SOURCES", "")),
            executor=executor,
            ray_address=_ray_address(env.get("YOLO_RAY_ADDRESS", ""), executor),
            ray_python=_ray_python(env.get("YOLO_RAY_PYTHON", "")),
        )

    def server_arguments(self) -> list[str]:
        """The server extension's settings from the environment, as JupyterLab arguments.

        Only what the environment sets is passed, so a Jupyter config file's value of a setting
        the environment leaves unset still applies.
        """
        args = [f"--YoloApp.allowed_stream_sources={host}" for host in self.allowed_stream_sources]
        for name, value in (
            ("executor", self.executor),
            ("ray_address", self.ray_address),
            ("ray_python", self.ray_python),
        ):
            if value is not None:
                args.append(f"--YoloApp.{name}={value}")
        return args

    @property
    def local_host(self) -> str:
        """The address a process in the container reaches JupyterLab at (health check)."""
        if self.jupyter_ip in ("", "0.0.0.0", "*", "localhost"):
            return "127.0.0.1"
        if self.jupyter_ip == "::":
            return "::1"
        return self.jupyter_ip

    def local_url(self, path: str = "") -> str:
        """``http://HOST:PORT{base_url}{path}`` for requests from inside the container."""
        host = f"[{self.local_host}]" if ":" in self.local_host else self.local_host
        return f"http://{host}:{self.jupyter_port}{self.base_url}{path.lstrip('/')}"
