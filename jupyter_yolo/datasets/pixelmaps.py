"""Per-pixel targets: semantic class maps (``masks/``) and depth maps (``depth/``).

ultralytics finds an image's target by replacing the last ``/images/`` of its path: semantic
masks under ``masks_dir`` (default ``masks``) as PNG class indices (255 is ignored), depth maps
under ``depth`` as uint16 PNG (value / ``depth_scale`` = metres, 0 invalid) or float ``.npy``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from .problems import Collector

IGNORE_INDEX = 255
DEFAULT_DEPTH_SCALE = 1000.0
MAX_MAP_BYTES = 256 * 1024 * 1024

__all__ = ["PixelStats", "depth_path_for", "mask_path_for"]


def _swap(image: Path, folder: str, suffix: str) -> Path:
    text = str(image)
    marker = f"{os.sep}images{os.sep}"
    if marker in text:
        head, tail = text.rsplit(marker, 1)
        text = f"{head}{os.sep}{folder}{os.sep}{tail}"
    return Path(text).with_suffix(suffix)


def mask_path_for(image: Path, masks_dir: str = "masks") -> Path:
    """The semantic mask ultralytics reads for ``image``."""
    return _swap(image, masks_dir, ".png")


def depth_path_for(image: Path) -> Path:
    """The depth map ultralytics reads for ``image`` (.png, else .npy)."""
    png = _swap(image, "depth", ".png")
    return png if png.is_file() else png.with_suffix(".npy")


class PixelStats:
    """Checks and statistics of semantic masks or depth maps, image by image."""

    def __init__(self, task: str, content: dict[Any, Any], names: dict[int, str] | None) -> None:
        self.task = task
        masks_dir = content.get("masks_dir")
        self.masks_dir = masks_dir if isinstance(masks_dir, str) and masks_dir else "masks"
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
        if self.task == "semantic":
            self._mask(image, dims, out)
        elif self.task == "depth":
            self._depth(image, dims, out)

    def _open(self, path: Path, out: Collector, code: str) -> Any:
        import numpy as np
        from PIL import Image

        try:
            if path.stat().st_size > MAX_MAP_BYTES:
                out.error(code, f"The map is over {MAX_MAP_BYTES} bytes.", path)
                return None
            if path.suffix == ".npy":
                return np.load(path, allow_pickle=False)
            with Image.open(path) as opened:
                return opened.format, opened.mode, np.asarray(opened)
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

        path = mask_path_for(image, self.masks_dir)
        if not path.is_file():
            out.error(
                "mask_missing",
                f"No mask for this image: expected {out.rel(path)} (a PNG of class indices).",
                image,
            )
            return
        opened = self._open(path, out, "mask_unreadable")
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

        path = depth_path_for(image)
        if not path.is_file():
            out.error(
                "depth_missing",
                f"No depth map for this image: expected {out.rel(path.with_suffix('.png'))} "
                f"(uint16 PNG) or .npy.",
                image,
            )
            return
        opened = self._open(path, out, "depth_unreadable")
        if opened is None:
            return
        if isinstance(opened, tuple):
            format_, mode, array = opened
            if format_ != "PNG" or mode not in ("I", "I;16") or array.ndim != 2:
                out.error(
                    "depth_unreadable",
                    f"A depth PNG must be 16-bit grey (one channel), not mode {mode}.",
                    path,
                )
                return
            metres = array.astype(np.float64) / self.scale
        else:
            if opened.ndim != 2 or opened.dtype.kind != "f":
                out.error(
                    "depth_unreadable", "A depth .npy must be a 2-D float array (metres).", path
                )
                return
            metres = np.nan_to_num(opened.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
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
