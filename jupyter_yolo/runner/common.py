"""What every job kind shares: the job context, model and data checks, the worker plan.

ultralytics is imported inside the functions, after :func:`jupyter_yolo.runner.offline.prepare`
has run. Every run writes into ``JOB_DIR/run`` (``project=JOB_DIR, name="run", exist_ok=True``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..datasets.keys import FORBIDDEN_DATA_KEYS
from ..safeyaml import YamlRefused, load_yaml
from ..weights_meta import is_rtdetr_checkpoint
from .job import RUN_DIR, JobFile, StatusFile
from .journal import Journal
from .resources import plan_workers
from .stop import StopController


class JobInputError(ValueError):
    """A job parameter points at something that does not exist or cannot work offline."""


@dataclass
class JobContext:
    """Everything a task needs about its job."""

    job_dir: Path
    spec: JobFile
    journal: Journal
    stop: StopController
    status: StatusFile
    cpus: int
    partial_result: dict[str, Any] = field(default_factory=dict)

    @property
    def run_dir(self) -> Path:
        """``JOB_DIR/run``: where ultralytics writes."""
        return self.job_dir / RUN_DIR

    def rel(self, path: Path | str) -> str:
        """A path relative to the job folder (POSIX), or the path itself outside it."""
        try:
            return Path(path).resolve().relative_to(self.job_dir.resolve()).as_posix()
        except ValueError:
            return str(path)

    def output_args(self) -> dict[str, Any]:
        """The arguments that put ultralytics' output in ``JOB_DIR/run``."""
        return {"project": str(self.job_dir), "name": RUN_DIR, "exist_ok": True}


# -- shared helpers ------------------------------------------------------------------------------
def is_rtdetr(model: str | Path) -> bool:
    """Whether ``model`` is an RT-DETR architecture or checkpoint (ultralytics' RTDETR class).

    A checkpoint is recognised by the model class its pickle names, read without unpickling by
    the server's own bounded reader (:func:`jupyter_yolo.weights_meta.is_rtdetr_checkpoint`).
    """
    path = Path(model)
    if path.name.startswith("rtdetr"):
        return True
    if path.suffix != ".pt" or not path.is_file():
        return False
    return is_rtdetr_checkpoint(path)


def load_model(model: str | Path) -> Any:
    """An ultralytics model: ``YOLO``, or ``RTDETR`` for RT-DETR.

    Typed as Any: the runner only passes arguments through.
    """
    if is_rtdetr(model):
        from ultralytics.models.rtdetr.model import RTDETR

        return RTDETR(str(model))
    from ultralytics.models.yolo.model import YOLO

    return YOLO(str(model))


def resolve_model(ctx: JobContext, model: Any) -> str:
    """Check the ``model`` parameter offline: an existing file, a weights-folder file, or a YAML."""
    if not isinstance(model, str) or not model:
        raise JobInputError("the job has no 'model' (a .pt/.yaml path or an architecture name)")
    path = Path(model)
    if path.suffix not in {".pt", ".yaml", ".yml", ""}:
        return model  # another format (onnx, openvino folder ...): ultralytics decides
    if path.is_absolute():
        if not path.exists():
            raise JobInputError(f"model file {model} does not exist")
        return model
    if path.suffix == ".pt":
        local = ctx.spec.workspace / "weights" / path.name
        if local.exists():
            return str(local)
        raise JobInputError(
            f"model weights '{model}' are not in the workspace weights folder ({local.parent}); "
            "nothing is downloaded at run time: copy the .pt file there, or train from an "
            "architecture such as 'yolov8n.yaml'"
        )
    return model  # a bare architecture name such as yolov8n.yaml: packaged with ultralytics


def check_data(data: Any) -> str:
    """Check the ``data`` parameter: an existing dataset YAML."""
    if not isinstance(data, str) or not data:
        raise JobInputError("the job has no 'data' (the path of a dataset's data.yaml)")
    if os.path.isabs(data) and not os.path.exists(data):
        raise JobInputError(f"dataset file {data} does not exist")
    if data.endswith((".yaml", ".yml")) and os.path.isfile(data):
        try:
            content = load_yaml(Path(data).read_bytes())
        except (OSError, YamlRefused) as exc:
            raise JobInputError(f"dataset file {data} cannot be read: {exc}") from None
        forbidden = (
            sorted(str(k) for k in content if k in FORBIDDEN_DATA_KEYS)
            if isinstance(content, dict)
            else []
        )
        if forbidden:
            raise JobInputError(
                f"dataset file {data} has a {forbidden[0]!r} entry, which would make ultralytics "
                f"download files or run code; it is refused"
            )
    return data


def is_cpu_device(device: Any) -> bool:
    """Whether ultralytics will run on the CPU for this ``device`` value."""
    text = str(device if device is not None else "").strip().lower()
    if text == "cpu":
        return True
    if text in {"", "none"}:
        import torch

        return not torch.cuda.is_available()
    return False


def apply_worker_plan(ctx: JobContext, params: dict[str, Any]) -> None:
    """Cap ``workers`` to usable CPUs and /dev/shm; warn when lowered (not on CPU, where unused)."""
    requested = params.get("workers", 8)
    if not isinstance(requested, int) or isinstance(requested, bool):
        return
    batch = params.get("batch", 16)
    imgsz = params.get("imgsz", 640)
    batch_i = int(batch) if isinstance(batch, (int, float)) and batch >= 1 else 16
    imgsz_i = int(max(imgsz)) if isinstance(imgsz, (list, tuple)) else int(imgsz or 640)
    plan = plan_workers(requested, batch=batch_i, imgsz=imgsz_i, cpus=ctx.cpus)
    if plan.workers != requested:
        params["workers"] = plan.workers
        if not is_cpu_device(params.get("device")):
            for code, message in plan.warnings:
                ctx.journal.warning(code, message)


def stop_checker(ctx: JobContext) -> Callable[[Any], None]:
    """A callback that raises StopRequested when a stop was requested."""

    def check(_: Any) -> None:
        ctx.stop.check()

    return check
