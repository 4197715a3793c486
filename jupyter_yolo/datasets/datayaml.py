"""data.yaml of a dataset folder: read safely, checked key by key, resolved to split folders.

The yaml is read without alias expansion and every value is type-checked before it appears in a
message; problems are recorded with data.yaml's line (read from the text, not re-parsed).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..safeyaml import YamlRefused, describe, load_yaml
from ..strict import MAX_PATH_BYTES, text_problem
from .archive import IMAGE_SUFFIXES
from .keys import DATA_YAML_KEYS, FORBIDDEN_DATA_KEYS
from .layouts import image_files
from .problems import Collector as _Collector

MAX_LABEL_BYTES = 16 * 1024 * 1024
MAX_YAML_BYTES = 1024 * 1024
MAX_CLASSES = 10000
MAX_CLASS_NAME_BYTES = 256
MAX_NAME_WARNINGS = 20
MAX_SPLIT_ENTRIES = 100
SPLITS = ("train", "val", "test")
_TOP_LEVEL_KEY = re.compile(r"""^(["']?)([A-Za-z0-9_][A-Za-z0-9_.-]*)\1[ \t]*:(?:[ \t]|$)""")

__all__ = ["DatasetDescription", "parse_names", "read_description", "split_images"]


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
