"""Export jobs: ONNX, OpenVINO, TorchScript and TensorRT of a model of any task."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path
from typing import Any

from .common import (
    JobContext,
    JobInputError,
    load_model,
    resolve_model,
    stop_checker,
)


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
        "task": ctx.spec.task,
        "format": fmt,
        "path": ctx.rel(exported),
        "bytes": size,
        "source": ctx.rel(local),
        "cached": cached,
    }
