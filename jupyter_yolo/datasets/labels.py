"""YOLO label files of every label-line task: parsing, per-line checks and task statistics.

detect: ``class cx cy w h`` (a polygon line is accepted: ultralytics turns it into its box);
segment: ``class x1 y1 ... xn yn`` (3 points at least); pose: ``class cx cy w h`` then
``kpt_shape[0]`` keypoints of ``kpt_shape[1]`` numbers (x, y and, with 3, visibility 0/1/2);
obb: ``class x1 y1 x2 y2 x3 y3 x4 y4``, the corners of a simple quadrilateral. Every problem is
recorded with its file and line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..geometry import polygon_area, segments_cross
from .problems import Collector
from .stats import Sizes, SplitStats

MAX_LABEL_BYTES = 16 * 1024 * 1024
ANGLE_BINS = 12  # 15 degree bins over [0, 180)
LABEL_TASKS = ("detect", "segment", "pose", "obb")

__all__ = [
    "Box",
    "LabelRules",
    "TaskStats",
    "check_label_file",
    "parse_label_line",
    "polygon_area",
    "read_boxes",
    "read_shapes",
]


@dataclass
class Box:
    """A valid label line."""

    cls: int
    cx: float
    cy: float
    w: float
    h: float


def parse_label_line(text: str) -> tuple[int, list[float]] | str:
    """Parse 'class cx cy w h' (or a polygon); return (class, box) or why it is malformed."""
    parts = text.split()
    if len(parts) != 5 and not (len(parts) >= 7 and len(parts) % 2 == 1):
        return f"expected 'class cx cy w h' (5 numbers) or a polygon, got {len(parts)} values"
    numbers = _numbers(parts)
    if isinstance(numbers, str):
        return numbers
    cls, coords = numbers
    if len(coords) == 4:
        return cls, coords
    return cls, [*_bounds(coords), *coords]


def _numbers(parts: list[str]) -> tuple[int, list[float]] | str:
    try:
        values = [float(p) for p in parts]
    except ValueError:
        return "every value must be a number"
    if not all(math.isfinite(v) for v in values):
        return "values must be finite numbers"
    if not values[0].is_integer() or values[0] < 0:
        return f"the class id {parts[0]!r} is not a non-negative integer"
    return int(values[0]), values[1:]


def _bounds(coords: list[float]) -> list[float]:
    xs, ys = coords[0::2], coords[1::2]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    return [(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0]


def _pairs(coords: list[float]) -> list[tuple[float, float]]:
    return list(zip(coords[0::2], coords[1::2], strict=True))


@dataclass
class LabelRules:
    """How one task's label lines are read, from data.yaml's task keys."""

    task: str
    kpt_shape: tuple[int, int] | None = None

    @classmethod
    def from_yaml(cls, task: str, content: dict[Any, Any] | None) -> LabelRules:
        """The rules of ``task`` with a usable ``kpt_shape`` from data.yaml (when pose)."""
        shape = (content or {}).get("kpt_shape")
        kpt: tuple[int, int] | None = None
        if (
            isinstance(shape, list)
            and len(shape) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in shape)
            and shape[0] > 0
            and shape[1] in (2, 3)
        ):
            kpt = (shape[0], shape[1])
        return cls(task=task if task in LABEL_TASKS else "detect", kpt_shape=kpt)


@dataclass
class TaskStats:
    """Statistics that fit the task: polygon areas and vertices, keypoint visibility, angles."""

    task: str
    kpt_shape: tuple[int, int] | None = None
    area_shares: list[float] = field(default_factory=list)
    vertices: list[int] = field(default_factory=list)
    visibility: list[dict[str, int]] = field(default_factory=list)
    angles: list[float] = field(default_factory=list)

    def to_json(self) -> dict[str, Any] | None:
        """The report's ``task_stats`` for label tasks (None for detect)."""
        if self.task == "segment":
            return {
                "instances": len(self.vertices),
                "mask_area_share": _summary(self.area_shares, 4),
                "vertices": _summary([float(v) for v in self.vertices], 1),
            }
        if self.task == "pose":
            return {
                "kpt_shape": list(self.kpt_shape) if self.kpt_shape else None,
                "keypoint_visibility": self.visibility,
                "visibility_help": "per keypoint: 0 not labelled, 1 occluded, 2 visible "
                "(with kpt_shape [k, 2]: labelled = coordinates not both 0)",
            }
        if self.task == "obb":
            histogram = [0] * ANGLE_BINS
            for angle in self.angles:
                histogram[min(ANGLE_BINS - 1, int(angle / (180 / ANGLE_BINS)))] += 1
            return {
                "instances": len(self.angles),
                "angle_degrees": _summary(self.angles, 1),
                "angle_bins": [round(i * 180 / ANGLE_BINS, 1) for i in range(ANGLE_BINS + 1)],
                "angle_histogram": histogram,
                "angle_help": "angle of the first edge (corner 1 to 2) against the x axis, "
                "0-180 degrees",
            }
        return None

    def keypoint(self, index: int, state: str) -> None:
        """Count one keypoint's visibility state."""
        while len(self.visibility) <= index:
            self.visibility.append({"0": 0, "1": 0, "2": 0, "labelled": 0})
        self.visibility[index][state] += 1


def _summary(values: list[float], digits: int) -> dict[str, float] | None:
    if not values:
        return None
    return {
        "min": round(min(values), digits),
        "mean": round(sum(values) / len(values), digits),
        "max": round(max(values), digits),
    }


def _out_of_range(values: list[float]) -> bool:
    return any(v < 0 or v > 1 for v in values)


def _check_polygon(
    coords: list[float], rules: LabelRules, out: Collector, path: Path, number: int
) -> bool:
    """Segment-specific checks of a polygon; False when the line is unusable."""
    points = _pairs(coords)
    if len(points) < 3:
        out.error(
            "polygon_too_few_points",
            f"A polygon needs 3 points at least (class x1 y1 x2 y2 x3 y3 ...); this line has "
            f"{len(points)}. A 'class cx cy w h' box does not make a mask.",
            path,
            number,
        )
        return False
    if polygon_area(points) <= 1e-12:
        out.error(
            "polygon_zero_area",
            f"The polygon of {len(points)} points has zero area (all points on one line).",
            path,
            number,
        )
        return False
    repeated = [i + 1 for i in range(len(points)) if points[i] == points[(i + 1) % len(points)]]
    if repeated:
        out.warning(
            "polygon_repeated_point",
            f"The polygon repeats point {repeated[0]} right after itself (a self-touching "
            f"outline); remove the duplicate.",
            path,
            number,
        )
    return True


def _check_quad(coords: list[float], out: Collector, path: Path, number: int) -> bool:
    points = _pairs(coords)
    if segments_cross(points[0], points[1], points[2], points[3]) or segments_cross(
        points[1], points[2], points[3], points[0]
    ):
        out.error(
            "obb_self_intersecting",
            "The four corners are not in order around the box: two edges cross. List them "
            "clockwise or anticlockwise.",
            path,
            number,
        )
        return False
    if polygon_area(points) <= 1e-12:
        out.error(
            "obb_degenerate",
            "The four corners do not enclose an area (they lie on one line or repeat).",
            path,
            number,
        )
        return False
    return True


def _pose_shape_problem(count: int, kpt: tuple[int, int]) -> str:
    k, d = kpt
    expected = 5 + k * d
    hint = ""
    if d == 3 and count == 5 + k * 2:
        hint = " The visibility values seem missing: kpt_shape's 3 says x y v per keypoint."
    elif d == 2 and count == 5 + k * 3:
        hint = " Each keypoint seems to carry a visibility: set kpt_shape to [k, 3]."
    elif (count - 5) % d == 0 and count > 5:
        hint = f" The line has {(count - 5) // d} keypoints."
    return (
        f"kpt_shape [{k}, {d}] needs 5 + {k}x{d} = {expected} numbers per line "
        f"(class cx cy w h, then the keypoints); this line has {count}.{hint}"
    )


def _check_pose(  # noqa: PLR0917
    coords: list[float],
    rules: LabelRules,
    stats: TaskStats,
    out: Collector,
    path: Path,
    number: int,
) -> bool:
    kpt = rules.kpt_shape
    if kpt is None:
        return False  # data.yaml's missing kpt_shape is reported once, against data.yaml
    if len(coords) + 1 != 5 + kpt[0] * kpt[1]:
        out.error("pose_keypoint_count", _pose_shape_problem(len(coords) + 1, kpt), path, number)
        return False
    points = coords[4:]
    d = kpt[1]
    if d == 3:
        bad = [
            (i + 1, points[i * 3 + 2])
            for i in range(kpt[0])
            if points[i * 3 + 2] not in (0.0, 1.0, 2.0)
        ]
        if bad:
            out.error(
                "pose_visibility",
                f"Keypoint {bad[0][0]} has visibility {bad[0][1]:g}; it must be 0 (not labelled),"
                f" 1 (occluded) or 2 (visible).",
                path,
                number,
            )
            return False
    xy = [v for i, v in enumerate(points) if i % d < 2]
    if _out_of_range(xy):
        out.error(
            "coordinates_out_of_range",
            "Keypoint coordinates must be normalised to [0, 1].",
            path,
            number,
        )
        return False
    for i in range(kpt[0]):
        x, y = points[i * d], points[i * d + 1]
        if d == 3:
            stats.keypoint(i, str(int(points[i * 3 + 2])))
            if points[i * 3 + 2] > 0:
                stats.keypoint(i, "labelled")
        elif x or y:
            stats.keypoint(i, "labelled")
    return True


def check_label_file(
    path: Path,
    names: dict[int, str] | None,
    out: Collector,
    *,
    stats: SplitStats,
    sizes: Sizes,
    dims: tuple[int, int] | None,
    rules: LabelRules | None = None,
    task_stats: TaskStats | None = None,
) -> int:
    """Check one label file of the rules' task; return its number of valid instances."""
    rules = rules or LabelRules("detect")
    task_stats = task_stats or TaskStats(rules.task, rules.kpt_shape)
    try:
        if path.stat().st_size > MAX_LABEL_BYTES:
            out.error("label_unreadable", f"The label file is over {MAX_LABEL_BYTES} bytes.", path)
            return 0
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        out.error("label_unreadable", f"The label file cannot be read as UTF-8 text: {exc}", path)
        return 0
    count = 0
    seen: dict[str, int] = {}
    kinds: set[str] = set()
    mixed_reported = False
    for number, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        parsed = _parse_for(rules, parts)
        if isinstance(parsed, str):
            out.error("malformed_line", f"Malformed label line: {parsed}.", path, number)
            continue
        cls, box, coords = parsed
        bad = False
        if names is not None and cls >= len(names):
            out.error(
                "class_out_of_range",
                f"Class id {cls} is out of range: the dataset has {len(names)} classes "
                f"(0-{len(names) - 1}).",
                path,
                number,
            )
            bad = True
        checked = coords if rules.task in ("segment", "obb") or len(coords) > 4 else box
        if rules.task == "pose":
            checked = box
        if _out_of_range(checked):
            out.error(
                "coordinates_out_of_range",
                f"Coordinates must be normalised to [0, 1]; got {' '.join(parts[1:])}.",
                path,
                number,
            )
            continue
        if rules.task == "segment" and not _check_polygon(coords, rules, out, path, number):
            continue
        if rules.task == "obb" and not _check_quad(coords, out, path, number):
            continue
        w, h = box[2], box[3]
        if w <= 0 or h <= 0:
            out.error(
                "zero_area_box", f"The box has zero area (width {w:g}, height {h:g}).", path, number
            )
            continue
        if rules.task == "pose" and not _check_pose(coords, rules, task_stats, out, path, number):
            continue
        key = " ".join(parts)
        if key in seen:
            out.warning("duplicate_label", f"This line repeats line {seen[key]}.", path, number)
            continue
        seen[key] = number
        if rules.task == "detect":
            kinds.add("box" if len(parts) == 5 else "polygon")
            if len(kinds) == 2 and not mixed_reported:
                mixed_reported = True
                out.error(
                    "labels_mixed",
                    "This file mixes box lines (5 numbers) and polygon lines; ultralytics "
                    "refuses such a file. Use one kind per dataset.",
                    path,
                    number,
                )
        if bad:
            continue
        count += 1
        stats.per_class[cls] = stats.per_class.get(cls, 0) + 1
        sizes.add(w, h, dims)
        _add_task_stats(rules, task_stats, coords, dims)
    return count


def _parse_for(rules: LabelRules, parts: list[str]) -> tuple[int, list[float], list[float]] | str:
    """(class, box cx cy w h, the line's coordinates) or why the line is malformed."""
    count = len(parts)
    if rules.task == "segment":
        if count % 2 == 0:
            return (
                f"a polygon line is 'class x1 y1 ... xn yn': the class then pairs of numbers, "
                f"but this line has {count - 1} coordinates (an odd count)"
            )
    elif rules.task == "obb":
        if count != 9:
            return (
                f"an oriented box is 'class x1 y1 x2 y2 x3 y3 x4 y4' (9 numbers), "
                f"got {count} values"
            )
    elif rules.task == "pose":
        if count < 5:
            return f"a pose line starts with 'class cx cy w h', got {count} values"
    elif count != 5 and not (count >= 7 and count % 2 == 1):
        return f"expected 'class cx cy w h' (5 numbers) or a polygon, got {count} values"
    numbers = _numbers(parts)
    if isinstance(numbers, str):
        return numbers
    cls, coords = numbers
    if rules.task == "pose" or len(coords) == 4:
        return cls, coords[:4], coords
    return cls, _bounds(coords), coords


def _add_task_stats(
    rules: LabelRules, stats: TaskStats, coords: list[float], dims: tuple[int, int] | None
) -> None:
    if rules.task == "segment":
        stats.vertices.append(len(coords) // 2)
        stats.area_shares.append(polygon_area(_pairs(coords)))
    elif rules.task == "obb":
        (x0, y0), (x1, y1) = _pairs(coords)[:2]
        width, height = dims or (1, 1)
        angle = math.degrees(math.atan2((y1 - y0) * height, (x1 - x0) * width)) % 180.0
        stats.angles.append(angle)


def read_boxes(path: Path) -> list[Box]:
    """The valid boxes of a label file (malformed lines skipped), for previews."""
    return [Box(cls, *values[:4]) for cls, values, _coords in read_shapes(path)]


def read_shapes(path: Path, task: str = "detect") -> list[tuple[int, list[float], list[float]]]:
    """(class, box cx cy w h, coordinates) of each usable line of a label file, for previews."""
    shapes: list[tuple[int, list[float], list[float]]] = []
    try:
        if path.stat().st_size > MAX_LABEL_BYTES:
            return shapes
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return shapes
    rules = LabelRules(task if task in LABEL_TASKS else "detect")
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        parsed = _parse_for(rules, parts)
        if not isinstance(parsed, str):
            shapes.append(parsed)
    return shapes
