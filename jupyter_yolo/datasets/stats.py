"""Counters the dataset report is built from: per split, and the box size distribution."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SIZE_BINS = 10
SMALL, MEDIUM = 32 * 32, 96 * 96  # COCO's box area buckets, in pixels


@dataclass
class SplitStats:
    """Counts of one split."""

    images: int = 0
    labelled: int = 0
    backgrounds: int = 0
    instances: int = 0
    unreadable: int = 0
    per_class: dict[int, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, int]:
        """The JSON form used in the report."""
        return {
            "images": self.images,
            "labelled": self.labelled,
            "backgrounds": self.backgrounds,
            "instances": self.instances,
            "unreadable_images": self.unreadable,
        }


class Sizes:
    """Box size distribution: normalised width / height histograms and COCO area buckets."""

    def __init__(self) -> None:
        self.width = [0] * SIZE_BINS
        self.height = [0] * SIZE_BINS
        self.area = {"small": 0, "medium": 0, "large": 0}
        self.pixel_widths: list[float] = []
        self.pixel_heights: list[float] = []

    def add(self, w: float, h: float, dims: tuple[int, int] | None) -> None:
        """Count one box of normalised size ``w`` x ``h`` (pixels when ``dims`` is known)."""
        self.width[min(SIZE_BINS - 1, int(w * SIZE_BINS))] += 1
        self.height[min(SIZE_BINS - 1, int(h * SIZE_BINS))] += 1
        if dims is not None:
            pw, ph = w * dims[0], h * dims[1]
            area = pw * ph
            self.area["small" if area < SMALL else "medium" if area < MEDIUM else "large"] += 1
            self.pixel_widths.append(pw)
            self.pixel_heights.append(ph)

    def to_json(self) -> dict[str, Any]:
        """The report's ``box_sizes``."""

        def summary(values: list[float]) -> dict[str, float] | None:
            if not values:
                return None
            ordered = sorted(values)
            return {
                "min": round(ordered[0], 2),
                "median": round(ordered[len(ordered) // 2], 2),
                "max": round(ordered[-1], 2),
            }

        return {
            "bins": [round(i / SIZE_BINS, 2) for i in range(SIZE_BINS + 1)],
            "width_histogram": self.width,
            "height_histogram": self.height,
            "area_buckets": self.area,
            "area_buckets_help": "COCO buckets in pixels: small < 32x32 <= medium < 96x96 <= large",
            "width_pixels": summary(self.pixel_widths),
            "height_pixels": summary(self.pixel_heights),
        }
