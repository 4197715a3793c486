"""The validation report of a dataset folder: pure functions over the folder, no tornado.

The report gives, per split, image and instance counts; a class histogram; the distribution of
box sizes; and the problems found, each an error or a warning with its file and line:

errors (the dataset cannot be used for training)
    ``data_yaml`` (missing or unreadable), ``names_missing``, ``names_invalid``,
    ``names_inconsistent``, ``split_missing`` / ``split_not_found`` / ``split_empty``,
    ``corrupt_image``, ``malformed_line``, ``class_out_of_range``, ``coordinates_out_of_range``,
    ``zero_area_box``, ``label_unreadable``
warnings
    ``image_without_label`` (a background image), ``label_without_image``, ``duplicate_image``,
    ``duplicate_label``, ``names_duplicate``, ``large_image``, and problems met while converting

Each task adds its own codes (:mod:`.labels` polygons, keypoints and oriented boxes,
:mod:`.classfolders`, :mod:`.pixelmaps` masks and depth maps, :mod:`.taskkeys` data.yaml keys)
and its ``task_stats``; the report says the ``task`` and how it was found (``task_source``).

The report is cached as ``report.json`` in the dataset folder (written atomically) together with
a fingerprint of the files it describes, so it is recomputed only when they change.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
import warnings
from collections.abc import Callable, Iterable
from io import BytesIO
from pathlib import Path
from typing import Any

from ..contract.tasks import TASK_NAMES
from .classfolders import check_class_folders, classify_image, classify_stats
from .datayaml import DatasetDescription, parse_names, read_description, split_images
from .labels import (
    LABEL_TASKS,
    LabelRules,
    TaskStats,
    check_label_file,
)
from .layouts import label_path_for
from .pixelmaps import PixelStats
from .problems import Collector as _Collector
from .problems import Problem
from .reportcache import (
    FORMATS,
    MAX_LISTED_PROBLEMS,
    META_FILE,
    REPORT_FILE,
    REPORT_VERSION,
    cached_report,
    fingerprint,
    folder_size,
    read_meta,
    save_report,
)
from .stats import Sizes as _Sizes
from .stats import SplitStats as _Split
from .taskdetect import detected, gather
from .taskkeys import check_task_keys

MAX_IMAGE_BYTES = 512 * 1024 * 1024
EXIF_ORIENTATION = 0x0112

Progress = Callable[[int, int], None]

__all__ = [
    "FORMATS",
    "META_FILE",
    "REPORT_FILE",
    "REPORT_VERSION",
    "DatasetDescription",
    "Problem",
    "broken_report",
    "cached_report",
    "check_image",
    "fingerprint",
    "folder_size",
    "oriented_size",
    "parse_names",
    "read_description",
    "read_meta",
    "report_for",
    "save_report",
    "split_images",
    "validate_dataset",
]


# --------------------------------------------------------------------------- images


def oriented_size(image: Any) -> tuple[int, int]:
    """An opened PIL image's size after its EXIF orientation (as training sees it)."""
    width, height = image.size
    with contextlib.suppress(Exception):
        if image.getexif().get(EXIF_ORIENTATION) in (5, 6, 7, 8):
            return height, width
    return width, height


def check_image(path: Path) -> tuple[tuple[int, int] | None, str | None, str | None, bool]:
    """Decode an image: ((width, height) or None, content digest, problem, too large?)."""
    from PIL import Image

    try:
        size = path.stat().st_size
        if size > MAX_IMAGE_BYTES:
            return None, None, f"the file is over {MAX_IMAGE_BYTES} bytes", False
        data = path.read_bytes()
    except OSError as exc:
        return None, None, f"cannot be read: {exc.strerror}", False
    digest = hashlib.blake2b(data, digest_size=16).hexdigest()
    large = False
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", Image.DecompressionBombWarning)
            with Image.open(BytesIO(data)) as image:
                dims = oriented_size(image)
                if image.format in ("JPEG", "MPO"):
                    image.draft("RGB", (max(1, image.size[0] // 8), max(1, image.size[1] // 8)))
                image.load()
            large = any(issubclass(w.category, Image.DecompressionBombWarning) for w in caught)
    except Image.DecompressionBombError:
        return None, digest, "the image has too many pixels to be decoded safely", False
    except Exception as exc:  # PIL and its plugins raise many kinds (SyntaxError, ImportError...)
        return None, digest, f"cannot be decoded: {exc}", False
    if min(dims) < 10:
        return dims, digest, f"the image is only {dims[0]}x{dims[1]} pixels (10 at least)", False
    return dims, digest, None, large


# --------------------------------------------------------------------------- the report


def validate_dataset(
    folder: Path,
    *,
    extra_problems: Iterable[dict[str, Any]] = (),
    progress: Progress | None = None,
    task: str | None = None,
    task_source: str | None = None,
) -> dict[str, Any]:
    """Check a dataset folder of ``task`` and return its report (see the module docstring).

    Without ``task`` the task is told from the folder's contents (:mod:`.taskdetect`).
    """
    started = time.monotonic()
    stamp = fingerprint(folder)
    out = _Collector(folder)
    if task not in TASK_NAMES:
        task, task_source = detected(gather(folder))
    assert task is not None
    description = read_description(folder, out)
    check_task_keys(task, description, out)
    names = description.names
    rules = LabelRules.from_yaml(task, description.content)
    task_stats = TaskStats(rules.task, rules.kpt_shape)
    pixels = PixelStats(task, description.content, names)
    labelled = task in LABEL_TASKS
    split_images_map = {
        split: split_images(targets, folder) for split, targets in description.splits.items()
    }
    total_images = sum(len(images) for images in split_images_map.values())
    done = 0
    stats: dict[str, _Split] = {}
    sizes = _Sizes()
    digests: dict[str, tuple[str, Path]] = {}
    for split, images in split_images_map.items():
        split_stats = stats.setdefault(split, _Split())
        if not images:
            out.error(
                "split_empty",
                f"The {split} split has no images.",
                folder / "data.yaml",
                description.yaml_lines.get(split),
            )
        expected_labels: set[Path] = set()
        for image in images:
            split_stats.images += 1
            dims, digest, problem, large = check_image(image)
            if problem is not None:
                split_stats.unreadable += 1
                out.error("corrupt_image", f"Unreadable or corrupt image: {problem}.", image)
            if large:
                out.warning("large_image", "The image is very large; it is slow to load.", image)
            if digest is not None:
                if digest in digests:
                    other_split, other = digests[digest]
                    leak = (
                        f" It is in both the {other_split} and the {split} split, so validation "
                        f"results will look better than they are."
                        if other_split != split
                        else ""
                    )
                    out.warning(
                        "duplicate_image",
                        f"This image is identical to {out.rel(other)}.{leak}",
                        image,
                    )
                else:
                    digests[digest] = (split, image)
            label = label_path_for(image)
            expected_labels.add(label)
            if task == "classify":
                classify_image(image, split_stats, description.splits[split], names or {})
            elif not labelled:
                pixels.check(image, dims, out)
            elif label.is_file():
                split_stats.labelled += 1
                boxes = check_label_file(
                    label,
                    names,
                    out,
                    stats=split_stats,
                    sizes=sizes,
                    dims=dims,
                    rules=rules,
                    task_stats=task_stats,
                )
                split_stats.instances += boxes
                if boxes == 0:
                    split_stats.backgrounds += 1
            else:
                split_stats.backgrounds += 1
                out.warning(
                    "image_without_label",
                    f"No label file ({out.rel(label)}); the image is used as a "
                    f"background (no objects).",
                    image,
                )
            done += 1
            if progress is not None:
                progress(done, total_images)
        for target in description.splits.get(split, []):
            if target.is_dir() and labelled:
                _orphan_labels(target, expected_labels, out)
    if task == "classify":
        check_class_folders(description, out)
    out.problems.extend(
        Problem(
            severity=str(p.get("severity", "warning")),
            code=str(p.get("code", "import")),
            message=str(p.get("message", "")),
            file=p.get("file"),
            line=p.get("line"),
        )
        for p in extra_problems
    )
    report = _assemble(
        out.problems, stats=stats, names=names, sizes=sizes, stamp=stamp, started=started
    )
    report["task"] = task
    report["task_source"] = task_source or "given"
    report["task_stats"] = (
        task_stats.to_json()
        if labelled
        else classify_stats(stats, names)
        if task == "classify"
        else pixels.to_json()
    )
    return report


def _orphan_labels(images_dir: Path, expected: set[Path], out: _Collector) -> None:
    labels_dir = label_path_for(images_dir / "x").parent
    if labels_dir == images_dir or not labels_dir.is_dir():
        return
    for current, dirs, files in os.walk(labels_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = Path(current) / name
            if path.suffix == ".txt" and not name.startswith(".") and path not in expected:
                out.warning(
                    "label_without_image",
                    "This label file has no image with the same name; it is ignored.",
                    path,
                )


def _assemble(
    problems: list[Problem],
    *,
    stats: dict[str, _Split],
    names: dict[int, str] | None,
    sizes: _Sizes,
    stamp: str,
    started: float,
) -> dict[str, Any]:
    errors = [p for p in problems if p.severity == "error"]
    warnings_ = [p for p in problems if p.severity != "error"]
    ordered = errors + warnings_
    counts: dict[str, dict[str, Any]] = {}
    for problem in ordered:
        entry = counts.setdefault(problem.code, {"severity": problem.severity, "count": 0})
        entry["count"] += 1
    n_classes = (
        len(names)
        if names is not None
        else (max((c for s in stats.values() for c in s.per_class), default=-1) + 1)
    )
    histogram = []
    for cls in range(n_classes):
        row: dict[str, Any] = {"id": cls, "name": names.get(cls) if names else None}
        for split, split_stats in stats.items():
            row[split] = split_stats.per_class.get(cls, 0)
        row["total"] = sum(s.per_class.get(cls, 0) for s in stats.values())
        histogram.append(row)
    return {
        "version": REPORT_VERSION,
        "fingerprint": stamp,
        "checked": time.time(),
        "check_seconds": round(time.monotonic() - started, 3),
        "status": "has_errors" if errors else "ok",
        "errors": len(errors),
        "warnings": len(warnings_),
        "names": {str(k): v for k, v in names.items()} if names is not None else None,
        "classes": n_classes,
        "splits": {split: s.to_json() for split, s in stats.items()},
        "images": sum(s.images for s in stats.values()),
        "instances": sum(s.instances for s in stats.values()),
        "class_histogram": histogram,
        "box_sizes": sizes.to_json(),
        "problem_counts": counts,
        "problems": [p.to_json() for p in ordered[:MAX_LISTED_PROBLEMS]],
        "problems_truncated": len(ordered) > MAX_LISTED_PROBLEMS,
    }


def broken_report(message: str) -> dict[str, Any]:
    """The report of a dataset that could not be checked at all: one error saying why."""
    problem = Problem("error", "dataset_unreadable", message, None, None)
    return _assemble(
        [problem], stats={}, names=None, sizes=_Sizes(), stamp="", started=time.monotonic()
    )


def report_for(folder: Path, *, progress: Progress | None = None) -> dict[str, Any]:
    """The cached report, or a fresh one (cached when the folder is writable)."""
    report = cached_report(folder)
    if report is not None:
        return report
    meta = read_meta(folder)
    report = validate_dataset(
        folder,
        extra_problems=meta.get("import_problems") or (),
        progress=progress,
        task=meta.get("task"),
        task_source=meta.get("task_source"),
    )
    save_report(folder, report)
    return report
