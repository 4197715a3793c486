"""Make the runner offline and container-aware. :func:`prepare` runs BEFORE ultralytics is imported.

What it does, and why:

* ``YOLO_OFFLINE=1`` makes ``ultralytics.utils.is_online()`` (and so ``ONLINE``) false without a DNS
  lookup: no pip update check, no AMP-check weight download, downloads fail at once with a message.
* ``YOLO_AUTOINSTALL=False``: ``check_requirements`` never runs pip.
* ``YOLO_CONFIG_DIR=<workspace>/.ultralytics``; ultralytics keeps its settings and fonts in the
  ``Ultralytics`` folder under it. Matplotlib's DejaVuSans is copied there as ``Arial.ttf`` and
  ``Arial.Unicode.ttf`` so ``check_font`` never downloads a font.
* ``settings.json`` gets ``sync=False`` (no telemetry events), every integration callback off
  (ClearML, Comet, DVC, MLflow, Ray Tune, TensorBoard, W&B), no API key, and ``weights_dir``,
  ``datasets_dir``, ``runs_dir`` in the workspace.
* ``openvino_telemetry`` is made unimportable so OpenVINO's converter uses its built-in stub.
* A socket guard refuses connections and name lookups for anything but loopback and Unix
  sockets, so any network touch point left (one we did not know of, or one of a future
  ultralytics) fails at once instead of hanging. ``JUPYTER_YOLO_ALLOW_NETWORK=1`` disables it.
  A predict job on a stream lets exactly its source's host through (``allow_hosts``): the name
  lookup of that host, and connections to the addresses that lookup (or the literal address)
  gave. The guard sees Python's sockets only: FFmpeg's own C sockets inside OpenCV (how a
  stream is actually read) do not pass it, so the server's ``allowed_stream_sources`` check of
  the job's source is the real gate; the guard keeps everything else in the runner offline.
* A runner on Ray (the Tune driver and its trials, :mod:`jupyter_yolo.runner.tune_ray`) lets its
  cluster through (:func:`allow_ray_cluster`): the GCS host of ``RAY_ADDRESS`` (a remote head
  such as ``10.0.0.5:6379`` on a real cluster) and the node's IP as Ray reports it. Ray's own
  traffic (gRPC to the GCS, raylets, object managers) is C++ and never meets this guard:
  ``ray.init`` to a remote GCS address, every Python socket call recorded, made none before its
  GCS connection. The allowance covers Python code of Ray or Tune that would open a socket to
  those addresses, and nothing else: other cluster nodes and the Internet stay refused.
* For a stream job, ``OPENCV_FFMPEG_CAPTURE_OPTIONS`` gets ``max_redirects;0`` (an option of
  FFmpeg's http protocol in the FFmpeg 8 OpenCV's wheels bundle; an older FFmpeg ignores it): an
  allowed host that answers with a redirect to another host is refused, not followed
  (``rtsp_transport;tcp``, OpenCV's default that the variable replaces, is kept). The limit that
  stays: an HLS playlist on an allowed host may name variant playlists and segments on *other*
  hosts, and FFmpeg fetches them (its HLS demuxer neither passes ``max_redirects`` on nor has a
  host allow-list), so allow an HLS source only when you trust what its playlists point to.
* ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` / ``OPENBLAS_NUM_THREADS`` default to the CPUs usable
  under the cgroup quota (``import ultralytics`` would otherwise set OMP to 1); an explicit value
  in the environment is kept.
"""

from __future__ import annotations

import contextlib
import importlib.util
import ipaddress
import json
import os
import shutil
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .job import write_json_atomic

INTEGRATIONS_OFF = ("clearml", "comet", "dvc", "mlflow", "raytune", "tensorboard", "wandb")
FONT_NAMES = ("Arial.ttf", "Arial.Unicode.ttf")
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
SECRET_VARS = ("ULTRALYTICS_API_KEY", "WANDB_API_KEY", "COMET_API_KEY", "CLEARML_API_ACCESS_KEY")


def config_dir(workspace: Path) -> Path:
    """``YOLO_CONFIG_DIR`` for a workspace."""
    return workspace / ".ultralytics"


def user_config_dir(workspace: Path) -> Path:
    """Where ultralytics keeps settings and fonts: ``$YOLO_CONFIG_DIR/Ultralytics``."""
    return config_dir(workspace) / "Ultralytics"


def _bundled_font() -> Path | None:
    """Matplotlib's DejaVuSans.ttf, found without importing matplotlib."""
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        font = Path(location) / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"
        if font.is_file():
            return font
    return None


def install_fonts(target: Path) -> list[Path]:
    """Copy a bundled font to ``target`` under the names ultralytics wants; return the missing."""
    target.mkdir(parents=True, exist_ok=True)
    source = _bundled_font()
    missing: list[Path] = []
    for name in FONT_NAMES:
        dest = target / name
        if dest.is_file() and dest.stat().st_size > 0:
            continue
        if source is None:
            missing.append(dest)
            continue
        tmp = dest.with_name(f".{name}.{os.getpid()}.tmp")
        shutil.copyfile(source, tmp)
        os.replace(tmp, dest)
    return missing


def write_settings(workspace: Path) -> dict[str, Any]:
    """Merge our values into ultralytics' ``settings.json`` for this workspace; return them."""
    path = user_config_dir(workspace) / "settings.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    current: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        loaded = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(loaded, dict):
            current = loaded
    ours: dict[str, Any] = {
        "sync": False,
        "api_key": "",
        "weights_dir": str(workspace / "weights"),
        "datasets_dir": str(workspace / "datasets"),
        "runs_dir": str(config_dir(workspace) / "runs"),  # unused (jobs name their folder)
        "vscode_msg": False,
        "openvino_msg": False,
        **dict.fromkeys(INTEGRATIONS_OFF, False),
    }
    if any(current.get(k) != v for k, v in ours.items()):
        write_json_atomic(path, {**current, **ours})
    return ours


_EXPLICIT_ENV: dict[str, str] = {}
_DEFAULTED_THREADS: set[str] = set()


def set_thread_env(cpus: int) -> dict[str, str]:
    """Default the BLAS/OpenMP thread counts to ``cpus``, keeping explicit values; return them."""
    for name in THREAD_VARS:
        if not os.environ.get(name):
            os.environ[name] = str(cpus)
            _DEFAULTED_THREADS.add(name)
        elif name not in _DEFAULTED_THREADS:
            _EXPLICIT_ENV[name] = os.environ[name]
    return {name: os.environ[name] for name in THREAD_VARS}


def _is_local_host(host: Any) -> bool:
    if host is None:
        return True  # getaddrinfo(None, port): the local wildcard / loopback
    if isinstance(host, bytes):
        host = host.decode("ascii", "ignore")
    if not isinstance(host, str):
        return False
    name = host.strip("[]").lower()
    if name in {"", "localhost", "localhost.localdomain", "ip6-localhost"}:
        return True
    try:
        address = ipaddress.ip_address(name.split("%", 1)[0])
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


class NetworkBlocked(OSError):
    """Raised by the socket guard: this runner is offline by design."""


_GUARD = {"installed": False}
_ALLOWED: dict[str, set[str]] = {"names": set(), "addresses": set()}
"""What the guard lets through: names it may look up, and addresses it may connect to."""
GUARD_LOG_PREFIX = "jupyter-yolo offline guard:"


def _host_text(host: Any) -> str:
    if isinstance(host, bytes):
        host = host.decode("ascii", "ignore")
    return str(host).strip("[]").lower().split("%", 1)[0] if host is not None else ""


def install_socket_guard(allow_hosts: tuple[str, ...] = ()) -> bool:
    """Refuse non-loopback connections and lookups in this process; return whether installed.

    ``allow_hosts`` (a stream job's source host): its name lookup is let through, and
    connections to the addresses it resolved to (or to the host itself, when it is an address).
    """
    allowed = os.environ.get("JUPYTER_YOLO_ALLOW_NETWORK", "").lower() in {"1", "true"}
    if _GUARD["installed"] or allowed:
        return _GUARD["installed"]
    allow_more_hosts(allow_hosts)
    allowed_names = _ALLOWED["names"]
    allowed_addresses = _ALLOWED["addresses"]
    real_getaddrinfo = socket.getaddrinfo
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    reported: set[str] = set()

    def note(what: str) -> None:  # one line in the log per refused target: a touch point to know
        if what not in reported:
            reported.add(what)
            print(f"{GUARD_LOG_PREFIX} refused {what}", file=sys.stderr, flush=True)

    def refuse(what: str) -> NetworkBlocked:
        note(what)
        return NetworkBlocked(f"network access is disabled in jupyter-yolo jobs (offline): {what}")

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if _host_text(host) in allowed_names:
            found = real_getaddrinfo(host, *args, **kwargs)
            allowed_addresses.update(_host_text(item[4][0]) for item in found)
            return found
        if not _is_local_host(host):
            note(f"name lookup of {host!r}")
            raise socket.gaierror(socket.EAI_NONAME, f"offline: no name lookup for {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    def _check(sock: socket.socket, address: Any) -> None:
        if sock.family == getattr(socket, "AF_UNIX", None):
            return
        host = address[0] if isinstance(address, tuple) and address else address
        if not _is_local_host(host) and _host_text(host) not in allowed_addresses:
            raise refuse(f"connect to {address!r}")

    def connect(self: socket.socket, address: Any) -> None:
        _check(self, address)
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        _check(self, address)
        return real_connect_ex(self, address)

    setattr(socket, "getaddrinfo", getaddrinfo)  # noqa: B010 - keep mypy away from the stub types
    setattr(socket.socket, "connect", connect)  # noqa: B010
    setattr(socket.socket, "connect_ex", connect_ex)  # noqa: B010
    _GUARD["installed"] = True
    return True


def allow_more_hosts(hosts: tuple[str, ...] | list[str]) -> None:
    """Let ``hosts`` through the guard: their name lookups, the addresses those gave, themselves.

    Takes effect at once in a guard already installed (and in one installed later).
    """
    names = {_host_text(host) for host in hosts if host}
    names.discard("")
    _ALLOWED["names"].update(names)
    _ALLOWED["addresses"].update(names)  # a literal address is its own resolution


RAY_ADDRESS_ENV = "RAY_ADDRESS"


def ray_address_host(value: str | None) -> str | None:
    """The host of a Ray cluster address (``10.0.0.5:6379``, ``ray://head:10001``, ``[::1]:6379``).

    None for no address, ``auto`` and ``local`` (this node's own cluster).
    """
    text = (value or "").strip()
    if "://" in text:
        text = text.split("://", 1)[1]
    text = text.split("/", 1)[0]
    if text.lower() in {"", "auto", "local"}:
        return None
    if text.startswith("["):  # [v6]:port
        return _host_text(text.split("]", 1)[0] + "]") or None
    if text.count(":") == 1:
        text = text.split(":", 1)[0]
    return _host_text(text) or None


def allow_ray_cluster(node_ips: tuple[str, ...] | list[str] = ()) -> tuple[str, ...]:
    """Let a runner on Ray (the Tune driver, a trial) reach its cluster through the guard.

    What passes: the GCS host of ``RAY_ADDRESS`` (its lookup and its addresses) and
    ``node_ips`` (the node's own IP as Ray knows it). Ray's own connections (GCS, raylets,
    object stores: gRPC and C++ sockets) never pass this Python-level guard; what this covers
    is Python code of Ray or Tune that opens a socket to one of those addresses. Returns the
    hosts let through.
    """
    hosts = [ray_address_host(os.environ.get(RAY_ADDRESS_ENV))]
    allowed = tuple(h for h in (*hosts, *(_host_text(ip) for ip in node_ips)) if h)
    allow_more_hosts(allowed)
    return allowed


def block_module(name: str) -> None:
    """Make ``import name`` raise ImportError (libraries then use their fallback)."""
    if name not in sys.modules or sys.modules[name] is None:
        sys.modules[name] = None  # type: ignore[assignment]


CAPTURE_OPTIONS = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
STREAM_CAPTURE_OPTIONS = {"rtsp_transport": "tcp", "max_redirects": "0"}
"""FFmpeg options OpenCV opens a stream with: RTSP over TCP (OpenCV's default), no redirects."""


def stream_capture_options(existing: str | None) -> str:
    """The ``OPENCV_FFMPEG_CAPTURE_OPTIONS`` value (``key;value|key;value``) of a stream job.

    An explicit value is kept, with ``max_redirects`` forced to 0; without one, OpenCV's own
    default (``rtsp_transport;tcp``) is written out since the variable replaces it.
    """
    options = {} if existing else dict(STREAM_CAPTURE_OPTIONS)
    for item in (existing or "").split("|"):
        key, sep, value = item.partition(";")
        if sep and key.strip():
            options[key.strip()] = value
    options["max_redirects"] = "0"
    return "|".join(f"{key};{value}" for key, value in options.items())


def prepare(workspace: Path, cpus: int, allow_hosts: tuple[str, ...] = ()) -> dict[str, Any]:
    """Set up the offline environment. Call before importing ultralytics; return what was set.

    ``allow_hosts``: the one stream host a predict job reads from (see the socket guard).
    """
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "False"
    os.environ["YOLO_CONFIG_DIR"] = str(config_dir(workspace))
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("MPLBACKEND", "Agg")
    if not os.access(Path.home(), os.W_OK):  # else matplotlib rebuilds its font cache every run
        os.environ.setdefault("MPLCONFIGDIR", str(config_dir(workspace) / "matplotlib"))
    for name in SECRET_VARS:
        os.environ.pop(name, None)
    threads = set_thread_env(cpus)
    missing_fonts = install_fonts(user_config_dir(workspace))
    settings = write_settings(workspace)
    for folder in ("weights", "datasets"):  # no runs/ at the root: jobs write in jobs/<id>/run
        (workspace / folder).mkdir(parents=True, exist_ok=True)
    block_module("openvino_telemetry")
    if allow_hosts:  # a stream job: FFmpeg follows no redirect off the allowed host
        os.environ[CAPTURE_OPTIONS] = stream_capture_options(os.environ.get(CAPTURE_OPTIONS))
    guarded = install_socket_guard(allow_hosts)
    return {
        "threads": threads,
        "missing_fonts": [str(p) for p in missing_fonts],
        "settings": settings,
        "socket_guard": guarded,
        "allowed_hosts": list(allow_hosts),
    }


def ultralytics_thread_count(cpus: int) -> int:
    """The thread count by ultralytics' own rule (CPUs - 1, at most 8), on the usable CPUs."""
    return min(8, max(1, cpus - 1))


def apply_ultralytics_thread_count(cpus: int) -> int:
    """Make ultralytics count the CPUs of the container, not of the host.

    ``ultralytics.utils.NUM_THREADS`` comes from ``os.cpu_count()``, the host's CPUs, and
    ``select_device`` resets torch to it for every CPU training, validation and prediction: 8
    threads in a 2-CPU container on a big host. The rule is kept (one CPU left for data loading
    and the server); only the count it starts from becomes the cgroup quota and affinity. The
    inference backends set their own counts (:mod:`jupyter_yolo.inference.threads`).
    """
    count = ultralytics_thread_count(cpus)
    set_ultralytics_thread_count(count)
    return count


def set_wait_policy() -> None:
    """Default ``OMP_WAIT_POLICY`` to ``PASSIVE`` for a training (before torch is imported).

    An explicit value is kept (:func:`explicit_wait_policy`); see the ``omp_wait_policy`` choice
    of :mod:`jupyter_yolo.contract.training_speed` for why.
    """
    if os.environ.get("OMP_WAIT_POLICY"):
        _EXPLICIT_ENV.setdefault("OMP_WAIT_POLICY", os.environ["OMP_WAIT_POLICY"])
    else:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"


def explicit_wait_policy() -> str | None:
    """``OMP_WAIT_POLICY`` as the job's environment set it (None when the runner chose it)."""
    return _EXPLICIT_ENV.get("OMP_WAIT_POLICY") or None


def explicit_omp_threads() -> int | None:
    """``OMP_NUM_THREADS`` as the job's environment set it (None when the runner defaulted it)."""
    value = _EXPLICIT_ENV.get("OMP_NUM_THREADS", "")
    return int(value) if value.isdigit() and int(value) > 0 else None


def set_ultralytics_thread_count(count: int) -> None:
    """Set ultralytics' ``NUM_THREADS`` (what ``select_device`` gives torch) to ``count``."""
    for name in (
        "ultralytics.utils",
        "ultralytics.utils.torch_utils",
        "ultralytics.data.base",
        "ultralytics.data.dataset",
        "ultralytics.data.utils",
        "ultralytics.data.loaders",
    ):
        module = sys.modules.get(name)
        if module is not None and hasattr(module, "NUM_THREADS"):
            setattr(module, "NUM_THREADS", count)  # noqa: B010


def after_import(cpus: int, warn: Callable[[str, str], None]) -> None:
    """Checks and settings that need torch/ultralytics imported (call right after the import)."""
    import torch
    from ultralytics import utils as ul_utils

    threads = int(os.environ.get("OMP_NUM_THREADS") or cpus)
    torch.set_num_threads(max(1, threads))
    apply_ultralytics_thread_count(cpus)
    if getattr(ul_utils, "ONLINE", False):
        warn("online_check", "ultralytics believes it is online although YOLO_OFFLINE is set")
    settings = getattr(ul_utils, "SETTINGS", {})
    if settings.get("sync"):
        with contextlib.suppress(Exception):
            settings.update(sync=False)
