"""Exports for the backends, made once per weights content, image size and precision.

Runner and benchmark processes only (imports ultralytics). The export runs from a hard link of
the weights inside a scratch folder of the cache, so ultralytics writes its output there; the
folder is renamed into the cache when the export is complete (see :mod:`.cache`).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..datasets.keys import FORBIDDEN_DATA_KEYS
from ..safeyaml import YamlRefused, describe, load_yaml
from ..strict import MAX_PATH_BYTES, text_problem
from .backends import Backend
from .cache import WeightsCache, export_key, text_digest

#: INT8 calibration images (nncf's statistics need a few hundred at most; more only costs time)
CALIBRATION_IMAGES = 200
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})


class ExportError(RuntimeError):
    """An export could not be made; the message says why."""


@dataclass(frozen=True)
class Calibration:
    """The dataset an INT8 export calibrates on."""

    data: Path
    split: str
    images: int
    digest: str
    folder: Path | None = None
    """A class-folder dataset (classify): ultralytics calibrates on the folder, not the yaml."""

    @property
    def target(self) -> Path:
        """What ultralytics is given as ``data``."""
        return self.folder or self.data

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "data": str(self.target),
            "split": self.split,
            "images": self.images,
            "digest": self.digest,
        }


@dataclass(frozen=True)
class ExportResult:
    """Where an export is, and whether this call made it."""

    backend: str
    key: str
    path: Path
    meta: dict[str, Any]
    exported: bool


MAX_LIST_BYTES = 16 * 1024 * 1024


def _entry_path(base: Path, entry: Any) -> Path | None:
    """A split entry of data.yaml as a path, or None when it cannot name one."""
    if not isinstance(entry, str) or not entry.strip():
        return None
    if text_problem(entry, max_bytes=MAX_PATH_BYTES):
        return None
    return base / entry if not Path(entry).is_absolute() else Path(entry)


def _split_images(data: dict[str, Any], base: Path, split: str) -> list[Path]:
    entries = data.get(split)
    if entries in (None, ""):
        return []
    files: list[Path] = []
    for entry in entries if isinstance(entries, list) else [entries]:
        target = _entry_path(base, entry)
        if target is None:
            continue
        try:
            if target.is_dir():
                files += [p for p in target.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES]
            elif (
                target.is_file()
                and target.suffix == ".txt"
                and target.stat().st_size <= MAX_LIST_BYTES
            ):
                lines = target.read_text(encoding="utf-8", errors="replace").splitlines()
                files += [
                    Path(line.strip())
                    for line in lines
                    if line.strip() and not text_problem(line.strip(), max_bytes=MAX_PATH_BYTES)
                ]
        except OSError:
            continue
    return files


def calibration_for(data_yaml: Path) -> Calibration:
    """How an INT8 export would calibrate on ``data_yaml`` (train split, else val).

    The yaml is read without alias expansion, and one with a key that makes ultralytics download
    or run something (``download``) is refused: the export hands this file to ultralytics.
    """
    try:
        text = data_yaml.read_text(encoding="utf-8")
        data = load_yaml(text)
    except (OSError, UnicodeDecodeError) as exc:
        raise ExportError(f"the calibration dataset {data_yaml} cannot be read: {exc}") from exc
    except YamlRefused as exc:
        where = f" (line {exc.line})" if exc.line else ""
        raise ExportError(f"the calibration dataset {data_yaml}{where} is refused: {exc}") from None
    if not isinstance(data, dict):
        raise ExportError(f"the calibration dataset {data_yaml} is not a YAML mapping")
    forbidden = sorted(str(key) for key in data if str(key) in FORBIDDEN_DATA_KEYS)
    if forbidden:
        raise ExportError(
            f"the calibration dataset {data_yaml} has a {forbidden[0]!r} key, which makes "
            f"ultralytics download or run what it names; remove it"
        )
    base_value = data.get("path")
    if base_value not in (None, "") and (
        not isinstance(base_value, str) or text_problem(base_value, max_bytes=MAX_PATH_BYTES)
    ):
        raise ExportError(
            f"the calibration dataset {data_yaml} has an unusable 'path': {describe(base_value)}"
        )
    base = Path(base_value) if base_value else data_yaml.parent
    if not base.is_absolute():
        base = data_yaml.parent / base
    for split in ("train", "val"):
        images = _split_images(data, base, split)
        if images:
            count = min(len(images), CALIBRATION_IMAGES)
            digest = text_digest(f"{text}\n{split}:{len(images)}:{count}")
            return Calibration(data_yaml, split, count, digest)
    raise ExportError(f"the calibration dataset {data_yaml} has no train or val images")


def export_args(
    backend: Backend, imgsz: int, device: str, calibration: Calibration | None
) -> dict[str, Any]:
    """The ultralytics ``export`` arguments for ``backend`` (batch 1, static shape)."""
    args: dict[str, Any] = {
        "format": backend.export_format,
        "imgsz": imgsz,
        "batch": 1,
        "dynamic": False,
        "device": "cpu",
        "verbose": False,
    }
    if backend.export_format == "onnx":
        args["simplify"] = importlib.util.find_spec("onnxslim") is not None
    if backend.precision == "int8":
        if calibration is None:
            raise ExportError(f"{backend.label} needs a calibration dataset")
        args.update(
            quantize=8,
            data=str(calibration.target),
            split=calibration.split,
            fraction=calibration.images if calibration.images > 1 else 1.0,
        )
    if backend.export_format == "engine":
        args.update(half=True, device=device or "0")
    return args


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in ("ultralytics", "torch", "onnx", "onnxruntime", "openvino", "nncf", "tensorrt"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def _link_or_copy(src: Path, dest: Path) -> None:
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)


def ensure_export(
    cache: WeightsCache,
    backend: Backend,
    weights: Path,
    *,
    imgsz: int,
    device: str = "cpu",
    calibration: Calibration | None = None,
    check: Callable[[], None] | None = None,
    log: Callable[[str], None] = print,
) -> ExportResult:
    """The cached export of ``weights`` for ``backend`` at ``imgsz``; made when missing."""
    if not backend.exported:
        raise ValueError(f"{backend.name} runs the .pt itself; there is nothing to export")
    key = export_key(backend, imgsz, calibration.digest if calibration else None)
    meta = cache.complete(key)
    if meta is not None:
        return ExportResult(backend.name, key, cache.entry(key) / backend.artifact, meta, False)
    with cache.lock(
        key, check=check, on_wait=lambda: log(f"waiting for another job exporting {key}")
    ):
        meta = cache.complete(key)
        if meta is not None:
            return ExportResult(backend.name, key, cache.entry(key) / backend.artifact, meta, False)
        scratch = cache.scratch(key)
        try:
            meta = _export_into(
                scratch,
                backend,
                weights,
                imgsz=imgsz,
                device=device,
                calibration=calibration,
                log=log,
            )
            final = cache.publish(scratch, key, meta)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
    return ExportResult(backend.name, key, final / backend.artifact, meta, True)


def _export_into(
    scratch: Path,
    backend: Backend,
    weights: Path,
    *,
    imgsz: int,
    device: str,
    calibration: Calibration | None,
    log: Callable[[str], None],
) -> dict[str, Any]:
    from ultralytics.models.yolo.model import YOLO

    source = scratch / "model.pt"
    _link_or_copy(weights, source)
    args = export_args(backend, imgsz, device, calibration)
    what = f"{backend.label} at imgsz {imgsz}"
    if calibration is not None:
        what += f", calibrated on {calibration.images} {calibration.split} images"
    log(f"exporting {weights.name} for {what}")
    started = time.monotonic()
    try:
        produced = Path(str(YOLO(str(source)).export(**args)))
    except Exception as exc:
        raise ExportError(f"the {backend.label} export failed: {exc}") from exc
    seconds = time.monotonic() - started
    expected = scratch / backend.artifact
    if produced.resolve() != expected.resolve():
        if not produced.exists():
            raise ExportError(f"the {backend.label} export produced nothing at {produced}")
        shutil.move(str(produced), str(expected))
    for leftover in scratch.iterdir():  # the .pt link, an intermediate .onnx of TensorRT ...
        if leftover.name != backend.artifact:
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)
    log(f"exported {what} in {seconds:.1f} s")
    return {
        "backend": backend.name,
        "format": backend.export_format,
        "precision": backend.precision,
        "imgsz": imgsz,
        "artifact": backend.artifact,
        "args": {k: v for k, v in args.items() if k != "verbose"},
        "calibration": calibration.as_dict() if calibration else None,
        "seconds": round(seconds, 2),
        "created": time.time(),
        "weights": str(weights),
        "versions": _versions(),
    }
