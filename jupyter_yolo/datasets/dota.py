"""DOTA oriented-box datasets (``labelTxt/*.txt``) to the YOLO obb layout.

A DOTA label line is ``x1 y1 x2 y2 x3 y3 x4 y4 class difficult`` in pixels (``difficult``
optional; header lines such as ``imagesource:`` and ``gsd:`` are skipped). Each becomes
``class x1 y1 ... x4 y4`` normalised by the image size; the class ids follow the sorted class
names. Label folders are ``labelTxt/`` (optionally ``labelTxt/<split>/``) or
``<split>/labelTxt/``; images are found by file name anywhere in the upload.
"""

from __future__ import annotations

import math
from pathlib import Path

from ..errors import InvalidRequest
from .layouts import (
    SPLIT_ALIASES,
    SPLITS,
    Normalised,
    _image_size,
    _ImageIndex,
    _place_converted,
    _relative,
    write_data_yaml,
)

LABEL_FOLDER = "labeltxt"
MAX_LABEL_BYTES = 16 * 1024 * 1024

__all__ = ["dota_folders", "normalise_dota"]


def dota_folders(root: Path) -> list[tuple[Path, str | None]]:
    """DOTA label folders under ``root`` with the split each belongs to (None: unknown)."""
    found: list[tuple[Path, str | None]] = []
    for child in sorted(root.iterdir()):
        if not child.is_dir():
            continue
        if child.name.lower() == LABEL_FOLDER:
            subs = [
                (sub, SPLIT_ALIASES[sub.name.lower()])
                for sub in sorted(child.iterdir())
                if sub.is_dir() and sub.name.lower() in SPLIT_ALIASES
            ]
            found.extend(subs or [(child, None)])
        elif child.name.lower() in SPLIT_ALIASES:
            for sub in sorted(child.iterdir()):
                if sub.is_dir() and sub.name.lower() == LABEL_FOLDER:
                    found.append((sub, SPLIT_ALIASES[child.name.lower()]))
    return found


def _rows(path: Path, result: Normalised, root: Path) -> list[tuple[list[float], str]]:
    rows: list[tuple[list[float], str]] = []
    try:
        if path.stat().st_size > MAX_LABEL_BYTES:
            raise InvalidRequest(f"{_relative(path, root)} is over {MAX_LABEL_BYTES} bytes.")
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise InvalidRequest(f"{_relative(path, root)} cannot be read: {exc.strerror}") from None
    for number, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts or ":" in parts[0]:  # imagesource:..., gsd:...
            continue
        try:
            coords = [float(v) for v in parts[:8]]
        except ValueError:
            coords = []
        if len(parts) < 9 or len(coords) != 8 or not all(math.isfinite(v) for v in coords):
            result.warn(
                "bad_object",
                "A DOTA line is 'x1 y1 x2 y2 x3 y3 x4 y4 class [difficult]'; this one was "
                "left out.",
                file=_relative(path, root),
                line=number,
            )
            continue
        rows.append((coords, parts[8]))
    return rows


def normalise_dota(
    root: Path, dest: Path, folders: list[tuple[Path, str | None]], seed: int
) -> Normalised:
    """Convert DOTA label folders and their images to the YOLO obb layout in ``dest``."""
    result = Normalised(format="dota", task="obb")
    index = _ImageIndex(root)
    parsed: list[tuple[str | None, Path, list[tuple[list[float], str]]]] = []
    for folder, split in folders:
        for label in sorted(folder.rglob("*.txt")):
            image = index.find_stem(label.stem)
            if image is None:
                result.warn(
                    "image_missing",
                    f"No single image named {label.stem}.* for this label file; it was left out.",
                    file=_relative(label, root),
                )
                continue
            parsed.append((split, image, _rows(label, result, root)))
    names = sorted({name for _s, _i, rows in parsed for _c, name in rows})
    if not parsed:
        raise InvalidRequest("The DOTA label folder (labelTxt/) has no label file with an image.")
    class_of = {name: i for i, name in enumerate(names)}
    items: list[tuple[str | None, Path, str]] = []
    for split, image, rows in parsed:
        size = _image_size(image)
        if size is None:
            result.warn("image_unreadable", "The image cannot be read; it was left out.",
                        file=_relative(image, root))  # fmt: skip
            continue
        width, height = size
        lines = []
        for coords, name in rows:
            xy = [
                min(max(v / (width if i % 2 == 0 else height), 0.0), 1.0)
                for i, v in enumerate(coords)
            ]
            lines.append(f"{class_of[name]} " + " ".join(f"{v:.6f}" for v in xy) + "\n")
        items.append((split, image, "".join(lines)))
    _place_converted(items, dest, result, seed)
    write_data_yaml(
        dest, (s for s in SPLITS if (dest / "images" / s).is_dir()), names or ["object"]
    )
    return result
