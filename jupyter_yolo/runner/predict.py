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
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

from ..contract.files import PREDICTIONS_FILE, write_atomic
from ..contract.payloads import ImagePrediction
from ..contract.serving import MEDIA_VIDEO_SUFFIXES
from ..jobs.media_source import KIND_PATH, source_kind
from .annotate import Annotator
from .common import JobContext, JobInputError, load_model, resolve_model
from .media import Frame, FrameSource, LiveSource, open_source
from .outputs import PredictionTally, image_prediction
from .pipeline import Behind, ReadAhead
from .staged import predicted_batches
from .throughput import (
    PREDICTIONS_LINES,
    JsonLines,
    LoopCounts,
    MediaOptions,
    ProgressMeter,
    batches,
    count_entry,
    default_batch,
    infer,
    source_summary,
    throughput_lanes,
    track_ids,
)


# -- predict -------------------------------------------------------------------------------------
def _predict_backend(
    ctx: JobContext, model_arg: str, params: dict[str, Any], source: Path | None
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
    """Predict on an image, a folder, a video, a stream or a device.

    Writes ``run/predictions.json`` (the first entries, for the widgets), ``run/predictions.jsonl``
    (every frame's entry as it comes), annotated images (image sources) or an H.264 mp4 (videos,
    streams, devices) and ``progress`` events; see :mod:`.throughput` and :mod:`.media`. Each
    entry carries what the job's task predicts (see :mod:`.outputs`).

    The model runs on the job's ``backend``: ``auto`` (the measured choice, see
    :mod:`jupyter_yolo.inference.trial`) or a backend by name; the result says which, with the
    measured latencies and the agreement figures.
    """
    params = dict(ctx.spec.params)
    model_arg = resolve_model(ctx, params.pop("model", None))
    source_value = params.pop("source", None)
    if not isinstance(source_value, str) or not source_value:
        raise JobInputError("the job has no 'source' (an image, a folder, a video or a stream)")
    live = source_kind(source_value) != KIND_PATH
    if not live and not Path(source_value).exists():
        raise JobInputError(f"prediction source {source_value} does not exist")
    media = MediaOptions.take(params)
    is_images = not live and Path(source_value).suffix.lower() not in MEDIA_VIDEO_SUFFIXES
    trial_source = Path(source_value) if is_images else None
    model, backend = _predict_backend(ctx, model_arg, params, trial_source)
    ctx.stop.check()
    ctx.run_dir.mkdir(parents=True, exist_ok=True)
    source = open_source(
        source_value,
        stride=media.vid_stride,
        limit=media.max_frames,
        reconnects=media.reconnects,
        wait=lambda seconds: _wait(ctx, seconds),
        log=ctx.journal.log,
    )
    batch = default_batch(backend.get("name"), params.get("device"), media.track)
    if media.batch and not media.track:  # a tracker sees the frames one by one, in order
        batch = media.batch
    lanes = throughput_lanes(backend.get("name"), params.get("device"), batch, ctx.cpus)
    if lanes > 1:  # OpenVINO compiles in THROUGHPUT mode when the predictor loads the model
        from ..inference.threads import active, install, throughput_settings

        settings = active()
        if settings is not None:
            install(throughput_settings(settings, lanes))
    ctx.journal.log(
        f"predicting {source.unit} of {source.shown} "
        + (f"tracked with {media.tracker}" if media.track else f"{batch} per inference call")
        + (f" on {lanes} parallel OpenVINO requests" if lanes > 1 else "")
    )
    return run_frames(ctx, model, source, params, media, batch=batch, backend=backend, lanes=lanes)


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


def _wait(ctx: JobContext, seconds: float) -> None:
    """Sleep ``seconds`` (a reconnect's backoff), answering a stop request within 0.1 s."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ctx.stop.check()
        time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))


def _results(
    ctx: JobContext,
    model: Any,
    source: FrameSource,
    args: dict[str, Any],
    *,
    batch: int,
    tracker: str | None,
    lanes: int,
    backend: dict[str, Any],
) -> Generator[tuple[list[Frame], list[Any]], None, None]:
    """(frames, results) per batch: staged for files and videos, else batch by batch."""
    weights = str(getattr(model, "ckpt_path", None) or getattr(model, "model_name", "") or "")

    def primed() -> None:  # the predictor is set up: OpenVINO's parallel requests can start
        if lanes > 1:
            from .openvino_lanes import enable_lanes

            backend["lanes"] = enable_lanes(model, weights, ctx.cpus, lanes)

    live = isinstance(source, LiveSource)  # its reconnect waits answer stops: the loop's thread
    if tracker is None and not live:
        yield from predicted_batches(
            model, iter(source), batch, args, check=ctx.stop.check, primed=primed
        )
        return
    ahead = None if live else ReadAhead(iter(source), 2 * batch)
    try:
        first = True
        for group in batches(iter(ahead) if ahead else iter(source), batch, ctx.stop.check):
            results = infer(model, group, args, tracker)
            if first:
                primed()
                first = False
            yield group, results
    finally:
        if ahead is not None:
            ahead.close()


def run_frames(
    ctx: JobContext,
    model: Any,
    source: FrameSource,
    args: dict[str, Any],
    media: MediaOptions,
    *,
    batch: int,
    backend: dict[str, Any],
    lanes: int = 1,
) -> dict[str, Any]:
    """Predict every frame of ``source``; results, annotated output and progress as it goes.

    Files and videos are read ahead and annotated behind on helper threads (:mod:`.pipeline`);
    untracked files and videos are preprocessed ahead too (:mod:`.staged`); with ``lanes > 1``
    an OpenVINO model runs each batch's images on parallel infer requests
    (:mod:`.openvino_lanes`), set up after the first batch (which sets the predictor up).
    """
    task = ctx.spec.task
    args = {**args, "verbose": False, "save": False}
    stored = StoredPredictions(task)
    lines = JsonLines(ctx.run_dir / PREDICTIONS_LINES)
    annotator = Annotator(ctx, source, media.save)
    meter = ProgressMeter(ctx.journal.progress, source.unit, source.total, source.shown)
    counts = LoopCounts()
    tracker = media.tracker if media.track else None
    failure: BaseException | None = None
    behind = Behind(lambda item: annotator.add(*item), 2 * batch) if annotator.enabled else None
    produced = _results(
        ctx, model, source, args, batch=batch, tracker=tracker, lanes=lanes, backend=backend
    )
    try:
        for group, results in produced:
            for frame, result in zip(group, results, strict=True):
                entry = image_prediction(
                    result,
                    task,
                    frame.name,
                    run_dir=ctx.run_dir,
                    workspace=ctx.spec.workspace,
                    number_=stored.tally.images + 1,
                )
                if source.video:
                    entry["frame"] = frame.number
                if tracker is not None:
                    for detection, track_id in zip(
                        entry["detections"], track_ids(result), strict=False
                    ):
                        if track_id is not None:
                            detection["track_id"] = track_id
                stored.add(entry)
                lines.add(entry)
                count_entry(counts, entry)
                if behind is not None:
                    behind.put((frame, result))
            del results, group  # the next batch's masks do not share memory with this one's
            lines.flush()
            meter.update(counts.frames, reconnects=source.reconnects)
            ctx.stop.check()
    except BaseException as exc:
        failure = exc
        raise
    finally:  # what was predicted before a stop or an error is still written
        produced.close()  # the read-ahead thread has left the source before it is closed
        source.close()
        lines.close()
        late = behind.close() if behind is not None else None  # every frame drawn and written
        if late is not None and failure is None:
            ctx.journal.warning("annotation_failed", f"annotated output failed: {late}")
        video = annotator.close(failure is not None or late is not None)
        meter.update(counts.frames, reconnects=source.reconnects, final=True)
        if lines.lines:
            ctx.journal.artifact(lines.path, "results", again=True)
        try:
            _write_predictions(ctx, stored)
        except (OSError, ValueError) as exc:
            if failure is None:
                raise
            ctx.journal.warning(  # the real failure goes on; this one is only reported
                "predictions_not_written", f"{PREDICTIONS_FILE} could not be written: {exc}"
            )
        ctx.partial_result = {
            **_prediction_summary(ctx, stored),
            **source_summary(source),
            "frames": counts.frames,
            "per_class": dict(counts.per_class),
            "fps": meter.overall_fps(),
            "batch": batch,
            "lines": ctx.rel(lines.path),
            "lines_written": lines.lines,
            "lines_left_out": lines.left_out,
            "backend": backend,
        }
        if tracker is not None:
            ctx.partial_result.update(tracker=tracker, tracks=len(counts.tracks))
        if video is not None:
            ctx.partial_result["video"] = ctx.rel(video)
    if late is not None:
        raise late
    return ctx.partial_result
