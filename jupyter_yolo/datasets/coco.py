"""COCO instances files (boxes, polygons and RLE masks, keypoints) to the YOLO layout.

One JSON file is parsed once (the raw bytes are dropped as soon as it is parsed) and its
annotations are indexed per image; the task comes from the file itself: categories naming
keypoints make a pose dataset, annotations with a segmentation a segment one, else detect.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..errors import InvalidRequest
from ..safeyaml import describe
from ..strict import MAX_JSON_DEPTH, StrictJSONError, loads_file
from .coco_tasks import RleBudget, flip_index, keypoint_line, segment_line
from .layouts import (
    SPLIT_ALIASES,
    SPLITS,
    Normalised,
    _box_line,
    _image_size,
    _ImageIndex,
    _place_converted,
    _relative,
    write_data_yaml,
)

__all__ = ["coco_files", "normalise_coco"]


def _depth_over(value: Any, limit: int) -> bool:
    """Whether lists and objects in ``value`` nest deeper than ``limit`` (no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
    return False


def _load_json(path: Path) -> Any:
    """A JSON file of the dataset: bounded nesting, no NaN, or a 400 naming the file."""
    try:
        content = loads_file(path.read_bytes())
    except StrictJSONError as exc:
        raise InvalidRequest(f"{path.name} cannot be read as JSON: {exc}") from None
    if _depth_over(content, MAX_JSON_DEPTH):
        raise InvalidRequest(
            f"{path.name} cannot be read as JSON: it is nested deeper than {MAX_JSON_DEPTH} "
            f"levels (COCO files need 5)."
        )
    return content


def coco_files(root: Path) -> list[tuple[Path, dict[str, Any], str | None]]:
    """COCO files as (path, content, split); the split comes from the file or folder name."""
    found = []
    folders: list[tuple[Path, str | None]] = [
        (root, None),
        (root / "annotations", None),
        (root / "Annotations", None),
    ]
    folders += [
        (child, SPLIT_ALIASES[child.name.lower()])
        for child in sorted(root.iterdir())
        if child.is_dir() and child.name.lower() in SPLIT_ALIASES
    ]
    for folder, folder_split in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.json")):
            content = _load_json(path)
            if (
                isinstance(content, dict)
                and isinstance(content.get("images"), list)
                and isinstance(content.get("categories"), list)
            ):
                found.append((path, content, folder_split or _split_of(path.stem)))
    return found


def _split_of(name: str) -> str | None:
    lowered = name.lower()
    for word, split in (("train", "train"), ("valid", "val"), ("val", "val"), ("test", "test")):
        if re.search(rf"(^|[^a-z]){word}", lowered):
            return split
    return None


def normalise_coco(
    root: Path, dest: Path, files: list[tuple[Path, dict[str, Any], str | None]], seed: int
) -> Normalised:
    """Convert COCO files to the YOLO layout in ``dest``: boxes, polygons or keypoints."""
    result = Normalised(format="coco")
    categories: dict[int, str] = {}
    for _path, content, _split in files:
        for category in content.get("categories", []):
            if isinstance(category, dict) and isinstance(category.get("id"), int):
                categories.setdefault(category["id"], str(category.get("name", category["id"])))
    if not categories:
        raise InvalidRequest("The COCO annotation file has no categories.")
    class_of = {cat_id: index for index, cat_id in enumerate(sorted(categories))}
    names = [categories[cat_id] for cat_id in sorted(categories)]
    index = _ImageIndex(root)
    task = _coco_task(files)
    result.task = task
    extra: dict[str, Any] = {}
    kpt_count = 0
    if task == "pose":
        kpt_names = _coco_keypoint_names(files)
        kpt_count = len(kpt_names)
        flip, guessed = flip_index(kpt_names)
        extra = {"kpt_shape": [kpt_count, 3], "flip_idx": flip}
        if guessed:
            result.warn("flip_idx_guessed", guessed, file="data.yaml")
    stand_ins = no_keypoints = 0
    budget = RleBudget()  # RLE pixels this whole upload may decode
    mask_notes: list[str] = []

    # (split or None for the pool, image path, label text)
    items: list[tuple[str | None, Path, str]] = []
    skipped_crowd = skipped_empty = 0
    used: set[Path] = set()
    for path, content, split in files:
        shown = _relative(path, root)
        annotations = content.get("annotations")
        if not isinstance(annotations, list):
            result.notes.append(f"{shown} has no annotations and was not used.")
            continue
        by_image: dict[Any, list[dict[str, Any]]] = {}
        for annotation in annotations:
            if isinstance(annotation, dict):
                by_image.setdefault(annotation.get("image_id"), []).append(annotation)
        bases = [path.parent, path.parent.parent, root, root / "images"]
        if split:
            bases += [root / "images" / split, root / split, root / f"{split}2017"]
        for record in content["images"]:
            if not isinstance(record, dict) or not isinstance(record.get("file_name"), str):
                continue
            image = index.find(record["file_name"], bases)
            anns = by_image.get(record.get("id"), [])
            if image is None:
                result.warn(
                    "image_missing",
                    f"Image {describe(record['file_name'])} (id {describe(record.get('id'))}) "
                    f"is in {shown} but not in the archive; its {len(anns)} annotation(s) were "
                    f"left out.",
                    file=shown,
                )
                continue
            if image in used:
                result.warn(
                    "image_reused",
                    f"Image {describe(record['file_name'])} is listed twice; "
                    f"only its first listing was used.",
                    file=shown,
                )
                continue
            used.add(image)
            width, height = record.get("width"), record.get("height")
            if not (
                isinstance(width, (int, float))
                and isinstance(height, (int, float))
                and width > 0
                and height > 0
            ):
                size = _image_size(image)
                if size is None:
                    result.warn(
                        "image_unreadable",
                        f"Image {describe(record['file_name'])} cannot be read; it was left out.",
                        file=shown,
                    )
                    continue
                width, height = size
            # an RLE mask must have the image file's own size (its header, not the JSON's)
            real = _image_size(image) if task == "segment" else None
            lines = []
            for annotation in anns:
                bbox = annotation.get("bbox")
                if annotation.get("iscrowd"):
                    skipped_crowd += 1
                    continue
                category = annotation.get("category_id")
                if category not in class_of:
                    result.warn(
                        "unknown_category",
                        f"Annotation {describe(annotation.get('id'))} of "
                        f"{describe(record['file_name'])} has unknown category "
                        f"{describe(category)}; it "
                        f"was left out.",
                        file=shown,
                    )
                    continue
                if not (
                    isinstance(bbox, list)
                    and len(bbox) == 4
                    and all(isinstance(v, (int, float)) for v in bbox)
                ):
                    result.warn(
                        "bad_bbox",
                        f"Annotation {describe(annotation.get('id'))} of "
                        f"{describe(record['file_name'])} has no valid bbox; it was left "
                        f"out.",
                        file=shown,
                    )
                    continue
                x, y, w, h = (float(v) for v in bbox)
                line = _box_line(class_of[category], (x, y, x + w, y + h), (width, height))
                if line is None:
                    skipped_empty += 1
                    continue
                if task != "detect":
                    box = [float(v) for v in line.split()[1:]]
                    if task == "pose":
                        pose = keypoint_line(
                            class_of[category],
                            annotation,
                            box,
                            count=kpt_count,
                            width=width,
                            height=height,
                        )
                        if pose is None:
                            no_keypoints += 1
                            continue
                        line = pose
                    else:
                        line, stand_in = segment_line(
                            class_of[category],
                            annotation,
                            box,
                            width,
                            height,
                            real=real,
                            budget=budget,
                            warnings=mask_notes,
                        )
                        stand_ins += stand_in
                lines.append(line)
            items.append((split, image, "".join(lines)))
        # this file's objects are no longer needed: free them before the next file is read
        by_image.clear()
        content.clear()
    if not items:
        raise InvalidRequest("The COCO annotation files list no image that is in the archive.")
    if skipped_crowd:
        result.notes.append(f"{skipped_crowd} crowd annotation(s) (iscrowd) were left out.")
    if no_keypoints:
        result.notes.append(
            f"{no_keypoints} annotation(s) without a labelled keypoint were left out (as COCO's "
            f"evaluation and ultralytics do)."
        )
    if stand_ins:
        result.warn(
            "segmentation_missing",
            f"{stand_ins} annotation(s) had no usable segmentation; their box was used as the "
            f"polygon.",
        )
    if mask_notes:
        shown_notes = "; ".join(mask_notes[:5])
        more = f" and {len(mask_notes) - 5} more" if len(mask_notes) > 5 else ""
        result.warn(
            "segmentation_refused",
            f"{len(mask_notes)} segmentation(s) were not used as given: {shown_notes}{more}.",
        )
    if skipped_empty:
        result.warn(
            "empty_box",
            f"{skipped_empty} annotation(s) with no area inside the image were left out.",
        )
    unused = sum(1 for paths in index.by_name.values() for p in paths if p not in used)
    if unused:
        result.notes.append(
            f"{unused} image(s) in the archive are not in any annotation file and were left out."
        )
    _place_converted(items, dest, result, seed)
    write_data_yaml(dest, (s for s in SPLITS if (dest / "images" / s).is_dir()), names, extra=extra)
    return result


def _coco_task(files: list[tuple[Path, dict[str, Any], str | None]]) -> str:
    """Pose when categories name keypoints, segment when annotations carry segmentation."""
    if _coco_keypoint_names(files):
        return "pose"
    for _path, content, _split in files:
        annotations = content.get("annotations")
        if isinstance(annotations, list) and any(
            isinstance(a, dict) and a.get("segmentation") and not a.get("iscrowd")
            for a in annotations
        ):
            return "segment"
    return "detect"


def _coco_keypoint_names(files: list[tuple[Path, dict[str, Any], str | None]]) -> list[str]:
    """The longest keypoint name list of the categories (empty when none has keypoints)."""
    best: list[str] = []
    for _path, content, _split in files:
        for category in content.get("categories", []):
            names = category.get("keypoints") if isinstance(category, dict) else None
            if isinstance(names, list) and len(names) > len(best):
                best = [str(n) for n in names]
    return best
