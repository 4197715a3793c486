"""Pascal VOC datasets (``Annotations/*.xml`` with ``JPEGImages/``) to the YOLO layout."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from ..errors import InvalidRequest, UnsafeArchive
from ..safeyaml import describe
from .layouts import (
    SPLITS,
    Normalised,
    _box_line,
    _image_size,
    _ImageIndex,
    _place_converted,
    _relative,
    write_data_yaml,
)

MAX_XML_BYTES = 16 * 1024 * 1024

__all__ = ["normalise_voc", "voc_folder"]


def voc_folder(root: Path) -> Path | None:
    """The folder of VOC annotation XML files under ``root``, or None."""
    for name in ("Annotations", "annotations"):
        folder = root / name
        if folder.is_dir() and any(folder.glob("*.xml")):
            return folder
    return None


def _parse_voc(path: Path) -> ET.Element:
    data = path.read_bytes()
    if len(data) > MAX_XML_BYTES:
        raise InvalidRequest(f"{path.name} is over {MAX_XML_BYTES} bytes.")
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise UnsafeArchive(f"{path.name} declares a DOCTYPE or entities, which are refused.")
    try:
        return ET.fromstring(data)
    except ET.ParseError as exc:
        raise InvalidRequest(f"{path.name} is not valid XML: {exc}") from exc


def _text(element: ET.Element | None, tag: str) -> str | None:
    if element is None:
        return None
    found = element.find(tag)
    return found.text.strip() if found is not None and found.text else None


def _number(element: ET.Element | None, tag: str) -> float | None:
    value = _text(element, tag)
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def normalise_voc(root: Path, annotations: Path, dest: Path, seed: int) -> Normalised:
    """Convert VOC XML boxes and their images to the YOLO layout in ``dest``."""
    result = Normalised(format="voc")
    index = _ImageIndex(root)
    parsed: list[tuple[Path, ET.Element, Path]] = []
    for path in sorted(annotations.glob("*.xml")):
        tree = _parse_voc(path)
        filename = _text(tree, "filename") or path.stem
        bases = [root / "JPEGImages", root / "images", annotations.parent, annotations]
        image = index.find(filename, bases) or index.find_stem(Path(filename).stem)
        if image is None:
            result.warn(
                "image_missing",
                f"{path.name} describes {describe(filename)}, which is "
                f"not in the archive; it was left out.",
                file=_relative(path, root),
            )
            continue
        parsed.append((path, tree, image))
    if not parsed:
        raise InvalidRequest("No Pascal VOC annotation matches an image in the archive.")
    names = sorted(
        {
            name
            for _, tree, _ in parsed
            for obj in tree.iter("object")
            if (name := _text(obj, "name"))
        }
    )
    class_of = {name: i for i, name in enumerate(names)}
    sets = root / "ImageSets" / "Main"
    split_of: dict[str, str] = {}
    for split in ("train", "val", "test"):
        listing = sets / f"{split}.txt"
        if listing.is_file():
            for stem in listing.read_text(errors="replace").split():
                split_of.setdefault(stem.strip(), split)
    items: list[tuple[str | None, Path, str]] = []
    for path, tree, image in parsed:
        size = tree.find("size")
        width, height = _number(size, "width"), _number(size, "height")
        if not width or not height:
            measured = _image_size(image)
            if measured is None:
                result.warn(
                    "image_unreadable",
                    f"{image.name} cannot be read; it was left out.",
                    file=_relative(path, root),
                )
                continue
            width, height = float(measured[0]), float(measured[1])
        lines = []
        for obj in tree.iter("object"):
            label = _text(obj, "name")
            box = obj.find("bndbox")
            corners = [_number(box, tag) for tag in ("xmin", "ymin", "xmax", "ymax")]
            if label is None or any(c is None for c in corners):
                result.warn(
                    "bad_object",
                    f"An object in {path.name} has no name or no box; it was left out.",
                    file=_relative(path, root),
                )
                continue
            x0, y0, x1, y1 = (float(c) for c in corners if c is not None)
            line = _box_line(class_of[label], (x0 - 1, y0 - 1, x1 - 1, y1 - 1), (width, height))
            if line is not None:
                lines.append(line)
        items.append((split_of.get(path.stem), image, "".join(lines)))
    _place_converted(items, dest, result, seed)
    write_data_yaml(dest, (s for s in SPLITS if (dest / "images" / s).is_dir()), names)
    return result
