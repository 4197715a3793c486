"""``/yolo/predict``: synchronous prediction on a warm inference worker, and the worker list.

Thin: the body is taken apart here (one image, a multipart of several, or a JSON list of
workspace paths); checking, the worker pool and the answer live in
:mod:`jupyter_yolo.serving.service`.
"""

from __future__ import annotations

import asyncio
import time

from jupyter_server.auth.decorator import authorized
from tornado import httputil, web

from ..contract.serving import MULTIPART_TYPE, PREDICT_IMAGE_TYPES
from ..errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType
from ..serving.requests import ImageInput, safe_name
from ..serving.service import PredictService
from .base import MAX_JSON_BODY, YoloHandler

JSON_TYPE = "application/json"


class _PredictBase(YoloHandler):
    auth_resource = "jupyter_yolo:predict"

    @property
    def service(self) -> PredictService:
        """The app's prediction service."""
        return self.yolo.predict_service


class PredictHandler(_PredictBase):
    """``POST /yolo/predict?model=...``: predict one or more images on a warm worker."""

    _arrived = 0.0

    async def prepare(self) -> None:  # type: ignore[override]
        """Note when the request arrived; the body limit is the app's ``max_predict_body_bytes``."""
        self._arrived = time.monotonic()
        self.max_body_bytes = self.yolo.max_predict_body_bytes
        await super().prepare()

    @web.authenticated
    @authorized
    async def post(self) -> None:
        """Answer a ``PredictResponse`` for the images of the body."""
        service = self.service
        params = service.params(lambda name: self.get_query_argument(name, None))
        images = await self._images()
        self.write_json(await service.predict(params, images, self._arrived))

    async def _images(self) -> list[ImageInput]:
        full_type = self.request.headers.get("Content-Type", "")
        content_type = full_type.split(";", 1)[0].strip().lower()
        body = bytes(self._body or b"")
        if content_type in PREDICT_IMAGE_TYPES:
            return [ImageInput("image", body)]
        if content_type == MULTIPART_TYPE:  # up to max_predict_body_bytes: off the loop
            return await asyncio.to_thread(self._parts, full_type, body)
        if content_type == JSON_TYPE:
            if len(body) > MAX_JSON_BODY:
                raise PayloadTooLarge(f"A JSON body may have {MAX_JSON_BODY} bytes at most.")
            request = self.json_body(body)
            unknown = sorted(set(request) - {"paths"})
            if unknown:
                raise InvalidRequest(
                    f"Unknown key(s) {', '.join(map(repr, unknown))}; the JSON body is "
                    f'{{"paths": ["<workspace-relative image>", ...]}}.'
                )
            return await self.service.named_images(request.get("paths"))
        raise UnsupportedMediaType(
            f"The body must be one image ({', '.join(PREDICT_IMAGE_TYPES)}), {MULTIPART_TYPE} "
            f'with image parts, or {JSON_TYPE} {{"paths": [...]}} naming workspace images; '
            f"got Content-Type {content_type or '(none)'!r}."
        )

    def _parts(self, full_type: str, body: bytes) -> list[ImageInput]:
        arguments: dict[str, list[bytes]] = {}
        files: dict[str, list[httputil.HTTPFile]] = {}
        try:
            httputil.parse_body_arguments(full_type, body, arguments, files)
        except httputil.HTTPInputError as exc:
            raise InvalidRequest(f"The multipart body cannot be read: {exc}") from None
        parts = [part for name in files for part in files[name]]
        if not parts:
            raise InvalidRequest(
                "The multipart body has no file part; send each image as a file part "
                "(e.g. curl -F image=@a.jpg -F image=@b.jpg)."
            )
        limit = self.service.limits.max_images
        if len(parts) > limit:
            raise PayloadTooLarge(
                f"A request may carry {limit} images at most (max_predict_images); this one "
                f"has {len(parts)}."
            )
        return [ImageInput(safe_name(part.filename, i), part.body) for i, part in enumerate(parts)]


class PredictWorkersHandler(_PredictBase):
    """``GET /yolo/predict/workers`` lists the warm workers; ``DELETE`` stops them all."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """Every warm worker (``WorkerInfo``)."""
        self.write_json(
            {"workers": self.service.workers(), "preparations": self.service.preparations()}
        )

    @web.authenticated
    @authorized
    async def delete(self) -> None:
        """Stop every worker (their memory is freed; the next request starts one again)."""
        self.write_json({"stopped": await self.service.stop_workers()})


HANDLERS = [
    (r"/yolo/predict", PredictHandler),
    (r"/yolo/predict/workers", PredictWorkersHandler),
]
