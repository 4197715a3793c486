"""``/yolo/jobs`` and ``/yolo/models``: create, list, watch, stop and resume jobs."""

from __future__ import annotations

import asyncio
import mimetypes

from jupyter_server.auth.decorator import authorized
from tornado import web

from .base import YoloHandler

# Served inline only when the browser cannot run them; anything else is a download.
INLINE_TYPES = {"image/png", "image/jpeg", "text/csv", "application/json", "text/plain"}
CHUNK = 1024 * 1024


class JobsHandler(YoloHandler):
    """``GET /yolo/jobs`` lists jobs and the queue; ``POST`` creates a job."""

    auth_resource = "jupyter_yolo:jobs"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """List every job, newest first, with the queue in start order."""
        self.write_json(self.yolo.jobs.list_jobs())

    @web.authenticated
    @authorized
    async def post(self) -> None:
        """Create a train, val, predict or export job."""
        self.yolo.jobs.ensure_started()
        body = self.json_body()
        # a dataset's report may need computing: do it off the event loop before validation
        await asyncio.to_thread(self.yolo.datasets.warm, body.get("data"))
        job = self.yolo.jobs.create(body)
        self.set_header("Location", self.request.path.rstrip("/") + "/" + job["id"])
        self.write_json(job, status=201)


class JobHandler(YoloHandler):
    """``GET /yolo/jobs/{id}``: status, parameters, progress, result and error."""

    auth_resource = "jupyter_yolo:jobs"

    @web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        """Describe one job."""
        self.write_json(self.yolo.jobs.get(job_id))


class JobStopHandler(YoloHandler):
    """``POST /yolo/jobs/{id}/stop``: graceful stop, then SIGTERM, then SIGKILL."""

    auth_resource = "jupyter_yolo:jobs"

    @web.authenticated
    @authorized
    async def post(self, job_id: str) -> None:
        """Ask the job to stop."""
        self.yolo.jobs.ensure_started()
        self.write_json(self.yolo.jobs.stop(job_id), status=202)


class JobResumeHandler(YoloHandler):
    """``POST /yolo/jobs/{id}/resume``: continue a stopped or interrupted training."""

    auth_resource = "jupyter_yolo:jobs"

    @web.authenticated
    @authorized
    async def post(self, job_id: str) -> None:
        """Queue the job again from its ``last.pt``."""
        self.yolo.jobs.ensure_started()
        self.write_json(self.yolo.jobs.resume(job_id), status=202)


class JobEventsHandler(YoloHandler):
    """``GET /yolo/jobs/{id}/events?after=N&limit=L&timeout=S``: events after seq N.

    With ``timeout`` the request waits up to that many seconds for a new event (long poll).
    """

    auth_resource = "jupyter_yolo:jobs"

    @web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        """Return the events after ``after``."""
        after = self.query_int("after", 0, 0, 2**62)
        limit = self.query_int("limit", 1000, 1, 10000)
        timeout = self.query_int("timeout", 0, 0, 60)
        self.write_json(await self.yolo.jobs.events(job_id, after, limit, timeout))


class JobLogHandler(YoloHandler):
    """``GET /yolo/jobs/{id}/log?bytes=N``: the tail of the job's log as text."""

    auth_resource = "jupyter_yolo:jobs"

    @web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        """Return the last ``bytes`` bytes of the log."""
        size = self.query_int("bytes", 65536, 1, 4 * 1024 * 1024)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(self.yolo.jobs.log_tail(job_id, size))


class JobArtifactsHandler(YoloHandler):
    """``GET /yolo/jobs/{id}/artifacts``: list result files."""

    auth_resource = "jupyter_yolo:jobs"

    @web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        """List the job's result files."""
        self.write_json({"id": job_id, "artifacts": self.yolo.jobs.artifacts(job_id)})


class JobArtifactHandler(YoloHandler):
    """``GET /yolo/jobs/{id}/artifacts/{path}``: one result file, confined to the job folder."""

    auth_resource = "jupyter_yolo:jobs"

    @web.authenticated
    @authorized
    async def get(self, job_id: str, relative: str) -> None:
        """Stream the file."""
        path = self.yolo.jobs.artifact_path(job_id, relative)
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if path.suffix in (".yaml", ".yml", ".txt", ".log"):
            content_type = "text/plain"
        if content_type not in INLINE_TYPES:
            content_type = "application/octet-stream"
            self.set_header("Content-Disposition", f'attachment; filename="{path.name}"')
        self.set_header("Content-Type", content_type)
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Content-Security-Policy", "sandbox; default-src 'none'")
        self.set_header("Content-Length", str(path.stat().st_size))
        with path.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                self.write(chunk)
                await self.flush()
        self.finish()


class ModelsHandler(YoloHandler):
    """``GET /yolo/models``: architectures, weights in the workspace and trained jobs."""

    auth_resource = "jupyter_yolo:models"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """List the models a job can use."""
        self.write_json(self.yolo.jobs.models())


JOB_ID = r"(?P<job_id>[^/]+)"
HANDLERS = [
    (r"/yolo/jobs", JobsHandler),
    (rf"/yolo/jobs/{JOB_ID}", JobHandler),
    (rf"/yolo/jobs/{JOB_ID}/stop", JobStopHandler),
    (rf"/yolo/jobs/{JOB_ID}/resume", JobResumeHandler),
    (rf"/yolo/jobs/{JOB_ID}/events", JobEventsHandler),
    (rf"/yolo/jobs/{JOB_ID}/log", JobLogHandler),
    (rf"/yolo/jobs/{JOB_ID}/artifacts", JobArtifactsHandler),
    (rf"/yolo/jobs/{JOB_ID}/artifacts/(?P<relative>.+)", JobArtifactHandler),
    (r"/yolo/models", ModelsHandler),
]
