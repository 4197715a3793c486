"""Tiny models of every task for the warm-service agreement test, in a process of its own.

``python -m tests.predict_service_models OUT WORKSPACE TASK...``: for each task a tiny model
trained in WORKSPACE on its synthetic dataset (tests/inference_models.py; detect with the same
recipe on yolov8n.yaml, semantic and depth untrained), and one validation image of it saved as a
PNG (lossless: a predict job and the worker decode the same pixels). Writes to OUT, as JSON,
``{task: {"weights": <workspace-relative>, "image": <workspace-relative>}}``.

The pytest process never imports ultralytics (it patches PIL and cv2 process-wide).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _detect(workspace: Path, datasets: Path) -> tuple[Path, Path]:
    from ultralytics.models.yolo.model import YOLO

    from jupyter_yolo.datasets.synthetic_tasks import generate_task_dataset

    from .inference_models import TASK_TRAIN

    data = generate_task_dataset("detect", datasets / "detect", train=32, val=12, imgsz=64, seed=0)
    YOLO("yolov8n.yaml").train(
        data=str(data), project=str(workspace / "runs"), name="detect", exist_ok=True, **TASK_TRAIN
    )
    weights = workspace / "runs" / "detect" / "weights" / "last.pt"
    assert weights.is_file(), f"training detect left no {weights}"
    return weights, data


def _first_image(task: str, data: Path) -> Path:
    if task == "classify":
        return sorted((data / "val").rglob("*.*"))[0]
    return sorted((data.parent / "images" / "val").iterdir())[0]


def main(out: Path, workspace: Path, tasks: list[str]) -> None:
    """Train (or build) each task's model and pick its probe image; write the index to ``out``."""
    from jupyter_yolo.runner import offline
    from jupyter_yolo.runner.resources import usable_cpus

    offline.prepare(workspace, usable_cpus())
    import cv2

    from .inference_models import train_task_model

    datasets = workspace / "task-data"
    probes = workspace / "probes"
    probes.mkdir(parents=True, exist_ok=True)
    index: dict[str, dict[str, str]] = {}
    for task in tasks:
        if task == "detect":
            weights, data = _detect(workspace, datasets)
        else:
            weights, data = train_task_model(workspace, task, datasets)
        probe = probes / f"{task}.png"
        cv2.imwrite(str(probe), cv2.imread(str(_first_image(task, data)), cv2.IMREAD_COLOR))
        index[task] = {
            "weights": weights.relative_to(workspace).as_posix(),
            "image": probe.relative_to(workspace).as_posix(),
        }
        print(f"{task}: {index[task]}", flush=True)
    out.write_text(json.dumps(index), encoding="utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:])
