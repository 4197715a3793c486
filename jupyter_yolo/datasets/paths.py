"""Where ultralytics looks for an image's label, mask or depth map, kept inside the dataset.

ultralytics finds an image's per-image target by replacing the last ``/images/`` of its path
with a folder name (``labels``, ``masks_dir``, ``depth``) and changing the suffix. The folder
comes from data.yaml (``masks_dir``), so it is accepted only as one plain path component, and
the helpers here also require the path they build to resolve inside the dataset root.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from ..errors import UnsafeArchive
from ..safeyaml import describe

SPLIT_ALIASES = {
    "train": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
}
FOLDER_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
MAX_FOLDER_NAME = 255
DEFAULT_MASKS_DIR = "masks"

__all__ = [
    "DEFAULT_MASKS_DIR",
    "SPLIT_ALIASES",
    "companion_path",
    "folder_name_problem",
    "inside",
    "label_path_for",
    "masks_dir_of",
]


def folder_name_problem(value: Any) -> str | None:
    """Why ``value`` is not one plain folder name (``[A-Za-z0-9_.-]+``, not ``.``/``..``)."""
    if not isinstance(value, str):
        return f"must be a folder name, not {describe(value)}"
    if (
        not value
        or len(value) > MAX_FOLDER_NAME
        or value in (".", "..")
        or not FOLDER_NAME.fullmatch(value)
    ):
        return (
            f"must be one folder name beside images/ (letters, digits, '_', '-', '.'; not '.' "
            f"or '..', no '/'), not {describe(value)}"
        )
    return None


def masks_dir_of(content: dict[Any, Any]) -> str:
    """data.yaml's ``masks_dir`` when it is a plain folder name, else the default ``masks``."""
    value = content.get("masks_dir")
    return value if isinstance(value, str) and folder_name_problem(value) is None else "masks"


def inside(path: Path, root: Path) -> bool:
    """Whether ``path`` resolves (symlinks followed) to ``root`` or somewhere under it."""
    try:
        resolved, base = path.resolve(), root.resolve()
    except (OSError, RuntimeError):
        return False
    return resolved == base or resolved.is_relative_to(base)


def companion_path(image: Path, folder: str, suffix: str, root: Path | None = None) -> Path:
    """``image``'s file in ``folder`` beside ``images/`` (last ``/images/`` replaced).

    ``folder`` must be one plain folder name; with ``root`` the result must also resolve inside
    ``root``. Otherwise :class:`UnsafeArchive` (a 400) is raised.
    """
    problem = folder_name_problem(folder)
    if problem is not None:
        raise UnsafeArchive(f"The companion folder {problem}.")
    text = str(image)
    marker = f"{os.sep}images{os.sep}"
    if marker in text:
        head, tail = text.rsplit(marker, 1)
        text = f"{head}{os.sep}{folder}{os.sep}{tail}"
    path = Path(text).with_suffix(suffix)
    if root is not None and not inside(path, root):
        raise UnsafeArchive(f"The {folder} file of {image.name!r} would lie outside the dataset.")
    return path


def label_path_for(image: Path) -> Path:
    """The label file ultralytics reads for ``image``: last ``/images/`` -> ``/labels/``, .txt."""
    return companion_path(image, "labels", ".txt")
