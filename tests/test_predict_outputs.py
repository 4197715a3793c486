"""Predict outputs: strict JSON whatever the model says, masks upscaled a few at a time, a
bounded predictions.json that stays a JSON list of ImagePrediction."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from jupyter_yolo.rle import decode
from jupyter_yolo.runner.predict import StoredPredictions

REPO_ROOT = Path(__file__).resolve().parent.parent


def results(**parts: Any) -> Any:
    import torch
    from ultralytics.engine.results import Results

    shape = parts.pop("shape", (48, 64))
    tensors = {k: torch.tensor(v, dtype=torch.float32) for k, v in parts.items()}
    return Results(np.zeros((*shape, 3), np.uint8), "x.jpg", {0: "a", 1: "b"}, **tensors)


def test_nan_keypoints_and_rotations_give_strict_json(tmp_path: Path) -> None:
    from jupyter_yolo.runner.outputs import image_prediction

    nan = float("nan")
    pose = results(
        boxes=[[1, 2, 30, 40, 0.9, 0]],
        keypoints=[[[5, 6, 0.9], [nan, 7, nan], [8, float("inf"), 0.2]]],
    )
    entry = image_prediction(pose, "pose", "x.jpg", run_dir=tmp_path, workspace=tmp_path, number_=1)
    json.dumps(entry, allow_nan=False)  # raised ValueError before: NaN confidence kept as NaN
    assert entry["detections"][0]["keypoints"] == [
        [5.0, 6.0, 0.9],
        [0.0, 7.0, 0.0],
        [8.0, 0.0, 0.2],
    ]
    obb = results(obb=[[20, 20, 10, 6, nan, 0.8, 1]])
    entry = image_prediction(obb, "obb", "x.jpg", run_dir=tmp_path, workspace=tmp_path, number_=1)
    json.dumps(entry, allow_nan=False)
    assert entry["detections"][0]["angle"] == 0.0


def test_segment_masks_match_a_single_upscale(tmp_path: Path) -> None:
    """Upscaling in chunks gives exactly the masks of one upscale of every instance."""
    import torch
    from ultralytics.utils import ops

    from jupyter_yolo.runner.outputs import MASK_CHUNK, image_prediction

    count = 2 * MASK_CHUNK + 1
    rng = np.random.default_rng(0)
    masks = np.zeros((count, 32, 32), np.float32)
    for i in range(count):
        y, x = rng.integers(0, 24, 2)
        masks[i, y : y + 8, x : x + 6] = 1
    boxes = [[1, 1, 20, 20, 0.9 - i / 100, i % 2] for i in range(count)]
    seg = results(boxes=boxes, masks=masks, shape=(60, 90))
    entry = image_prediction(
        seg, "segment", "x.jpg", run_dir=tmp_path, workspace=tmp_path, number_=1
    )
    whole = ops.scale_masks(torch.tensor(masks)[None], (60, 90))[0] > 0.5
    assert len(entry["detections"]) == count
    for det, expected in zip(entry["detections"], whole.numpy(), strict=True):
        assert np.array_equal(decode(det["mask"]), expected)
        assert len(det["polygon"]) >= 3


MEMORY_SCRIPT = """
import resource, sys
import numpy as np, torch
from pathlib import Path
from ultralytics.engine.results import Results
sys.path.insert(0, sys.argv[1])
from jupyter_yolo.runner.outputs import image_prediction
count, side = 60, 2048
masks = torch.zeros((count, 160, 160))
for i in range(count):
    masks[i, i : i + 40, 2 * i : 2 * i + 30] = 1
boxes = torch.tensor([[0, 0, 100, 100, 0.5, 0]] * count, dtype=torch.float32)
result = Results(np.zeros((side, side, 3), np.uint8), "x.jpg", {0: "a"}, boxes=boxes, masks=masks)
torch.zeros(1) + 1  # warm up torch's allocator and kernels before the baseline
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
tmp = Path(sys.argv[2])
entry = image_prediction(result, "segment", "x.jpg", run_dir=tmp, workspace=tmp, number_=1)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
assert sum(1 for d in entry["detections"] if "mask" in d) == count
print((after - before) // 1024)
"""


def test_masks_are_upscaled_a_few_at_a_time(tmp_path: Path) -> None:
    """60 masks of a 2048 x 2048 image: all at once needs ~1.5 GB (float, bool and numpy
    copies); a few at a time stays far under 500 MB."""
    done = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, str(REPO_ROOT), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    grown_mb = int(done.stdout.split()[-1])
    assert grown_mb < 500, f"peak memory grew by {grown_mb} MB while encoding 60 masks"


def entry(index: int, detections: int = 1) -> dict[str, Any]:
    det = {"cls": 0, "name": "a", "conf": 0.5, "box_xyxy": [0.0, 0.0, 1.0, 1.0]}
    return {
        "file": f"{index:04d}.jpg",
        "width": 4,
        "height": 4,
        "detections": [det] * detections,
        "task": "detect",
    }


def test_stored_predictions_keep_a_counted_prefix() -> None:
    stored = StoredPredictions("detect", max_images=10)
    for i in range(25):
        stored.add(entry(i, detections=i % 3))  # type: ignore[arg-type]
    kept = json.loads(stored.json_text())
    assert [k["file"] for k in kept] == [f"{i:04d}.jpg" for i in range(10)]
    assert stored.left_out == 15 and stored.tally.images == 25
    assert stored.tally.figures()["instances"] == sum(i % 3 for i in range(25))
    assert len(stored.per_image) == 10


def test_stored_predictions_keep_within_their_bytes() -> None:
    one = len(json.dumps(entry(0, detections=5)))
    stored = StoredPredictions("detect", max_bytes=3 * one + 10)
    stored.add(entry(0, detections=5))  # type: ignore[arg-type]
    stored.add(entry(1, detections=5))  # type: ignore[arg-type]
    stored.add(entry(2, detections=50))  # type: ignore[arg-type]  # over the budget: left out
    stored.add(entry(3, detections=0))  # type: ignore[arg-type]  # fits, but the file is a prefix
    assert [k["file"] for k in json.loads(stored.json_text())] == ["0000.jpg", "0001.jpg"]
    assert stored.left_out == 2
    empty = StoredPredictions("detect")
    assert json.loads(empty.json_text()) == []


@pytest.mark.parametrize("task", ["segment", "pose"])
def test_tally_matches_the_summary_of_a_list(task: str) -> None:
    from jupyter_yolo.runner.outputs import summary_figures

    images: list[Any] = [entry(i) for i in range(3)]
    images[1]["detections"] = [
        {**images[1]["detections"][0], "mask": {}, "keypoints": [[1, 1, 0.9]]}
    ]
    figures = summary_figures(task, images)
    assert figures["instances"] == 3
    assert figures.get("masks", figures.get("visible_keypoints")) == 1
