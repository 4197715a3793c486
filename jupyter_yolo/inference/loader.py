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


def outputs(result: Any, task: str | None) -> list[dict[str, Any]]:
    """One ultralytics result in the form :mod:`.agreement` compares for ``task``.

    segment: each instance also has ``mask`` (boolean array at the original image size);
    pose: ``keypoints`` (``[x, y, conf]`` each); obb: ``corners`` (four ``[x, y]``, pixels) with
    the enclosing axis-aligned box; classify: one entry (top-1 ``cls``, ``conf`` and all
    ``probs``); semantic: one entry with ``pixels`` (class per pixel); depth: one with ``depth``.
    """
    if task == "classify":
        probs = getattr(result, "probs", None)
        if probs is None:
            return []
        values = [float(v) for v in probs.data.cpu().flatten().tolist()]
        return [{"cls": int(probs.top1), "conf": float(probs.top1conf), "probs": values}]
    if task == "semantic":
        found = getattr(result, "semantic_mask", None)
        return [] if found is None else [{"pixels": found.data.cpu().numpy()}]
    if task == "depth":
        found = getattr(result, "depth", None)
        return [] if found is None else [{"depth": found.data.cpu().float().numpy()}]
    if task == "obb":
        return _rotated(result)
    found = detections(result)
    if task == "segment" and found:
        masks = getattr(result, "masks", None)
        if masks is None:
            return []
        full = _full_size_masks(masks.data, tuple(result.orig_shape[:2]))
        for det, mask in zip(found, full, strict=False):
            det["mask"] = mask
    if task == "pose" and found:
        keypoints = getattr(result, "keypoints", None)
        if keypoints is not None:
            for det, points in zip(found, keypoints.data.cpu().tolist(), strict=False):
                det["keypoints"] = [[float(v) for v in point] for point in points]
    return found


def _full_size_masks(data: Any, shape: tuple[int, ...]) -> list[Any]:
    """Instance masks of the letterboxed input as boolean arrays of the original image size."""
    from ultralytics.utils import ops

    if data.shape[-2:] == shape:
        full = data
    else:
        full = ops.scale_masks(data[None].float(), (int(shape[0]), int(shape[1])))[0]
    return list((full > 0.5).cpu().numpy())


def _rotated(result: Any) -> list[dict[str, Any]]:
    found = getattr(result, "obb", None)
    if found is None or len(found) == 0:
        return []
    corners = found.xyxyxyxy.cpu().tolist()
    boxes = found.xyxy.cpu().tolist()
    conf = found.conf.cpu().tolist()
    cls = found.cls.cpu().tolist()
    return [
        {
            "cls": int(c),
            "conf": float(s),
            "box_xyxy": [float(v) for v in box],
            "corners": [[float(x), float(y)] for x, y in quad],
        }
        for quad, box, s, c in zip(corners, boxes, conf, cls, strict=False)
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
