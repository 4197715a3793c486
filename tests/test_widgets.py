"""The panels' pieces: decimation, the folded training history, the throttle, the HTML views,
and the panels built against a real jupyter server (no training here; see test_widget_attach,
test_notebooks and the browser tests for live runs)."""

from __future__ import annotations

import itertools
import json
import math
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from jupyter_yolo.accelerators.report import build_report
from jupyter_yolo.client import YoloClient
from jupyter_yolo.widgets.accelerators import AcceleratorsPanel, report_html, usage_html
from jupyter_yolo.widgets.common import Throttle, fmt_seconds
from jupyter_yolo.widgets.dashboard import Dashboard
from jupyter_yolo.widgets.datasets import DatasetsPanel, dataset_name_for
from jupyter_yolo.widgets.detection import DetectionPanel, backend_html, box_traces
from jupyter_yolo.widgets.history import TrainingHistory, decimate
from jupyter_yolo.widgets.training import BATCH_TRACES, TrainingPanel

from .conftest import install_dataset
from .inference_models import trained_model
from .server_process import ServerProcess, serving

FIXTURES = Path(__file__).parent / "fixtures" / "accelerators"


def batch_event(
    seq: int, epoch: int, batch: int, batches: int = 4, box: float = 1.0, time_: float = 0.0
) -> dict[str, Any]:
    return {
        "seq": seq,
        "type": "batch",
        "epoch": epoch,
        "batch": batch,
        "batches": batches,
        "loss": {"box": box, "cls": 2.0, "dfl": 3.0},
        "time": time_,
        "images_per_s": 10.0,
    }


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met")


# ------------------------------------------------------------------------------- pure parts


def test_decimate_keeps_short_curves_and_bounds_long_ones() -> None:
    x = np.arange(100.0)
    y = np.sin(x)
    same_x, same_y = decimate(x, y, 2000)
    assert same_x is x and same_y is y

    n = 123_457
    x = np.arange(float(n))
    y = np.random.default_rng(0).random(n)
    y[5000] = 50.0  # a spike must survive
    y[7000] = -50.0
    y[9000] = math.nan
    dx, dy = decimate(x, y, 2000)
    assert len(dx) <= 2000
    assert np.nanmax(dy) == 50.0 and np.nanmin(dy) == -50.0
    assert dx[-1] == x[-1]
    assert np.all(np.diff(dx) > 0)


def test_history_folds_events_and_replaces_an_epoch_done_again() -> None:
    history = TrainingHistory(epochs_hint=3)
    events = [{"seq": 1, "type": "status", "status": "running"}]
    events += [batch_event(1 + b, 1, b, box=float(b), time_=100.0 + b) for b in range(1, 5)]
    events.append(
        {
            "seq": 6,
            "type": "epoch",
            "epoch": 1,
            "epochs": 3,
            "epoch_time": 4.0,
            "loss": {"box": 2.5},
            "val_loss": {"box": 2.0},
            "mAP50": 0.1,
        }
    )
    events += [batch_event(6 + b, 2, b, box=9.0) for b in range(1, 3)]
    events.append({"seq": 9, "type": "warning", "code": "non_finite_loss", "message": "NaN"})
    events.append({"seq": 10, "type": "warning", "code": "non_finite_loss", "message": "NaN"})
    events.append({"seq": 11, "type": "status", "status": "stopped"})
    assert history.consume(events)
    assert history.batch_points == 6
    assert not history.consume(events)  # nothing new: seqs already seen
    assert len(history.warnings) == 1

    # resumed: epoch 2 is done again from its first batch; its old points are replaced
    resumed = [{"seq": 12, "type": "status", "status": "running"}]
    resumed += [batch_event(12 + b, 2, b, box=7.0) for b in range(1, 5)]
    history.consume(resumed)
    x, y = history.batch_loss["box"].arrays(2000)
    assert list(x) == [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0]
    assert list(y[4:]) == [7.0] * 4
    assert history.epoch_curve("box", "loss") == ([1], [2.5])
    assert history.epoch_curve("mAP50") == ([1], [0.1])
    assert history.epoch_curve("mAP50-95") == ([1], [None])
    assert history.epoch_total == 3
    assert history.eta_seconds() == pytest.approx(4.0 * 1)  # the last epoch is left


def test_non_finite_losses_are_gaps() -> None:
    history = TrainingHistory()
    history.consume([batch_event(1, 1, 1), {**batch_event(2, 1, 2), "loss": {"box": None}}])
    _, y = history.batch_loss["box"].arrays(10)
    assert y[0] == 1.0 and math.isnan(y[1])


def test_throttle_spaces_runs_at_least_one_interval_apart() -> None:
    """However fast the pokes come, runs start ``1 / max_rate`` apart by the monotonic clock."""
    throttle = Throttle(lambda: None, max_rate=20.0)
    try:
        deadline = time.monotonic() + 120
        while len(throttle.run_starts) < 6:
            assert time.monotonic() < deadline, "the throttle stopped running"
            throttle.poke()
            time.sleep(0.001)
    finally:
        throttle.close()
    gaps = [b - a for a, b in itertools.pairwise(throttle.run_starts)]
    assert min(gaps) >= throttle.interval - 1e-9, gaps


def test_throttle_coalesces_pokes_and_never_loses_the_last() -> None:
    """Pokes made while a run is busy become one run after it, and that run sees them all."""
    pokes = 0
    seen: list[int] = []
    ran = threading.Semaphore(0)
    release = threading.Event()

    def run() -> None:
        seen.append(pokes)
        ran.release()
        release.wait(120)

    throttle = Throttle(run, max_rate=50.0)
    try:
        pokes += 1
        throttle.poke()
        assert ran.acquire(timeout=120)
        for _ in range(100):  # the first run is still busy
            pokes += 1
            throttle.poke()
        release.set()
        assert ran.acquire(timeout=120)
        # no run comes without a new poke (on a loaded machine a wrong extra run could come
        # later than this and go unseen, but a right throttle never fails here)
        time.sleep(10 * throttle.interval)
        assert seen == [1, 101]
        pokes += 1
        throttle.poke()
        assert ran.acquire(timeout=120)
    finally:
        throttle.close()
    assert seen == [1, 101, 102]


def test_report_html_reads_well_for_other_machines(monkeypatch: pytest.MonkeyPatch) -> None:
    # the report states the thread variables the runners inherit; an earlier test may have set
    # them in this process
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    h100 = build_report(json.loads((FIXTURES / "nvidia_h100_x8.json").read_text()))
    html = report_html(h100)
    assert html.count("<td>CUDA</td>") == 8
    assert "NVIDIA H100 80GB HBM3" in html and "Recommended: device <b>0,1,2,3,4,5,6,7</b>" in html

    old_driver = build_report(json.loads((FIXTURES / "nvidia_driver_too_old.json").read_text()))
    html = report_html(old_driver)
    assert "Device nodes torch cannot use" in html and "/dev/nvidia0" in html
    assert "yolo-note-warning" in html

    gpu_facts = json.loads((FIXTURES / "nvidia_rtx4070.json").read_text())
    gpu_facts["host"]["shm"] = {"size_bytes": 64 << 20, "free_bytes": 64 << 20}
    assert "(small_shm)" in report_html(build_report(gpu_facts))
    quota = report_html(
        build_report(json.loads((FIXTURES / "small_shm_cpu_quota.json").read_text()))
    )
    # the speed choices a CPU job makes, as the runner makes them
    assert "Training jobs choose" in quota and "<b>threads</b> = 4" in quota
    assert "<b>channels_last</b> = True" in quota

    line = usage_html(
        {
            "cpu": {"percent": 12.3, "cpus": 4},
            "memory": {"used_bytes": 2 * 1024**3, "limit_bytes": 8 * 1024**3},
            "gpus": [
                {
                    "index": 0,
                    "utilization_percent": 97.0,
                    "memory_used_bytes": 1024**3,
                    "memory_total_bytes": 80 * 1024**3,
                    "temperature_c": 61.0,
                }
            ],
        }
    )
    assert "CPU <b>12%</b> of 4" in line and "GPU 0 <b>97%</b>" in line and "2.0 GiB" in line


def test_small_helpers() -> None:
    assert dataset_name_for("My Data (1).zip") == "My_Data_1"
    assert dataset_name_for("???.zip") == "dataset"
    assert fmt_seconds(42.4) == "42 s" and fmt_seconds(185) == "3 min 05 s"
    assert fmt_seconds(None) == "\u2014" and fmt_seconds(float("nan")) == "\u2014"
    traces = box_traces([{"cls": 1, "name": "square", "conf": 0.9, "box_xyxy": [1, 2, 3, 4]}])
    assert traces[0].text == "square 0.9" and list(traces[0].x) == [1, 3, 3, 1, 1]


# ------------------------------------------------------------------------------- panels


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
    shapes_template: Path,
) -> Iterator[ServerProcess]:
    workspace = tmp_path_factory.mktemp("widgets") / "workspace"
    install_dataset(shapes_template, workspace / "datasets" / "shapes")
    with serving(workspace) as process:
        yield process


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> YoloClient:
    return YoloClient(server.url, server.token)


def test_accelerators_panel_shows_the_report_and_live_usage(client: YoloClient) -> None:
    panel = AcceleratorsPanel(client, interval=0.2)
    try:
        assert "Recommended: device <b>cpu</b>" in panel.report_w.value
        assert "CPUs usable" in panel.report_w.value
        wait_for(lambda: "CPU <b>" in panel.usage_w.value)
    finally:
        panel.close()


def test_training_panel_defaults_and_bounded_figure(client: YoloClient) -> None:
    panel = TrainingPanel(client, epochs=3, extra={"plots": False})
    try:
        body = panel.request()
        assert body == {
            "model": "yolov8n.yaml",
            "data": "shapes",
            "epochs": 3,
            # the embedded dataset's tuned recipe (contract.training_defaults)
            "imgsz": 128,
            "batch": 16,
            "nbs": 16,
            "optimizer": "AdamW",
            "lr0": 0.003,
            "device": "cpu",
            "amp": False,
            "workers": 0,
            "plots": False,
        }
        assert panel.resume_button.disabled and panel.stop_button.disabled

        events = []
        seq = 0
        for epoch in range(1, 51):
            for batch in range(1, 1001):
                seq += 1
                events.append(batch_event(seq, epoch, batch, batches=1000, box=batch % 7))
            seq += 1
            events.append(
                {
                    "seq": seq,
                    "type": "epoch",
                    "epoch": epoch,
                    "epochs": 50,
                    "loss": {"box": 1.0},
                    "mAP50": 0.5,
                }
            )
        events.append(
            {
                "seq": seq + 1,
                "type": "warning",
                "code": "small_shm",
                "message": "/dev/shm has 64 MiB",
            }
        )
        panel.load_events(events, status="succeeded")
        assert "/dev/shm has 64 MiB" in panel.warnings_w.value
        assert "succeeded" in panel.status_w.value and "epoch 50/50" in panel.status_w.value
        assert panel.history.batch_points == 50_000
        for name in BATCH_TRACES:
            assert 1000 <= panel.trace_points(name) <= 2000
        assert panel.trace_points("box loss / epoch") == 50
        assert panel.figure.data[0].x[-1] == 50.0

        panel.attach_w.value = "0123456789ab"
        panel.attach_button.click()
        wait_for(lambda: "There is no job" in panel.message_w.value)
    finally:
        panel.close()


def test_datasets_panel_uploads_and_shows_report_histogram_and_samples(
    client: YoloClient, shapes_template: Path, tmp_path: Path
) -> None:
    archive = shutil.make_archive(str(tmp_path / "mini"), "zip", shapes_template)
    panel = DatasetsPanel(client)
    try:
        wait_for(lambda: panel.samples_figure is not None)
        dataset = panel.upload("mini", Path(archive).read_bytes(), filename="mini.zip")
        assert dataset["status"] == "ok"
        assert panel.progress_w.value == 1.0
        wait_for(lambda: panel.dataset is not None and panel.dataset["name"] == "mini")
        assert "mini" in panel.choose_w.options
        assert "<b>mini</b>: ok" in panel.report_w.value
        bars = {bar.name: list(bar.y) for bar in panel.histogram.data}
        assert sum(bars["train"]) == dataset["splits"]["train"]["instances"]
        figure = wait_for(lambda: panel.samples_figure)
        images = [t for t in figure.data if t.type == "image"]
        boxes = [t for t in figure.data if t.type == "scatter"]
        assert len(images) == 8 and len(boxes) >= 8
    finally:
        panel.close()


def test_dashboard_and_detection_panel_without_trained_weights(client: YoloClient) -> None:
    board = Dashboard(client, training={"epochs": 2})
    try:
        assert [board.get_title(i) for i in range(4)] == [
            "Hardware",
            "Datasets",
            "Training",
            "Detection",
        ]
        detection = board.detection
        assert isinstance(detection, DetectionPanel)
        assert detection.image_w.value.startswith("datasets/shapes/images/val/")
        backends = [value for _, value in detection.backend_w.options]
        assert backends[0] == "auto" and detection.backend_w.value == "auto"
        assert {"pytorch", "onnxruntime", "openvino"} <= set(backends)
        assert "tensorrt" not in backends  # no CUDA here
        assert detection.predict() == []  # no weights yet: it says so, no job
        assert "Choose weights" in detection.status_w.value
    finally:
        board.close()
    assert threading.active_count() < 50


def test_backend_html_names_the_choice_and_the_latencies() -> None:
    html = backend_html(
        {
            "name": "openvino",
            "requested": "auto",
            "cached": True,
            "latency_ms": {"pytorch": 65.0, "openvino": 20.04, "onnxruntime": 46.0},
            "agreement": {
                "openvino": {"agree": True},
                "onnxruntime": {"agree": False},
                "openvino-int8": {"agree": None, "note": "only 3 box(es) to compare"},
            },
            "skipped": {"openvino-int8": "no calibration dataset"},
        }
    )
    assert "backend <b>openvino</b> (auto, reused the stored measurement)" in html
    assert "<b>openvino 20.0 ms</b>, onnxruntime 46.0 ms, pytorch 65.0 ms" in html
    assert "not agreeing with PyTorch: onnxruntime" in html
    assert "no verdict: openvino-int8 (only 3 box(es) to compare)" in html
    assert "openvino-int8 (no calibration dataset)" in html
    assert "(forced)" in backend_html({"name": "pytorch", "requested": "pytorch"})
    assert backend_html(None) == ""


@pytest.mark.slow
def test_detection_panel_runs_auto_and_shows_the_backend(
    client: YoloClient, server: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> None:
    model = trained_model(tmp_path_factory.getbasetemp())
    shutil.copy2(model.weights, server.workspace / "weights" / "shapes-n.pt")
    panel = DetectionPanel(client, model="shapes-n.pt", dataset="shapes", conf=0.05)
    try:
        assert panel.backend_info_w.value == ""  # nothing measured for these weights yet
        panel.predict()
        info = panel.backend_info_w.value
        assert "(auto, measured now)" in info, panel.status_w.value
        for name in ("pytorch", "onnxruntime", "openvino"):
            assert f"{name} " in info and " ms" in info
        # trained on a dataset outside this workspace: INT8 is left out, with the reason
        assert "openvino-int8 (INT8 skipped: the weights were trained on" in info

        panel.refresh_models(select="shapes-n.pt")  # the listing now has the stored choice
        assert "auto chose <b>" in panel.backend_info_w.value

        panel.backend_w.value = "pytorch"  # the observer runs a job in the background
        wait_for(
            lambda: "backend <b>pytorch</b> (forced)" in panel.backend_info_w.value, timeout=300
        )
    finally:
        panel.close()


def test_client_and_panels_import_neither_torch_nor_ultralytics() -> None:
    code = (
        "import sys, jupyter_yolo.client, jupyter_yolo.widgets as w\n"
        "for name in w.__all__: getattr(w, name)\n"
        "print(sorted(m for m in ('torch', 'ultralytics') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "[]"
