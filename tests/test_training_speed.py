"""The training speed plan: what a job chooses from the container's facts, and why."""

from __future__ import annotations

from pathlib import Path

import pytest

from jupyter_yolo.contract.training_defaults import hardware_defaults
from jupyter_yolo.contract.training_speed import (
    DatasetSize,
    SpeedFacts,
    SpeedPlan,
    choice_value,
    plan_training_speed,
)
from jupyter_yolo.datasets.synthetic import generate_shapes
from jupyter_yolo.runner.speed import describe_plan, training_set_size

GIB = 1 << 30
SMALL = DatasetSize(images=96, bytes_per_image=128 * 128 * 3)


def by_name(plan: SpeedPlan) -> dict[str, dict[str, object]]:
    return {c["name"]: dict(c) for c in plan["choices"]}


def test_two_cpus_use_both_cores_cache_in_ram_and_channels_last() -> None:
    plan = plan_training_speed(SpeedFacts("cpu", 2, 16 * GIB), {}, SMALL)
    choices = by_name(plan)
    assert {c["source"] for c in choices.values()} == {"chosen"}
    assert choice_value(plan, "threads") == 2  # ultralytics would use 1
    assert "ultralytics would use 1" in str(choices["threads"]["reason"])
    assert choice_value(plan, "workers") == 0
    assert choice_value(plan, "interop_threads") == 1
    assert choice_value(plan, "omp_wait_policy") == "PASSIVE"
    assert choice_value(plan, "cache") == "ram"
    assert choice_value(plan, "channels_last") is True
    assert all(c["reason"] for c in choices.values())
    assert "2 usable CPU(s)" in plan["facts"] and "96 images" in plan["facts"]
    assert "take 4.5 MiB" in str(by_name(plan)["cache"]["reason"])  # 96 x 128 x 128 x 3 bytes


def test_what_the_request_and_the_environment_set_is_kept() -> None:
    facts = SpeedFacts("cpu", 4, 16 * GIB, env_threads=3, env_wait_policy="ACTIVE")
    plan = plan_training_speed(facts, {"workers": 2, "cache": False}, SMALL)
    choices = by_name(plan)
    assert choices["workers"] == {**choices["workers"], "value": 2, "source": "request"}
    assert "kept for CPU training" in str(choices["workers"]["reason"])
    assert choices["cache"]["value"] is False and choices["cache"]["source"] == "request"
    assert choices["threads"]["value"] == 3 and choices["threads"]["source"] == "environment"
    assert choices["omp_wait_policy"]["value"] == "ACTIVE"
    # requested CPU workers take their CPUs from torch
    plan = plan_training_speed(SpeedFacts("cpu", 4, 16 * GIB), {"workers": 1}, SMALL)
    assert choice_value(plan, "threads") == 3


def test_the_ram_cache_needs_a_quarter_of_the_free_memory() -> None:
    images = DatasetSize(images=10_000, bytes_per_image=640 * 640 * 3)  # ~11.4 GiB decoded
    big = by_name(plan_training_speed(SpeedFacts("cpu", 8, 32 * GIB), {}, images))["cache"]
    assert big["value"] is False and "more than a quarter" in str(big["reason"])
    fits = by_name(plan_training_speed(SpeedFacts("cpu", 8, 64 * GIB), {}, images))["cache"]
    assert fits["value"] == "ram"
    # each of 4 DDP ranks caches its own copy
    ddp = SpeedFacts("cuda", 32, 64 * GIB, devices=4)
    four = by_name(plan_training_speed(ddp, {}, images))["cache"]
    assert four["value"] is False and "4 training processes" in str(four["reason"])
    unknown = by_name(plan_training_speed(SpeedFacts("cpu", 8, None), {}, images))["cache"]
    assert unknown["value"] is False and "unknown" in str(unknown["reason"])


def test_accelerators_feed_the_device_with_workers_and_keep_few_threads() -> None:
    plan = plan_training_speed(SpeedFacts("cuda", 16, 64 * GIB, devices=2), {}, SMALL)
    assert choice_value(plan, "workers") == 7  # 16 CPUs / 2 devices - 1
    assert choice_value(plan, "threads") == 2  # what the 14 workers leave
    assert choice_value(plan, "channels_last") is False
    many = plan_training_speed(SpeedFacts("cuda", 64, 256 * GIB, devices=1), {}, SMALL)
    assert choice_value(many, "workers") == 8 and choice_value(many, "threads") == 4


@pytest.mark.parametrize("cpus", [1, 2, 4, 8, 12, 16, 64])
@pytest.mark.parametrize("kind", ["cpu", "cuda"])
def test_the_report_and_the_job_choose_the_same_workers(kind: str, cpus: int) -> None:
    devices = 0 if kind == "cpu" else 1
    hardware = hardware_defaults(
        {
            "kind": kind,
            "cpus": cpus,
            "memory_bytes": 512 * GIB,
            "devices": devices,
            "device_memory_bytes": 80 * GIB if devices else None,
            "jetson": False,
        }
    )
    plan = plan_training_speed(SpeedFacts(kind, cpus, 256 * GIB, devices=devices), {}, SMALL)
    assert choice_value(plan, "workers") == hardware["workers"]
    threads = choice_value(plan, "threads")
    assert isinstance(threads, int) and 1 <= threads <= cpus


def test_the_training_set_is_counted_from_its_data_yaml(tmp_path: Path) -> None:
    data = generate_shapes(tmp_path / "shapes", train=12, val=4, imgsz=96, seed=0)
    size = training_set_size(str(data), 64)
    assert size is not None and size.images == 16  # ultralytics caches both splits
    assert size.bytes_per_image == 64 * 64 * 3  # square images resized to the long side
    assert training_set_size(str(tmp_path / "missing.yaml"), 64) is None


def test_the_log_names_every_choice_with_its_source() -> None:
    plan = plan_training_speed(SpeedFacts("cpu", 2, 16 * GIB), {"workers": 0}, SMALL)
    lines = describe_plan(plan)
    assert len(lines) == len(plan["choices"])
    assert "speed: workers=0 (request: set by the request" in lines[0]


def test_a_scan_past_its_bound_counts_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import jupyter_yolo.runner.speed as speed

    data = generate_shapes(tmp_path / "shapes", train=12, val=4, imgsz=96, seed=0)
    for i in range(30):
        (tmp_path / "shapes" / "images" / "train" / f"empty{i}").mkdir()
    monkeypatch.setattr(speed, "MAX_FILES_SCANNED", 20)  # directories count too
    assert training_set_size(str(data), 64) is None


def test_the_training_panel_folds_the_choices_with_their_reasons() -> None:
    from jupyter_yolo.widgets.history import TrainingHistory
    from jupyter_yolo.widgets.training_status import status_html

    plan = plan_training_speed(SpeedFacts("cpu", 2, 16 * GIB), {}, SMALL)
    history = TrainingHistory()
    history.consume(
        [
            {"seq": 1, "time": 1.0, "type": "status", "status": "running"},
            {"seq": 2, "time": 2.0, "type": "log", "message": "speed choices", "speed": plan},
            {"seq": 3, "time": 3.0, "type": "log", "message": "Starting training"},
        ]
    )
    html = status_html(history, "abc", "running", None)
    assert "speed choices: workers 0 \u00b7 threads 2" in html
    assert "ultralytics would use 1" in html and "<details" in html
    assert history.last_log == "Starting training"  # a later log line does not hide them


def test_a_job_whose_images_cannot_be_counted_does_not_cache() -> None:
    job = by_name(plan_training_speed(SpeedFacts("cpu", 2, 16 * GIB), {}, None))["cache"]
    assert job["value"] is False and "could not be counted" in str(job["reason"])
    report = plan_training_speed(SpeedFacts("cpu", 2, 16 * GIB), {}, None, per_job=False)
    assert choice_value(report, "cache") == "ram"
    assert "per job" in by_name(report)["cache"]["reason"]
