"""data.yaml keys a task needs (``profile(task).required_keys``) and the task keys' values."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ..contract.tasks import profile
from ..safeyaml import describe
from .paths import folder_name_problem
from .problems import Collector

if TYPE_CHECKING:
    from .datayaml import DatasetDescription

KEY_HELP = {
    "kpt_shape": "kpt_shape: [17, 3] (keypoints per object; 2 for x y, 3 for x y visibility)",
    "names": "names: {0: first, 1: second}",
}

__all__ = ["check_task_keys"]


def check_task_keys(task: str, description: DatasetDescription, out: Collector) -> None:
    """Record errors for task keys that are missing from data.yaml or unusable."""
    content = description.content
    if not content:
        return  # data.yaml itself is missing or unreadable: already reported
    path = out.folder / "data.yaml"
    lines = description.yaml_lines
    for key in profile(task).required_keys:
        # 'path' is added by the job's copy; the splits and names are checked on their own
        if key in ("path", "train", "val", "names") or content.get(key) is not None:
            continue
        example = KEY_HELP.get(key, f"{key}: ...")
        out.error(
            "task_key_missing",
            f"A {task} dataset needs {key!r} in data.yaml, e.g. {example}.",
            path,
        )
    if task == "pose":
        _check_flip_idx(content, out, lines)
    if task == "depth" and "depth_scale" in content:
        scale = content["depth_scale"]
        if (
            isinstance(scale, bool)
            or not isinstance(scale, (int, float))
            or not math.isfinite(scale)
            or scale <= 0
        ):
            out.error(
                "data_yaml",
                f"data.yaml's 'depth_scale' must be a positive number (PNG value per metre), "
                f"not {describe(scale)}.",
                path,
                lines.get("depth_scale"),
            )
    if "masks_dir" in content:
        # ultralytics reads masks from <root>/<masks_dir>/...: one plain name, never a path out
        problem = folder_name_problem(content["masks_dir"])
        if problem is not None:
            out.error(
                "data_yaml", f"data.yaml's 'masks_dir' {problem}.", path, lines.get("masks_dir")
            )


def _check_flip_idx(content: dict[Any, Any], out: Collector, lines: dict[str, int]) -> None:
    shape, flip = content.get("kpt_shape"), content.get("flip_idx")
    if flip is None or not isinstance(shape, list) or not shape or not isinstance(shape[0], int):
        return
    if not isinstance(flip, list):
        return  # a wrong type is reported with the other key checks
    path = out.folder / "data.yaml"
    count = shape[0]
    if len(flip) != count:
        out.error(
            "flip_idx",
            f"data.yaml's 'flip_idx' has {len(flip)} entries but kpt_shape says {count} "
            f"keypoints; it needs one entry per keypoint.",
            path,
            lines.get("flip_idx"),
        )
    elif sorted(v for v in flip if isinstance(v, int)) != list(range(count)):
        out.error(
            "flip_idx",
            f"data.yaml's 'flip_idx' must list every keypoint index 0-{count - 1} once (the "
            f"order after a horizontal flip), not {describe(flip)}.",
            path,
            lines.get("flip_idx"),
        )
