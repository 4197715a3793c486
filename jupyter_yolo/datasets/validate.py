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

The report is cached as ``report.json`` in the dataset folder (written atomically) together with
a fingerprint of the files it describes, so it is recomputed only when they change.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any

from ..contract.files import write_atomic
from ..contract.tasks import TASK_NAMES
from ..safeyaml import YamlRefused, describe, load_yaml
from ..strict import MAX_PATH_BYTES, StrictJSONError, loads_file, text_problem
from .archive import IMAGE_SUFFIXES
from .classfolders import check_class_folders, classify_image, classify_stats
from .keys import DATA_YAML_KEYS, FORBIDDEN_DATA_KEYS
from .labels import (
    LABEL_TASKS,
    LabelRules,
    TaskStats,
    check_label_file,
)
from .layouts import image_files, label_path_for
from .pixelmaps import PixelStats
from .problems import Collector as _Collector
from .problems import Problem
from .stats import Sizes as _Sizes
from .stats import SplitStats as _Split
from .taskdetect import detected, gather
from .taskkeys import check_task_keys

REPORT_FILE = "report.json"
META_FILE = "meta.json"
REPORT_VERSION = 2
MAX_LISTED_PROBLEMS = 500
MAX_IMAGE_BYTES = 512 * 1024 * 1024
MAX_LABEL_BYTES = 16 * 1024 * 1024
MAX_YAML_BYTES = 1024 * 1024
MAX_CACHE_BYTES = 64 * 1024 * 1024  # report.json / meta.json larger than this are not read
MAX_CLASSES = 10000
MAX_CLASS_NAME_BYTES = 256
MAX_NAME_WARNINGS = 20
MAX_SPLIT_ENTRIES = 100
SPLITS = ("train", "val", "test")
EXIF_ORIENTATION = 0x0112

Progress = Callable[[int, int], None]
_TOP_LEVEL_KEY = re.compile(r"""^(["']?)([A-Za-z0-9_][A-Za-z0-9_.-]*)\1[ \t]*:(?:[ \t]|$)""")


# --------------------------------------------------------------------------- data.yaml


def _key_lines(text: str) -> dict[str, int]:
    """Line numbers (from 1) of the top-level keys of a block yaml mapping.

    Read from the text rather than by parsing the yaml a second time (a large file takes
    seconds to parse in pure Python); keys of a flow-style top level get no line.
    """
    lines: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        match = _TOP_LEVEL_KEY.match(line)
        if match:
            lines.setdefault(match.group(2), number)
    return lines


def parse_names(names: Any) -> dict[int, str] | str:
    """Class names as {id: name}, or a sentence saying why they are not usable."""
    if isinstance(names, (list, dict)) and len(names) > MAX_CLASSES:
        return f"there are {len(names)} names; {MAX_CLASSES} classes at most are accepted"
    if isinstance(names, list):
        for index, name in enumerate(names):
            problem = _name_problem(name)
            if problem:
                return f"the name of class {index} {problem}"
        return {i: str(n) for i, n in enumerate(names)}
    if isinstance(names, dict):
        parsed: dict[int, str] = {}
        for key, value in names.items():
            if isinstance(key, (float, bool)) or not isinstance(key, (int, str)):
                return f"'names' has the key {describe(key)}, which is not a class id"
            try:
                index = int(key)
            except ValueError:
                return f"'names' has the key {describe(key)}, which is not a class id"
            if index < 0:
                return f"'names' has the key {describe(key)}, which is not a class id"
            problem = _name_problem(value)
            if problem:
                return f"the name of class {index} {problem}"
            parsed[index] = str(value)
        if parsed and sorted(parsed) != list(range(len(parsed))):
            missing = sorted(set(range(len(parsed))) - set(parsed))
            return (
                f"class ids in 'names' must run from 0 to {len(parsed) - 1} without gaps; "
                f"missing: {', '.join(map(str, missing[:10]))}"
            )
        return parsed
    return (
        f"'names' must be a list of names or a mapping of class id to name, not {describe(names)}"
    )


def _name_problem(name: Any) -> str | None:
    """Why a class name is not usable (it must be short text), or None."""
    if isinstance(name, bool) or not isinstance(name, (str, int, float)):
        return f"must be a name (text), not {describe(name)}"
    return text_problem(str(name), max_bytes=MAX_CLASS_NAME_BYTES)


def _path_problem(value: Any) -> str | None:
    """Why a data.yaml path entry cannot name a file or folder, or None."""
    if not isinstance(value, str):
        return f"must be a folder or an image list (text), not {describe(value)}"
    if not value.strip():
        return "is empty"
    return text_problem(value, max_bytes=MAX_PATH_BYTES)


def _int_problem(value: Any, low: int, high: int) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return f"must be a whole number, not {describe(value)}"
    if not low <= value <= high:
        return f"must be between {low} and {high}, not {value}"
    return None


def _check_other_keys(
    content: dict[Any, Any], out: _Collector, path: Path, lines: dict[str, int]
) -> None:
    """Refuse keys that make ultralytics fetch or run things; check the pose/channel keys."""
    unknown: list[str] = []
    for key in content:
        text = str(key) if isinstance(key, (str, int, float, bool)) else describe(key)
        if text in FORBIDDEN_DATA_KEYS:
            out.error(
                "forbidden_key",
                f"data.yaml has a {text!r} key: ultralytics downloads or runs what it names "
                f"when images are missing. Remove it; datasets here must be complete on disk.",
                path,
                lines.get(text),
            )
        elif text not in DATA_YAML_KEYS:
            unknown.append(text)
    if unknown:
        shown = ", ".join(describe(k, 40) for k in unknown[:10])
        more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        out.warning(
            "unknown_key",
            f"data.yaml has key(s) ultralytics does not train with: {shown}{more}; "
            f"training jobs leave them out.",
            path,
            lines.get(unknown[0]),
        )
    channels = content.get("channels")
    if channels is not None:
        problem = _int_problem(channels, 1, 64)
        if problem:
            out.error(
                "data_yaml", f"data.yaml's 'channels' {problem}.", path, lines.get("channels")
            )
    kpt_shape = content.get("kpt_shape")
    if kpt_shape is not None and not (
        isinstance(kpt_shape, list)
        and len(kpt_shape) == 2
        and _int_problem(kpt_shape[0], 1, 10000) is None
        and kpt_shape[1] in (2, 3)
        and not isinstance(kpt_shape[1], bool)
    ):
        out.error(
            "data_yaml",
            f"data.yaml's 'kpt_shape' must be [keypoints, 2 or 3], not {describe(kpt_shape)}.",
            path,
            lines.get("kpt_shape"),
        )
    flip_idx = content.get("flip_idx")
    if flip_idx is not None and not (
        isinstance(flip_idx, list)
        and len(flip_idx) <= 10000
        and all(_int_problem(i, 0, 10000) is None for i in flip_idx)
    ):
        out.error(
            "data_yaml",
            f"data.yaml's 'flip_idx' must be a list of keypoint indices, not {describe(flip_idx)}.",
            path,
            lines.get("flip_idx"),
        )


def _read_data_yaml(folder: Path, path: Path, collect: _Collector) -> tuple[Any, str] | None:
    """The parsed data.yaml and its text, or None with an error recorded."""
    try:
        if path.is_symlink() and not path.resolve().is_relative_to(folder.resolve()):
            collect.error("data_yaml", "data.yaml is a link to a file outside the dataset.", path)
            return None
        if not path.is_file():
            what = "is not a file" if os.path.lexists(path) else "is missing"
            collect.error("data_yaml", f"The dataset's data.yaml {what}.", path)
            return None
        if path.stat().st_size > MAX_YAML_BYTES:
            collect.error("data_yaml", f"data.yaml is over {MAX_YAML_BYTES} bytes.", path)
            return None
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        collect.error("data_yaml", f"data.yaml cannot be read: {reason}", path)
        return None
    try:
        return load_yaml(text), text
    except YamlRefused as exc:
        collect.error("data_yaml", f"data.yaml cannot be read: {exc}", path, exc.line)
        return None


@dataclass
class DatasetDescription:
    """What data.yaml says, resolved against the dataset folder."""

    names: dict[int, str] | None
    splits: dict[str, list[Path]]  # split -> image folders or list files
    yaml_lines: dict[str, int]
    content: dict[Any, Any] = field(default_factory=dict)


def read_description(folder: Path, out: _Collector | None = None) -> DatasetDescription:
    """Read ``folder/data.yaml``; record problems in ``out`` (errors when it is unusable).

    The yaml is read without alias expansion and every value is type-checked before it appears
    in a message, so a hostile data.yaml gives a short error, never a huge report.
    """
    collect = out or _Collector(folder)
    path = folder / "data.yaml"
    empty = DatasetDescription(names=None, splits={}, yaml_lines={})
    loaded = _read_data_yaml(folder, path, collect)
    if loaded is None:
        return empty
    content, text = loaded
    if not isinstance(content, dict):
        collect.error(
            "data_yaml", f"data.yaml is not a yaml mapping but {describe(content)}.", path, 1
        )
        return empty
    lines = _key_lines(text)
    _check_other_keys(content, collect, path, lines)
    names: dict[int, str] | None = None
    if content.get("names") in (None, "", [], {}):
        collect.error(
            "names_missing", "data.yaml has no class names ('names').", path, lines.get("names")
        )
    else:
        parsed = parse_names(content["names"])
        if isinstance(parsed, str):
            collect.error(
                "names_invalid", f"Class names are not usable: {parsed}.", path, lines.get("names")
            )
        else:
            names = parsed
            nc = content.get("nc")
            if nc is not None and (isinstance(nc, bool) or not isinstance(nc, int)):
                collect.error(
                    "names_inconsistent",
                    f"data.yaml's 'nc' must be the number of classes, not {describe(nc)}.",
                    path,
                    lines.get("nc"),
                )
            elif nc is not None and nc != len(parsed):
                collect.error(
                    "names_inconsistent",
                    f"data.yaml says nc: {nc} but 'names' has {len(parsed)} classes.",
                    path,
                    lines.get("nc"),
                )
            seen: dict[str, int] = {}
            duplicates = 0
            for index, name in parsed.items():
                if name in seen:
                    duplicates += 1
                    if duplicates <= MAX_NAME_WARNINGS:
                        collect.warning(
                            "names_duplicate",
                            f"Classes {seen[name]} and {index} are both named {describe(name)}.",
                            path,
                            lines.get("names"),
                        )
                seen.setdefault(name, index)
            if duplicates > MAX_NAME_WARNINGS:
                collect.warning(
                    "names_duplicate",
                    f"{duplicates - MAX_NAME_WARNINGS} more classes repeat a name.",
                    path,
                    lines.get("names"),
                )
    raw_base = content.get("path")
    problem = _path_problem(raw_base) if raw_base not in (None, "") else None
    base = None if problem else _base_folder(folder, raw_base)
    if base is None:
        why = (
            f"{problem}" if problem else f"({describe(raw_base)}) points outside the dataset folder"
        )
        collect.error("data_yaml", f"data.yaml's 'path' {why}.", path, lines.get("path"))
        return DatasetDescription(names=names, splits={}, yaml_lines=lines, content=content)
    splits: dict[str, list[Path]] = {}
    for split in SPLITS:
        entry = content.get(split)
        if entry in (None, "", []):
            if split != "test":
                collect.error("split_missing", f"data.yaml has no {split!r} split.", path)
            continue
        if isinstance(entry, list) and len(entry) > MAX_SPLIT_ENTRIES:
            collect.error(
                "split_not_found",
                f"The {split} split lists {len(entry)} entries; "
                f"{MAX_SPLIT_ENTRIES} at most are accepted.",
                path,
                lines.get(split),
            )
            continue
        targets: list[Path] = []
        for value in entry if isinstance(entry, list) else [entry]:
            problem = _path_problem(value)
            if problem:
                collect.error(
                    "split_not_found", f"The {split} split entry {problem}.", path, lines.get(split)
                )
                continue
            try:
                target = (base / value).resolve()
                inside = target.is_relative_to(folder.resolve())
                exists = inside and target.exists()
            except (OSError, ValueError) as exc:
                collect.error(
                    "split_not_found",
                    f"The {split} split {describe(value)} cannot be used: {exc}.",
                    path,
                    lines.get(split),
                )
                continue
            if not inside:
                collect.error(
                    "split_not_found",
                    f"The {split} split {describe(value)} points outside the dataset folder.",
                    path,
                    lines.get(split),
                )
                continue
            if not exists:
                collect.error(
                    "split_not_found",
                    f"The {split} split {describe(value)} does not exist.",
                    path,
                    lines.get(split),
                )
                continue
            targets.append(target)
        if targets:
            splits[split] = targets
    return DatasetDescription(names=names, splits=splits, yaml_lines=lines, content=content)


def _base_folder(folder: Path, value: Any) -> Path | None:
    """Where split entries are relative to, confined to the dataset folder (None: outside)."""
    root = folder.resolve()
    if value in (None, ""):
        return root
    try:
        candidate = Path(str(value))
        if not candidate.is_absolute():
            inside = folder / candidate
            candidate = inside if inside.exists() else folder.parent / candidate
        resolved = candidate.resolve()
    except (OSError, ValueError):
        return None
    return resolved if resolved.is_relative_to(root) else None


def split_images(targets: Iterable[Path], root: Path | None = None) -> list[Path]:
    """The images of one split: folders are searched recursively, list files are read.

    With ``root``, images that lie outside it (list entries, links) are left out, and so are
    list lines that cannot name a file.
    """
    images: list[Path] = []
    inside = root.resolve() if root is not None else None

    def keep(candidate: Path) -> bool:
        try:
            if inside is not None and not candidate.resolve().is_relative_to(inside):
                return False
            return candidate.suffix.lower() in IMAGE_SUFFIXES and candidate.is_file()
        except (OSError, ValueError):
            return False

    for target in targets:
        if target.is_dir():
            images.extend(image for image in image_files(target) if inside is None or keep(image))
        elif target.is_file():
            try:
                if target.stat().st_size > MAX_LABEL_BYTES:
                    continue
                text = target.read_text(errors="replace")
            except OSError:
                continue
            for line in text.splitlines():
                entry = line.strip()
                if not entry or text_problem(entry, max_bytes=MAX_PATH_BYTES):
                    continue
                candidate = (
                    target.parent / entry[2:] if entry.startswith("./") else target.parent / entry
                )
                if keep(candidate):
                    images.append(candidate)
    return images


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
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as exc:
        return None, digest, f"cannot be decoded: {exc}", False
    if min(dims) < 10:
        return dims, digest, f"the image is only {dims[0]}x{dims[1]} pixels (10 at least)", False
    return dims, digest, None, large


# --------------------------------------------------------------------------- the report


def fingerprint(folder: Path) -> str:
    """A digest of the names, sizes and times of the files a report describes."""
    digest = hashlib.sha1(usedforsecurity=False)
    for current, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith(".") or name in (REPORT_FILE, META_FILE):
                continue
            suffix = Path(name).suffix.lower()
            if suffix not in IMAGE_SUFFIXES and suffix not in (".txt", ".yaml", ".yml", ".npy"):
                continue
            path = Path(current) / name
            try:
                info = path.lstat()
            except OSError:
                continue
            relative = path.relative_to(folder).as_posix()
            line = f"{relative}\0{info.st_size}\0{info.st_mtime_ns}\n"
            digest.update(line.encode("utf-8", "surrogateescape"))  # names need not be UTF-8
    return digest.hexdigest()


def folder_size(folder: Path) -> int:
    """Total bytes of the regular files under ``folder`` (links not followed)."""
    total = 0
    for current, _dirs, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += (Path(current) / name).lstat().st_size
    return total


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


def _read_cache_json(path: Path) -> Any:
    """A JSON file the store wrote (report, meta), or None when it is missing or unusable."""
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_CACHE_BYTES:
            return None
        return loads_file(path.read_bytes())
    except (OSError, StrictJSONError):
        return None


FORMATS = ("yolo", "coco", "voc", "class-folders", "dota")
META_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "format": (str,),
    "task": (str,),
    "task_source": (str,),
    "source": (str,),
    "builtin": (bool,),
    "created": (int, float),
    "split_created": (bool,),
    "files": (int,),
    "bytes": (int,),
}


def read_meta(folder: Path) -> dict[str, Any]:
    """The dataset's ``meta.json`` (format, source, notes...), or {} when there is none.

    Only values of the expected types are kept, so a damaged or hand-edited file cannot break
    the listing.
    """
    meta = _read_cache_json(folder / META_FILE)
    if not isinstance(meta, dict):
        return {}
    clean: dict[str, Any] = {
        key: meta[key]
        for key, types in META_TYPES.items()
        if isinstance(meta.get(key), types)
        and not (bool not in types and isinstance(meta.get(key), bool))
    }
    if clean.get("format") not in FORMATS:
        clean.pop("format", None)
    if clean.get("task") not in TASK_NAMES:
        clean.pop("task", None)
        clean.pop("task_source", None)
    notes = meta.get("notes")
    if isinstance(notes, list):
        clean["notes"] = [note for note in notes if isinstance(note, str)][:100]
    problems = meta.get("import_problems")
    if isinstance(problems, list):
        clean["import_problems"] = [
            {
                "severity": "error" if p.get("severity") == "error" else "warning",
                "code": str(p.get("code", "import"))[:64],
                "message": str(p.get("message", ""))[:2000],
                "file": p.get("file") if isinstance(p.get("file"), str) else None,
                "line": p.get("line")
                if isinstance(p.get("line"), int) and not isinstance(p.get("line"), bool)
                else None,
            }
            for p in problems[:MAX_LISTED_PROBLEMS]
            if isinstance(p, dict)
        ]
    return clean


REPORT_TYPES: dict[str, tuple[type, ...]] = {
    "status": (str,),
    "errors": (int,),
    "warnings": (int,),
    "classes": (int,),
    "images": (int,),
    "instances": (int,),
    "splits": (dict,),
    "problems": (list,),
}


def _problem_ok(problem: Any) -> bool:
    """Whether a cached problem has the shape the report promises."""
    return (
        isinstance(problem, dict)
        and problem.get("severity") in ("error", "warning")
        and isinstance(problem.get("code"), str)
        and isinstance(problem.get("message"), str)
        and (problem.get("file") is None or isinstance(problem.get("file"), str))
        and (
            problem.get("line") is None
            or (isinstance(problem.get("line"), int) and not isinstance(problem.get("line"), bool))
        )
    )


def cached_report(folder: Path) -> dict[str, Any] | None:
    """The cached report when it still describes the folder's files, else None.

    A report that is damaged (unreadable, not JSON, missing fields) counts as no report.
    """
    report = _read_cache_json(folder / REPORT_FILE)
    if not isinstance(report, dict) or report.get("version") != REPORT_VERSION:
        return None
    if any(not isinstance(report.get(key), types) for key, types in REPORT_TYPES.items()):
        return None
    if report["status"] not in ("ok", "has_errors") or not all(
        _problem_ok(p) for p in report["problems"]
    ):
        return None
    if report.get("fingerprint") != fingerprint(folder):
        return None
    return report


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


def save_report(folder: Path, report: dict[str, Any]) -> None:
    """Write ``report.json`` atomically; a read-only folder just goes without a cache."""
    with contextlib.suppress(OSError):
        write_atomic(folder / REPORT_FILE, json.dumps(report, indent=1))
