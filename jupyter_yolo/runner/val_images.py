"""A few validation images with their ground truth and the final model's predictions.

The truth comes from the validation dataset's own labels (what ultralytics cached from the
label files: normalised boxes, polygons, keypoints; classify's class of each image), in the
pixels of the original image; the predictions from the final weights, in the shapes of
``predictions.json`` (:func:`~jupyter_yolo.runner.outputs.inline_prediction`; segment masks
are left out, their polygons kept). Images are named workspace-relative, so the workspace route
serves them. Semantic and depth validations give none (their truth is a map, not objects).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..contract.payloads import Detection
from ..contract.results import MAX_VAL_IMAGES, ValImage
from .common import JobContext
from .journal import number
from .outputs import inline_prediction

OBJECT_TASKS = ("detect", "segment", "pose", "obb")


def _px(value: Any, scale: float) -> float:
    return number(float(value) * scale, 1) or 0.0


def truth_objects(
    label: dict[str, Any], task: str, names: list[str], width: int, height: int
) -> list[Detection]:
    """The ground-truth objects of one cached ultralytics label, in pixels.

    ``width`` x ``height`` is the original image's size (the validation loader drops the
    label's own shape when it batches by aspect ratio).
    """
    classes = np.asarray(label.get("cls", []), dtype=np.float64).reshape(-1)
    boxes = np.asarray(label.get("bboxes", []), dtype=np.float64).reshape(-1, 4)
    segments = label.get("segments") or []
    keypoints = label.get("keypoints")
    found: list[Detection] = []
    for j, (cls, box) in enumerate(zip(classes, boxes, strict=False)):
        index = int(cls)
        cx, cy, bw, bh = (float(v) for v in box)
        det: Detection = {
            "cls": index,
            "name": names[index] if 0 <= index < len(names) else str(index),
            "conf": None,
            "box_xyxy": [
                _px(cx - bw / 2, width),
                _px(cy - bh / 2, height),
                _px(cx + bw / 2, width),
                _px(cy + bh / 2, height),
            ],
        }
        if task in ("segment", "obb") and j < len(segments):
            points = [[_px(x, width), _px(y, height)] for x, y in np.asarray(segments[j])]
            det["corners" if task == "obb" else "polygon"] = points
        if task == "pose" and keypoints is not None and j < len(keypoints):
            det["keypoints"] = [
                [
                    _px(point[0], width),
                    _px(point[1], height),
                    1.0 if len(point) < 3 or point[2] > 0 else 0.0,
                ]
                for point in np.asarray(keypoints[j])
            ]
        found.append(det)
    return found


def _relative(path: str, workspace: Path) -> str | None:
    try:
        return Path(path).resolve().relative_to(workspace.resolve()).as_posix()
    except (ValueError, OSError):
        return None  # outside the workspace: nothing could serve it


def _predict(model: Any, validator: Any, files: list[str]) -> list[Any]:
    args = validator.args
    return list(
        model.predict(
            source=files,
            imgsz=args.imgsz,
            device=args.device or None,
            verbose=False,
            save=False,
            stream=False,
        )
    )


def val_images(
    ctx: JobContext, validator: Any, model: Any, task: str, names: list[str]
) -> list[ValImage]:
    """Up to :data:`MAX_VAL_IMAGES` validation images with their truth and predictions."""
    if model is None or task not in (*OBJECT_TASKS, "classify"):
        return []
    dataset = getattr(getattr(validator, "dataloader", None), "dataset", None)
    workspace = ctx.spec.workspace
    picked: list[tuple[str, str, Any]] = []  # (file, workspace-relative, label or class)
    if task == "classify":
        for sample in getattr(dataset, "samples", [])[: MAX_VAL_IMAGES * 4]:
            rel = _relative(str(sample[0]), workspace)
            if rel is not None:
                picked.append((str(sample[0]), rel, int(sample[1])))
    else:
        for label in getattr(dataset, "labels", [])[: MAX_VAL_IMAGES * 4]:
            rel = _relative(str(label["im_file"]), workspace)
            if rel is not None:
                picked.append((str(label["im_file"]), rel, label))
    picked = picked[:MAX_VAL_IMAGES]
    if not picked:
        return []
    results = _predict(model, validator, [file for file, _, _ in picked])
    images: list[ValImage] = []
    for (_, rel, truth), result in zip(picked, results, strict=False):
        entry = inline_prediction(result, task, rel)
        image: ValImage = {
            "image": rel,
            "width": entry["width"],
            "height": entry["height"],
            "truth": [],
            "predicted": [],
        }
        if task == "classify":
            image["truth_class"] = names[truth] if 0 <= truth < len(names) else str(truth)
            image["predicted_classes"] = [c["name"] for c in entry.get("classes", [])]
        else:
            image["truth"] = truth_objects(truth, task, names, entry["width"], entry["height"])
            predicted = entry["detections"]
            for det in predicted:
                det.pop("mask", None)  # the polygon draws it; an RLE mask would weigh MBs
            image["predicted"] = predicted
        images.append(image)
    return images
