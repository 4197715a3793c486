"""The pure parts of the inference backends: the table, agreement, the cache, thread settings."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from jupyter_yolo.contract.files import write_json_atomic
from jupyter_yolo.inference import backends as table
from jupyter_yolo.inference.agreement import TOLERANCES, Tolerance, choose_threshold, compare, iou
from jupyter_yolo.inference.cache import (
    WeightsCache,
    device_key,
    export_key,
    stored_choices,
    weights_digest,
)
from jupyter_yolo.inference.threads import settings_for


def det(cls: int, conf: float, box: list[float]) -> dict[str, object]:
    return {"cls": cls, "conf": conf, "box_xyxy": box}


FP32 = TOLERANCES["fp32"]


# ------------------------------------------------------------------------------- agreement


def test_identical_detections_agree() -> None:
    images = [[det(0, 0.9, [0, 0, 10, 10]), det(1, 0.5, [20, 20, 40, 40])], []]
    result = compare(images, images, FP32, min_boxes=1)
    assert result["agree"] is True and result["compared_boxes"] == 4
    assert result["recall"] == result["precision"] == 1.0
    assert result["max_score_delta"] == 0.0 and result["median_iou"] == 1.0


def test_near_threshold_boxes_agree_across_the_threshold() -> None:
    # 0.26 on one side and 0.245 on the other: the same box, not a missing one
    reference = [[det(0, 0.26, [0, 0, 10, 10]), det(0, 0.9, [50, 50, 60, 60])]]
    candidate = [[det(0, 0.245, [0, 0, 10, 10]), det(0, 0.9, [50, 50, 60, 60])]]
    result = compare(reference, candidate, FP32, threshold=0.25, min_boxes=1)
    assert result["agree"] is True
    assert result["reference_boxes"] == 2 and result["candidate_boxes"] == 1


def test_moved_relabelled_or_rescored_boxes_disagree() -> None:
    reference = [[det(0, 0.9, [0, 0, 10, 10])] * 1 + [det(1, 0.8, [30, 30, 50, 50])]]
    moved = [[det(0, 0.9, [4, 4, 14, 14]), det(1, 0.8, [30, 30, 50, 50])]]
    relabelled = [[det(2, 0.9, [0, 0, 10, 10]), det(1, 0.8, [30, 30, 50, 50])]]
    rescored = [[det(0, 0.7, [0, 0, 10, 10]), det(1, 0.8, [30, 30, 50, 50])]]
    for candidate in (moved, relabelled, rescored):
        result = compare(reference, candidate, FP32, min_boxes=1)
        assert result["agree"] is False and result["recall"] == 0.5, result
    loose = Tolerance(iou=0.3, score=0.25, share=0.5)
    assert compare(reference, moved, loose, min_boxes=1)["agree"] is True
    assert compare(reference, rescored, loose, min_boxes=1)["agree"] is True


def test_extra_confident_candidate_boxes_count_against_it() -> None:
    reference = [[det(0, 0.9, [0, 0, 10, 10])]]
    candidate = [[det(0, 0.9, [0, 0, 10, 10]), det(0, 0.8, [60, 60, 90, 90])]]
    result = compare(reference, candidate, FP32, min_boxes=1)
    assert result["recall"] == 1.0 and result["precision"] == 0.5 and result["agree"] is False


def test_matching_is_one_to_one() -> None:
    reference = [[det(0, 0.9, [0, 0, 10, 10]), det(0, 0.89, [0, 0, 10, 10.5])]]
    candidate = [[det(0, 0.9, [0, 0, 10, 10])]]
    assert compare(reference, candidate, FP32, min_boxes=1)["recall"] == 0.5


def test_threshold_is_lowered_for_weak_models_but_not_below_the_floor() -> None:
    weak = [[det(0, s, [0, 0, 10, 10]) for s in (0.2, 0.1, 0.05, 0.02)]]
    assert choose_threshold(weak, FP32, threshold=0.25, floor=0.005, min_boxes=3) == 0.05
    assert choose_threshold(weak, FP32, threshold=0.25, floor=0.005, min_boxes=10) == 0.025
    strong = [[det(0, 0.9, [0, 0, 10, 10])] * 12]
    assert choose_threshold(strong, FP32, threshold=0.25, floor=0.005, min_boxes=10) == 0.25
    assert compare([[]], [[]], FP32)["agree"] is None  # nothing to compare: no verdict
    few = compare(weak, weak, TOLERANCES["int8"], floor=0.005, min_compared=10)
    assert few["agree"] is None and "only 2 box(es) to compare" in few["note"]


def test_iou() -> None:
    assert iou([0, 0, 10, 10], [0, 0, 10, 10]) == 1.0
    assert iou([0, 0, 10, 10], [5, 0, 15, 10]) == pytest.approx(1 / 3)
    assert iou([0, 0, 1, 1], [2, 2, 3, 3]) == 0.0


# ------------------------------------------------------------------------------- backends


def test_backend_table_and_availability() -> None:
    assert table.BACKEND_CHOICES[0] == "auto"
    assert set(table.BACKEND_NAMES) == {
        "pytorch",
        "onnxruntime",
        "openvino",
        "openvino-int8",
        "tensorrt",
    }
    everything = {name: True for b in table.BACKENDS for name in b.modules}
    states = {a.name: a for a in table.all_availability(cuda=False, has_module=everything.get)}
    assert states["openvino"].available and states["openvino-int8"].available
    assert not states["tensorrt"].available and "CUDA" in str(states["tensorrt"].reason)

    on_gpu = {
        a.name: a for a in table.all_availability(cuda=True, device="0", has_module=everything.get)
    }
    assert on_gpu["tensorrt"].available
    cpu_job = table.availability(
        table.get("tensorrt"), cuda=True, device="cpu", has_module=everything.get
    )
    assert not cpu_job.available and "'cpu'" in str(cpu_job.reason)

    no_ov = table.availability(
        table.get("openvino"), cuda=False, has_module=lambda name: name != "openvino"
    )
    assert not no_ov.available and "openvino" in str(no_ov.reason)


def test_refusals_name_the_alternatives() -> None:
    assert table.refusal("auto", cuda=False) is None
    assert table.refusal("pytorch", cuda=False) is None
    message = table.refusal("tensorrt", cuda=False)
    assert message is not None and "CUDA" in message and "Available here: auto, pytorch" in message
    assert "unknown backend" in str(table.refusal("coreml", cuda=False))


def test_backend_of_exported_models() -> None:
    assert table.backend_of_model("runs/best.onnx") == "onnxruntime"
    assert table.backend_of_model("w/best_openvino_model") == "openvino"
    assert table.backend_of_model("w/best_int8_openvino_model/") == "openvino-int8"
    assert table.backend_of_model("best.engine") == "tensorrt"
    assert table.backend_of_model("best.pt") is None


def test_backends_module_imports_nothing_heavy() -> None:
    code = (
        "import sys, jupyter_yolo.inference.backends, jupyter_yolo.inference.cache, "
        "jupyter_yolo.inference.agreement, jupyter_yolo.inference.threads, "
        "jupyter_yolo.jobs.schema\n"
        "print(sorted(m for m in ('torch', 'ultralytics', 'openvino', 'onnxruntime') "
        "if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "[]"


# ------------------------------------------------------------------------------- cache


def test_export_keys_and_digests(tmp_path: Path) -> None:
    assert export_key(table.get("onnxruntime"), 640) == "onnx-640-fp32-b1"
    assert export_key(table.get("openvino"), 320) == "openvino-320-fp32-b1"
    assert (
        export_key(table.get("openvino-int8"), 640, "abcd1234") == "openvino-640-int8-b1-abcd1234"
    )
    with pytest.raises(ValueError, match="calibration"):
        export_key(table.get("openvino-int8"), 640)
    assert device_key("cuda:0") == "cuda0" and device_key("cpu") == "cpu"

    a = tmp_path / "a.pt"
    a.write_bytes(b"weights")
    b = tmp_path / "b.pt"
    b.write_bytes(b"weights")
    assert weights_digest(a) == weights_digest(b) and len(weights_digest(a)) == 16
    time.sleep(0.01)
    b.write_bytes(b"retrained")
    assert weights_digest(a) != weights_digest(b)


def test_lock_is_exclusive_between_threads(tmp_path: Path) -> None:
    """The holder keeps the lock until it lets go; the others wait, are told so, then go one at a
    time. Contention is made with events, not sleeps, so no schedule can avoid it."""
    cache = WeightsCache(tmp_path / ".exports", "0123456789abcdef")
    inside: list[int] = []
    overlaps: list[int] = []
    order: list[int] = []
    waiting = threading.Semaphore(0)
    entered = threading.Event()
    release = threading.Event()

    def work(index: int) -> None:
        with cache.lock("onnx-640-fp32-b1", on_wait=waiting.release):
            if inside:
                overlaps.append(index)
            inside.append(index)
            order.append(index)
            if index == 0:
                entered.set()
                release.wait(120)
            inside.remove(index)

    holder = threading.Thread(target=work, args=(0,))
    holder.start()
    assert entered.wait(120)
    others = [threading.Thread(target=work, args=(i,)) for i in (1, 2)]
    for thread in others:
        thread.start()
    for _ in others:  # both found the lock taken and said so
        assert waiting.acquire(timeout=120)
    assert order == [0], "nobody got in while the holder had the lock"
    release.set()
    for thread in [holder, *others]:
        thread.join(120)
    assert overlaps == [] and sorted(order) == [0, 1, 2] and order[0] == 0


def test_lock_wait_can_be_interrupted(tmp_path: Path) -> None:
    cache = WeightsCache(tmp_path / ".exports", "0123456789abcdef")

    class Stop(Exception):
        pass

    def stop() -> None:
        raise Stop

    with cache.lock("k"), pytest.raises(Stop):  # noqa: SIM117 - the order matters
        with cache.lock("k", check=stop):
            pass


def test_publish_is_atomic_and_stored_choices_are_listed(tmp_path: Path) -> None:
    cache = WeightsCache(tmp_path / ".exports", "0123456789abcdef")
    scratch = cache.scratch("onnx-64-fp32-b1")
    (scratch / "model.onnx").write_bytes(b"onnx")
    assert cache.complete("onnx-64-fp32-b1") is None
    final = cache.publish(scratch, "onnx-64-fp32-b1", {"seconds": 1.0})
    assert (final / "model.onnx").read_bytes() == b"onnx" and not scratch.exists()
    assert cache.complete("onnx-64-fp32-b1") == {"seconds": 1.0}
    leftover = cache.folder / ".tmp-onnx-64-fp32-b1-dead"
    leftover.mkdir()
    cache.scratch("onnx-64-fp32-b1")
    assert not leftover.exists()  # a killed export's scratch is cleared

    write_json_atomic(
        cache.choice_file(640, "cpu"),
        {
            "choice": "openvino",
            "measured_at": 1.0,
            "latency_ms": {"openvino": 20.0},
            "environment": {"imgsz": 640, "device": "cpu"},
        },
    )
    (cache.folder / "auto-320-cpu.json").write_text("not json")
    assert cache.choice_file(640, "cpu", "detect").name == "auto-640-cpu.json"
    assert cache.choice_file(64, "cuda:0", "pose").name == "auto-pose-64-cuda0.json"
    listed = stored_choices(cache.root, cache.digest)
    assert listed == [
        {
            "choice": "openvino",
            "task": "detect",
            "imgsz": 640,
            "device": "cpu",
            "latency_ms": {"openvino": 20.0},
            "measured_at": 1.0,
        }
    ]
    assert json.loads(cache.choice_file(640, "cpu").read_text())["choice"] == "openvino"
    assert stored_choices(cache.root, "missing") == []


def test_thread_settings_follow_the_usable_cpus() -> None:
    two = settings_for(2)
    assert (two.torch_threads, two.ort_intra_op_threads, two.openvino_threads) == (2, 2, 2)
    assert two.ort_inter_op_threads == 1 and two.ort_allow_spinning is False
    assert two.openvino_config() == {
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_NUM_THREADS": 2,
        "NUM_STREAMS": 1,
    }
    assert settings_for(0).cpus == 1
