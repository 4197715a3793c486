"""``/yolo/datasets``: upload (streamed), import, list, report, samples, files and delete."""

from __future__ import annotations

import asyncio
import mimetypes
import os
from typing import Any

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import authorized
from jupyter_server.utils import url_escape, url_path_join
from tornado import web
from tornado.http1connection import HTTP1Connection

from ..datasets.store import Upload
from ..errors import InvalidRequest, NotFound, PayloadTooLarge, UnsupportedMediaType, YoloError
from ..safeyaml import describe
from .base import YoloHandler

ARCHIVE_TYPES = frozenset(
    {"application/zip", "application/x-zip-compressed", "application/octet-stream"}
)
JSON_LIMIT = 64 * 1024
CHUNK = 1024 * 1024
TEXT_SUFFIXES = {
    ".txt": "text/plain",
    ".yaml": "text/plain",
    ".yml": "text/plain",
    ".json": "application/json",
}


class DatasetBaseHandler(YoloHandler):
    """Base of the dataset handlers.

    The store's start-up work (cleaning scratch leftovers, the built-in dataset) runs by the
    first request at the latest; a server normally starts it when its event loop starts.
    """

    auth_resource = "jupyter_yolo:datasets"

    async def prepare(self) -> None:  # type: ignore[override]
        """Authenticate as usual, then make sure the store's background work has started."""
        await super().prepare()
        self.yolo.start_dataset_background()


@web.stream_request_body
class DatasetsHandler(DatasetBaseHandler):
    """``GET /yolo/datasets`` lists datasets; ``POST`` uploads an archive or imports a path.

    ``POST /yolo/datasets?name=NAME`` with the zip as the body (``Content-Type:
    application/zip``) streams it to the workspace's scratch folder: authentication,
    authorization, the name and the declared length are checked in :meth:`prepare`, before any
    byte of the body is accepted, and the size limit again as chunks arrive. ``POST
    /yolo/datasets`` with ``{"name": ..., "path": ...}`` imports a zip or a folder already in the
    workspace. Either way the answer comes when the dataset is extracted, converted and
    validated (in a worker thread); ``GET /yolo/datasets/uploads`` shows the progress.
    """

    auth_resource = "jupyter_yolo:datasets"
    _upload: Upload | None = None
    _json: bytearray | None = None
    _rejected = False

    async def prepare(self) -> None:  # type: ignore[override]
        """Authenticate (and check XSRF), authorize and check the request before its body."""
        await super().prepare()
        if self.request.method != "POST" or self._finished:
            self._set_max_body_size(JSON_LIMIT)  # no other method takes a body
            return
        user = self.current_user
        if not user:
            raise web.HTTPError(403, log_message="Authentication is required.")
        allowed = await ensure_async(
            self.authorizer.is_authorized(self, user, "write", self.auth_resource)
        )
        if not allowed:
            raise web.HTTPError(
                403,
                log_message=f"User is not authorized to write on resource: {self.auth_resource}.",
            )
        length = self._declared_length()
        content_type = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        name = self.get_query_argument("name", None)
        if name is None:
            if content_type in ARCHIVE_TYPES:
                raise InvalidRequest(
                    "An archive upload needs the dataset's name: POST /yolo/datasets?name=NAME."
                )
            if length is not None and length > JSON_LIMIT:
                raise PayloadTooLarge(f"A JSON request body may have {JSON_LIMIT} bytes at most.")
            self._set_max_body_size(JSON_LIMIT * 2)
            self._json = bytearray()
            return
        if content_type not in ARCHIVE_TYPES:
            raise UnsupportedMediaType(
                f"Send the zip archive as the body with Content-Type: application/zip "
                f"(got {content_type or 'none'!r}); to import a workspace path, POST JSON "
                f"without '?name='."
            )
        store = self.yolo.datasets
        self._upload = store.begin_upload(
            name,
            length,
            self.get_query_argument("filename", None),
            task=self.get_query_argument("task", None),
        )
        # tornado's own cut-off (no answer, just a closed connection) stays above ours
        self._set_max_body_size(2 * store.max_upload_bytes + CHUNK)

    def _set_max_body_size(self, size: int) -> None:
        connection = self.request.connection
        if isinstance(connection, HTTP1Connection):
            connection.set_max_body_size(size)

    def _declared_length(self) -> int | None:
        raw = self.request.headers.get("Content-Length")
        if raw is None:
            return None
        try:
            return int(raw)
        except ValueError:
            raise InvalidRequest(f"Invalid Content-Length {raw!r}.") from None

    def data_received(self, chunk: bytes) -> None:
        """Write a chunk of the body; answer 413 as soon as it goes past the limit."""
        if self._rejected:
            return
        try:
            if self._upload is not None:
                self._upload.write(chunk)
            elif self._json is not None:
                self._json += chunk
                if len(self._json) > JSON_LIMIT:
                    raise PayloadTooLarge(
                        f"A JSON request body may have {JSON_LIMIT} bytes at most."
                    )
        except YoloError as exc:
            self._reject(exc)

    def _reject(self, exc: YoloError) -> None:
        self._rejected = True
        self._discard(exc.message)
        self.log_exception(type(exc), exc, None)
        if not self._finished:
            self.send_error(exc.status, exc_info=(type(exc), exc, None))

    def _discard(self, reason: str) -> None:
        upload, self._upload = self._upload, None
        if upload is not None:
            upload.abort(reason)

    def on_connection_close(self) -> None:
        """The client went away mid-body: throw the partial upload away."""
        super().on_connection_close()
        self._discard("the client closed the connection")

    def on_finish(self) -> None:
        """Whatever happened, leave no partial upload behind."""
        self._discard("the request ended before the upload was complete")

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """List the datasets with counts and status; the built-in one first."""
        self.write_json(await asyncio.to_thread(self.yolo.datasets.list_datasets))

    @web.authenticated
    @authorized
    async def post(self) -> None:
        """Finish an upload, or run an import; answer 201 with the dataset and its report."""
        if self._rejected or self._finished:
            return
        store = self.yolo.datasets
        upload, self._upload = self._upload, None
        if upload is not None:
            dataset = await asyncio.to_thread(upload.finish)
        else:
            body = self.json_body(bytes(self._json or b""))
            unknown = sorted(set(body) - {"name", "path", "task", "synthetic"})
            if unknown:
                raise InvalidRequest(
                    f"Unknown key(s) {', '.join(unknown)}: an import takes 'name', 'path' and "
                    f"optionally 'task'; a synthetic dataset 'synthetic' and optionally 'name'."
                )
            if "synthetic" in body:
                if "path" in body or "task" in body:
                    raise InvalidRequest(
                        "Give either 'synthetic' (the task of a generated dataset) or 'path' "
                        "(an import), not both; 'synthetic' is the task already."
                    )
                # one generation at a time (409 otherwise), on the store's own thread
                dataset = await store.create_synthetic_async(body["synthetic"], body.get("name"))
                location = url_path_join(self.base_url, "yolo/datasets", dataset["name"])
                self.set_header("Location", location)
                self.write_json(dataset, status=201)
                return
            if not isinstance(body.get("path"), str):
                raise InvalidRequest(
                    "An import needs 'path': a workspace-relative zip archive or folder. To "
                    "upload an archive instead, POST it as the body to /yolo/datasets?name=NAME."
                )
            dataset = await asyncio.to_thread(
                store.import_path, body.get("name"), body["path"], task=body.get("task")
            )
        location = url_path_join(self.base_url, "yolo/datasets", dataset["name"])
        self.set_header("Location", location)
        self.write_json(dataset, status=201)


class DatasetUploadsHandler(DatasetBaseHandler):
    """``GET /yolo/datasets/uploads``: uploads and imports in flight, with their progress."""

    auth_resource = "jupyter_yolo:datasets"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """Bytes received, stage (receiving, extracting, converting, validating) and counts."""
        self.write_json(self.yolo.datasets.operations())


class DatasetHandler(DatasetBaseHandler):
    """``GET /yolo/datasets/{name}``: summary and validation report; ``DELETE`` removes it."""

    auth_resource = "jupyter_yolo:datasets"

    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        """The dataset with its full validation report."""
        self.write_json(await asyncio.to_thread(self.yolo.datasets.get, name))

    @web.authenticated
    @authorized
    async def delete(self, name: str) -> None:
        """Delete the dataset (409 while a queued or running job uses it)."""
        self.yolo.datasets.delete(name, self.yolo.jobs.jobs_using)
        self.set_status(204)
        self.finish()


class DatasetSamplesHandler(DatasetBaseHandler):
    """``GET /yolo/datasets/{name}/samples?count=N&split=val&seed=S&thumbnail=PX``."""

    auth_resource = "jupyter_yolo:datasets"

    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        """A few images with their boxes (pixels and normalised) and class names."""
        split = self.get_query_argument("split", "val")
        if split not in ("train", "val", "test"):
            raise InvalidRequest(f"'split' must be train, val or test, got {describe(split)}.")
        count = self.query_int("count", 8, 1, 64)
        seed = self.query_int("seed", 0, 0, 2**31 - 1)
        thumbnail = self.query_int("thumbnail", 0, 0, 1024)
        result: dict[str, Any] = await asyncio.to_thread(
            self.yolo.datasets.samples,
            name,
            split=split,
            count=count,
            seed=seed,
            thumbnail=thumbnail,
        )
        for sample in result["samples"]:
            try:
                escaped = url_escape(sample["path"])
            except UnicodeEncodeError:  # a file name that is not valid UTF-8 on disk
                sample["url"] = None
                continue
            sample["url"] = url_path_join(self.base_url, "yolo/datasets", name, "files", escaped)
        self.write_json(result)


class DatasetFileHandler(DatasetBaseHandler):
    """``GET /yolo/datasets/{name}/files/{path}``: an image, label or yaml of the dataset."""

    auth_resource = "jupyter_yolo:datasets"

    @web.authenticated
    @authorized
    async def get(self, name: str, relative: str) -> None:
        """Stream the file; only images, labels and yaml/json inside the dataset folder."""
        path = await asyncio.to_thread(self.yolo.datasets.file_path, name, relative)
        try:
            handle = path.open("rb")
            size = os.fstat(handle.fileno()).st_size
        except OSError as exc:
            raise NotFound(f"{describe(relative)} cannot be read: {exc.strerror}.") from None
        suffix = path.suffix.lower()
        content_type = TEXT_SUFFIXES.get(suffix) or mimetypes.guess_type(path.name)[0]
        if content_type is None or not (
            content_type.startswith("image/") or suffix in TEXT_SUFFIXES
        ):
            content_type = "application/octet-stream"
        self.set_header("Content-Type", content_type)
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Content-Security-Policy", "sandbox; default-src 'none'")
        self.set_header("Cache-Control", "private, max-age=60")
        self.set_header("Content-Length", str(size))
        with handle:
            while chunk := handle.read(CHUNK):
                self.write(chunk)
                await self.flush()
        self.finish()


NAME = r"(?P<name>[^/]+)"
HANDLERS = [
    (r"/yolo/datasets", DatasetsHandler),
    (r"/yolo/datasets/uploads", DatasetUploadsHandler),
    (rf"/yolo/datasets/{NAME}", DatasetHandler),
    (rf"/yolo/datasets/{NAME}/samples", DatasetSamplesHandler),
    (rf"/yolo/datasets/{NAME}/files/(?P<relative>.+)", DatasetFileHandler),
]
