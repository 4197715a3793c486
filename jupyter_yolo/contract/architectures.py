"""The architectures the installed ultralytics can build, read from its ``cfg/models`` files.

The server never imports ultralytics: the package is located with ``importlib.util.find_spec``
(which does not run it) and its model YAML files are read as data. The task of each file comes
from the module of its last head layer, as ultralytics' own ``guess_model_task`` decides it.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from .tasks import TASK_NAMES

FAMILIES = {"v8": "yolov8", "11": "yolo11", "12": "yolo12", "26": "yolo26", "rt-detr": "rtdetr"}
"""``cfg/models`` folders offered, and the name prefix their files carry."""
LEFT_OUT = re.compile(r"(yoloe|world|resnet|ghost|rtdetr\.yaml$|yolov8-rtdetr)")
"""Files left out: open-vocabulary heads (they need text encoders downloaded), torchvision
backbones (pretrained downloads), and experimental variants."""
HEAD_TASKS = {
    "Classify": "classify",
    "Segment": "segment",
    "Segment26": "segment",
    "Pose": "pose",
    "Pose26": "pose",
    "OBB": "obb",
    "OBB26": "obb",
    "SemanticSegment": "semantic",
    "Depth": "depth",
    "Detect": "detect",
    "v10Detect": "detect",
    "RTDETRDecoder": "detect",
}
PLAIN_VARIANTS = {"", "seg", "cls", "pose", "obb", "sem", "depth", "l", "x"}
"""What follows the family in a base file name of each task (``rtdetr-l``: a scale)."""
SCALED = re.compile(r"^(yolov8|yolo11|yolo12|yolo26)(-.*)?\.yaml$")


@dataclass(frozen=True)
class Architecture:
    """One untrained architecture a train job may name."""

    name: str
    """What a request names: ``yolov8n-seg.yaml``."""
    task: str
    family: str
    scale: str | None
    file: str
    """The ultralytics file it is built from, relative to ``cfg/models``."""

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of ``GET /yolo/tasks`` and ``GET /yolo/models``."""
        return asdict(self)


def models_folder() -> Path | None:
    """``ultralytics/cfg/models`` of the installed package, without importing it."""
    spec = importlib.util.find_spec("ultralytics")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        folder = Path(location) / "cfg" / "models"
        if folder.is_dir():
            return folder
    return None


def _head_task(path: Path) -> tuple[str | None, list[str]]:
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError):
        return None, []
    if not isinstance(content, dict):
        return None, []
    layers = content.get("head") or content.get("backbone") or []
    try:
        module = str(layers[-1][2])
    except (IndexError, KeyError, TypeError):
        return None, []
    scales = content.get("scales")
    return HEAD_TASKS.get(module), sorted(scales) if isinstance(scales, dict) else []


@lru_cache(maxsize=4)
def _read(folder: str) -> tuple[Architecture, ...]:
    found: list[Architecture] = []
    root = Path(folder)
    for family, prefix in FAMILIES.items():
        for path in sorted((root / family).glob("*.yaml")):
            if not path.name.startswith(prefix) or LEFT_OUT.search(path.name):
                continue
            task, scales = _head_task(path)
            if task is None:
                continue
            relative = f"{family}/{path.name}"
            scaled = SCALED.match(path.name)
            if scaled and scales:
                base, rest = scaled.group(1), scaled.group(2) or ""
                offered = [s for s in "nsmlx" if s in scales]
                for scale in offered:
                    found.append(
                        Architecture(f"{base}{scale}{rest}.yaml", task, family, scale, relative)
                    )
            else:
                only = scales[0] if len(scales) == 1 else None
                found.append(Architecture(path.name, task, family, only, relative))
    families = list(FAMILIES)

    def order(arch: Architecture) -> tuple[int, int, int, str, int]:
        variant = arch.file.rsplit("/", 1)[-1]
        rest = variant.removesuffix(".yaml").partition("-")[2]
        plain = 0 if rest in PLAIN_VARIANTS else 1  # yolov8-seg.yaml before yolov8-seg-p6.yaml
        scale = "nsmlxb".find(arch.scale) if arch.scale else 0
        return (families.index(arch.family), TASK_NAMES.index(arch.task), plain, variant, scale)

    return tuple(sorted(found, key=order))


def architectures() -> tuple[Architecture, ...]:
    """Every architecture offered, by family, task (detection first), variant and scale.

    Empty when ultralytics is not installed.
    """
    folder = models_folder()
    return _read(str(folder)) if folder is not None else ()


def by_name() -> dict[str, Architecture]:
    """:func:`architectures` keyed by the name a request uses (built once per installation)."""
    folder = models_folder()
    return _by_name(str(folder)) if folder is not None else {}


@lru_cache(maxsize=4)
def _by_name(folder: str) -> dict[str, Architecture]:
    return {arch.name: arch for arch in _read(folder)}


def example(task: str) -> str | None:
    """The first architecture offered for ``task`` (``yolov8n-seg.yaml``), for messages."""
    return next((arch.name for arch in architectures() if arch.task == task), None)
