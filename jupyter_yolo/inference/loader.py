"""Loading a model for a backend, reading a checkpoint's facts, finding trial images.

Runner and benchmark processes only (imports ultralytics, OpenCV).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..safeyaml import YamlRefused, load_yaml
from ..strict import MAX_PATH_BYTES, text_problem
from .export import IMAGE_SUFFIXES


def load_yolo(path: Path | str, task: str | None = None) -> Any:
    """An ``ultralytics.YOLO`` for a .pt or an exported model (Any: arguments pass through)."""
    from ultralytics.models.yolo.model import YOLO

    return YOLO(str(path), task=task) if task else YOLO(str(path))


def checkpoint_facts(model: Any) -> dict[str, Any]:
    """Task, training image size and training data of a loaded .pt model."""
    overrides = getattr(model, "overrides", None) or {}
    imgsz = overrides.get("imgsz")
    if isinstance(imgsz, (list, tuple)) and imgsz:
        imgsz = max(int(v) for v in imgsz)
    return {
        "task": getattr(model, "task", None) or overrides.get("task"),
        "imgsz": int(imgsz) if isinstance(imgsz, (int, float)) and imgsz else None,
        "data": overrides.get("data") if isinstance(overrides.get("data"), str) else None,
    }


def detections(result: Any) -> list[dict[str, Any]]:
    """One ultralytics result as ``[{"cls", "conf", "box_xyxy"}]`` (unrounded)."""
    boxes = getattr(result, "boxes", None)
    if boxes is None or len(boxes) == 0:
        return []
    xyxy = boxes.xyxy.cpu().tolist()
    conf = boxes.conf.cpu().tolist()
    cls = boxes.cls.cpu().tolist()
    return [
        {"cls": int(c), "conf": float(s), "box_xyxy": [float(v) for v in box]}
        for box, s, c in zip(xyxy, conf, cls, strict=False)
    ]


def image_files(source: Path, limit: int) -> list[Path]:
    """Up to ``limit`` images of a file or folder source (sorted, so the choice is stable)."""
    if source.is_file():
        return [source] if source.suffix.lower() in IMAGE_SUFFIXES else []
    if not source.is_dir():
        return []
    found: list[Path] = []
    for path in sorted(source.rglob("*")):
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
            found.append(path)
            if len(found) >= limit:
                break
    return found


def dataset_val_images(data_yaml: Path, limit: int) -> list[Path]:
    """Up to ``limit`` validation images of a dataset's data.yaml (none when it is unusable)."""
    try:
        data = load_yaml(data_yaml.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, YamlRefused):
        return []
    if not isinstance(data, dict):
        return []
    raw_base = data.get("path") or data_yaml.parent
    if not isinstance(raw_base, (str, Path)) or text_problem(
        str(raw_base), max_bytes=MAX_PATH_BYTES
    ):
        return []
    base = Path(raw_base)
    if not base.is_absolute():
        base = data_yaml.parent / base
    entries = data.get("val")
    found: list[Path] = []
    for entry in entries if isinstance(entries, list) else [entries]:
        if isinstance(entry, str) and not text_problem(entry, max_bytes=MAX_PATH_BYTES):
            try:
                found += image_files(base / entry, limit - len(found))
            except OSError:
                continue
        if len(found) >= limit:
            break
    return found


def read_images(paths: list[Path]) -> list[Any]:
    """The images as BGR arrays (unreadable files are left out)."""
    import cv2

    images = []
    for path in paths:
        image = cv2.imread(str(path))
        if image is not None:
            images.append(image)
    return images


def generated_images(count: int, size: int) -> list[Any]:
    """Deterministic synthetic test images (the shapes generator's style) when none are at hand."""
    import io

    import numpy as np
    from PIL import Image

    from ..datasets.synthetic import SHAPES, _render

    drawers = [SHAPES[name] for name in ("circle", "square", "triangle")]
    images = []
    for index in range(count):
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([7, index])))
        jpeg, _ = _render(rng, size, len(drawers), drawers)
        rgb = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))
        images.append(np.ascontiguousarray(rgb[:, :, ::-1]))
    return images
