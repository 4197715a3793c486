"""The four job kinds on top of ultralytics: train, val, predict, export.

Each ``run_*`` function returns the result summary (a JSON-able dict) or raises. ultralytics is
imported inside the functions, after :func:`jupyter_yolo.runner.offline.prepare` has run.
Every run writes into ``JOB_DIR/run`` (``project=JOB_DIR, name="run", exist_ok=True``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..datasets.keys import FORBIDDEN_DATA_KEYS
from ..safeyaml import YamlRefused, load_yaml
from .callbacks import TrainingReporter, metric_fields, save_interrupted_checkpoint
from .job import RUN_DIR, JobFile, StatusFile
from .journal import Journal, number
from .resources import plan_workers
from .stop import StopController, StopRequested

# Arguments a resumed training may change (ultralytics ignores the others, with a warning).
RESUME_OVERRIDES = (
    "imgsz",
    "batch",
    "device",
    "workers",
    "cache",
    "patience",
    "save_period",
    "val",
    "plots",
    "close_mosaic",
    "time",
)
MAX_PREDICTION_ARTIFACTS = 200


class JobInputError(ValueError):
    """A job parameter points at something that does not exist or cannot work offline."""


@dataclass
class JobContext:
    """Everything a task needs about its job."""

    job_dir: Path
    spec: JobFile
    journal: Journal
    stop: StopController
    status: StatusFile
    cpus: int
    partial_result: dict[str, Any] = field(default_factory=dict)

    @property
    def run_dir(self) -> Path:
        """``JOB_DIR/run``: where ultralytics writes."""
        return self.job_dir / RUN_DIR

    def rel(self, path: Path | str) -> str:
        """A path relative to the job folder (POSIX), or the path itself outside it."""
        try:
            return Path(path).resolve().relative_to(self.job_dir.resolve()).as_posix()
        except ValueError:
            return str(path)

    def output_args(self) -> dict[str, Any]:
        """The arguments that put ultralytics' output in ``JOB_DIR/run``."""
        return {"project": str(self.job_dir), "name": RUN_DIR, "exist_ok": True}


# -- shared helpers ------------------------------------------------------------------------------
def load_model(model: str | Path) -> Any:
    """An ``ultralytics.YOLO`` model (typed as Any: the runner only passes arguments through)."""
    from ultralytics.models.yolo.model import YOLO

    return YOLO(str(model))


def resolve_model(ctx: JobContext, model: Any) -> str:
    """Check the ``model`` parameter offline: an existing file, a weights-folder file, or a YAML."""
    if not isinstance(model, str) or not model:
        raise JobInputError("the job has no 'model' (a .pt/.yaml path or an architecture name)")
    path = Path(model)
    if path.suffix not in {".pt", ".yaml", ".yml", ""}:
        return model  # another format (onnx, openvino folder ...): ultralytics decides
    if path.is_absolute():
        if not path.exists():
            raise JobInputError(f"model file {model} does not exist")
        return model
    if path.suffix == ".pt":
        local = ctx.spec.workspace / "weights" / path.name
        if local.exists():
            return str(local)
        raise JobInputError(
            f"model weights '{model}' are not in the workspace weights folder ({local.parent}); "
            "nothing is downloaded at run time: copy the .pt file there, or train from an "
            "architecture such as 'yolov8n.yaml'"
        )
    return model  # a bare architecture name such as yolov8n.yaml: packaged with ultralytics


def check_data(data: Any) -> str:
    """Check the ``data`` parameter: an existing dataset YAML."""
    if not isinstance(data, str) or not data:
        raise JobInputError("the job has no 'data' (the path of a dataset's data.yaml)")
    if os.path.isabs(data) and not os.path.exists(data):
        raise JobInputError(f"dataset file {data} does not exist")
    if data.endswith((".yaml", ".yml")) and os.path.isfile(data):
        try:
            content = load_yaml(Path(data).read_bytes())
        except (OSError, YamlRefused) as exc:
            raise JobInputError(f"dataset file {data} cannot be read: {exc}") from None
        forbidden = (
            sorted(str(k) for k in content if k in FORBIDDEN_DATA_KEYS)
            if isinstance(content, dict)
            else []
        )
        if forbidden:
            raise JobInputError(
                f"dataset file {data} has a {forbidden[0]!r} entry, which would make ultralytics "
                f"download files or run code; it is refused"
            )
    return data


def is_cpu_device(device: Any) -> bool:
    """Whether ultralytics will run on the CPU for this ``device`` value."""
    text = str(device if device is not None else "").strip().lower()
    if text == "cpu":
        return True
    if text in {"", "none"}:
        import torch

        return not torch.cuda.is_available()
    return False


def apply_worker_plan(ctx: JobContext, params: dict[str, Any]) -> None:
    """Cap ``workers`` to usable CPUs and /dev/shm; warn when lowered (not on CPU, where unused)."""
    requested = params.get("workers", 8)
    if not isinstance(requested, int) or isinstance(requested, bool):
        return
    batch = params.get("batch", 16)
    imgsz = params.get("imgsz", 640)
    batch_i = int(batch) if isinstance(batch, (int, float)) and batch >= 1 else 16
    imgsz_i = int(max(imgsz)) if isinstance(imgsz, (list, tuple)) else int(imgsz or 640)
    plan = plan_workers(requested, batch=batch_i, imgsz=imgsz_i, cpus=ctx.cpus)
    if plan.workers != requested:
        params["workers"] = plan.workers
        if not is_cpu_device(params.get("device")):
            for code, message in plan.warnings:
                ctx.journal.warning(code, message)


def stop_checker(ctx: JobContext) -> Callable[[Any], None]:
    """A callback that raises StopRequested when a stop was requested."""

    def check(_: Any) -> None:
        ctx.stop.check()

    return check


# -- train ---------------------------------------------------------------------------------------
def _checkpoint_epochs(path: Path) -> tuple[int, int] | None:
    """(last completed epoch, total epochs) of a training checkpoint, or None if unreadable."""
    from ultralytics.utils import patches

    torch_load: Callable[..., Any] = patches.torch_load
    try:
        ckpt = torch_load(path, map_location="cpu")
    except Exception:
        return None
    if not isinstance(ckpt, dict):
        return None
    args = ckpt.get("train_args") or {}
    epoch = ckpt.get("epoch", -1)
    epochs = args.get("epochs", 0) if isinstance(args, dict) else 0
    has_optimizer = ckpt.get("optimizer") is not None
    return (int(epoch) if has_optimizer else -1), int(epochs or 0)


def run_train(ctx: JobContext) -> dict[str, Any]:
    """Train (or resume) a model; returns the summary with the final metrics."""
    params = dict(ctx.spec.params)
    last = ctx.run_dir / "weights" / "last.pt"
    model_arg = params.pop("model", None)
    data = check_data(params.get("data"))
    params["data"] = data
    apply_worker_plan(ctx, params)
    params.pop("resume", None)
    params.update(ctx.output_args(), save=True)

    resume_from: Path | None = None
    if ctx.spec.resume:
        state = _checkpoint_epochs(last) if last.exists() else None
        if state is None:
            ctx.journal.warning(
                "resume_restart",
                "there is no readable run/weights/last.pt to resume from; training restarts from "
                "the original model.",
            )
        elif state[0] < 0:
            ctx.journal.warning(
                "resume_restart",
                "the stopped run had not completed an epoch; training restarts from the original "
                "model at epoch 1.",
            )
        elif state[1] and state[0] + 1 >= state[1]:
            ctx.journal.log("all epochs had completed before the interruption; validating last.pt")
            return _finish_completed(ctx, last, data, params)
        else:
            resume_from = last
            ctx.journal.log(f"resuming from run/weights/last.pt at epoch {state[0] + 2}")

    if resume_from is not None:
        model = load_model(str(resume_from))
        train_args = {k: params[k] for k in RESUME_OVERRIDES if k in params}
        train_args.update(resume=str(resume_from), data=data)
    else:
        model = load_model(resolve_model(ctx, model_arg))
        train_args = params

    def epoch_done(epoch: int) -> None:
        ctx.status.epochs_done = epoch
        ctx.status.save()

    reporter = TrainingReporter(ctx.journal, ctx.stop, ctx.job_dir, on_epoch_done=epoch_done)
    reporter.attach(model)
    try:
        model.train(**train_args)
    except StopRequested:
        _after_stop(ctx, model, reporter)
        raise
    trainer: Any = model.trainer
    final = _validator_metrics(trainer) or reporter.final_metrics or {}
    ctx.status.epochs_done = reporter.epochs_done
    return {
        "kind": "train",
        "epochs": int(trainer.epochs),
        "epochs_done": reporter.epochs_done,
        "metrics": {**metric_fields(final), "fitness": number(final.get("fitness"))},
        "best": ctx.rel(trainer.best) if Path(trainer.best).exists() else None,
        "last": ctx.rel(trainer.last) if Path(trainer.last).exists() else None,
        "save_dir": ctx.rel(trainer.save_dir),
    }


def _validator_metrics(trainer: Any) -> dict[str, Any] | None:
    metrics = getattr(getattr(trainer, "validator", None), "metrics", None)
    results = getattr(metrics, "results_dict", None)
    return dict(results) if isinstance(results, dict) else None


def _after_stop(ctx: JobContext, model: Any, reporter: TrainingReporter) -> None:
    """After a stop inside training: make last.pt resumable and record how far it got."""
    trainer = getattr(model, "trainer", None)
    for loader_name in ("train_loader", "test_loader"):
        loader = getattr(trainer, loader_name, None)
        close = getattr(loader, "close", None)
        if close is not None:
            with contextlib.suppress(Exception):  # leftovers are ended with the session anyway
                close()
    if trainer is None:
        return
    if reporter.in_epoch:
        completed = int(trainer.epoch) - 1
        path = save_interrupted_checkpoint(trainer, completed)
        if path is not None:
            ctx.journal.artifact(path, "weights", again=True)
            where = (
                f"resume redoes epoch {completed + 2}"
                if completed >= 0
                else "no epoch had completed, so resume restarts training from epoch 1"
            )
            epoch = int(trainer.epoch) + 1
            ctx.journal.log(f"stopped during epoch {epoch}; saved last.pt ({where})")
    ctx.status.epochs_done = reporter.epochs_done
    ctx.partial_result = {
        "kind": "train",
        "epochs": int(getattr(trainer, "epochs", 0) or 0),
        "epochs_done": reporter.epochs_done,
        "last": ctx.rel(trainer.last) if Path(trainer.last).exists() else None,
        "last_epoch": {
            k: v
            for k, v in (reporter.last_epoch_event or {}).items()
            if k not in {"seq", "time", "type"}
        }
        or None,
    }


def _finish_completed(
    ctx: JobContext, last: Path, data: str, params: dict[str, Any]
) -> dict[str, Any]:
    """Resume of a run whose epochs had all completed: validate last.pt and report it."""
    model = load_model(str(last))
    model.add_callback("on_val_batch_end", stop_checker(ctx))
    args = {k: params[k] for k in ("imgsz", "batch", "device", "workers") if k in params}
    metrics = model.val(data=data, **args, **ctx.output_args(), plots=False)
    state = _checkpoint_epochs(last)
    epochs = state[1] if state else 0
    ctx.status.epochs_done = epochs
    results = dict(metrics.results_dict)
    return {
        "kind": "train",
        "epochs": epochs,
        "epochs_done": epochs,
        "metrics": {**metric_fields(results), "fitness": number(results.get("fitness"))},
        "best": ctx.rel(ctx.run_dir / "weights" / "best.pt")
        if (ctx.run_dir / "weights" / "best.pt").exists()
        else None,
        "last": ctx.rel(last),
        "save_dir": ctx.rel(ctx.run_dir),
    }


# -- val -----------------------------------------------------------------------------------------
def run_val(ctx: JobContext) -> dict[str, Any]:
    """Validate a model on a dataset; returns the metrics."""
    params = dict(ctx.spec.params)
    model = load_model(resolve_model(ctx, params.pop("model", None)))
    params["data"] = check_data(params.get("data"))
    apply_worker_plan(ctx, params)
    params.update(ctx.output_args())
    model.add_callback("on_val_start", stop_checker(ctx))
    model.add_callback("on_val_batch_end", stop_checker(ctx))
    metrics = model.val(**params)
    results = dict(metrics.results_dict)
    names = getattr(metrics, "names", None) or {}
    per_class: dict[str, float | None] = {}
    maps = getattr(metrics, "maps", None)
    if maps is not None and isinstance(names, dict):
        for index, name in names.items():
            if int(index) < len(maps):
                per_class[str(name)] = number(maps[int(index)])
    for plot in sorted(ctx.run_dir.glob("*.png")) + sorted(ctx.run_dir.glob("*.jpg")):
        ctx.journal.artifact(plot, "plot")
    return {
        "kind": "val",
        "metrics": {**metric_fields(results), "fitness": number(results.get("fitness"))},
        "per_class_mAP50-95": per_class,
        "speed_ms": {k: number(v, 3) for k, v in (getattr(metrics, "speed", None) or {}).items()},
        "save_dir": ctx.rel(ctx.run_dir),
    }


# -- predict -------------------------------------------------------------------------------------
def _detections(result: Any) -> list[dict[str, Any]]:
    boxes = getattr(result, "boxes", None)
    if boxes is None or len(boxes) == 0:
        return []
    names = getattr(result, "names", None) or {}
    xyxy = boxes.xyxy.cpu().tolist()
    conf = boxes.conf.cpu().tolist()
    cls = boxes.cls.cpu().tolist()
    out = []
    for box, score, label in zip(xyxy, conf, cls, strict=False):
        index = int(label)
        out.append(
            {
                "cls": index,
                "name": str(names.get(index, index)) if isinstance(names, dict) else str(index),
                "conf": number(score, 4),
                "box_xyxy": [number(v, 2) for v in box],
            }
        )
    return out


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


def run_predict(ctx: JobContext) -> dict[str, Any]:
    """Detect on an image or a folder; write ``run/predictions.json`` and annotated images.

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
    images: list[dict[str, Any]] = []
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
            height, width = (int(x) for x in result.orig_shape[:2])
            entry: dict[str, Any] = {
                "file": name,
                "width": width,
                "height": height,
                "detections": _detections(result),
            }
            frames[name] = frames.get(name, 0) + 1
            if is_video or frames[name] > 1:
                entry["frame"] = frames[name]
            images.append(entry)
            ctx.stop.check()
    finally:
        _write_predictions(ctx, images)
        ctx.partial_result = {**_prediction_summary(ctx, images), "backend": backend}
    return ctx.partial_result


def _write_predictions(ctx: JobContext, images: list[dict[str, Any]]) -> None:
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


def _prediction_summary(ctx: JobContext, images: list[dict[str, Any]]) -> dict[str, Any]:
    per_image = [{"file": i["file"], "detections": len(i["detections"])} for i in images]
    return {
        "kind": "predict",
        "images": len(images),
        "detections": sum(p["detections"] for p in per_image),
        "per_image": per_image[:1000],
        "predictions": ctx.rel(ctx.run_dir / "predictions.json"),
        "save_dir": ctx.rel(ctx.run_dir),
    }


# -- export --------------------------------------------------------------------------------------
def _link_or_copy(src: Path, dest: Path) -> None:
    dest.unlink(missing_ok=True)
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)


CACHEABLE_EXPORTS = {"onnx": "onnxruntime", "openvino": "openvino", "engine": "tensorrt"}


def _cached_export_backend(params: dict[str, Any]) -> str | None:
    """The backend whose cached export this export job asks for, or None when it is custom."""
    fmt = params.get("format")
    if fmt not in CACHEABLE_EXPORTS:
        return None
    custom = {"dynamic", "simplify", "opset"} & {k for k, v in params.items() if v}
    if custom or params.get("batch", 1) != 1:
        return None
    int8 = bool(params.get("int8"))
    half = bool(params.get("half"))
    if fmt == "openvino" and int8 and not half:
        return "openvino-int8"
    if fmt == "engine" and half and not int8:
        return "tensorrt"
    if fmt in ("onnx", "openvino") and not int8 and not half:
        return CACHEABLE_EXPORTS[fmt]
    return None


def _export_from_cache(
    ctx: JobContext, backend_name: str, local: Path, params: dict[str, Any]
) -> tuple[Path, bool]:
    """Copy (hard link) the cached export into ``run/weights``; make it first when missing."""
    from ..inference import backends as table
    from ..inference.cache import WeightsCache
    from ..inference.export import ExportError, calibration_for, ensure_export

    backend = table.get(backend_name)
    calibration = None
    if backend.needs_data:
        try:
            calibration = calibration_for(Path(str(params["data"])))
        except ExportError as exc:
            raise JobInputError(str(exc)) from exc
    imgsz = params.get("imgsz")
    if not imgsz:
        imgsz = (load_model(str(local)).overrides or {}).get("imgsz") or 640
    size = int(max(imgsz)) if isinstance(imgsz, (list, tuple)) else int(imgsz)
    cache = WeightsCache.for_weights(ctx.spec.workspace, local)
    made = ensure_export(
        cache,
        backend,
        local,
        imgsz=size,
        device=str(params.get("device") or ""),
        calibration=calibration,
        check=ctx.stop.check,
        log=ctx.journal.log,
    )
    suffix = made.path.name.removeprefix("model")
    dest = local.parent / f"{local.stem}{suffix}"
    if dest.is_dir():
        shutil.rmtree(dest)
    if made.path.is_dir():
        shutil.copytree(made.path, dest, copy_function=_link_or_copy_fn)
    else:
        _link_or_copy(made.path, dest)
    ctx.journal.log(
        f"{backend.label} export at imgsz {size} "
        + ("made now and kept in the export cache" if made.exported else "reused from the cache")
    )
    return dest, not made.exported


def _link_or_copy_fn(src: str, dest: str) -> str:
    _link_or_copy(Path(src), Path(dest))
    return dest


def run_export(ctx: JobContext) -> dict[str, Any]:
    """Export a model; the exported file or folder lands in ``run/weights/``.

    The usual exports (ONNX, OpenVINO FP32, OpenVINO INT8 with ``data``, TensorRT FP16; batch 1,
    static shape) come from the workspace's export cache, which predict jobs share: a second
    export of the same weights at the same size reuses it.
    """
    params = dict(ctx.spec.params)
    model_arg = resolve_model(ctx, params.pop("model", None))
    fmt = str(params.get("format") or "onnx")
    params["format"] = fmt
    if params.get("int8") and not params.get("data"):
        raise JobInputError(
            f"int8 {fmt} export calibrates on a dataset: give 'data' (a data.yaml); offline there "
            "is no default calibration set"
        )
    weights = ctx.run_dir / "weights"
    weights.mkdir(parents=True, exist_ok=True)
    source = Path(model_arg)
    if source.suffix == ".pt":
        local = weights / source.name
        if source.resolve() != local.resolve():
            _link_or_copy(source, local)
    else:  # an architecture YAML: build it untrained and save it so the export lands here
        local = weights / f"{source.stem}.pt"
        load_model(model_arg).save(local)
        ctx.journal.log(f"exporting an untrained model built from {model_arg}", level="warning")
    cached_backend = _cached_export_backend(params) if source.suffix == ".pt" else None
    cached = False
    if cached_backend is not None:
        exported, cached = _export_from_cache(ctx, cached_backend, local, params)
    else:
        if (
            fmt == "onnx"
            and "simplify" not in params
            and importlib.util.find_spec("onnxslim") is None
        ):
            params["simplify"] = False  # else ultralytics warns twice and skips it anyway
            ctx.journal.log("onnxslim is not installed: the ONNX model is exported unsimplified")
        if params.pop("int8", False):
            params["quantize"] = 8  # ultralytics' name for it ('int8' is deprecated)
        model = load_model(str(local))
        model.add_callback("on_export_start", stop_checker(ctx))
        exported = Path(str(model.export(**params)))
    ctx.journal.artifact(exported, "export")
    size = (
        exported.stat().st_size
        if exported.is_file()
        else sum(p.stat().st_size for p in exported.rglob("*") if p.is_file())
    )
    return {
        "kind": "export",
        "format": fmt,
        "path": ctx.rel(exported),
        "bytes": size,
        "source": ctx.rel(local),
        "cached": cached,
    }


TASKS: dict[str, Callable[[JobContext], dict[str, Any]]] = {
    "train": run_train,
    "val": run_val,
    "predict": run_predict,
    "export": run_export,
}
