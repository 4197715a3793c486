"""Real tiny jobs of other tasks than detection, run through the REST API of a test server.

Each task gets a few-image dataset (``tests/task_data.py``) and a training from its ``*.yaml``
architecture at imgsz 64; the panels under test run their own predict jobs on its weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jupyter_yolo.client import YoloClient

from ..task_data import make_dataset

MODELS = {"segment": "yolov8n-seg.yaml", "pose": "yolov8n-pose.yaml"}


@dataclass
class TaskRun:
    """One task's finished training and prediction."""

    task: str
    train_id: str
    image: str
    """A validation image to predict on, workspace-relative."""


def run_task_jobs(
    client: YoloClient, workspace: Path, tasks: dict[str, int], *, timeout: float = 600
) -> dict[str, TaskRun]:
    """Train each task of ``tasks`` (task → epochs); fail on any failure.

    The trainings are queued together, so they run back to back (or side by side where the
    server allows).
    """
    started: dict[str, dict[str, Any]] = {}
    for task, epochs in tasks.items():
        data = make_dataset(task, workspace / "data" / task, train=8, val=4)
        started[task] = client.train(
            str(data.relative_to(workspace)),
            model=MODELS[task],
            epochs=epochs,
            imgsz=64,
            batch=4,
            device="cpu",
            workers=0,
            plots=False,
        )
    runs = {}
    for task, job in started.items():
        done = client.wait(job["id"], timeout=timeout)
        assert done["status"] == "succeeded", (task, done.get("error"))
        runs[task] = TaskRun(task, job["id"], f"data/{task}/images/val/000.png")
    return runs
