"""Preview samples of a dataset: images with their task's geometry, in pixels and normalised.

Every sample keeps the detection fields the panels read (``boxes``: class, ``xywhn``,
``xyxy``; each box also carries its own normalised ``polygon``, ``corners`` or ``keypoints``);
the task adds ``polygons`` (segment), ``keypoints`` (pose: x, y, visibility per
keypoint, no skeleton), ``corners`` (obb), ``class_id``/``class_name`` (classify), or an
``overlay`` (semantic: the class map colourised; depth: the depth map as grey, near bright), a
small PNG data URL at the thumbnail size.
"""

from __future__ import annotations

import base64
import random
from io import BytesIO
from pathlib import Path
from typing import Any

from ..errors import InvalidRequest, UnsafeArchive
from .datayaml import read_description, split_images
from .labels import LabelRules, read_shapes
from .paths import folder_name_problem, label_path_for
from .pixelmaps import MapRefused, depth_path_for, mask_path_for, read_map
from .reportcache import read_meta
from .taskdetect import detected, gather
from .validate import oriented_size

OVERLAY_SIZE = 256
PALETTE_SEED = 7

__all__ = ["dataset_samples", "sample_entry"]


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _data_url(image: Any, kind: str = "PNG") -> str:
    buffer = BytesIO()
    image.save(buffer, format=kind)
    media = "image/png" if kind == "PNG" else "image/jpeg"
    return f"data:{media};base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _pixels(points: list[float], width: int, height: int) -> list[list[float]]:
    return [
        [round(points[i] * width, 2), round(points[i + 1] * height, 2)]
        for i in range(0, len(points) - 1, 2)
    ]


def _pairs(points: list[float]) -> list[list[float]]:
    return [[points[i], points[i + 1]] for i in range(0, len(points) - 1, 2)]


def label_geometry(
    image: Path,
    *,
    task: str,
    rules: LabelRules,
    names: dict[int, str],
    width: int,
    height: int,
) -> dict[str, Any]:
    """The boxes of a label-line task's image, and its polygons, keypoints or corners."""
    boxes: list[dict[str, Any]] = []
    polygons: list[dict[str, Any]] = []
    keypoints: list[dict[str, Any]] = []
    corners: list[dict[str, Any]] = []
    for cls, box, coords in read_shapes(label_path_for(image), task):
        cx, cy, w, h = box
        x0, y0 = (cx - w / 2) * width, (cy - h / 2) * height
        x1, y1 = (cx + w / 2) * width, (cy + h / 2) * height
        head = {"class_id": cls, "class_name": names.get(cls)}
        entry: dict[str, Any] = {
            **head,
            "xywhn": [cx, cy, w, h],
            "xyxy": [round(x0, 2), round(y0, 2), round(x1, 2), round(y1, 2)],
        }
        boxes.append(entry)
        # each box also carries its own shape, normalised, for the samples grid
        if task == "segment":
            entry["polygon"] = _pairs(coords)
            polygons.append(
                {**head, "points_n": _pairs(coords), "points": _pixels(coords, width, height)}
            )
        elif task == "obb":
            entry["corners"] = _pairs(coords)
            corners.append(
                {**head, "corners_n": _pairs(coords), "corners": _pixels(coords, width, height)}
            )
        elif task == "pose" and rules.kpt_shape is not None:
            k, d = rules.kpt_shape
            values = coords[4:]
            if len(values) != k * d:
                continue
            points_n, points = [], []
            for i in range(k):
                x, y = values[i * d], values[i * d + 1]
                v = values[i * d + 2] if d == 3 else (2.0 if x or y else 0.0)
                points_n.append([x, y, v])
                points.append([round(x * width, 2), round(y * height, 2), v])
            entry["keypoints"] = points_n
            keypoints.append({**head, "points_n": points_n, "points": points})
    extra: dict[str, Any] = {"boxes": boxes}
    if task == "segment":
        extra["polygons"] = polygons
    elif task == "obb":
        extra["corners"] = corners
    elif task == "pose":
        extra["keypoints"] = keypoints
    return extra


def _palette() -> list[tuple[int, int, int]]:
    rng = random.Random(PALETTE_SEED)
    colours = [(0, 0, 0)] + [
        (rng.randrange(40, 256), rng.randrange(40, 256), rng.randrange(40, 256)) for _ in range(254)
    ]
    return [*colours, (255, 255, 255)]


def pixel_overlay(
    image: Path,
    task: str,
    content: dict[Any, Any],
    thumbnail: int,
    *,
    root: Path,
    dims: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """A semantic mask colourised or a depth map in grey, as a small PNG data URL.

    The map must lie inside the dataset ``root``; it is decoded only when its header says it
    has the image's size ``dims`` and no more than the map pixel cap.
    """
    import numpy as np
    from PIL import Image

    size = thumbnail or OVERLAY_SIZE
    try:
        if task == "semantic":
            masks_dir = content.get("masks_dir", "masks")
            problem = folder_name_problem(masks_dir)
            if problem is not None:
                return {"overlay": None, "overlay_error": f"data.yaml's 'masks_dir' {problem}"}
            path = mask_path_for(image, masks_dir, root)
        else:
            path = depth_path_for(image, root)
    except UnsafeArchive as exc:
        return {"overlay": None, "overlay_error": exc.message}
    if not path.is_file():
        return {"overlay": None, "overlay_error": f"no {task} map for this image"}
    try:
        array = read_map(path, dims)[2].astype(np.float64)
        if array.ndim != 2:
            raise ValueError("the map is not one channel")
        if task == "semantic":
            indices = np.clip(array, 0, 255).astype(np.uint8)
            flat = [c for colour in _palette() for c in colour]
            picture = Image.fromarray(indices, mode="P")
            picture.putpalette(flat)
            picture = picture.convert("RGB")
            values = sorted(int(v) for v in np.unique(indices))
            summary: dict[str, Any] = {"classes_present": values}
        else:
            valid = array[array > 0]
            low, high = (float(valid.min()), float(valid.max())) if valid.size else (0.0, 1.0)
            span = high - low or 1.0
            grey = np.where(array > 0, 255 - (array - low) / span * 215, 0).astype(np.uint8)
            picture = Image.fromarray(grey, mode="L")
            summary = {"raw_min": low, "raw_max": high}
        picture.thumbnail((size, size), Image.Resampling.NEAREST)
    except MapRefused as exc:
        return {"overlay": None, "overlay_error": f"refused: {exc}"}
    except Exception as exc:  # PIL and numpy raise many kinds
        return {"overlay": None, "overlay_error": f"unreadable: {exc}"}
    return {
        "overlay": _data_url(picture),
        "overlay_size": list(picture.size),
        "overlay_file": path.name,
        **summary,
    }


def sample_entry(
    image: Path,
    *,
    task: str,
    rules: LabelRules,
    names: dict[int, str],
    content: dict[Any, Any],
    width: int,
    height: int,
    split_roots: list[Path],
    thumbnail: int,
    root: Path,
) -> dict[str, Any]:
    """The task's geometry of one sample image (see the module docstring).

    ``root`` is the dataset folder: a semantic or depth map must lie inside it.
    """
    if task == "classify":
        ids = {name: index for index, name in names.items()}
        for split_root in split_roots:
            try:
                folder = image.relative_to(split_root).parts[0]
            except (ValueError, IndexError):
                continue
            return {"boxes": [], "class_id": ids.get(folder), "class_name": folder}
        return {"boxes": [], "class_id": None, "class_name": None}
    if task in ("semantic", "depth"):
        overlay = pixel_overlay(image, task, content, thumbnail, root=root, dims=(width, height))
        return {"boxes": [], **overlay}
    return label_geometry(image, task=task, rules=rules, names=names, width=width, height=height)


def dataset_samples(
    folder: Path, name: str, *, split: str, count: int, seed: int, thumbnail: int
) -> dict[str, Any]:
    """A few images of a split with their task's geometry, pixels and normalised (blocking)."""
    from PIL import Image

    description = read_description(folder)
    if split not in description.splits:
        raise InvalidRequest(
            f"The dataset {name!r} has no {split!r} split; it has "
            f"{', '.join(description.splits) or 'none'}."
        )
    names = description.names or {}
    task = read_meta(folder).get("task") or detected(gather(folder))[0]
    rules = LabelRules.from_yaml(task, description.content)
    images = split_images(description.splits[split], folder)
    chosen = images if count >= len(images) else random.Random(seed).sample(images, count)
    out = []
    root = folder.resolve()
    for image in chosen:
        try:
            relative = image.resolve().relative_to(root).as_posix()
        except (OSError, ValueError):
            continue
        entry: dict[str, Any] = {"path": relative}
        try:
            with Image.open(image) as opened:
                width, height = oriented_size(opened)
                if thumbnail:
                    from PIL import ImageOps

                    small = ImageOps.exif_transpose(opened).convert("RGB")
                    small.thumbnail((thumbnail, thumbnail))
                    buffer = BytesIO()
                    small.save(buffer, format="JPEG", quality=85)
                    entry["thumbnail"] = "data:image/jpeg;base64," + base64.b64encode(
                        buffer.getvalue()
                    ).decode("ascii")
                    entry["thumbnail_size"] = list(small.size)
        except Exception as exc:  # PIL raises many kinds (SyntaxError, EOFError...)
            entry.update(width=None, height=None, boxes=[], error=f"unreadable: {_short(exc)}")
            out.append(entry)
            continue
        entry.update(width=width, height=height)
        entry.update(
            sample_entry(
                image,
                task=task,
                rules=rules,
                names=names,
                content=description.content,
                width=width,
                height=height,
                split_roots=description.splits[split],
                thumbnail=thumbnail,
                root=root,
            )
        )
        out.append(entry)
    return {
        "name": name,
        "task": task,
        "split": split,
        "images_in_split": len(images),
        "names": {str(k): v for k, v in names.items()},
        "samples": out,
    }
