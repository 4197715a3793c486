"""Recognise a dataset's layout and move it into the canonical YOLO layout.

Accepted layouts (found at the top of the extracted folder, or under a single top folder):

- **YOLO** with a ``data.yaml`` (``train`` / ``val`` / ``test`` entries: folders or image lists),
  or without one: ``images/{train,val}`` with ``labels/{train,val}``, a single ``images/`` +
  ``labels/`` pool, or Roboflow's ``{train,valid,test}/{images,labels}``;
- **COCO** instances JSON (``annotations/instances_train*.json`` ... or any JSON with ``images``,
  ``annotations`` and ``categories``), converted to YOLO labels;
- **Pascal VOC** XML (``Annotations/*.xml`` with ``JPEGImages/``, optional ``ImageSets/Main``).

The canonical layout written to ``dest``::

    data.yaml                     train, val (, test), names; no 'path' key, so it can move
    images/{train,val[,test]}/    the images (sub-folders kept)
    labels/{train,val[,test]}/    one 'class cx cy w h' text file per image

Without a validation split, a seeded 20 % of the images is set aside as ``val`` and a note says
so. Files are moved (not copied) from the source, which is a scratch folder.
"""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from ..errors import InvalidRequest, UnsafeArchive
from ..safeyaml import YamlRefused, describe, load_yaml
from ..strict import MAX_PATH_BYTES, text_problem
from .archive import IMAGE_SUFFIXES
from .classfolders import is_class_folders, normalise_class_folders
from .keys import DATA_YAML_KEYS, FORBIDDEN_DATA_KEYS
from .paths import SPLIT_ALIASES, companion_path, folder_name_problem, label_path_for

VAL_FRACTION = 0.2
SPLIT_SEED = 0
SPLITS = ("train", "val", "test")
MAX_YAML_BYTES = 1024 * 1024
MAX_SPLIT_ENTRIES = 100
NAME_FILES = ("classes.txt", "obj.names", "classes.names", "names.txt")
TASK_KEYS = DATA_YAML_KEYS - {"path", "train", "val", "test", "names", "nc"}
LAYOUT_FOLDERS = frozenset({"images", "labels", "annotations", "jpegimages", "imagesets"})

__all__ = [
    "SPLIT_ALIASES",
    "Normalised",
    "companion_path",
    "image_files",
    "label_path_for",
    "normalise",
    "seeded_split",
]


@dataclass
class Normalised:
    """The outcome of :func:`normalise`: what was found and what was done about it."""

    format: str
    notes: list[str] = field(default_factory=list)
    problems: list[dict[str, Any]] = field(default_factory=list)
    split_created: bool = False
    task: str | None = None  # the task the layout itself says (COCO keypoints, DOTA ...)

    def warn(
        self, code: str, message: str, file: str | None = None, line: int | None = None
    ) -> None:
        """Record a problem found while converting (a warning in the report)."""
        self.problems.append(
            {"severity": "warning", "code": code, "file": file, "line": line, "message": message}
        )


# --------------------------------------------------------------------------- helpers


def image_files(folder: Path) -> list[Path]:
    """Every image under ``folder`` (recursive, hidden names skipped), sorted."""
    found: list[Path] = []
    for current, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(
            Path(current) / name
            for name in files
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES
        )
    return sorted(found)


def seeded_split(
    items: list[Any], seed: int = SPLIT_SEED, fraction: float = VAL_FRACTION
) -> tuple[list[Any], list[Any]]:
    """Split ``items`` (already in a stable order) into (train, val), the same way every time."""
    if len(items) < 2:
        raise InvalidRequest(
            f"The dataset has {len(items)} image(s); at least 2 are needed to set one aside "
            f"for validation."
        )
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    n_val = min(len(items) - 1, max(1, round(len(items) * fraction)))
    val_idx = set(order[:n_val])
    train = [item for i, item in enumerate(items) if i not in val_idx]
    val = [item for i, item in enumerate(items) if i in val_idx]
    return train, val


def _split_note(n_val: int, n_total: int, seed: int) -> str:
    return (
        f"The dataset had no validation split: {n_val} of {n_total} images "
        f"({100 * n_val / n_total:.0f} %, chosen with seed {seed}) were set aside as 'val'."
    )


def _move(source: Path, target: Path, moved: dict[Path, Path] | None = None) -> None:
    """Move ``source`` to ``target``; copy it from where it went if an earlier split took it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        raise InvalidRequest(
            f"Two images would land at {target.name!r} in the same split; rename one of them."
        )
    if moved is not None and source in moved:
        shutil.copyfile(moved[source], target)
        return
    os.rename(source, target)
    if moved is not None:
        moved[source] = target


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.name


def _inside(path: Path, root: Path) -> bool:
    return os.path.normpath(path).startswith(os.path.normpath(root) + os.sep) or (
        os.path.normpath(path) == os.path.normpath(root)
    )


def find_root(source: Path) -> Path:
    """Descend through single top folders (``coco8/...``) to where the dataset starts."""
    root = source
    for _ in range(4):
        entries = [e for e in root.iterdir() if not e.name.startswith(".")]
        if (
            len(entries) == 1
            and entries[0].is_dir()
            and entries[0].name.lower() not in SPLIT_ALIASES
            and entries[0].name.lower() not in LAYOUT_FOLDERS
        ):
            root = entries[0]
            continue
        break
    return root


def read_yaml(path: Path) -> Any:
    """Parse a small yaml file without alias expansion, or raise a 400 naming it."""
    if path.stat().st_size > MAX_YAML_BYTES:
        raise InvalidRequest(f"{path.name} is over {MAX_YAML_BYTES} bytes; is it a data.yaml?")
    try:
        return load_yaml(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"{path.name} cannot be read as yaml: {exc}") from None
    except YamlRefused as exc:
        where = f" (line {exc.line})" if exc.line else ""
        raise InvalidRequest(f"{path.name} cannot be read as yaml{where}: {exc}") from None


def _names_from_file(root: Path) -> list[str] | None:
    for candidate in NAME_FILES:
        path = root / candidate
        if path.is_file() and path.stat().st_size <= MAX_YAML_BYTES:
            lines = [line.strip() for line in path.read_text(errors="replace").splitlines()]
            names = [line for line in lines if line]
            if names:
                return names
    return None


def _max_class(labels: Iterable[Path]) -> int:
    highest = -1
    for path in labels:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            first = line.split(maxsplit=1)[0] if line.strip() else ""
            try:
                value = float(first)
            except ValueError:
                continue
            if value.is_integer() and 0 <= value < 100000:
                highest = max(highest, int(value))
    return highest


def write_data_yaml(
    dest: Path,
    splits: Iterable[str],
    names: Any,
    nc: Any = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write the canonical data.yaml (relative paths, no 'path' key).

    ``extra`` holds the task keys ultralytics reads (``kpt_shape``, ``flip_idx``,
    ``masks_dir``, ``depth_scale`` ...), kept as the upload gave them.
    """
    content: dict[str, Any] = {split: f"images/{split}" for split in SPLITS if split in splits}
    if nc is not None:
        content["nc"] = nc
    if isinstance(names, list):
        names = dict(enumerate(names))
    content["names"] = names
    content.update(extra or {})
    header = (
        "# Written by jupyter-yolo. Paths are relative to this file (there is no 'path' key),\n"
        "# so the workspace can be moved.\n"
    )
    body = yaml.safe_dump(content, sort_keys=False, allow_unicode=True, default_flow_style=False)
    (dest / "data.yaml").write_text(header + body, encoding="utf-8")


# --------------------------------------------------------------------------- YOLO


@dataclass
class _SplitSource:
    images: list[Path]
    base: Path | None  # the split's image folder, when it is one (sub-paths are kept from it)
    labels_dir: Path | None  # its label folder, for labels without an image


def _yolo_split_from_entry(entry: Any, yaml_dir: Path, root: Path, key: str) -> _SplitSource:
    values = entry if isinstance(entry, list) else [entry]
    images: list[Path] = []
    base: Path | None = None
    labels_dir: Path | None = None
    if len(values) > MAX_SPLIT_ENTRIES:
        raise InvalidRequest(
            f"data.yaml's {key!r} entry lists {len(values)} paths; {MAX_SPLIT_ENTRIES} at most."
        )
    for value in values:
        if not isinstance(value, str) or not value.strip():
            raise InvalidRequest(
                f"data.yaml's {key!r} entry must be a folder or a file list, not {describe(value)}."
            )
        problem = text_problem(value, max_bytes=MAX_PATH_BYTES)
        if problem:
            raise InvalidRequest(f"data.yaml's {key!r} entry {describe(value)} {problem}.")
        text = value.strip()
        candidates = [yaml_dir / text]
        stripped = text
        while stripped.startswith("../"):
            stripped = stripped[3:]
            candidates.append(yaml_dir / stripped)
        candidates.append(root / stripped)
        target = next((c for c in candidates if c.exists() and _inside(c, root)), None)
        if target is None:
            raise InvalidRequest(
                f"data.yaml's {key!r} entry {describe(text)} is not in the archive (looked in "
                f"{', '.join(describe(_relative(c, root)) for c in candidates)})."
            )
        if target.is_dir():
            images.extend(image_files(target))
            if len(values) == 1:
                base = target
                labels_dir = label_path_for(target / "x").parent
        else:
            images.extend(_image_list(target, root))
    return _SplitSource(images=images, base=base, labels_dir=labels_dir)


def _image_list(path: Path, root: Path) -> list[Path]:
    """An ultralytics image-list file: one path per line, './' relative to the list."""
    if path.stat().st_size > MAX_YAML_BYTES * 16:
        raise InvalidRequest(f"The image list {path.name!r} is too large.")
    images = []
    for line in path.read_text(errors="replace").splitlines():
        text = line.strip()
        if not text or text_problem(text, max_bytes=MAX_PATH_BYTES):
            continue
        if text.startswith("./"):
            candidate = path.parent / text[2:]
        elif text.startswith("/") or ".." in PurePosixPath(text).parts:
            raise UnsafeArchive(
                f"The image list {path.name!r} names {describe(text)} outside the dataset."
            )
        else:
            candidate = path.parent / text
            if not candidate.exists():
                candidate = root / text
        if candidate.is_file() and candidate.suffix.lower() in IMAGE_SUFFIXES:
            images.append(candidate)
    return images


def _yolo_splits_without_yaml(root: Path) -> dict[str, _SplitSource] | None:
    splits: dict[str, _SplitSource] = {}
    images_dir = root / "images"
    if images_dir.is_dir():
        for child in sorted(images_dir.iterdir()):
            split = SPLIT_ALIASES.get(child.name.lower())
            if child.is_dir() and split and split not in splits:
                splits[split] = _SplitSource(
                    image_files(child), child, label_path_for(child / "x").parent
                )
        if not splits:
            return {"pool": _SplitSource(image_files(images_dir), images_dir, root / "labels")}
        return splits
    for child in sorted(root.iterdir()):
        split = SPLIT_ALIASES.get(child.name.lower())
        if child.is_dir() and split and (child / "images").is_dir() and split not in splits:
            splits[split] = _SplitSource(
                image_files(child / "images"), child / "images", child / "labels"
            )
    return splits or None


def _place_yolo(
    splits: dict[str, _SplitSource],
    dest: Path,
    result: Normalised,
    seed: int,
    *,
    companions: tuple[tuple[str, tuple[str, ...]], ...] = (),
    root: Path | None = None,
) -> dict[str, list[Path]]:
    """Move images and their labels into ``dest``; return the label files per split.

    ``companions`` are per-image targets in folders beside ``images/`` (semantic masks, depth
    maps: folder name and suffixes); each moves with its image, so a split set aside keeps them.
    A companion must lie inside ``root`` (the extracted upload) and lands inside ``dest``.
    """
    if "pool" in splits or ("val" not in splits and "train" in splits):
        key = "pool" if "pool" in splits else "train"
        pool = splits.pop(key)
        train, val = seeded_split(pool.images, seed)
        result.split_created = True
        result.notes.append(_split_note(len(val), len(pool.images), seed))
        splits["train"] = _SplitSource(train, pool.base, pool.labels_dir)
        splits["val"] = _SplitSource(val, pool.base, None)
    if "train" not in splits:
        raise InvalidRequest("The dataset has no training images (no 'train' split).")
    moved_labels: dict[str, list[Path]] = {}
    moved: dict[Path, Path] = {}
    for split, source in splits.items():
        if not source.images:
            raise InvalidRequest(f"The {split!r} split has no images.")
        labels: list[Path] = []
        consumed: set[Path] = set()
        for image in source.images:
            relative = (
                image.relative_to(source.base).as_posix()
                if source.base is not None and _inside(image, source.base)
                else image.name
            )
            label = label_path_for(image)
            placed = dest / "images" / split / relative
            _move(image, placed, moved)
            for folder, suffixes in companions:
                for suffix in suffixes:
                    companion = companion_path(image, folder, suffix, root)
                    if companion.is_file():
                        _move(companion, companion_path(placed, folder, suffix, dest), moved)
                        break
            if label.is_file() or label in moved:
                target = (dest / "labels" / split / relative).with_suffix(".txt")
                _move(label, target, moved)
                consumed.add(label)
                labels.append(target)
        moved_labels[split] = labels
    # labels without an image stay with their split, so the report can point at them
    for split, source in splits.items():
        if source.labels_dir is None or not source.labels_dir.is_dir():
            continue
        for current, dirs, files in os.walk(source.labels_dir):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for name in files:
                path = Path(current) / name
                if path.suffix != ".txt" or not path.exists() or name in NAME_FILES:
                    continue
                relative = path.relative_to(source.labels_dir).as_posix()
                target = dest / "labels" / split / relative
                if not target.exists():
                    _move(path, target)
                    moved_labels[split].append(target)
    return moved_labels


def _normalise_yolo(root: Path, dest: Path, data_yaml: Path | None, seed: int) -> Normalised:
    result = Normalised(format="yolo")
    names: Any = None
    nc: Any = None
    extra: dict[str, Any] = {}
    if data_yaml is not None:
        content = read_yaml(data_yaml)
        if not isinstance(content, dict):
            raise InvalidRequest(f"{_relative(data_yaml, root)} is not a yaml mapping.")
        yaml_dir = data_yaml.parent
        splits: dict[str, _SplitSource] = {}
        for key in SPLITS:
            if content.get(key) not in (None, "", []):
                splits[key] = _yolo_split_from_entry(content[key], yaml_dir, root, key)
        if not splits:
            found = _yolo_splits_without_yaml(root)
            if not found:
                raise InvalidRequest(
                    f"{_relative(data_yaml, root)} names no 'train' or 'val' folder, and there "
                    f"is no images/ folder."
                )
            splits = found
        names = content.get("names")
        nc = content.get("nc")
        extra = {str(k): v for k, v in content.items() if str(k) in TASK_KEYS and v is not None}
        if "masks_dir" in extra:
            problem = folder_name_problem(extra["masks_dir"])
            if problem is not None:
                raise UnsafeArchive(f"data.yaml's 'masks_dir' {problem}.")
        dropped = sorted(str(k) for k in content if str(k) in FORBIDDEN_DATA_KEYS)
        if dropped:
            result.notes.append(
                f"{_relative(data_yaml, root)}'s {', '.join(map(repr, dropped))} key was left "
                f"out: ultralytics would download or run what it names."
            )
    else:
        found = _yolo_splits_without_yaml(root)
        if not found:
            raise InvalidRequest(_unrecognised(root))
        splits = found
    masks = str(extra.get("masks_dir", "masks"))
    companions = ((masks, (".png",)), ("depth", (".png", ".npy")))
    labels = _place_yolo(splits, dest, result, seed, companions=companions, root=root)
    if names is None:
        listed = _names_from_file(root)
        if listed is not None:
            names = listed
            result.notes.append("Class names were read from the archive's class-name file.")
        else:
            highest = _max_class(path for paths in labels.values() for path in paths)
            names = [f"class_{i}" for i in range(highest + 1)] or ["class_0"]
            where = "data.yaml has no 'names'" if data_yaml is not None else "there is no data.yaml"
            result.warn(
                "names_missing",
                f"Class names are missing ({where}); the classes were named "
                f"class_0 ... class_{len(names) - 1}. Edit data.yaml to give them real names.",
                file="data.yaml",
            )
    write_data_yaml(dest, (s for s in SPLITS if (dest / "images" / s).is_dir()), names, nc, extra)
    return result


# --------------------------------------------------------------------------- shared by COCO, VOC


class _ImageIndex:
    """All images in the extracted tree, by relative path and by base name."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.by_name: dict[str, list[Path]] = {}
        self.by_stem: dict[str, list[Path]] = {}
        for path in image_files(root):
            self.by_name.setdefault(path.name, []).append(path)
            self.by_stem.setdefault(path.stem, []).append(path)

    def find(self, name: str, bases: Iterable[Path]) -> Path | None:
        if text_problem(name, max_bytes=MAX_PATH_BYTES):
            return None
        pure = PurePosixPath(name.replace("\\", "/"))
        if not pure.is_absolute() and ".." not in pure.parts:
            for base in bases:
                candidate = base / pure
                if candidate.is_file() and _inside(candidate, self.root):
                    return candidate
        matches = self.by_name.get(pure.name, [])
        return matches[0] if len(matches) == 1 else None

    def find_stem(self, stem: str) -> Path | None:
        matches = self.by_stem.get(stem, [])
        return matches[0] if len(matches) == 1 else None


def _image_size(path: Path) -> tuple[int, int] | None:
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.size
    except Exception:  # PIL and its plugins raise many kinds: an unreadable image has no size
        return None


def _box_line(
    cls: int, corners: tuple[float, float, float, float], size: tuple[float, float]
) -> str | None:
    """A YOLO label line from pixel corners clipped to the image, or None if nothing is left."""
    width, height = size
    x0, x1 = max(0.0, min(corners[0], width)), max(0.0, min(corners[2], width))
    y0, y1 = max(0.0, min(corners[1], height)), max(0.0, min(corners[3], height))
    w, h = (x1 - x0) / width, (y1 - y0) / height
    if w <= 0 or h <= 0:
        return None
    cx, cy = (x0 + x1) / 2 / width, (y0 + y1) / 2 / height
    return f"{cls} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n"


def _place_converted(
    items: list[tuple[str | None, Path, str]], dest: Path, result: Normalised, seed: int
) -> None:
    """Move converted images and write their labels; split the pool when there is no val."""
    splits = {split for split, _, _ in items}
    if "val" not in splits:
        pool = [item for item in items if item[0] in (None, "train")]
        rest = [item for item in items if item[0] not in (None, "train")]
        train, val = seeded_split(pool, seed)
        result.split_created = True
        result.notes.append(_split_note(len(val), len(pool), seed))
        items = [("train", p, t) for _, p, t in train] + [("val", p, t) for _, p, t in val] + rest
    elif None in splits:
        items = [("train" if split is None else split, p, t) for split, p, t in items]
    if not any(split == "train" for split, _, _ in items):
        raise InvalidRequest("The dataset has no training images (no 'train' split).")
    for split, image, text in items:
        assert split is not None
        target = dest / "images" / split / image.name
        _move(image, target)
        label = dest / "labels" / split / (image.stem + ".txt")
        label.parent.mkdir(parents=True, exist_ok=True)
        label.write_text(text, encoding="utf-8")


# --------------------------------------------------------------------------- entry point


def _find_yaml(root: Path) -> Path | None:
    candidates = sorted(p for p in root.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    for preferred in ("data.yaml", "data.yml", "dataset.yaml", "dataset.yml"):
        for path in candidates:
            if path.name == preferred:
                return path
    for path in candidates:
        content = read_yaml(path)
        if isinstance(content, dict) and ("train" in content or "names" in content):
            return path
    return None


def _unrecognised(root: Path) -> str:
    top = sorted(p.name + ("/" if p.is_dir() else "") for p in root.iterdir())[:12]
    return (
        "No dataset layout was recognised. Expected YOLO (data.yaml, or images/ and labels/ "
        "folders), COCO (an instances JSON with images, annotations and categories) or Pascal "
        f"VOC (Annotations/*.xml with JPEGImages/). Found at the top: "
        f"{', '.join(top) or 'nothing'}."
    )


def normalise(source: Path, dest: Path, *, seed: int = SPLIT_SEED) -> Normalised:
    """Recognise the layout under ``source`` and move it into the canonical layout at ``dest``.

    ``dest`` must not exist. Files are moved out of ``source``, which is left with whatever was
    not used.
    """
    root = find_root(source)
    dest.mkdir(mode=0o755)
    if is_class_folders(root):  # a data.yaml beside class folders is ultralytics-unused
        return normalise_class_folders(root, dest, seed)
    data_yaml = _find_yaml(root)
    if data_yaml is not None:
        return _normalise_yolo(root, dest, data_yaml, seed)
    from .coco import coco_files, normalise_coco

    coco = coco_files(root)
    if coco:
        return normalise_coco(root, dest, coco, seed)
    from .dota import dota_folders, normalise_dota

    dota = dota_folders(root)
    if dota:
        return normalise_dota(root, dest, dota, seed)
    from .voc import normalise_voc, voc_folder

    voc = voc_folder(root)
    if voc is not None:
        return normalise_voc(root, voc, dest, seed)
    return _normalise_yolo(root, dest, None, seed)
