"""``POST /yolo/predict`` without tornado: check a request, find its worker, answer.

The handler hands over the query (a getter) and the images it took from the body; everything
that touches the disk (resolving the model, hashing it, reading named images, the hardware
report for a GPU device) runs in a thread.

With a :class:`~.prepare.Preparer` attached (``prepare_after_training``), a training job's
weights are prepared for the prediction panel's default request ahead of the first click, and
an ``auto`` request that comes before that is done is answered by PyTorch, saying so (see
:mod:`.prepare`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..contract.serving import PredictResponse, PreparationInfo, WorkerInfo, WorkerKey
from ..errors import InvalidRequest
from ..inference.backends import refusal
from ..jobs.devices import absence, needs_report
from ..jobs.schema import HardwareView, JobValidator
from ..workspace import Workspace
from .digest import DigestCache
from .pool import PredictCall, WorkerPool
from .prepare import Preparer, standin_backend
from .requests import (
    ImageInput,
    PredictParams,
    check_images,
    parse_params,
    read_workspace_images,
)


@dataclass(frozen=True)
class PredictLimits:
    """What one request may carry (the app's ``max_predict_*`` and ``max_image_pixels``)."""

    max_body_bytes: int
    max_images: int
    max_pixels: int


class PredictService:
    """Checks requests and runs them on the :class:`WorkerPool`."""

    def __init__(
        self,
        workspace: Workspace,
        validator: JobValidator,
        pool: WorkerPool,
        limits: PredictLimits,
        *,
        default_device: str | None,
        hardware: Callable[[], HardwareView],
        cuda_available: Callable[[], bool],
    ) -> None:
        self.workspace = workspace
        self.validator = validator
        self.pool = pool
        self.limits = limits
        self.default_device = default_device
        self._hardware = hardware
        self._cuda = cuda_available
        self._digests = DigestCache()
        self.preparer: Preparer | None = None
        """Background preparation after training (attached by the app when enabled)."""

    def params(self, get: Callable[[str], str | None]) -> PredictParams:
        """The request's query, checked (400 naming the bad argument)."""
        return parse_params(
            get,
            default_device=self.default_device,
            backend_refusal=lambda backend, device: refusal(
                backend, cuda=self._cuda(), device=device
            ),
        )

    def check(self, images: list[ImageInput]) -> None:
        """Refuse a request without images, with too many, or with one too large or no image.

        Reads every image's header (blocking for a large body: call it in a thread).
        """
        check_images(images, max_images=self.limits.max_images, max_pixels=self.limits.max_pixels)

    async def named_images(self, paths: object) -> list[ImageInput]:
        """The workspace images a JSON body's ``paths`` names, read in a thread."""
        return await asyncio.to_thread(
            read_workspace_images,
            self.workspace,
            paths,
            max_images=self.limits.max_images,
            max_bytes=self.limits.max_body_bytes,
        )

    def _model_path(self, params: PredictParams) -> Path:
        if needs_report(params.device):
            report, probe_error = self._hardware()
            problem = absence(params.device, report, probe_error)
            if problem:
                raise InvalidRequest(f"Query argument 'device': {problem}")
        resolved = self.validator.resolve_model(params.model, "predict")
        path = Path(resolved)
        if not path.is_absolute() or not path.exists():
            raise InvalidRequest(f"Model {params.model!r} is not a trained weights file or export.")
        return path

    async def predict(
        self, params: PredictParams, images: list[ImageInput], arrived: float
    ) -> PredictResponse:
        """Run the checked request on its warm worker (``arrived``: ``time.monotonic()``)."""
        await asyncio.to_thread(self.check, images)  # headers of up to 64 MiB: off the loop
        call = await self._call(params, images, arrived)
        note = None
        if self.preparer is not None:
            call, note = await self.preparer.route(call)
        response = await self.pool.predict(call)
        if note is not None:
            response["backend"] = standin_backend(response["backend"], note)
        return response

    async def _call(
        self, params: PredictParams, images: list[ImageInput], arrived: float
    ) -> PredictCall:
        path = await asyncio.to_thread(self._model_path, params)
        digest = await self._digests.digest_async(path)
        return PredictCall(
            key=WorkerKey(digest, params.backend, params.imgsz, params.device),
            model_path=path,
            model_ref=params.model,
            blobs=[image.data for image in images],
            names=[image.name for image in images],
            conf=params.conf,
            iou=params.iou,
            classes=params.classes,
            arrived=arrived,
        )

    async def default_call(self, model_ref: str) -> PredictCall:
        """The prediction panel's default request on ``model_ref``, without images.

        Only the model is given, as the panel sends it before anyone moves a control: every
        other argument (backend ``auto``, the model's own image size, the default device) is
        the service's own default, so the key is the one the panel's first click asks for.
        """
        query = {"model": model_ref}
        return await self._call(self.params(query.get), [], time.monotonic())

    def job_finished(self, job_id: str, status: str, kind: str) -> None:
        """The job manager's end-of-job hook (any thread): prepare a training's weights."""
        if self.preparer is not None:
            self.preparer.job_finished(job_id, status, kind)

    def job_started(self, job_id: str, kind: str) -> None:
        """The job manager's start-of-job hook (any thread): a training starts the spare."""
        if self.preparer is not None:
            self.preparer.job_started(job_id, kind)

    def preparations(self) -> list[PreparationInfo]:
        """The background preparations, oldest first (none when disabled)."""
        return self.preparer.preparations() if self.preparer is not None else []

    async def shutdown(self) -> None:
        """Cancel the preparation (its process killed) and stop every worker."""
        if self.preparer is not None:
            await self.preparer.shutdown()
        await self.pool.shutdown()

    def workers(self) -> list[WorkerInfo]:
        """The pool's workers."""
        return self.pool.workers()

    async def stop_workers(self) -> int:
        """Stop every worker; how many there were."""
        return await self.pool.stop_all()
