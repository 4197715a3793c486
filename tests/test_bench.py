"""The benchmark runner ``python -m bench``: arguments, sections, report; and one real quick run.

The fast tests use fake section modules (no server, no training). The ``benchmarks`` test runs
``python -m bench --quick`` for real (about 15 minutes on 2 CPU cores); it is not part of the
normal run (``scripts/test.sh`` passes ``-m "not benchmarks"``, and it skips itself unless the
marker expression asks for benchmarks): ``pytest -m benchmarks tests/test_bench.py``.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench import __main__ as bench_main
from bench.common import environ, percentile, summary, thread_env
from bench.live import jobs_to_saturate
from bench.report import REQUIRED_KEYS, build_document, flatten, format_table
from bench.training import TrainingConfig, _phases, chosen_command, cli_environment, summarise
from tests.conftest import REPO_ROOT

TRAINING_FIGURES = {
    "training": {
        "overhead_ratio": 1.012,
        "job_median_s": 25.3,
        "cli_median_s": 25.0,
        "pair_ratios": [1.01, 1.02, 1.012],
    },
}
LIVE_FIGURES = {
    "live": {"callback_to_rest_median_s": 0.12, "callback_to_rest_p95_s": 0.24},
    "rest": {"p99_ms_under_load": 9.5, "p50_ms_under_load": 3.0},
}
INFERENCE_FIGURES = {
    "choice": "openvino",
    "auto_over_best": 0.97,
    "auto_over_pytorch": 2.1,
    "images_per_s": {"pytorch": 10.0, "openvino": 30.0},
    "auto_images_per_s": 29.1,
    "pytorch_default_images_per_s": 13.9,
    "int8_images_per_s": 41.0,
}


def _module(name: str, result: Any = None, error: Exception | None = None) -> types.ModuleType:
    module = types.ModuleType(name)

    def run(*, quick: bool, workdir: Path, log: Any) -> Any:
        assert isinstance(quick, bool)
        assert workdir.is_dir()
        log(f"{name} running")
        if error is not None:
            raise error
        return result

    module.run = run  # type: ignore[attr-defined]
    return module


@pytest.fixture
def fake_sections(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Sections backed by fake modules: ok, crashing, missing, and a flat inference result."""
    modules = {
        "fake_bench_training": _module("fake_bench_training", TRAINING_FIGURES),
        "fake_bench_inference": _module("fake_bench_inference", INFERENCE_FIGURES),
        "fake_bench_live": _module("fake_bench_live", LIVE_FIGURES),
        "fake_bench_crash": _module("fake_bench_crash", error=RuntimeError("boom")),
    }
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    sections = (
        bench_main.Section("training", "fake_bench_training"),
        bench_main.Section("inference", "fake_bench_inference", group="inference"),
        bench_main.Section("live", "fake_bench_live"),
        bench_main.Section("footprint", "fake_bench_crash"),
    )
    monkeypatch.setattr(bench_main, "SECTIONS", sections)
    yield


def _quiet(_: str) -> None:
    pass


def test_parse_sections() -> None:
    assert bench_main.parse_sections("training, live") == ["training", "live"]
    assert bench_main.parse_sections("") == []
    with pytest.raises(argparse.ArgumentTypeError, match="unknown section"):
        bench_main.parse_sections("training,nope")


def test_only_and_skip_are_exclusive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        bench_main.build_parser().parse_args(["--only", "training", "--skip", "live"])
    assert info.value.code == 2
    assert "not allowed with" in capsys.readouterr().err


def test_selected_keeps_the_fixed_order() -> None:
    assert [s.name for s in bench_main.selected(["footprint", "training"], None)] == [
        "training",
        "footprint",
    ]
    assert [s.name for s in bench_main.selected(None, ["inference"])] == [
        "training",
        "live",
        "footprint",
        "eventloop",
        "serving",
        "ray",
        "first_predict",
        "scaling",
    ]


def test_flatten() -> None:
    assert flatten({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": {}, "f": None}) == {
        "a.b": 1,
        "a.c.d": [1, 2],
        "e": {},
        "f": None,
    }


def test_run_writes_json_and_table(
    fake_sections: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out" / "bench.json"
    code = bench_main.main(
        ["--quick", "--out", str(out), "--skip", "footprint", "--workdir", str(tmp_path / "work")],
        log=_quiet,
    )
    assert code == 0
    data = json.loads(out.read_text())
    for key in REQUIRED_KEYS:
        assert key in data
    assert data["training.overhead_ratio"] == 1.012
    assert data["inference.choice"] == "openvino"
    assert data["inference.images_per_s.openvino"] == 30.0
    assert data["live.callback_to_rest_p95_s"] == 0.24
    assert data["rest.p99_ms_under_load"] == 9.5
    assert data["server.startup_delta_s"] is None  # footprint skipped
    assert set(data["sections"]) == {"training", "inference", "live"}
    assert all(s["status"] == "ok" for s in data["sections"].values())
    assert data["sections"]["training"]["duration_s"] >= 0
    assert data["run"]["quick"] is True and data["run"]["finished"] is True
    assert data["machine"]["cpus_usable"] >= 1
    targets = {t["key"]: t["pass"] for t in data["targets"]}
    assert targets == {
        "training.speedup_over_cli": None,  # the fake section has no such figure
        "training.map50_diff_points": None,
        "training.overhead_ratio": True,
        "inference.auto_over_best": True,
        "inference.auto_over_pytorch": False,
        "live.callback_to_rest_p95_s": False,
        "eventloop.rest_p99_ms": None,
        "serving.rest_over_compute_p50": None,
        "serving.folder_over_cli": None,
        "serving.concurrent_errors": None,
        "predict.first_after_train_s": None,
        "scaling.registry.list_limited_p50_ratio_1000_over_10": None,
        "scaling.registry.events_p50_ratio_1000_over_10": None,
        "scaling.registry.events_tail_ratio_100k_over_100": None,
    }
    table = capsys.readouterr().out
    assert "training.overhead_ratio" in table and "PASS" in table and "FAIL" in table
    assert "inference.images_per_s.openvino" in table


def test_crash_and_missing_sections(
    fake_sections: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sections = (
        *bench_main.SECTIONS[:3],
        bench_main.Section("footprint", "fake_bench_crash"),
        bench_main.Section("extra", "fake_bench_not_there"),
    )
    monkeypatch.setattr(bench_main, "SECTIONS", sections)
    monkeypatch.setattr(bench_main, "SECTION_NAMES", tuple(s.name for s in sections))
    out = tmp_path / "bench.json"
    code = bench_main.main(["--out", str(out), "--only", "training,footprint,extra"], log=_quiet)
    assert code == 1  # the crash makes the run fail, the missing section does not
    data = json.loads(out.read_text())
    assert data["training.overhead_ratio"] == 1.012  # measured before the crash: still written
    assert data["sections"]["footprint"]["status"] == "failed"
    assert "RuntimeError: boom" in data["sections"]["footprint"]["error"]
    assert data["sections"]["extra"]["status"] == "missing"
    assert "fake_bench_not_there.py does not exist" in data["sections"]["extra"]["reason"]


def test_missing_section_alone_is_not_a_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        bench_main,
        "SECTIONS",
        (bench_main.Section("inference", "fake_bench_inference_absent", group="inference"),),
    )
    monkeypatch.setattr(bench_main, "SECTION_NAMES", ("inference",))
    out = tmp_path / "bench.json"
    assert bench_main.main(["--out", str(out)], log=_quiet) == 0
    data = json.loads(out.read_text())
    assert data["sections"]["inference"]["status"] == "missing"
    assert data["inference.choice"] is None


def test_document_is_strict_json() -> None:
    document = build_document(
        {"training.overhead_ratio": math.nan, "x.list": [1.0, math.inf]},
        sections={},
        machine={},
        run={},
    )
    text = json.dumps(document, allow_nan=False)
    assert json.loads(text)["training.overhead_ratio"] is None
    assert "n/a" in format_table(document)


def test_statistics() -> None:
    assert percentile([1, 2, 3, 4, 5], 50) == 3
    assert percentile([1, 2], 50) == 1.5
    assert percentile([10], 99) == 10
    assert math.isnan(percentile([], 50))
    stats = summary([0.1, 0.2, 0.3], scale=1000)
    assert stats["median"] == 200 and stats["count"] == 3 and stats["max"] == 300


def test_training_summary_compares_the_job_with_both_clis() -> None:
    phases = _phases(100.0, {"train_start": 105.0, "train_done": 120.0}, 121.0, 122.0)
    assert phases == {"startup_s": 5.0, "training_s": 15.0, "final_s": 1.0, "exit_s": 1.0}
    jobs = [
        {"wall_s": w, "event_wall_s": w - 1, "runner_s": w - 2, "phases": phases, "mAP50": m}
        for w, m in ((21.0, 0.95), (20.0, 0.96), (22.0, 0.97))
    ]
    clis = [{"wall_s": w, "phases": phases, "mAP50": 0.95} for w in (30.0, 29.0, 31.0)]
    chosen = [{"wall_s": w, "phases": phases, "mAP50": 0.96} for w in (20.0, 20.5, 19.5)]
    speed = {"choices": [{"name": "threads", "value": 2}], "device": "cpu", "facts": ""}
    cfg = TrainingConfig(epochs=5, repeats=3, train_images=96)
    result = summarise(cfg, {"job": jobs, "cli": clis, "cli_chosen": chosen}, speed)
    assert result["speedup_over_cli"] == 1.4286  # 30 s / 21 s
    assert result["map50_diff_points"] == 1.0  # medians 0.96 and 0.95
    assert result["images_per_s_job"] == 32.0  # 96 images x 5 epochs in 15 s
    assert result["overhead_ratio"] == 1.05
    assert result["overhead_ratio_events"] == 1.0
    assert result["overhead_ratio_work"] == 1.0526  # 20 s to the terminal event / (20 - 1) s
    assert result["choices"] == speed


def test_the_plain_cli_gets_no_thread_settings(tmp_path: Path) -> None:
    with environ({"OMP_NUM_THREADS": "4", "MKL_NUM_THREADS": "3"}):
        plain = cli_environment(tmp_path, {})
        threads = thread_env(2)
        env = cli_environment(tmp_path, threads)
    assert not {"OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"} & set(plain)
    assert plain["YOLO_OFFLINE"] == "1"
    assert plain["YOLO_CONFIG_DIR"] == str(tmp_path / ".ultralytics")
    assert env["OMP_NUM_THREADS"] == "4" and env["MKL_NUM_THREADS"] == "3"


def test_the_chosen_cli_gets_the_jobs_choices() -> None:
    speed = {
        "choices": [
            {"name": "threads", "value": 2},
            {"name": "interop_threads", "value": 1},
            {"name": "workers", "value": 0},
            {"name": "cache", "value": "ram"},
            {"name": "channels_last", "value": True},
        ]
    }
    command, extra = chosen_command(speed)
    assert command[1:] == [
        "-m",
        "bench.cli_chosen",
        "--threads=2",
        "--interop-threads=1",
        "--channels-last",
        "--",
    ]
    assert extra == {"workers": 0, "cache": "ram"}
    # what the shim parses: its own options, and the yolo arguments after "--"
    from bench.cli_chosen import parse

    own, rest = parse([*command[3:], "train", "model=yolov8n.yaml", "epochs=1"])
    assert (own.threads, own.interop_threads, own.channels_last) == (2, 1, True)
    assert rest == ["train", "model=yolov8n.yaml", "epochs=1"]


def test_one_job_saturates_the_cpus_it_plans_threads_for() -> None:
    assert jobs_to_saturate(2) == 1  # a job computes on every usable CPU
    assert jobs_to_saturate(4, threads=4) == 1
    assert jobs_to_saturate(4, threads=2) == 2  # OMP_NUM_THREADS=2 in the environment
    assert jobs_to_saturate(1, threads=1) == 1


def test_list_sections_from_the_command_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--list"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.split()[::2] == [
        "training",
        "inference",
        "live",
        "footprint",
        "eventloop",
        "serving",
        "ray",
        "first_predict",
        "scaling",
    ]


@pytest.mark.benchmarks
@pytest.mark.timeout(1800)
def test_quick_benchmark_run(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """``python -m bench --quick`` for real: every section runs and the report has its keys."""
    if "benchmarks" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("a real benchmark run: select it with -m benchmarks")
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=1700,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-5000:]
    data = json.loads(out.read_text())
    assert data["run"]["finished"] is True
    assert data["run"]["duration_s"] < 15 * 60 * 1.5, "quick mode should take about 15 minutes"
    for key in REQUIRED_KEYS:
        assert key in data, key
    for key in REQUIRED_KEYS:
        section = {
            "inference": "inference",
            "training": "training",
            "live": "live",
            "rest": "live",
            "server": "footprint",
            "serving": "serving",
        }[key.split(".")[0]]
        if data["sections"][section]["status"] == "ok":
            assert data[key] is not None, key
    assert all(s["status"] in ("ok", "missing") for s in data["sections"].values())
    assert "training.overhead_ratio" in done.stdout


#: What the serving section must measure in every mode (null would mean a path was skipped).
SERVING_KEYS = (
    "backend",
    "rest_p50_ms",
    "rest_p99_ms",
    "worker_inference_p50_ms",
    "worker_compute_p50_ms",
    "rest_over_inference_p50",
    "rest_over_compute_p50",
    "worker_start_ms",
    "job_one_image_s",
    "job_over_rest",
    "folder_job_images_per_s",
    "folder_job_fps",
    "folder_latency_mode_images_per_s",
    "folder_cli_images_per_s",
    "folder_over_cli",
    "folder_over_latency_mode",
    "video_fps",
    "video_frames_per_s_end_to_end",
    "concurrent_p99_ms",
    "raw_fps",
    "folder_over_raw",
    "folder_end_to_end_over_raw",
)


def test_serving_targets_are_reported() -> None:
    figures = {
        "serving.rest_over_compute_p50": 1.4,
        "serving.folder_over_cli": 2.6,
        "serving.concurrent_errors": 0,
    }
    document = build_document(figures, sections={}, machine={}, run={})
    passed = {t["key"]: t["pass"] for t in document["targets"] if t["key"].startswith("serving")}
    assert passed == {
        "serving.rest_over_compute_p50": False,
        "serving.folder_over_cli": True,
        "serving.concurrent_errors": True,
    }
    table = format_table(document)
    assert "serving.folder_over_cli" in table and "<= 1.25" in table


def test_serving_inputs_are_640_jpegs_and_an_h264_video(tmp_path: Path) -> None:
    import av
    from PIL import Image

    from bench.media import make_images, make_video
    from bench.serving import ServingConfig

    images = make_images(tmp_path / "folder", 2)
    assert [Image.open(p).size for p in images] == [(640, 640), (640, 640)]
    assert make_images(tmp_path / "folder", 2) == images  # kept, not drawn again
    video = make_video(tmp_path / "clip.mp4", 12)
    assert not list(tmp_path.glob(".*partial*")), "written then renamed"
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    assert len(frames) == 12 and frames[0].shape == (480, 640, 3)
    assert (frames[0] != frames[-1]).any(), "the shapes move"
    quick, full = ServingConfig.for_mode(True), ServingConfig.for_mode(False)
    assert full.folder_images == 200 and full.backend == "auto"
    assert quick.requests < full.requests and quick.video_frames < full.video_frames


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_serving_section_quick(tmp_path: Path) -> None:
    """``python -m bench --quick --only serving`` for real: every measurement path gives a figure.

    A real server, warm worker, predict jobs on a folder and a generated video, plain
    ``yolo predict``, 20 concurrent clients and OpenVINO's raw limit, on small inputs; the targets
    are reported, not asserted (they are figures of the machine, not of correctness).
    """
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--quick",
            "--only",
            "serving",
            "--out",
            str(out),
            "--workdir",
            str(tmp_path / "work"),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=850,
        check=False,
    )
    data = json.loads(out.read_text())
    section = data["sections"]["serving"]
    assert done.returncode == 0 and section["status"] == "ok", (
        section.get("traceback") or done.stderr[-5000:]
    )
    for key in SERVING_KEYS:
        assert data[f"serving.{key}"] is not None, key
    assert data["serving.concurrent_errors"] == 0, data["serving.concurrent.error_examples"]
    assert data["serving.concurrent.requests"] == 40
    assert data["serving.requests"] == 12
    assert data["serving.video_frames"] == 20
    assert data["serving.folder_images"] == 8
    assert data["serving.backend"].startswith("openvino")
    assert data["serving.raw.infer_requests"] >= 1
    targets = {t["key"]: t["pass"] for t in data["targets"]}
    assert targets["serving.folder_over_cli"] is not None
    assert targets["serving.rest_over_compute_p50"] is not None
    assert "serving.rest_p50_ms" in done.stdout
