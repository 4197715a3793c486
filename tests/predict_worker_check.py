"""What tests/test_predict_worker.py needs ultralytics for, in a process of its own.

``python -m tests.predict_worker_check tasks OUT WORKSPACE DATASETS TASK...``: a tiny model per
task (tests/inference_models.py ``train_task_model``); writes ``{task: weights}`` to OUT.

``python -m tests.predict_worker_check outputs OUT RUN_DIR``: a semantic and a depth result
turned into entries by ``runner.outputs``, as a job writes them (a PNG file) and as a worker
answers them (inline base64); writes both entries of each task to OUT.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _prepare(workspace: Path) -> None:
    from jupyter_yolo.runner import offline
    from jupyter_yolo.runner.resources import usable_cpus

    offline.prepare(workspace, usable_cpus())
    import ultralytics  # noqa: F401 - after prepare()


def tasks(out: Path, workspace: Path, datasets: Path, names: list[str]) -> None:
    _prepare(workspace)
    from .inference_models import train_task_model

    made = {task: str(train_task_model(workspace, task, datasets)[0]) for task in names}
    out.write_text(json.dumps(made), encoding="utf-8")


def outputs(out: Path, run_dir: Path) -> None:
    _prepare(run_dir.parent)
    import numpy as np
    import torch
    from ultralytics.engine.results import Results

    from jupyter_yolo.runner.outputs import image_prediction, inline_prediction

    image = np.zeros((40, 60, 3), np.uint8)
    classes = torch.zeros((20, 30), dtype=torch.int64)
    classes[:, 15:] = 1
    made = {
        "semantic": Results(image, "s.jpg", {0: "sky", 1: "road"}, semantic_mask=classes),
        "depth": Results(image, "d.jpg", {0: "depth"}, depth=torch.full((20, 30), 2.5)),
    }
    entries = {}
    for task, result in made.items():
        entries[task] = {
            "file": image_prediction(
                result, task, f"{task}.jpg", run_dir=run_dir, workspace=run_dir.parent, number_=1
            ),
            "inline": inline_prediction(result, task, f"{task}.jpg"),
        }
    out.write_text(json.dumps(entries), encoding="utf-8")


def main(argv: list[str]) -> None:
    command, out = argv[0], Path(argv[1])
    if command == "tasks":
        tasks(out, Path(argv[2]), Path(argv[3]), argv[4:])
    elif command == "outputs":
        outputs(out, Path(argv[2]))
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main(sys.argv[1:])
