"""Classification datasets: class folders (``train/<class>/<image>``), imported and checked.

ultralytics trains classify from a folder holding ``train/`` and ``val/`` (``test/``
optional), each with one sub-folder per class; the class names are the sorted folder names of
``train/``. An upload in that layout is moved as is into the dataset folder (a ``val`` split is
set aside from ``train`` when there is none) and given a data.yaml with the names.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ..errors import InvalidRequest
from .archive import IMAGE_SUFFIXES
from .paths import SPLIT_ALIASES
from .problems import Collector
from .stats import SplitStats

if TYPE_CHECKING:
    from .datayaml import DatasetDescription
    from .layouts import Normalised

MAX_LISTED = 10

__all__ = [
    "check_class_folders",
    "class_folder_count",
    "classify_image",
    "classify_stats",
    "is_class_folders",
    "normalise_class_folders",
]


def _images(folder: Path) -> list[Path]:
    found: list[Path] = []
    for current, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(
            Path(current) / n
            for n in sorted(files)
            if not n.startswith(".") and Path(n).suffix.lower() in IMAGE_SUFFIXES
        )
    return found


def _class_dirs(split: Path) -> list[Path]:
    try:
        return sorted(c for c in split.iterdir() if c.is_dir() and not c.name.startswith("."))
    except OSError:
        return []


def _split_dirs(root: Path, dropped: list[Path] | None = None) -> dict[str, Path]:
    """The split folders by split (aliases such as ``valid`` mapped); extra ones to ``dropped``."""
    splits: dict[str, Path] = {}
    try:
        children = sorted(root.iterdir())
    except OSError:
        return splits
    for child in children:
        split = SPLIT_ALIASES.get(child.name.lower())
        if split and child.is_dir():
            if split not in splits:
                splits[split] = child
            elif dropped is not None:
                dropped.append(child)
    return splits


def _has_image(folder: Path) -> bool:
    """Whether ``folder`` holds an image (recursive; stops at the first)."""
    for _current, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        if any(not n.startswith(".") and Path(n).suffix.lower() in IMAGE_SUFFIXES for n in files):
            return True
    return False


def class_folder_count(root: Path) -> int:
    """Class folders of ``root``'s ``train/`` that hold images; 0 unless it is class folders.

    The one rule for uploads and jobs: a ``train/`` split folder (``train`` in any case) with
    ``<class>/<image>`` sub-folders, and no ``images/`` or ``labels/`` (a detection layout).
    """
    if (root / "images").is_dir() or (root / "labels").is_dir():
        return 0
    train = _split_dirs(root).get("train")
    if train is None or (train / "images").is_dir():
        return 0
    return sum(1 for c in _class_dirs(train) if _has_image(c))


def is_class_folders(root: Path) -> bool:
    """Whether ``root`` holds class folders: ``train/<class>/`` with images, no images/labels."""
    return class_folder_count(root) > 0


def normalise_class_folders(root: Path, dest: Path, seed: int) -> Normalised:
    """Move class folders into ``dest`` (``train``/``val``/``test``) and write data.yaml."""
    from .layouts import Normalised, seeded_split

    result = Normalised(format="class-folders")
    dropped: list[Path] = []
    splits = _split_dirs(root, dropped)
    for extra in dropped:
        kept = splits[SPLIT_ALIASES[extra.name.lower()]]
        result.warn(
            "split_folder_ignored",
            f"Both {kept.name}/ and {extra.name}/ are the {SPLIT_ALIASES[extra.name.lower()]} "
            f"split; {kept.name}/ was used and {extra.name}/ was left out. Merge them into one "
            f"folder to use both.",
            file=f"{extra.name}/",
        )
    names = [c.name for c in _class_dirs(splits["train"])]
    for split, folder in splits.items():
        for class_dir in _class_dirs(folder):
            for image in _images(class_dir):
                target = dest / split / image.relative_to(folder)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(image, target)
            (dest / split / class_dir.name).mkdir(parents=True, exist_ok=True)
    if "val" not in splits:
        pool = _images(dest / "train")
        if len(pool) < 2:
            raise InvalidRequest("The class folders hold fewer than 2 images; 2 are needed.")
        _train, val = seeded_split(pool, seed)
        for image in val:
            target = dest / "val" / image.relative_to(dest / "train")
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(image, target)
        for name in names:
            (dest / "val" / name).mkdir(parents=True, exist_ok=True)
        result.split_created = True
        result.notes.append(
            f"The dataset had no val/ folder: {len(val)} of {len(pool)} images (seed {seed}) "
            f"were set aside as 'val'."
        )
    content: dict[str, Any] = {s: s for s in ("train", "val", "test") if (dest / s).is_dir()}
    content["names"] = dict(enumerate(names))
    header = "# Written by jupyter-yolo: class folders, names are the sorted folders of train/.\n"
    body = yaml.safe_dump(content, sort_keys=False, allow_unicode=True)
    (dest / "data.yaml").write_text(header + body, encoding="utf-8")
    return result


def classify_image(
    image: Path, stats: SplitStats, targets: list[Path], names: dict[int, str]
) -> None:
    """Count ``image`` for the class folder it lies in."""
    ids = {name: index for index, name in names.items()}
    for target in targets:
        try:
            relative = image.relative_to(target)
        except ValueError:
            continue
        if len(relative.parts) < 2:
            stats.backgrounds += 1
            return
        cls = ids.get(relative.parts[0])
        if cls is not None:
            stats.labelled += 1
            stats.instances += 1
            stats.per_class[cls] = stats.per_class.get(cls, 0) + 1
        return


def _listed(values: list[str]) -> str:
    shown = ", ".join(values[:MAX_LISTED])
    return shown + (f" and {len(values) - MAX_LISTED} more" if len(values) > MAX_LISTED else "")


def check_class_folders(description: DatasetDescription, out: Collector) -> None:
    """Class folders per split: none, empty, differing from train's, or from the names."""
    folders: dict[str, list[Path]] = {}
    for split, targets in description.splits.items():
        dirs = [d for t in targets if t.is_dir() for d in _class_dirs(t)]
        folders[split] = dirs
        if not dirs:
            out.error(
                "no_class_folders",
                f"The {split} split has no class folders; classify needs {split}/<class>/<image>.",
                targets[0] if targets else None,
            )
            continue
        for folder in dirs:
            if not _images(folder):
                out.warning(
                    "class_folder_empty",
                    f"The class folder {folder.name!r} of the {split} split has no images.",
                    folder,
                )
    train = {d.name for d in folders.get("train", [])}
    for split, dirs in folders.items():
        if split == "train" or not dirs or not train:
            continue
        have = {d.name for d in dirs}
        missing, extra = sorted(train - have), sorted(have - train)
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing {_listed(missing)}")
            if extra:
                parts.append(f"extra {_listed(extra)}")
            out.error(
                "class_folders_differ",
                f"The {split} class folders differ from train's: {'; '.join(parts)}. Every split "
                f"needs the same class folders.",
                dirs[0].parent,
            )
    names = description.names
    if names is not None and train and sorted(train) != [names[i] for i in sorted(names)]:
        out.error(
            "names_inconsistent",
            "data.yaml's names must be the sorted class folder names of train/ "
            f"({_listed(sorted(train))}).",
            out.folder / "data.yaml",
            description.yaml_lines.get("names"),
        )


def classify_stats(stats: dict[str, SplitStats], names: dict[int, str] | None) -> dict[str, Any]:
    """Images per class per split."""
    labels = names or {}
    return {
        "images_per_class": {
            split: {labels.get(cls, str(cls)): n for cls, n in sorted(s.per_class.items())}
            for split, s in stats.items()
        }
    }
