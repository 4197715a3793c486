"""Predict jobs: every task's output per image in ``run/predictions.json``.

The model runs on the job's ``backend`` (see :mod:`jupyter_yolo.inference.trial`); each image's
entry is a :class:`~jupyter_yolo.contract.payloads.ImagePrediction` made by :mod:`.outputs`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..contract.payloads import ImagePrediction
from ..contract.tasks import TASK_NAMES
from .common import (
    JobContext,
    JobInputError,
    load_model,
    resolve_model,
    stop_checker,
)
from .outputs import image_prediction, summary_figures


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
    task = ctx.spec.task
    if requested == table.AUTO and task not in AGREEMENT_READY and Path(model_arg).suffix == ".pt":
        ctx.journal.log(
            f"backend auto compares boxes only so far; this {task} model runs on PyTorch"
        )
        requested = "pytorch"
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
AGREEMENT_READY: tuple[str, ...] = TASK_NAMES
"""Tasks whose ``auto`` backend choice compares outputs by the task's own measure (all of them
since the inference trial judges every task; see :mod:`jupyter_yolo.inference.measure`)."""


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
    images: list[ImagePrediction] = []
    frames: dict[str, int] = {}
    is_video = source_path.is_file() and source_path.suffix.lower().lstrip(".") in VID_FORMATS
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
                number_=len(images) + 1,
            )
            frames[name] = frames.get(name, 0) + 1
            if is_video or frames[name] > 1:
                entry["frame"] = frames[name]
            images.append(entry)
            ctx.stop.check()
    finally:
        _write_predictions(ctx, images)
        ctx.partial_result = {**_prediction_summary(ctx, images), "backend": backend}
    return ctx.partial_result


def _write_predictions(ctx: JobContext, images: list[ImagePrediction]) -> None:
    out = ctx.run_dir / "predictions.json"
    tmp = out.with_name(".predictions.json.tmp")
    tmp.write_text(json.dumps(images, allow_nan=False), encoding="utf-8")
    os.replace(tmp, out)
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


def _prediction_summary(ctx: JobContext, images: list[ImagePrediction]) -> dict[str, Any]:
    per_image = [{"file": i["file"], "detections": len(i["detections"])} for i in images]
    return {
        "kind": "predict",
        **summary_figures(ctx.spec.task, images),
        "images": len(images),
        "detections": sum(p["detections"] for p in per_image),
        "per_image": per_image[:1000],
        "predictions": ctx.rel(ctx.run_dir / "predictions.json"),
        "save_dir": ctx.rel(ctx.run_dir),
    }
