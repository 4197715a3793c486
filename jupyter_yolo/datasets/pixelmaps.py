"""Per-pixel targets: semantic class maps (``masks/``) and depth maps (``depth/``).

ultralytics finds an image's target by replacing the last ``/images/`` of its path: semantic
masks under ``masks_dir`` (default ``masks``) as PNG class indices (255 is ignored), depth maps
under ``depth`` as uint16 PNG (value / ``depth_scale`` = metres, 0 invalid) or float ``.npy``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..errors import UnsafeArchive
from .paths import companion_path, folder_name_problem
from .problems import Collector

IGNORE_INDEX = 255
DEFAULT_DEPTH_SCALE = 1000.0
MAX_MAP_BYTES = 256 * 1024 * 1024
MAX_MAP_PIXELS = 64 * 1024 * 1024

__all__ = ["MapRefused", "PixelStats", "depth_path_for", "mask_path_for", "read_map"]


class MapRefused(ValueError):
    """A mask or depth map that is not decoded: too large, the wrong size, or not plain data."""

    def __init__(self, message: str, *, wrong_size: bool = False) -> None:
        super().__init__(message)
        self.wrong_size = wrong_size


def mask_path_for(image: Path, masks_dir: str = "masks", root: Path | None = None) -> Path:
    """The semantic mask ultralytics reads for ``image`` (inside ``root`` when given)."""
    return companion_path(image, masks_dir, ".png", root)


def depth_path_for(image: Path, root: Path | None = None) -> Path:
    """The depth map ultralytics reads for ``image`` (.png, else .npy; inside ``root``)."""
    png = companion_path(image, "depth", ".png", root)
    return png if png.is_file() else companion_path(image, "depth", ".npy", root)


def _check_shape(width: int, height: int, dims: tuple[int, int] | None) -> None:
    if width * height > MAX_MAP_PIXELS:
        raise MapRefused(
            f"the map is {width}x{height} pixels, over {MAX_MAP_PIXELS} pixels; it was not decoded"
        )
    if dims is not None and (width, height) != dims:
        raise MapRefused(
            f"the map is {width}x{height} pixels but its image is {dims[0]}x{dims[1]}; they must "
            f"be the same size",
            wrong_size=True,
        )


def _npy(path: Path, dims: tuple[int, int] | None) -> Any:
    """A 2-D numeric .npy, its header checked (shape, dtype, no pickles) before the data is read."""
    import numpy as np

    with path.open("rb") as handle:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, _fortran, dtype = np.lib.format.read_array_header_1_0(handle)
        elif version == (2, 0):
            shape, _fortran, dtype = np.lib.format.read_array_header_2_0(handle)
        else:
            raise MapRefused(f"the .npy format version {version} is not read")
        if dtype.hasobject or dtype.kind not in "fiub":
            raise MapRefused(f"a map must hold numbers, not {dtype}")
        if len(shape) != 2:
            raise MapRefused(f"a map must be a 2-D array, not of shape {tuple(shape)}")
        _check_shape(int(shape[1]), int(shape[0]), dims)
        handle.seek(0)
        return np.load(handle, allow_pickle=False)


def read_map(path: Path, dims: tuple[int, int] | None) -> tuple[str | None, str | None, Any]:
    """Decode a mask or depth map: (PNG format, mode, array), (None, None, array) for .npy.

    Its byte size, pixel count and (when ``dims`` is known) its size against the image's are
    checked from the header, before anything is decoded; :class:`MapRefused` says why not.
    """
    import numpy as np
    from PIL import Image

    if path.stat().st_size > MAX_MAP_BYTES:
        raise MapRefused(f"the map is over {MAX_MAP_BYTES} bytes")
    if path.suffix == ".npy":
        return None, None, _npy(path, dims)
    with Image.open(path) as opened:
        _check_shape(opened.size[0], opened.size[1], dims)
        return opened.format, opened.mode, np.asarray(opened)


class PixelStats:
    """Checks and statistics of semantic masks or depth maps, image by image."""

    def __init__(self, task: str, content: dict[Any, Any], names: dict[int, str] | None) -> None:
        self.task = task
        masks_dir = content.get("masks_dir", "masks")
        # an unusable masks_dir is an error of data.yaml (taskkeys): no mask is looked for then
        self.masks_dir = masks_dir if folder_name_problem(masks_dir) is None else None
        self.mapped = content.get("label_mapping") is not None
        self.names = names
        scale = content.get("depth_scale", DEFAULT_DEPTH_SCALE)
        valid = isinstance(scale, (int, float)) and not isinstance(scale, bool)
        self.scale = float(scale) if valid and math.isfinite(scale) and scale > 0 else 1000.0
        self.pixels: dict[int, int] = {}
        self.depth_min = math.inf
        self.depth_max = -math.inf
        self.depth_sum = 0.0
        self.depth_count = 0
        self.maps = 0

    def check(self, image: Path, dims: tuple[int, int] | None, out: Collector) -> None:
        """Check the target of one image; record problems with the image's or map's file."""
        try:
            if self.task == "semantic":
                self._mask(image, dims, out)
            elif self.task == "depth":
                self._depth(image, dims, out)
        except UnsafeArchive as exc:
            kind = "mask" if self.task == "semantic" else "depth"
            out.error(f"{kind}_outside", exc.message, image)

    def _open(
        self, path: Path, dims: tuple[int, int] | None, out: Collector, code: str, size_code: str
    ) -> Any:
        try:
            return read_map(path, dims)
        except MapRefused as exc:
            text = str(exc)
            message = text[:1].upper() + text[1:] + "."
            out.error(size_code if exc.wrong_size else code, message, path)
            return None
        except Exception as exc:  # PIL and numpy raise many kinds
            out.error(code, f"The map cannot be read: {exc}.", path)
            return None

    def _size(
        self,
        path: Path,
        shape: tuple[int, ...],
        dims: tuple[int, int] | None,
        out: Collector,
        code: str,
    ) -> bool:
        if dims is not None and (shape[1], shape[0]) != dims:
            out.error(
                code,
                f"The map is {shape[1]}x{shape[0]} pixels but its image is {dims[0]}x{dims[1]}; "
                f"they must be the same size.",
                path,
            )
            return False
        return True

    def _mask(self, image: Path, dims: tuple[int, int] | None, out: Collector) -> None:
        import numpy as np

        if self.masks_dir is None:
            return
        path = mask_path_for(image, self.masks_dir, out.folder)
        if not path.is_file():
            out.error(
                "mask_missing",
                f"No mask for this image: expected {out.rel(path)} (a PNG of class indices).",
                image,
            )
            return
        opened = self._open(path, dims, out, "mask_unreadable", "mask_size")
        if opened is None:
            return
        _format, _mode, array = opened
        if array.ndim == 3:
            out.error("mask_unreadable", "The mask must be one channel (class indices).", path)
            return
        if not self._size(path, array.shape, dims, out, "mask_size"):
            return
        values, counts = np.unique(array, return_counts=True)
        nc = len(self.names) if self.names is not None else None
        if nc is not None and not self.mapped:
            bad = [int(v) for v in values if int(v) >= nc and int(v) != IGNORE_INDEX]
            if bad:
                out.error(
                    "mask_class_out_of_range",
                    f"The mask holds class value(s) {', '.join(map(str, bad[:10]))}; the dataset "
                    f"has {nc} classes (0-{nc - 1}, 255 ignored).",
                    path,
                )
                return
        self.maps += 1
        for value, count in zip(values.tolist(), counts.tolist(), strict=True):
            self.pixels[int(value)] = self.pixels.get(int(value), 0) + int(count)

    def _depth(self, image: Path, dims: tuple[int, int] | None, out: Collector) -> None:
        import numpy as np

        path = depth_path_for(image, out.folder)
        if not path.is_file():
            out.error(
                "depth_missing",
                f"No depth map for this image: expected {out.rel(path.with_suffix('.png'))} "
                f"(uint16 PNG) or .npy.",
                image,
            )
            return
        opened = self._open(path, dims, out, "depth_unreadable", "depth_size")
        if opened is None:
            return
        format_, mode, array = opened
        if format_ is not None:
            if format_ != "PNG" or mode not in ("I", "I;16") or array.ndim != 2:
                out.error(
                    "depth_unreadable",
                    f"A depth PNG must be 16-bit grey (one channel), not mode {mode}.",
                    path,
                )
                return
            metres = array.astype(np.float64) / self.scale
        else:
            if array.ndim != 2 or array.dtype.kind != "f":
                out.error(
                    "depth_unreadable", "A depth .npy must be a 2-D float array (metres).", path
                )
                return
            metres = np.nan_to_num(array.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        if not self._size(path, metres.shape, dims, out, "depth_size"):
            return
        valid = metres[metres > 0]
        self.maps += 1
        if valid.size:
            self.depth_min = min(self.depth_min, float(valid.min()))
            self.depth_max = max(self.depth_max, float(valid.max()))
            self.depth_sum += float(valid.sum())
            self.depth_count += int(valid.size)

    def to_json(self) -> dict[str, Any] | None:
        """The report's ``task_stats`` for semantic (pixel share) or depth (metres)."""
        if self.task == "semantic":
            total = sum(self.pixels.values()) or 1
            names = self.names or {}
            return {
                "masks": self.maps,
                "pixel_share": {
                    ("ignore" if v == IGNORE_INDEX else names.get(v, str(v))): round(n / total, 4)
                    for v, n in sorted(self.pixels.items())
                },
            }
        if self.task == "depth":
            count = self.depth_count
            return {
                "maps": self.maps,
                "depth_scale": self.scale,
                "valid_pixels": count,
                "depth_m": {
                    "min": round(self.depth_min, 3),
                    "mean": round(self.depth_sum / count, 3),
                    "max": round(self.depth_max, 3),
                }
                if count
                else None,
            }
        return None
