"""A Python client for the ``/yolo/`` REST API: the supported way to script the product.

Inside a kernel started by JupyterLab, ``YoloClient()`` finds the server that started it and its
token by itself. From anywhere else, give the URL and the token::

    from jupyter_yolo.client import YoloClient

    client = YoloClient("http://gpu-box:8888", token="...")
    job = client.train(data="shapes", epochs=3, imgsz=64)
    for event in client.iter_events(job["id"]):
        print(event["type"], event.get("loss"))

Only the standard library is used (urllib), so the client imports neither torch nor ultralytics
and works in any Python 3.10+ environment that can reach the server.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "NotFoundError",
    "ServerInfo",
    "ServerUnavailable",
    "YoloClient",
    "YoloClientError",
    "discover_server",
]

from .client_predict import PredictServiceMixin
from .contract.results import RunResults
from .contract.status import TERMINAL

DEFAULT_TIMEOUT = 30.0
UPLOAD_CHUNK = 256 * 1024
PROBE_TIMEOUT = 3.0
END_GRACE = 2.0


# --------------------------------------------------------------------------------- errors


class YoloClientError(Exception):
    """A request failed; ``status`` is the HTTP code (None when no answer came back)."""

    def __init__(self, status: int | None, message: str, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.body = body
        self.headers: dict[str, str] = {}  # the answer's headers (Retry-After ...)

    def __str__(self) -> str:
        return self.message if self.status is None else f"[HTTP {self.status}] {self.message}"


class AuthenticationError(YoloClientError):
    """The server refused the token (HTTP 401 or 403)."""


class NotFoundError(YoloClientError):
    """The job, dataset, file or endpoint does not exist (HTTP 404)."""


class BadRequestError(YoloClientError):
    """The request was refused as invalid (HTTP 400, 413, 415, 422); the message says why."""


class ConflictError(YoloClientError):
    """The thing exists but its state does not allow the action (HTTP 409)."""


class ServerUnavailable(YoloClientError):
    """No answer: the server is down, unreachable, timed out, or answered 502/503/504."""


def _error_for(status: int, message: str, body: Any) -> YoloClientError:
    if status in (401, 403):
        return AuthenticationError(status, message, body)
    if status == 404:
        return NotFoundError(status, message, body)
    if status == 409:
        return ConflictError(status, message, body)
    if status in (502, 503, 504):
        return ServerUnavailable(status, message, body)
    if 400 <= status < 500:
        return BadRequestError(status, message, body)
    return YoloClientError(status, message, body)


# --------------------------------------------------------------------------------- discovery


@dataclass(frozen=True)
class ServerInfo:
    """Where a Jupyter server answers and the token it takes."""

    url: str
    token: str | None
    root_dir: str | None = None
    pid: int | None = None
    source: str = "explicit"


def _runtime_dir() -> Path:
    env = os.environ.get("JUPYTER_RUNTIME_DIR")
    if env:
        return Path(env)
    try:
        from jupyter_core.paths import jupyter_runtime_dir

        return Path(jupyter_runtime_dir())
    except ImportError:  # pragma: no cover - jupyter_core comes with every kernel
        return Path.home() / ".local" / "share" / "jupyter" / "runtime"


def _pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_servers(runtime_dir: Path | None = None) -> list[dict[str, Any]]:
    """The ``jpserver-*.json`` records of running Jupyter servers (dead ones are skipped)."""
    folder = runtime_dir or _runtime_dir()
    servers = []
    with contextlib.suppress(OSError):
        for path in sorted(folder.glob("jpserver-*.json")):
            try:
                info = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(info, dict) and info.get("url") and _pid_alive(info.get("pid")):
                servers.append(info)
    return servers


def _score(info: dict[str, Any], cwd: Path) -> int:
    """How likely it is that this server started the current kernel (higher is likelier)."""
    score = 0
    pid = info.get("pid")
    parents = {os.getppid()}
    with contextlib.suppress(ValueError):
        parents.add(int(os.environ.get("JPY_PARENT_PID", "0")))
    if pid in parents:
        score += 100
    root = info.get("root_dir")
    if isinstance(root, str) and root:
        root_path = Path(root).resolve()
        if cwd == root_path or root_path in cwd.parents:
            score += 10
        session = os.environ.get("JPY_SESSION_NAME")
        if session:
            candidate = Path(session) if os.path.isabs(session) else root_path / session
            if candidate.exists():
                score += 20
    return score


def discover_server(timeout: float = PROBE_TIMEOUT) -> ServerInfo:
    """Find the Jupyter server this process belongs to, and its token.

    Order: ``JUPYTER_SERVER_URL`` (with ``JUPYTER_TOKEN``) when set; else the running servers
    listed in the Jupyter runtime folder, the one that started this kernel first (its pid is
    the kernel's parent), then those whose root folder holds the working folder. The first
    whose ``/yolo/accelerators/usage`` answers with its token wins.
    """
    env_url = os.environ.get("JUPYTER_SERVER_URL")
    if env_url:
        return ServerInfo(env_url, os.environ.get("JUPYTER_TOKEN") or None, source="environment")
    cwd = Path.cwd().resolve()
    candidates = sorted(running_servers(), key=lambda info: -_score(info, cwd))
    problems = []
    for info in candidates:
        server = ServerInfo(
            url=str(info["url"]),
            token=info.get("token") or os.environ.get("JUPYTER_TOKEN") or None,
            root_dir=info.get("root_dir"),
            pid=info.get("pid"),
            source="runtime",
        )
        try:
            YoloClient(server.url, server.token, timeout=timeout).usage()
        except YoloClientError as exc:
            problems.append(f"{server.url}: {exc}")
            continue
        return server
    detail = ("; ".join(problems)) if problems else "no running Jupyter server was found"
    raise ServerUnavailable(
        None,
        "Could not find a Jupyter server with the jupyter_yolo extension "
        f"({detail}). Outside JupyterLab, pass the URL and token: "
        "YoloClient('http://HOST:8888', token='...'), or set JUPYTER_SERVER_URL and JUPYTER_TOKEN.",
    )


# --------------------------------------------------------------------------------- client


def _params(params: dict[str, Any] | None) -> str:
    if not params:
        return ""
    clean = {k: _query_value(v) for k, v in params.items() if v is not None}
    return "?" + urllib.parse.urlencode(clean) if clean else ""


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _chunks(
    source: bytes | IO[bytes], total: int, progress: Callable[[int, int], None] | None
) -> Iterator[bytes]:
    sent = 0
    if isinstance(source, bytes):
        view = memoryview(source)
        while sent < total:
            chunk = bytes(view[sent : sent + UPLOAD_CHUNK])
            sent += len(chunk)
            yield chunk
            if progress is not None:
                progress(sent, total)
        return
    while True:
        chunk = source.read(UPLOAD_CHUNK)
        if not chunk:
            return
        sent += len(chunk)
        yield chunk
        if progress is not None:
            progress(sent, total)


class YoloClient(PredictServiceMixin):
    """Speaks the jupyter_yolo REST API with the server's token.

    ``YoloClient()`` discovers the server (inside a kernel started by Jupyter);
    ``YoloClient(url, token)`` talks to the given one. Every failed request raises a
    :class:`YoloClientError` subclass carrying the server's message.
    """

    def __init__(
        self, url: str | None = None, token: str | None = None, *, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        if url is None:
            info = discover_server()
            url = info.url
            token = token if token is not None else info.token
        elif token is None:
            token = os.environ.get("JUPYTER_TOKEN") or None
        self.url = url.rstrip("/") + "/"
        self.token = token
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"YoloClient({self.url!r})"

    # ----------------------------------------------------------------------------- transport

    def _url(self, path: str, params: dict[str, Any] | None = None) -> str:
        return urllib.parse.urljoin(self.url, path.lstrip("/")) + _params(params)

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"token {self.token}"
        headers.update(extra or {})
        return headers

    def request_raw(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json_body: Any = None,
        data: bytes | Iterable[bytes] | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """Send a request; return (status, headers, body) or raise a :class:`YoloClientError`."""
        extra = dict(headers or {})
        if json_body is not None:
            data = json.dumps(json_body).encode()
            extra.setdefault("Content-Type", "application/json")
        request = urllib.request.Request(
            self._url(path, params), data=data, method=method, headers=self._headers(extra)
        )
        url = request.full_url
        try:
            with urllib.request.urlopen(request, timeout=timeout or self.timeout) as response:
                return response.status, dict(response.headers.items()), response.read()
        except urllib.error.HTTPError as exc:
            raise self._http_error(exc, method, path) from None
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ServerUnavailable(
                None, f"The server at {self.url} did not answer {method} {url}: {reason}"
            ) from None

    def _http_error(self, exc: urllib.error.HTTPError, method: str, path: str) -> YoloClientError:
        raw = b""
        with contextlib.suppress(Exception):
            raw = exc.read()
        body: Any = None
        message = ""
        with contextlib.suppress(ValueError, UnicodeDecodeError):
            body = json.loads(raw)
        if isinstance(body, dict):
            message = str(body.get("message") or body.get("reason") or "")
        elif raw:
            message = raw.decode("utf-8", errors="replace")[:500]
        status = exc.code
        if status in (401, 403) and (not message or message in ("Forbidden", "Unauthorized")):
            hint = "no token was given" if not self.token else "the token was refused"
            message = (
                f"{method} {path}: {hint} by the server at {self.url} (HTTP {status}). Check the "
                f"token (JupyterLab prints it at start, or run 'jupyter server list' on the "
                f"server)" + (f"; the server said: {message}" if message else ".")
            )
        elif not message:
            message = f"{method} {path} failed with HTTP {status} {exc.reason}"
        error = _error_for(status, message, body)
        error.headers = dict(exc.headers.items()) if exc.headers else {}
        return error

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json_body: Any = None,
        timeout: float | None = None,
    ) -> Any:
        """Send a request and decode the JSON answer (None for an empty body)."""
        _, _, body = self.request_raw(
            method, path, params=params, json_body=json_body, timeout=timeout
        )
        if not body:
            return None
        try:
            return json.loads(body)
        except ValueError:
            raise YoloClientError(
                None, f"{method} {path}: the server answered with something other than JSON."
            ) from None

    # ----------------------------------------------------------------------------- hardware

    def accelerators(self, refresh: bool = False) -> dict[str, Any]:
        """The hardware report (the first call may take a few seconds: the server probes)."""
        params = {"refresh": True} if refresh else None
        result: dict[str, Any] = self.request(
            "GET", "yolo/accelerators", params=params, timeout=max(self.timeout, 150.0)
        )
        return result

    def usage(self) -> dict[str, Any]:
        """Live CPU, memory and GPU utilisation."""
        result: dict[str, Any] = self.request("GET", "yolo/accelerators/usage")
        return result

    # ----------------------------------------------------------------------------- datasets

    def datasets(self) -> list[dict[str, Any]]:
        """Every dataset with its counts and validation status."""
        return list(self.request("GET", "yolo/datasets")["datasets"])

    def dataset(self, name: str) -> dict[str, Any]:
        """A dataset's summary and full validation report."""
        result: dict[str, Any] = self.request(
            "GET", f"yolo/datasets/{_quote(name)}", timeout=max(self.timeout, 120.0)
        )
        return result

    def dataset_samples(
        self, name: str, *, split: str = "val", count: int = 8, seed: int = 0, thumbnail: int = 0
    ) -> dict[str, Any]:
        """A few images of a split with their boxes, for previews."""
        params = {"split": split, "count": count, "seed": seed, "thumbnail": thumbnail}
        result: dict[str, Any] = self.request(
            "GET", f"yolo/datasets/{_quote(name)}/samples", params=params
        )
        return result

    def dataset_file(self, name: str, path: str) -> bytes:
        """One file (image, label, yaml) of a dataset."""
        _, _, body = self.request_raw(
            "GET", f"yolo/datasets/{_quote(name)}/files/{_quote(path, safe='/')}"
        )
        return body

    def upload_dataset(
        self,
        name: str,
        archive: bytes | str | Path | IO[bytes],
        *,
        filename: str | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> dict[str, Any]:
        """Upload a zip archive as dataset ``name``; ``progress(sent, total)`` sees the bytes."""
        handle: IO[bytes] | None = None
        if isinstance(archive, (str, Path)):
            path = Path(archive)
            total = path.stat().st_size
            filename = filename or path.name
            handle = path.open("rb")
            source: bytes | IO[bytes] = handle
        elif isinstance(archive, bytes):
            total = len(archive)
            source = archive
        else:
            position = archive.tell()
            total = archive.seek(0, os.SEEK_END) - position
            archive.seek(position)
            source = archive
        params = {"name": name, "filename": filename}
        try:
            _, _, body = self.request_raw(
                "POST",
                "yolo/datasets",
                params=params,
                data=_chunks(source, total, progress),
                headers={"Content-Type": "application/zip", "Content-Length": str(total)},
                timeout=max(self.timeout, 600.0),
            )
        finally:
            if handle is not None:
                handle.close()
        result: dict[str, Any] = json.loads(body)
        return result

    def import_dataset(self, name: str | None, path: str) -> dict[str, Any]:
        """Register a workspace-relative zip or folder as a dataset."""
        body: dict[str, Any] = {"path": path}
        if name:
            body["name"] = name
        result: dict[str, Any] = self.request(
            "POST", "yolo/datasets", json_body=body, timeout=max(self.timeout, 600.0)
        )
        return result

    def dataset_uploads(self) -> dict[str, Any]:
        """Uploads and imports in flight, with their stage and bytes."""
        result: dict[str, Any] = self.request("GET", "yolo/datasets/uploads")
        return result

    def delete_dataset(self, name: str) -> None:
        """Delete a dataset (refused while a job uses it)."""
        self.request("DELETE", f"yolo/datasets/{_quote(name)}")

    # ----------------------------------------------------------------------------- models

    def models(self) -> dict[str, Any]:
        """Architectures, weights in the workspace and trained jobs (``job:<id>:best``)."""
        result: dict[str, Any] = self.request("GET", "yolo/models")
        return result

    def tasks(self) -> dict[str, Any]:
        """The task profile table: every task's keys, metrics, losses, geometry; architectures."""
        result: dict[str, Any] = self.request("GET", "yolo/tasks")
        return result

    # ----------------------------------------------------------------------------- jobs

    def jobs(self) -> list[dict[str, Any]]:
        """Every job, newest first."""
        return list(self.request("GET", "yolo/jobs")["jobs"])

    def job(self, job_id: str) -> dict[str, Any]:
        """One job: status, parameters, progress, result and error."""
        result: dict[str, Any] = self.request("GET", f"yolo/jobs/{_quote(job_id)}")
        return result

    def create_job(self, kind: str = "train", **params: Any) -> dict[str, Any]:
        """Create a job (``kind``: train, val, predict, export) with the given parameters."""
        body = {"kind": kind, **{k: v for k, v in params.items() if v is not None}}
        result: dict[str, Any] = self.request(
            "POST", "yolo/jobs", json_body=body, timeout=max(self.timeout, 120.0)
        )
        return result

    def train(self, data: str, **params: Any) -> dict[str, Any]:
        """Start a training on ``data`` (a dataset name or a workspace-relative data.yaml)."""
        return self.create_job("train", data=data, **params)

    def tune(
        self,
        train: dict[str, Any],
        space: dict[str, Any] | None = None,
        iterations: int | None = None,
        epochs: int | None = None,
        **params: Any,
    ) -> dict[str, Any]:
        """Start a hyperparameter search (a ``tune`` job) over the training request ``train``.

        ``space``: the parameters to search with their bounds (``{"lr0": [0.001, 0.02]}``; the
        server's default space without it), ``iterations``: how many trials, ``epochs``: per
        trial; ``executor="ray"`` runs the trials in parallel on the Ray cluster.
        """
        return self.create_job(
            "tune", train=train, space=space, iterations=iterations, epochs=epochs, **params
        )

    def trials(self, job_id: str) -> dict[str, Any] | None:
        """A tune job's trials table, best trial and ``best_request`` (a ``TuneResult``).

        None while the job has no table yet.
        """
        tune: Any = self.job(job_id).get("result")  # an ended job's own TuneResult
        if not isinstance(tune, dict) or not isinstance(tune.get("trials"), list):
            with contextlib.suppress(BadRequestError):
                tune = self.request("GET", f"yolo/jobs/{_quote(job_id)}/results").get("tune")
        if isinstance(tune, list):
            tune = {"trials": tune}
        return tune if isinstance(tune, dict) and isinstance(tune.get("trials"), list) else None

    def predict(self, *args: Any, **params: Any) -> Any:
        """A predict job, or with ``model=`` as keyword an answer of the warm service.

        ``predict(model, source, **params)`` starts a predict JOB on a workspace image, folder,
        video or stream and returns the job. ``predict(images, model=..., conf=...)`` (only the
        images positional, ``model`` by keyword, no ``source``) and ``predict(paths=[...],
        model=...)`` are :meth:`predict_images`: the parsed answer of ``POST /yolo/predict``.
        The forms cannot be confused: the job form never took one positional plus ``model=``.
        """
        if "model" in params and "source" not in params and (len(args) == 1 or "paths" in params):
            return self.predict_images(*args, **params)
        named = dict(zip(("model", "source"), args, strict=False))
        if len(args) > 2 or set(named) & set(params):
            raise TypeError(
                "predict(model, source, **params) starts a job; predict(images, model=...) "
                "asks the warm service"
            )
        return self.create_job("predict", **named, **params)

    def stop(self, job_id: str) -> dict[str, Any]:
        """Ask a job to stop (a training finishes its batch and saves a resumable last.pt)."""
        result: dict[str, Any] = self.request("POST", f"yolo/jobs/{_quote(job_id)}/stop")
        return result

    def resume(self, job_id: str) -> dict[str, Any]:
        """Queue a stopped or interrupted training again; it continues from last.pt."""
        result: dict[str, Any] = self.request("POST", f"yolo/jobs/{_quote(job_id)}/resume")
        return result

    def results(self, job_id: str) -> RunResults:
        """A run's results: best and last epoch, validator results once final, system usage."""
        result: RunResults = self.request("GET", f"yolo/jobs/{_quote(job_id)}/results")
        return result

    def events(
        self,
        job_id: str,
        after: int = 0,
        timeout: float = 0,
        limit: int | None = None,
        status: str | None = None,
    ) -> dict[str, Any]:
        """Events after seq ``after``; ``timeout`` seconds of long poll when there are none.

        The long poll also ends when the job's status changes; with ``status`` (the one last
        seen) it ends at once when the job's differs, and an ended job is waited on too.
        Returns ``{"events": [...], "last_seq": N, "status": "...", "actions": {...},
        "more": bool}``.
        """
        wait = max(0, min(60, round(timeout)))
        params = {"after": after, "timeout": wait, "limit": limit, "status": status}
        result: dict[str, Any] = self.request(
            "GET", f"yolo/jobs/{_quote(job_id)}/events", params=params, timeout=self.timeout + wait
        )
        return result

    def iter_pages(
        self,
        job_id: str,
        after: int = 0,
        *,
        timeout: float = 10,
        limit: int | None = None,
        follow: bool = True,
    ) -> Iterator[dict[str, Any]]:
        """Yield pages of :meth:`events` from seq ``after`` on, until the job has ended.

        A page that has ``more`` is followed at once (catching up); then each request waits up
        to ``timeout`` seconds for new events. Without ``follow`` it stops once caught up.
        """
        ended_at: float | None = None
        last_status: str | None = None
        catching_up = True
        while True:
            wait = 0 if catching_up or not follow else timeout
            page = self.events(job_id, after=after, timeout=wait, limit=limit)
            events = page["events"]
            for event in events:
                if event.get("type") == "status":
                    last_status = event.get("status")
            yield page
            if events:
                after = events[-1]["seq"]
            catching_up = bool(page["more"])
            if catching_up:
                continue
            if not follow:
                return
            if page["status"] in TERMINAL and not events:
                if last_status in TERMINAL:
                    return
                # the server may append the final status event just after the registry says so
                ended_at = ended_at or time.monotonic()
                if time.monotonic() - ended_at > END_GRACE:
                    return
                time.sleep(0.25)

    def iter_events(
        self, job_id: str, after: int = 0, *, timeout: float = 10, follow: bool = True
    ) -> Iterator[dict[str, Any]]:
        """Yield events from seq ``after`` on; with ``follow`` until the job has ended."""
        for page in self.iter_pages(job_id, after, timeout=timeout, follow=follow):
            yield from page["events"]

    def wait(
        self, job_id: str, timeout: float | None = None, statuses: Iterable[str] = TERMINAL
    ) -> dict[str, Any]:
        """Wait until the job's status is one of ``statuses`` or it has ended; return the job.

        Raises ``TimeoutError`` when ``timeout`` seconds pass first.
        """
        wanted = set(statuses)
        deadline = None if timeout is None else time.monotonic() + timeout
        after = 0
        while True:
            job = self.job(job_id)
            if job["status"] in wanted or job["status"] in TERMINAL:
                return job
            after = max(after, int(job["progress"].get("last_seq") or 0))
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise TimeoutError(f"job {job_id} is still {job['status']} after {timeout}s")
            wait = 5.0 if remaining is None else min(5.0, remaining)
            after = self.events(job_id, after=after, timeout=wait, limit=1)["last_seq"]

    def log(self, job_id: str, max_bytes: int | None = None) -> str:
        """The tail of a job's log."""
        _, _, body = self.request_raw(
            "GET", f"yolo/jobs/{_quote(job_id)}/log", params={"bytes": max_bytes}
        )
        return body.decode("utf-8", errors="replace")

    def artifacts(self, job_id: str) -> list[dict[str, Any]]:
        """A job's result files (paths relative to the job folder)."""
        return list(self.request("GET", f"yolo/jobs/{_quote(job_id)}/artifacts")["artifacts"])

    def artifact(self, job_id: str, path: str) -> bytes:
        """One result file of a job, e.g. ``run/predictions.json`` or ``run/weights/best.pt``."""
        _, _, body = self.request_raw(
            "GET",
            f"yolo/jobs/{_quote(job_id)}/artifacts/{_quote(path, safe='/')}",
            timeout=max(self.timeout, 300.0),
        )
        return body

    def openapi(self) -> dict[str, Any]:
        """The API described as OpenAPI 3."""
        result: dict[str, Any] = self.request("GET", "yolo/openapi.json")
        return result

    # ----------------------------------------------------------------------------- workspace files

    def workspace_server_path(self) -> str | None:
        """The workspace's folder relative to the server root ("" is the root; None: outside)."""
        try:
            answer = self.request("GET", "yolo/workspace")
        except NotFoundError:
            answer = None
        if isinstance(answer, dict) and "server_path" in answer:
            value = answer["server_path"]
            return value if isinstance(value, str) else None
        for candidate in ("", "yolo"):  # older servers: the two usual places
            with contextlib.suppress(YoloClientError):
                listing = self.request(
                    "GET", f"api/contents/{_quote(candidate, safe='/')}", params={"content": 1}
                )
                names = {item.get("name") for item in listing.get("content") or []}
                if {"datasets", "jobs"} <= names:
                    return candidate
        return None

    def put_workspace_file(self, path: str, content: bytes) -> str:
        """Write a file into the workspace through Jupyter's contents API; return its path.

        ``path`` is workspace-relative. It needs the workspace inside the server's root folder.
        """
        prefix = self.workspace_server_path()
        if prefix is None:
            raise BadRequestError(
                None,
                "The workspace lies outside the Jupyter server's root folder, so files cannot "
                "be written there through the contents API; use a dataset image instead.",
            )
        parts = [p for p in path.split("/") if p]
        if not parts or any(p in (".", "..") for p in parts):
            raise BadRequestError(None, f"{path!r} is not a workspace-relative file path.")
        for depth in range(1, len(parts)):
            folder = "/".join(filter(None, [prefix, *parts[:depth]]))
            with contextlib.suppress(ConflictError, BadRequestError):
                self.request(
                    "PUT",
                    f"api/contents/{_quote(folder, safe='/')}",
                    json_body={"type": "directory"},
                )
        target = "/".join(filter(None, [prefix, *parts]))
        self.request(
            "PUT",
            f"api/contents/{_quote(target, safe='/')}",
            json_body={
                "type": "file",
                "format": "base64",
                "content": base64.b64encode(content).decode("ascii"),
            },
            timeout=max(self.timeout, 120.0),
        )
        return "/".join(parts)


def _quote(value: str, safe: str = "") -> str:
    return urllib.parse.quote(value, safe=safe)
