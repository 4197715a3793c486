"""Predict jobs: every task's output per image in ``run/predictions.json``.

The model runs on the job's ``backend`` (see :mod:`jupyter_yolo.inference.trial`); each image's
entry is a :class:`~jupyter_yolo.contract.payloads.ImagePrediction` made by :mod:`.outputs`.
``predictions.json`` (a JSON list of those entries, what the widgets read) holds the first
:data:`MAX_STORED_PREDICTIONS` images or frames, within :data:`MAX_STORED_BYTES` of JSON; the
result counts every image and says how many were left out of the file. Entries are kept as their
JSON text, so a long folder or video costs memory for that prefix only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..contract.files import PREDICTIONS_FILE, write_atomic
from ..contract.payloads import ImagePrediction
from .common import (
    JobContext,
    JobInputError,
    load_model,
    resolve_model,
    stop_checker,
)
from .outputs import PredictionTally, image_prediction


# -- predict -------------------------------------------------------------------------------------
def _predict_backend(
    ctx: JobContext, model_arg: str, params: dict[str, Any], source: Path
) -> tuple[Any, dict[str, Any]]:
    """The model to predict with, on the requested backend, and what to report about it."""
    from ..inference import backends as table
    from ..inference.threads import install, settings_for
    from ..inference.trial import BackendError, select_backend

    requested = str(params.pop("backend", None) or "pytorch")  # older job.json: PyTorch
    data = params.pop("data", None)
    if Path(model_arg).suffix != ".pt":  # an exported model (or a YAML): it runs as it is
        settings = install(settings_for(ctx.cpus))
        runs_on = table.backend_of_model(model_arg) or "pytorch"
        if requested not in (table.AUTO, runs_on):
            raise JobInputError(
                f"{model_arg} is already a {runs_on} model; backend {requested!r} needs the .pt "
                "weights it was exported from (or use backend 'auto')"
            )
        report: dict[str, Any] = {
            "name": runs_on,
            "requested": requested,
            "cached": True,
            "exported": [],
            "latency_ms": {},
            "agreement": {},
            "threads": settings.as_dict(),
        }
        return load_model(model_arg), report
    try:
        selection = select_backend(
            Path(model_arg),
            workspace=ctx.spec.workspace,
            requested=requested,
            device=params.get("device"),
            cpus=ctx.cpus,
            imgsz=params.get("imgsz"),
            source=source,
            data=data if isinstance(data, str) else None,
            check=ctx.stop.check,
            log=ctx.journal.log,
        )
    except BackendError as exc:
        raise JobInputError(str(exc)) from exc
    report = dict(selection.report)
    report["imgsz"] = params.setdefault("imgsz", report.get("imgsz"))
    model = str(report.get("model") or "")
    workspace = ctx.spec.workspace.resolve()
    if model and Path(model).resolve().is_relative_to(workspace):
        report["model"] = Path(model).resolve().relative_to(workspace).as_posix()
    latency = report.get("latency_ms") or {}
    figures = ", ".join(f"{k} {v:.1f} ms" for k, v in latency.items()) or "not measured"
    how = "reused" if report.get("cached") else "prepared now"
    ctx.journal.log(
        f"backend {selection.name} (requested {requested}; {how}); median latencies: {figures}"
    )
    return selection.model, report


MAX_PREDICTION_ARTIFACTS = 200
MAX_STORED_PREDICTIONS = 1000
"""Images (or video frames) whose entries ``predictions.json`` holds; later ones are counted."""
MAX_STORED_BYTES = 32 * 2**20
"""JSON text ``predictions.json`` may hold (a frame of many full-size masks is large)."""


class StoredPredictions:
    """The first images' entries as JSON text, within a count and a byte budget, and a tally."""

    def __init__(
        self,
        task: str,
        *,
        max_images: int = MAX_STORED_PREDICTIONS,
        max_bytes: int = MAX_STORED_BYTES,
    ) -> None:
        self.tally = PredictionTally(task)
        self.texts: list[str] = []
        self.per_image: list[dict[str, Any]] = []
        self.left_out = 0
        self._bytes = 0
        self._max_images = max_images
        self._max_bytes = max_bytes

    def add(self, entry: ImagePrediction) -> None:
        """Count an image; keep its entry while the file stays a prefix within its budgets."""
        self.tally.add(entry)
        if not self.left_out and len(self.texts) < self._max_images:
            text = json.dumps(entry, allow_nan=False)
            if self._bytes + len(text) <= self._max_bytes:
                self.texts.append(text)
                self.per_image.append(
                    {"file": entry["file"], "detections": len(entry["detections"])}
                )
                self._bytes += len(text)
                return
        self.left_out += 1

    def json_text(self) -> str:
        """``predictions.json``: a JSON list of the kept entries."""
        return "[" + ",\n".join(self.texts) + "]\n"


def run_predict(ctx: JobContext) -> dict[str, Any]:
    """Predict on an image or a folder; write ``run/predictions.json`` and annotated images.

    Each entry carries what the job's task predicts (see :mod:`.outputs`).

    The model runs on the job's ``backend``: ``auto`` (the measured choice, see
    :mod:`jupyter_yolo.inference.trial`) or a backend by name; the result says which, with the
    measured latencies and the agreement figures.
    """
    from ultralytics.data.utils import VID_FORMATS

    params = dict(ctx.spec.params)
    model_arg = resolve_model(ctx, params.pop("model", None))
    source = params.get("source")
    if not isinstance(source, str) or not source:
        raise JobInputError("the job has no 'source' (an image or a folder of images)")
    source_path = Path(source)
    if not source_path.exists():
        raise JobInputError(f"prediction source {source} does not exist")
    model, backend = _predict_backend(ctx, model_arg, params, source_path)
    ctx.stop.check()
    params.setdefault("save", True)
    params.update(ctx.output_args(), stream=True)
    model.add_callback("on_predict_batch_end", stop_checker(ctx))
    ctx.run_dir.mkdir(parents=True, exist_ok=True)
    stored = StoredPredictions(ctx.spec.task)
    frames: dict[str, int] = {}
    is_video = source_path.is_file() and source_path.suffix.lower().lstrip(".") in VID_FORMATS
    failure: BaseException | None = None
    try:
        for result in model.predict(**params):
            path = Path(result.path)
            name = (
                path.relative_to(source_path).as_posix()
                if source_path.is_dir() and source_path in path.parents
                else path.name
            )
            entry = image_prediction(
                result,
                ctx.spec.task,
                name,
                run_dir=ctx.run_dir,
                workspace=ctx.spec.workspace,
                number_=stored.tally.images + 1,
            )
            frames[name] = frames.get(name, 0) + 1
            if is_video or frames[name] > 1:
                entry["frame"] = frames[name]
            stored.add(entry)
            del entry, result  # the next frame's masks do not share memory with this one's
            ctx.stop.check()
    except BaseException as exc:
        failure = exc
        raise
    finally:
        try:  # what was predicted before a stop or an error is still written
            _write_predictions(ctx, stored)
        except (OSError, ValueError) as exc:
            if failure is None:
                raise
            ctx.journal.warning(  # the real failure goes on; this one is only reported
                "predictions_not_written", f"{PREDICTIONS_FILE} could not be written: {exc}"
            )
        ctx.partial_result = {**_prediction_summary(ctx, stored), "backend": backend}
    return ctx.partial_result


def _write_predictions(ctx: JobContext, stored: StoredPredictions) -> None:
    out = ctx.run_dir / PREDICTIONS_FILE
    write_atomic(out, stored.json_text())  # fsynced, renamed into place
    if stored.left_out:
        ctx.journal.log(
            f"{PREDICTIONS_FILE} holds the first {len(stored.texts)} images; "
            f"{stored.left_out} more were predicted and counted in the result, not stored"
        )
    ctx.journal.artifact(out, "results", again=True)
    count = 0
    for path in sorted(ctx.run_dir.iterdir()):
        if path.is_file() and path.suffix.lower() in {
            ".jpg",
            ".jpeg",
            ".png",
            ".bmp",
            ".webp",
            ".tif",
            ".tiff",
            ".avi",
            ".mp4",
        }:
            if count >= MAX_PREDICTION_ARTIFACTS:
                ctx.journal.log(f"more annotated files are in {ctx.rel(ctx.run_dir)}/ (not listed)")
                break
            ctx.journal.artifact(path, "prediction")
            count += 1


def _prediction_summary(ctx: JobContext, stored: StoredPredictions) -> dict[str, Any]:
    figures = stored.tally.figures()
    return {
        "kind": "predict",
        **figures,
        "images": stored.tally.images,
        "detections": figures["instances"],
        "per_image": stored.per_image,
        "predictions": ctx.rel(ctx.run_dir / PREDICTIONS_FILE),
        "predictions_stored": len(stored.texts),
        "predictions_left_out": stored.left_out,
        "save_dir": ctx.rel(ctx.run_dir),
    }
