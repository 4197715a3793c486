"""``/yolo/jobs`` and ``/yolo/models``: create, list, watch, stop and resume jobs.

File and hashing work (listing jobs reads their event files, ``/yolo/models`` hashes weights
files it has not seen, logs and artifacts are read from disk) runs in threads, never on the
event loop. ``/yolo/models`` has a small pool of its own, so a slow hash can never hold the
threads every other request uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import mimetypes
import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..contract.status import STATUSES
from ..errors import InvalidRequest, YoloError
from ..jobs.devices import needs_report
from ..jobs.results import run_results
from .base import YoloHandler
from .headers import content_disposition

# Served inline only when the browser cannot run them; anything else is a download.
INLINE_TYPES = {
    "image/png",
    "image/jpeg",
    "text/csv",
    "application/json",
    "text/plain",
    "video/mp4",  # a predict job's annotated video, played (and seeked with Range) in the browser
}
CHUNK = 1024 * 1024
MODELS_THREADS = 2
MAX_ARTIFACT_PATH_BYTES = 4096

_models_pool = ThreadPoolExecutor(max_workers=MODELS_THREADS, thread_name_prefix="yolo-models")


async def prepare_checks(handler: YoloHandler, request: dict[str, object]) -> None:
    """Do the slow parts of validating a job request off the event loop, before validation.

    A dataset's report may need computing, and a device other than the CPU is checked against
    the hardware report, which is probed once.
    """
    await asyncio.to_thread(handler.yolo.datasets.warm, request.get("data"))
    device = request.get("device", handler.yolo.jobs.validator.default_device)
    if isinstance(device, str) and needs_report(device):
        with contextlib.suppress(YoloError):
            await handler.yolo.accelerators.report()


class JobsHandler(YoloHandler):
    """``GET /yolo/jobs`` lists jobs and the queue; ``POST`` creates a job."""

    auth_resource = "jupyter_yolo:jobs"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """List the jobs, newest first, with the queue in start order.

        ``?limit=N``: only the newest N jobs and every job that has not ended.
        """
        limit = self.query_int("limit", 0, 1, 1_000_000) or None
        # encoded off the event loop
        body = await asyncio.to_thread(self.yolo.jobs.list_jobs_json, limit)
        self.set_header("Content-Type", "application/json")
        self.finish(body)

    @web.authenticated
    @authorized
    async def post(self) -> None:
        """Create a train, val, predict or export job."""
        self.yolo.jobs.ensure_started()
        body = self.json_body()
        await prepare_checks(self, body)
        job = await asyncio.to_thread(self.yolo.jobs.create, body)
        self.set_header("Location", self.request.path.rstrip("/") + "/" + job["id"])
        self.write_json(job, status=201)


class JobHandler(YoloHandler):
    """``GET /yolo/jobs/{id}``: status, parameters, progress, result and error."""

    auth_resource = "jupyter_yolo:jobs"

    @web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        """Describe one job."""
        self.write_json(await asyncio.to_thread(self.yolo.jobs.get, job_id))


class JobStopHandler(YoloHandler):
    """``POST /yolo/jobs/{id}/stop``: graceful stop, then SIGTERM, then SIGKILL."""

    auth_resource = "jupyter_yolo:jobs"

    @web.authenticated
    @authorized
    async def post(self, job_id: str) -> None:
        """Ask the job to stop."""
        self.yolo.jobs.ensure_started()
        self.write_json(await asyncio.to_thread(self.yolo.jobs.stop, job_id), status=202)


class JobResumeHandler(YoloHandler):
    """``POST /yolo/jobs/{id}/resume``: continue a stopped or interrupted training."""

    auth_resource = "jupyter_yolo:jobs"

    @web.authenticated
    @authorized
    async def post(self, job_id: str) -> None:
        """Queue the job again from its ``last.pt``."""
        self.yolo.jobs.ensure_started()
        record = await asyncio.to_thread(self.yolo.jobs.record, job_id)
        await prepare_checks(self, record.request)
        self.write_json(await asyncio.to_thread(self.yolo.jobs.resume, job_id), status=202)


class JobEventsHandler(YoloHandler):
    """``GET /yolo/jobs/{id}/events?after=N&limit=L&timeout=S&status=X``: events after seq N.

    With ``timeout`` the request waits up to that many seconds for a new event or a change of
    status (long poll); ``status`` (the one the caller last saw) makes an ended job wait too.
    Panels keep polling while they are open, so these requests are no activity of the person:
    a forgotten notebook must not keep an idle server from being culled.
    """

    auth_resource = "jupyter_yolo:jobs"
    _track_activity = False

    @web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        """Return the events after ``after``."""
        after = self.query_int("after", 0, 0, 2**62)
        limit = self.query_int("limit", 1000, 1, 10000)
        timeout = self.query_int("timeout", 0, 0, 60)
        status = self.get_query_argument("status", None)
        if status is not None and status not in STATUSES:
            raise InvalidRequest(f"status must be one of {', '.join(STATUSES)}, not {status!r}.")
        self.write_json(await self.yolo.jobs.events(job_id, after, limit, timeout, status))


class JobLogHandler(YoloHandler):
    """``GET /yolo/jobs/{id}/log?bytes=N``: the tail of the job's log as text."""

    auth_resource = "jupyter_yolo:jobs"

    @web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        """Return the last ``bytes`` bytes of the log."""
        size = self.query_int("bytes", 65536, 1, 4 * 1024 * 1024)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(await asyncio.to_thread(self.yolo.jobs.log_tail, job_id, size))


class JobResultsHandler(YoloHandler):
    """``GET /yolo/jobs/{id}/results``: best and last epoch, validator results, system usage."""

    auth_resource = "jupyter_yolo:jobs"

    @web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        """The job's results as far as they exist (partial while it runs or after a stop)."""
        self.write_json(await asyncio.to_thread(run_results, self.yolo.jobs, job_id))


class JobArtifactsHandler(YoloHandler):
    """``GET /yolo/jobs/{id}/artifacts``: list result files."""

    auth_resource = "jupyter_yolo:jobs"

    @web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        """List the job's result files."""
        artifacts = await asyncio.to_thread(self.yolo.jobs.artifacts, job_id)
        self.write_json({"id": job_id, "artifacts": artifacts})


class JobArtifactHandler(YoloHandler):
    """``GET /yolo/jobs/{id}/artifacts/{path}``: one result file, confined to the job folder."""

    auth_resource = "jupyter_yolo:jobs"

    def decode_argument(self, value: bytes, name: str | None = None) -> str:
        """Decode a path part; the artifact's path may hold whatever a job's file names hold."""
        if name != "relative":
            return super().decode_argument(value, name)
        if len(value) > MAX_ARTIFACT_PATH_BYTES:
            raise InvalidRequest(f"An artifact path has {MAX_ARTIFACT_PATH_BYTES} bytes at most.")
        # not YoloHandler's check, which refuses control characters: _artifact matches such
        # a path against the job's own files instead of using it as given
        return super(YoloHandler, self).decode_argument(value, name)

    def _artifact(self, job_id: str, relative: str) -> Path:
        """The artifact's file; a name no request path may hold is served when the job has it."""
        jobs = self.yolo.jobs
        try:
            return jobs.artifact_path(job_id, relative)
        except InvalidRequest:
            # a file the job wrote may be named with a newline or a backslash: when the path is
            # exactly one the job's listing gives, it is that file and inside the job's folder
            if not any(item["path"] == relative for item in jobs.artifacts(job_id)):
                raise
            return jobs.workspace.jobs / job_id / relative

    @web.authenticated
    @authorized
    async def get(self, job_id: str, relative: str) -> None:
        """Stream the file."""
        path = await asyncio.to_thread(self._artifact, job_id, relative)
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if path.suffix in (".yaml", ".yml", ".txt", ".log"):
            content_type = "text/plain"
        if content_type not in INLINE_TYPES:
            content_type = "application/octet-stream"
            self.set_header("Content-Disposition", content_disposition(path.name))
        handle, size = await asyncio.to_thread(_open_sized, path)
        try:
            self.set_header("Content-Type", content_type)
            self.set_header("X-Content-Type-Options", "nosniff")
            self.set_header("Content-Security-Policy", "sandbox; default-src 'none'")
            self.set_header("Accept-Ranges", "bytes")
            wanted = byte_range(self.request.headers.get("Range"), size)
            if wanted == "unsatisfiable":
                self.set_status(416)
                self.set_header("Content-Range", f"bytes */{size}")
                return
            start, remaining = 0, size
            if isinstance(wanted, tuple):  # a seek (browsers' video elements use them)
                start, end = wanted
                remaining = end - start + 1
                self.set_status(206)
                self.set_header("Content-Range", f"bytes {start}-{end}/{size}")
                await asyncio.to_thread(handle.seek, start)
            self.set_header("Content-Length", str(remaining))
            while remaining > 0:
                chunk = await asyncio.to_thread(handle.read, min(CHUNK, remaining))
                if not chunk:
                    break  # the file shrank while being served; the client sees a short body
                remaining -= len(chunk)
                self.write(chunk)
                await self.flush()
        finally:
            await asyncio.to_thread(handle.close)
        self.finish()


BYTE_RANGE = re.compile(r"bytes=([0-9]{0,18})-([0-9]{0,18})")
"""One ``Range: bytes=`` request in ASCII digits (at most 18: no number beyond what a file has)."""


def byte_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """The inclusive (start, end) of a single ``Range: bytes=`` request, clamped to ``size``.

    None: serve the whole file (no header, or one this handler does not take, such as several
    ranges: a plain 200 is a valid answer to those); ``"unsatisfiable"``: answer 416.
    """
    match = BYTE_RANGE.fullmatch(header.strip()) if header else None
    if match is None:  # no header, several ranges, or one this handler cannot read
        return None
    first, last = match.groups()
    if first == "" and last == "":
        return None
    if first == "":  # the last N bytes
        count = int(last)
        if count == 0 or size == 0:
            return "unsatisfiable"
        return max(0, size - count), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        return "unsatisfiable"
    return start, end


def _open_sized(path: Path) -> tuple[BinaryIO, int]:
    """Open a file for reading with its size at opening (what ``Content-Length`` promises)."""
    handle = path.open("rb")
    try:
        return handle, os.fstat(handle.fileno()).st_size
    except BaseException:
        handle.close()
        raise


class ModelsHandler(YoloHandler):
    """``GET /yolo/models``: architectures, weights in the workspace and trained jobs."""

    auth_resource = "jupyter_yolo:models"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """List the models a job can use."""
        loop = asyncio.get_running_loop()
        self.write_json(await loop.run_in_executor(_models_pool, self.yolo.jobs.models))


JOB_ID = r"(?P<job_id>[^/]+)"
HANDLERS = [
    (r"/yolo/jobs", JobsHandler),
    (rf"/yolo/jobs/{JOB_ID}", JobHandler),
    (rf"/yolo/jobs/{JOB_ID}/stop", JobStopHandler),
    (rf"/yolo/jobs/{JOB_ID}/resume", JobResumeHandler),
    (rf"/yolo/jobs/{JOB_ID}/events", JobEventsHandler),
    (rf"/yolo/jobs/{JOB_ID}/log", JobLogHandler),
    (rf"/yolo/jobs/{JOB_ID}/results", JobResultsHandler),
    (rf"/yolo/jobs/{JOB_ID}/artifacts", JobArtifactsHandler),
    (rf"/yolo/jobs/{JOB_ID}/artifacts/(?P<relative>.+)", JobArtifactHandler),
    (r"/yolo/models", ModelsHandler),
]
