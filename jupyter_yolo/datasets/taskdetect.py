"""Which YOLO task a dataset folder (in the canonical layout) is for, told from its contents.

Evidence, strongest first: data.yaml's ``kpt_shape`` (pose); class folders under ``train/`` with
no ``labels/`` (classify); ``masks_dir`` or a ``masks/`` folder (semantic); a ``depth/`` folder
(depth); then the shape of the label lines: 5 numbers are boxes (detect), 9 numbers whose four
corners are not an axis-aligned rectangle are oriented boxes (obb), other odd counts are
polygons (segment). A task forced by the person is checked against the same evidence, and a
contradiction is a 400 that says what was found.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..contract.tasks import DEFAULT_TASK, TASK_NAMES
from ..errors import InvalidRequest
from ..safeyaml import YamlRefused, describe, load_yaml
from .archive import IMAGE_SUFFIXES
from .classfolders import class_folder_count
from .paths import masks_dir_of

MAX_SCANNED_FILES = 5000
MAX_SCANNED_BYTES = 16 * 1024 * 1024
MAX_SCANNED_ENTRIES = 50_000  # folder entries (files and folders) walked per scan
MAX_YAML_BYTES = 1024 * 1024
AXIS_EPS = 1e-6
KPT_EXAMPLE = "kpt_shape: [17, 3] (keypoints per object; 2 for x y, 3 for x y visibility)"

__all__ = [
    "Evidence",
    "check_task_name",
    "class_folders",
    "detected",
    "gather",
    "gather_from",
    "resolve_task",
]


@dataclass
class Evidence:
    """What a dataset folder holds that tells its task."""

    kpt_shape: bool = False
    masks: bool = False
    depth: bool = False
    class_folders: int = 0
    labels_folder: bool = False
    boxes: int = 0
    rotated: int = 0
    quads: int = 0  # 9-number lines whose corners are an axis-aligned rectangle
    polygons: int = 0  # odd counts > 5 other than 9
    even: int = 0  # even counts > 5 (keypoints need kpt_shape)

    @property
    def lines(self) -> int:
        """Label lines seen."""
        return self.boxes + self.rotated + self.quads + self.polygons + self.even

    def summary(self) -> str:
        """What was found, as a person reads it."""
        parts = []
        if self.kpt_shape:
            parts.append("data.yaml has kpt_shape")
        if self.class_folders:
            parts.append(f"{self.class_folders} class folder(s) under train/")
        if self.masks:
            parts.append("a masks/ folder")
        if self.depth:
            parts.append("a depth/ folder")
        if self.lines:
            kinds = [
                (self.boxes, "box lines (5 numbers)"),
                (self.rotated, "rotated four-corner lines (9 numbers)"),
                (self.quads, "axis-aligned four-corner lines (9 numbers)"),
                (self.polygons, "polygon lines"),
                (self.even, "lines with an even count of numbers (keypoints?)"),
            ]
            parts.append("label lines: " + ", ".join(f"{n} {what}" for n, what in kinds if n))
        elif self.labels_folder:
            parts.append("no label lines")
        return "; ".join(parts) or "no labels, class folders, masks or depth maps"


def check_task_name(task: Any) -> str | None:
    """A valid forced task, None when none was given, or a 400 listing the tasks."""
    if task is None:
        return None
    if not isinstance(task, str) or task not in TASK_NAMES:
        raise InvalidRequest(f"Unknown task {describe(task)}: give one of {', '.join(TASK_NAMES)}.")
    return task


def _data_yaml(folder: Path) -> dict[str, Any]:
    path = folder / "data.yaml"
    try:
        if not path.is_file() or path.stat().st_size > MAX_YAML_BYTES:
            return {}
        content = load_yaml(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, YamlRefused):
        return {}
    return content if isinstance(content, dict) else {}


def _has_files(folder: Path, suffixes: frozenset[str] | set[str]) -> bool:
    if not folder.is_dir() or folder.is_symlink():
        return False
    seen = 0
    for _current, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        if any(Path(name).suffix.lower() in suffixes for name in files):
            return True
        seen += len(dirs) + len(files)
        if seen >= MAX_SCANNED_ENTRIES:
            return False
    return False


def class_folders(folder: Path) -> int:
    """Subfolders of ``train/`` that hold images, when the dataset is class folders.

    The same rule as uploads (:func:`.classfolders.class_folder_count`); jobs use it too.
    """
    return class_folder_count(folder)


def _classify_line(parts: list[str], evidence: Evidence) -> None:
    count = len(parts)
    if count == 5:
        evidence.boxes += 1
    elif count == 9:
        try:
            coords = [float(p) for p in parts[1:]]
        except ValueError:
            evidence.polygons += 1
            return
        xs, ys = coords[0::2], coords[1::2]
        x_levels = {round(x / AXIS_EPS) for x in xs}
        y_levels = {round(y / AXIS_EPS) for y in ys}
        # an axis-aligned rectangle takes two x values and two y values, each corner a pair
        axis = len(x_levels) <= 2 and len(y_levels) <= 2
        if axis:
            evidence.quads += 1
        else:
            evidence.rotated += 1
    elif count > 5 and count % 2 == 1:
        evidence.polygons += 1
    elif count > 5:
        evidence.even += 1


def gather(folder: Path) -> Evidence:
    """Look at ``folder`` (canonical layout) for what tells the task."""
    return gather_from(_data_yaml(folder), folder)


def gather_from(content: dict[str, Any], folder: Path) -> Evidence:
    """Look at a dataset whose data.yaml (already read) has ``folder`` as its ``path``."""
    evidence = Evidence(kpt_shape=content.get("kpt_shape") is not None)
    masks_dir = content.get("masks_dir")
    evidence.masks = masks_dir not in (None, "") or _has_files(
        folder / masks_dir_of(content), {".png"}
    )
    evidence.depth = content.get("depth_scale") is not None or _has_files(
        folder / "depth", {".png", ".npy"}
    )
    evidence.class_folders = class_folders(folder)
    labels = folder / "labels"
    # a symlinked labels/ may point anywhere: it is not walked
    evidence.labels_folder = labels.is_dir() and not labels.is_symlink()
    if evidence.labels_folder:
        _scan_labels(labels, evidence)
    return evidence


def _scan_labels(labels: Path, evidence: Evidence) -> None:
    """Classify label lines under ``labels``, bounded by files, bytes and entries walked."""
    scanned = read = seen = 0
    for current, dirs, files in os.walk(labels):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        seen += len(dirs) + len(files)
        if seen > MAX_SCANNED_ENTRIES:
            return
        for name in sorted(files):
            if not name.endswith(".txt") or name.startswith("."):
                continue
            if scanned >= MAX_SCANNED_FILES or read >= MAX_SCANNED_BYTES:
                return
            path = Path(current) / name
            try:
                with path.open("rb") as handle:
                    data = handle.read(MAX_SCANNED_BYTES - read)
            except OSError:
                continue
            scanned += 1
            read += len(data)
            for line in data.decode("utf-8", errors="replace").splitlines():
                parts = line.split()
                if parts:
                    _classify_line(parts, evidence)


def detected(evidence: Evidence) -> tuple[str, str]:
    """The task the evidence points to, and how it was told."""
    if evidence.kpt_shape:
        return "pose", "detected from data.yaml's kpt_shape"
    if evidence.class_folders and not evidence.lines:
        return "classify", f"detected from {evidence.class_folders} class folder(s) under train/"
    if evidence.masks:
        return "semantic", "detected from the masks/ folder (or data.yaml's masks_dir)"
    if evidence.depth:
        return "depth", "detected from the depth/ folder"
    if not evidence.lines:
        return DEFAULT_TASK, "no label lines to tell the task from: detection assumed"
    if evidence.rotated and evidence.rotated + evidence.quads == evidence.lines:
        return "obb", f"detected from {evidence.rotated} rotated four-corner label line(s)"
    if evidence.polygons or evidence.quads or evidence.rotated:
        shapes = evidence.polygons + evidence.quads + evidence.rotated
        return "segment", f"detected from {shapes} polygon label line(s)"
    if evidence.even:
        # keypoint lines: pose, which needs kpt_shape (validation reports it missing)
        return "pose", (
            f"detected from {evidence.even} label line(s) with an even count of numbers "
            f"(keypoints), but data.yaml has no kpt_shape"
        )
    return DEFAULT_TASK, f"detected from {evidence.boxes} box label line(s)"


def contradiction(task: str, evidence: Evidence) -> str | None:
    """Why ``task`` cannot be right for a folder with this evidence, or None."""
    classify_layout = evidence.class_folders > 0 and not evidence.lines
    if task == "classify":
        return None if classify_layout else "classify needs class folders (train/<class>/image)"
    if classify_layout:
        return f"{task} needs labels, masks or depth maps, but the dataset is class folders"
    if task == "obb" and (evidence.boxes or evidence.polygons or evidence.even):
        return "obb needs every label line to be 9 numbers (class and four corners)"
    if (
        task == "segment"
        and evidence.boxes
        and not (evidence.polygons or evidence.quads or evidence.rotated)
    ):
        return "segment needs polygon label lines, and every line is a box (5 numbers)"
    if task == "pose" and evidence.lines and evidence.lines == evidence.boxes:
        return "pose needs keypoints after the box, and every line is a box (5 numbers)"
    if task == "semantic" and not evidence.masks and not (evidence.polygons or evidence.quads):
        return "semantic needs a masks/ folder of PNG class maps (or polygon labels)"
    if task == "depth" and not evidence.depth:
        return "depth needs a depth/ folder with one depth map per image"
    return None


def resolve_task(folder: Path, forced: str | None) -> tuple[str, str]:
    """The dataset's task and how it was found; a forced one that does not fit is a 400."""
    evidence = gather(folder)
    if forced is None:
        if evidence.even and not evidence.kpt_shape and detected(evidence)[0] == "pose":
            raise InvalidRequest(
                f"{evidence.even} label line(s) have an even count of numbers after the class, "
                f"which are keypoints (pose), but data.yaml has no kpt_shape. Keypoint lines "
                f"need kpt_shape in data.yaml, e.g. {KPT_EXAMPLE}; or fix the label lines."
            )
        return detected(evidence)
    why = contradiction(forced, evidence)
    if why is not None:
        found, _how = detected(evidence)
        raise InvalidRequest(
            f"The dataset cannot be a {forced} dataset: {why}. Found: {evidence.summary()} "
            f"(that looks like {found}). Leave 'task' out to use the detected task, or fix the "
            f"labels."
        )
    return forced, "forced"


def image_count(folder: Path) -> int:
    """Images directly or recursively under ``folder`` (for class folders)."""
    total = 0
    for _current, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        total += sum(1 for n in files if Path(n).suffix.lower() in IMAGE_SUFFIXES)
    return total
