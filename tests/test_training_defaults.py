"""One source of training defaults: the quickstart, the Dashboard and ``TrainingPanel()`` send the
same request for the embedded dataset; the report's recommendation reads the same table; the
Advanced section's values are checked by the server; weights pickers rank runs by their metric."""

from __future__ import annotations

import json
import time
import urllib.error
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jupyter_yolo.accelerators.report import build_report
from jupyter_yolo.client import YoloClient
from jupyter_yolo.contract.training_defaults import (
    EMBEDDED_DATASETS,
    EMBEDDED_RECIPES,
    hardware_defaults,
    train_defaults,
)
from jupyter_yolo.datasets.synthetic import RECOMMENDED_TRAIN_ARGS
from jupyter_yolo.datasets.synthetic_tasks import SYNTHETIC_NAMES, TRAIN_RECIPES
from jupyter_yolo.widgets.dashboard import Dashboard
from jupyter_yolo.widgets.training import TrainingPanel
from jupyter_yolo.widgets.training_form import weights_choices, weights_label

from .conftest import install_dataset
from .server_process import ServerProcess, serving

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures" / "accelerators"
GIB = 1 << 30


# ------------------------------------------------------------------------------- pure parts


def test_the_recipes_live_in_one_place() -> None:
    assert SYNTHETIC_NAMES == EMBEDDED_DATASETS
    assert TRAIN_RECIPES == EMBEDDED_RECIPES
    assert EMBEDDED_RECIPES["detect"] == {"model": "yolov8n.yaml", **RECOMMENDED_TRAIN_ARGS}


def test_hardware_defaults_and_the_report_agree() -> None:
    cpu = {"kind": "cpu", "devices": 0, "device_memory_bytes": None, "jetson": False}
    two_cores = hardware_defaults({**cpu, "cpus": 2, "memory_bytes": 16 * GIB})  # type: ignore[typeddict-item]
    assert two_cores == {"batch": 16, "workers": 0, "imgsz": 320}
    small = hardware_defaults({**cpu, "cpus": 8, "memory_bytes": 3 * GIB})  # type: ignore[typeddict-item]
    assert small["batch"] == 4 and small["workers"] <= 1
    for name in ("cpu_openvino", "nvidia_h100_x8", "jetson_orin_nx", "nvidia_rtx4070"):
        report = build_report(json.loads((FIXTURES / f"{name}.json").read_text()))
        rec = report["recommendation"]
        assert {"batch", "workers", "imgsz"} <= set(rec), name
        # the report's batch is the one the embedded recipe is capped by
        request = train_defaults("shapes", rec)
        assert request["batch"] == min(16, rec["batch"]), name
        assert request["device"] == rec["device"] and request["workers"] == rec["workers"]


def test_train_defaults_embedded_and_custom() -> None:
    rec = {"device": "cpu", "model": "yolov8n.yaml", "batch": 16, "workers": 0, "imgsz": 320}
    shapes = train_defaults("shapes", rec)
    assert shapes == {
        "model": "yolov8n.yaml",
        "data": "shapes",
        "epochs": 30,
        "imgsz": 128,
        "batch": 16,
        "nbs": 16,
        "optimizer": "AdamW",
        "lr0": 0.003,
        "device": "cpu",
        "amp": False,
        "workers": 0,
    }
    cls = train_defaults("shapes-cls", rec)
    assert cls["model"] == "yolov8n-cls.yaml" and cls["erasing"] == 0.0 and cls["imgsz"] == 64
    mine = train_defaults("mine", rec)
    assert mine["imgsz"] == 320 and mine["epochs"] == 100 and "optimizer" not in mine
    assert train_defaults("shapes", {**rec, "batch": 4})["batch"] == 4


def test_weights_choices_preselect_the_best_run_not_the_newest() -> None:
    def run(job: str, value: float | None, ended: str, which: str = "best") -> dict[str, Any]:
        return {
            "model": f"job:{job}:{which}",
            "job": job,
            "task": "detect",
            "name": None,
            "weights": which,
            "dataset": "shapes",
            "metric": "metrics/mAP50-95(B)",
            "metric_label": "box mAP50-95",
            "metric_value": value,
            "higher_is_better": True,
            "created": ended,
            "ended": ended,
        }

    models = {
        "trained": [
            run("aaaa00000001", 0.42, "2026-12-01T10:00:00Z"),
            run("bbbb00000002", 0.71, "2026-12-01T09:00:00Z"),
            run("bbbb00000002", 0.71, "2026-12-01T09:00:00Z", "last"),
            run("cccc00000003", None, "2026-12-01T12:00:00Z"),  # newest, no metric yet
            {**run("dddd00000004", 0.99, "2026-12-01T13:00:00Z"), "task": "segment"},
        ],
        "weights": [{"model": "mine.pt", "task": "detect"}],
    }
    options, chosen = weights_choices(models, "detect")
    values = [value for _, value in options]
    assert chosen == "job:bbbb00000002:best"
    assert values == [
        "job:bbbb00000002:best",
        "job:aaaa00000001:best",
        "job:cccc00000003:best",
        "job:bbbb00000002:last",
        "mine.pt",
    ]
    assert (
        options[0][0] == "shapes \u00b7 box mAP50-95 0.71 \u00b7 2026-12-01 09:00 (job bbbb\u2026)"
    )
    assert "last" in options[3][0] and "no metric yet" in options[2][0]
    assert (
        weights_label({"model": "mine.pt", "task": "detect"})
        == "mine.pt (pretrained \u00b7 detect)"
    )
    assert weights_choices(models)[1] == "job:dddd00000004:best"


# ------------------------------------------------------------------------------- real server


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, shapes_template: Path
) -> Iterator[ServerProcess]:
    workspace = tmp_path_factory.mktemp("defaults") / "workspace"
    install_dataset(shapes_template, workspace / "datasets" / "shapes")
    with serving(workspace) as process:
        yield process


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> YoloClient:
    return YoloClient(server.url, server.token)


def quickstart_request(client: YoloClient) -> dict[str, Any]:
    """Run the quickstart's settings cell and its training panel cell; the panel's request."""
    notebook = json.loads((REPO / "notebooks" / "quickstart.ipynb").read_text())
    cells = ["".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code"]
    settings = next(c for c in cells if "DATASET =" in c)
    panel_cell = next(c for c in cells if c.startswith("training = TrainingPanel("))
    namespace: dict[str, Any] = {"client": client, "TrainingPanel": TrainingPanel}
    exec(settings, namespace)
    exec(panel_cell, namespace)
    panel = namespace["training"]
    try:
        return dict(panel.request())
    finally:
        panel.close()


def test_quickstart_dashboard_and_panel_send_the_same_request(
    client: YoloClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ("EPOCHS", "IMGSZ", "BATCH", "DATASET"):
        monkeypatch.delenv(f"YOLO_NB_{key}", raising=False)
    quickstart = quickstart_request(client)
    dashboard = Dashboard(client)
    try:
        from_dashboard = dashboard.training.request()
    finally:
        dashboard.close()
    panel = TrainingPanel(client)
    try:
        from_panel = panel.request()
        assert panel.advanced_w.selected_index is None  # the Advanced section starts folded
    finally:
        panel.close()
    expected = train_defaults("shapes", client.accelerators()["recommendation"])
    assert quickstart == from_dashboard == from_panel == expected
    assert expected["optimizer"] == "AdamW" and expected["lr0"] == 0.003
    assert expected["nbs"] == 16 and expected["batch"] == 16 and expected["epochs"] == 30


def test_advanced_values_reach_the_request_and_dataset_changes_reset_them(
    client: YoloClient,
) -> None:
    panel = TrainingPanel(client)
    try:
        controls = panel.advanced_w.controls
        controls["optimizer"].value = "SGD"
        controls["patience"].value = 7
        controls["cos_lr"].value = True
        controls["fliplr"].value = 0.0
        body = panel.request()
        assert body["optimizer"] == "SGD" and body["patience"] == 7 and body["cos_lr"] is True
        assert body["fliplr"] == 0.0 and "momentum" not in body  # ultralytics' default: not sent
        assert "pretrained" not in body
        # choosing the dataset again brings its tuned defaults back
        panel.data_w.options = [*panel.data_w.options, ("other", "other")]
        panel.data_w.value = "other"
        assert "optimizer" not in panel.request() and panel.request()["epochs"] == 100
        panel.data_w.value = "shapes"
        assert panel.request()["optimizer"] == "AdamW" and panel.request()["epochs"] == 30
    finally:
        panel.close()


def post_job(server: ServerProcess, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    try:
        return 201, server.request("POST", "/yolo/jobs", body)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [
        ("lr0", 5.0, "lr0"),
        ("optimizer", "Adamax", "optimizer"),
        ("fliplr", 1.5, "fliplr"),
        ("hsv_s", "a lot", "hsv_s"),
        ("patience", -1, "patience"),
        ("pretrained", "yolov8n.yaml", "pretrained"),
        ("pretrained", "missing.pt", "pretrained"),
        ("pretrained", "job:0123456789ab:best", "pretrained"),
    ],
)
def test_a_bad_advanced_value_is_a_400_that_names_it(
    server: ServerProcess, key: str, value: Any, named: str
) -> None:
    body = {"kind": "train", "data": "shapes", "epochs": 1, "imgsz": 64, key: value}
    status, answer = post_job(server, body)
    assert status == 400, answer
    assert named in str(answer.get("message") or answer), answer


@pytest.mark.slow
def test_a_default_run_lists_its_metric_and_starts_another_from_it(
    server: ServerProcess, client: YoloClient
) -> None:
    """A short real run with the panel's default request (3 epochs), then one epoch from it."""
    panel = TrainingPanel(client, epochs=3)
    try:
        job_id = panel.start()
        assert panel.wait(timeout=900) == "succeeded"
    finally:
        panel.close()
    listing = client.models()
    best = next(m for m in listing["trained"] if m["model"] == f"job:{job_id}:best")
    assert best["dataset"] == "shapes" and best["metric"] == "metrics/mAP50-95(B)"
    assert isinstance(best["metric_value"], float) and best["ended"]
    options, chosen = weights_choices(listing, "detect")
    assert chosen == f"job:{job_id}:best" and "box mAP50-95" in options[0][0]

    second = TrainingPanel(client, epochs=1)
    try:
        second.advanced_w.set_pretrained_options(client.models(), "detect")
        assert f"job:{job_id}:best" in [v for _, v in second.advanced_w.pretrained_w.options]
        second.advanced_w.pretrained_w.value = f"job:{job_id}:best"
        assert second.request()["pretrained"] == f"job:{job_id}:best"
        started = time.monotonic()
        second.start()
        assert second.wait(timeout=600) == "succeeded", time.monotonic() - started
    finally:
        second.close()


def test_the_notebook_hardware_report_reads_as_a_report() -> None:
    from jupyter_yolo.widgets.accelerators import report_html

    cpu = report_html(build_report(json.loads((FIXTURES / "cpu_openvino.json").read_text())))
    for raw in ("memory_total_bytes", "tegra_release", "_bytes", "None", "Jetson"):
        assert raw not in cpu, raw
    # what matters first: the recommendation before the summary, the details folded after it
    assert cpu.index("Recommended: device <b>cpu</b>") < cpu.index("Memory") < cpu.index("<details")
    assert "image size <b>320 px</b>" in cpu and "batch <b>16</b>" in cpu
    assert "Memory</td><td>15.4 GiB" in cpu and "none (CPU only)" in cpu
    assert "Devices (2)" in cpu  # OpenVINO's CPU and iGPU
    jetson = report_html(build_report(json.loads((FIXTURES / "jetson_orin_nx.json").read_text())))
    assert "L4T release" in jetson and "<summary><b>Jetson</b>" in jetson
