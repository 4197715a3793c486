"""The prediction panel on a real server with the trained detector: opening the Dashboard and
every tab predicts nothing (no job, no warm worker, no request) until the person asks; the
gallery predicts several images at once, draws readable labels, the legend, ground truth and
a neutral note when nothing is found; the class filter lists every class of the model."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jupyter_yolo.client import YoloClient
from jupyter_yolo.widgets.dashboard import TITLES, Dashboard
from jupyter_yolo.widgets.detection import DetectionPanel

from .conftest import install_dataset
from .inference_models import trained_model
from .server_process import ServerProcess, serving

MODEL = "shapes-n.pt"


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, shapes_template: Path
) -> Iterator[ServerProcess]:
    model = trained_model(tmp_path_factory.getbasetemp())
    workspace = tmp_path_factory.mktemp("widgets-gallery") / "workspace"
    install_dataset(shapes_template, workspace / "datasets" / "shapes")
    (workspace / "weights").mkdir(parents=True, exist_ok=True)
    shutil.copy2(model.weights, workspace / "weights" / MODEL)
    with serving(workspace) as process:
        yield process


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> YoloClient:
    return YoloClient(server.url, server.token, timeout=120)


def workers(client: YoloClient) -> list[dict[str, Any]]:
    answer: Any = client.request("GET", "yolo/predict/workers")
    return list(answer.get("workers") if isinstance(answer, dict) else answer)


@pytest.mark.slow
def test_opening_every_dashboard_tab_predicts_nothing(client: YoloClient) -> None:
    jobs_before = [j["id"] for j in client.jobs()]
    board = Dashboard(client, detection={"model": MODEL})
    try:
        detection = board.detection
        assert detection.model_w.value == MODEL and detection.image_w.value
        for _ in range(2):  # open each tab, twice: each opening refreshes the weights list
            for index in range(len(TITLES)):
                board.selected_index = index
        detection.refresh_models()  # what a refresh of the list does: no prediction either
        detection.conf_w.value = 0.5  # a slider before any prediction: nothing asked yet
        assert detection.idle(30)
        time.sleep(0.5)  # a debounced request would have been sent by now
        assert detection.requests_sent == 0
        assert workers(client) == []
        assert [j["id"] for j in client.jobs()] == jobs_before
        assert detection.redraws == 0

        # the person asks: one prediction, by the model chosen, named in the status line;
        # the worker's first start (auto: exports and measures backends) says how long so far
        lines: list[str] = []
        detection.status_w.observe(lambda change: lines.append(change["new"]), names="value")
        found = detection.predict()
        assert any("Starting the model" in line and " s</div>" in line for line in lines), lines
        assert detection.last_error is None, detection.status_w.value
        assert detection.requests_sent >= 1
        assert MODEL in detection.status_w.value
        assert len(workers(client)) == 1
        assert isinstance(found, list)
        sent = detection.requests_sent
        board.selected_index = TITLES.index("Hardware")
        board.selected_index = TITLES.index("Detection")  # reopening keeps the weights
        assert detection.idle(30)
        assert detection.requests_sent == sent and detection.model_w.value == MODEL
        assert [j["id"] for j in client.jobs()] == jobs_before
    finally:
        board.close()


def test_labels_read_on_any_background_and_truth_is_dashed() -> None:
    import io

    from PIL import Image

    from jupyter_yolo.widgets.drawing import color, text_color
    from jupyter_yolo.widgets.labels_draw import annotate, legend_html, truth_boxes

    hue = color(1)  # a box of class 1 on an image of its own colour, on black, on white
    rgb = tuple(int(hue[i : i + 2], 16) for i in (1, 3, 5))
    det = {"cls": 1, "name": "square", "conf": 0.87, "box_xyxy": [40, 60, 140, 150]}
    for background in (rgb, (0, 0, 0), (255, 255, 255)):
        source = io.BytesIO()
        Image.new("RGB", (176, 176), background).save(source, format="PNG")
        drawn = Image.open(io.BytesIO(annotate(source.getvalue(), [det]))).convert("RGB")
        edge = {drawn.getpixel((x, 100)) for x in range(36, 45)}
        assert any(max(p) < 40 for p in edge), "no dark halo along the box"
        assert rgb in edge or any(abs(p[0] - rgb[0]) < 8 for p in edge)
        label = {drawn.getpixel((x, y)) for x in range(40, 100) for y in range(46, 59)}
        assert rgb in label, "no filled label in the class colour"
        text = (0, 0, 0) if text_color(hue) == "#000000" else (255, 255, 255)
        assert text in label, "no contrasting text in the label"
    truth = truth_boxes(
        [{"class_id": 2, "class_name": "t", "xywhn": [0.5, 0.5, 0.5, 0.5]}], 176, 176
    )
    assert truth[0]["box_xyxy"] == [44.0, 44.0, 132.0, 132.0]
    source = io.BytesIO()
    Image.new("RGB", (176, 176), (255, 255, 255)).save(source, format="PNG")
    drawn = Image.open(io.BytesIO(annotate(source.getvalue(), [], truth=truth))).convert("RGB")
    top = [drawn.getpixel((x, 44)) for x in range(50, 126)]
    assert (255, 255, 255) in top and any(p != (255, 255, 255) for p in top), "not dashed"
    legend = legend_html({0: "circle", 1: "square"}, {1})
    assert "circle" in legend and "<b>square</b>" in legend and color(0) in legend


@pytest.mark.slow
def test_gallery_truth_legend_classes_and_the_empty_note(
    client: YoloClient, server: ServerProcess
) -> None:
    import io

    from PIL import Image

    jobs_before = len(client.jobs())
    names = list(client.dataset("shapes")["report"]["names"].values())
    panel = DetectionPanel(client, model=MODEL, dataset="shapes", conf=0.25, samples=8)
    try:
        # every class of the model, before anything was predicted
        assert list(panel.classes_w.options) == names and panel.requests_sent == 0
        assert all(name in panel.legend_w.value for name in names)
        assert len(panel.gallery.paths) == 8
        assert all(panel.gallery.tiles[p][0].value for p in panel.gallery.paths)  # thumbnails

        found = panel.predict_gallery()
        assert set(found) == set(panel.gallery.paths)
        assert sum(len(v) for v in found.values()) > 0
        assert all(
            panel.gallery.captions[p].endswith(("object", "objects", "found")) for p in found
        )

        picked = panel.gallery.paths[2]
        panel.gallery.tiles[picked][1].click()  # a tile's button: the image large
        assert panel.idle(300) and panel.image_w.value == picked
        assert panel.last_error is None, panel.status_w.value
        truth_kind = [t for t in panel.figure.data if (t.meta or {}).get("kind") == "truth"]
        assert truth_kind == []
        panel.truth_w.value = True  # drawn again, nothing asked of the service
        sent = panel.requests_sent
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            kinds = [(t.meta or {}).get("kind") for t in panel.figure.data]
            if "truth" in kinds:
                break
            time.sleep(0.1)
        dashed = [t for t in panel.figure.data if (t.meta or {}).get("kind") == "truth"]
        assert dashed and any(t.line.dash == "dash" for t in dashed)
        assert panel.requests_sent == sent

        blank = io.BytesIO()
        Image.new("RGB", (128, 128), (128, 128, 128)).save(blank, format="PNG")
        panel.add_image("uploads/blank.png", blank.getvalue())
        assert panel.idle(300) and panel.last_error is None
        assert panel.detections == []
        assert "yolo-note-ok" not in panel.status_w.value
        assert "No objects found" in panel.status_w.value and MODEL in panel.status_w.value
        assert len(client.jobs()) == jobs_before
    finally:
        panel.close()


class ListingClient:
    """Answers the datasets panel's listing calls with nothing (no server needed to name files)."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: {} if name != "datasets" else []


def chosen(name: str) -> dict[str, Any]:
    import datetime

    return {
        "name": name,
        "type": "application/zip",
        "size": 4,
        "content": memoryview(b"PK\x05\x06"),
        "last_modified": datetime.datetime.now(datetime.timezone.utc),
    }


def test_each_file_chosen_for_upload_names_its_own_dataset() -> None:
    from jupyter_yolo.widgets.datasets import DatasetsPanel

    panel = DatasetsPanel(ListingClient())  # type: ignore[arg-type]
    try:
        panel.upload_w.value = (chosen("birds.zip"),)
        assert panel.name_w.value == "birds"
        panel.upload_w.value = (chosen("cars-2024.zip"),)  # a second file: its own name
        assert panel.name_w.value == "cars-2024"
        panel.name_w.value = "mine"  # typed by the person: kept for the next file
        panel.upload_w.value = (chosen("boats.zip"),)
        assert panel.name_w.value == "mine"
    finally:
        panel.close()


def test_training_warnings_and_log_tails_read_cleanly() -> None:
    from types import SimpleNamespace

    from jupyter_yolo.widgets.training_status import warnings_html

    history = SimpleNamespace(
        warnings=[
            {"message": "\x1b[33mlabels at /srv/ws/datasets/shapes/labels\x1b[0m", "code": "w"}
        ],
        errors=[
            {
                "message": "failed",
                "log_tail": "Epoch 1/3:  10%\r Epoch 1/3: 100%|###|\n"
                "Saved /srv/ws/jobs/abcabcabcabc/run/weights/best.pt\n",
            }
        ],
    )
    html = warnings_html(history)  # type: ignore[arg-type]
    assert "\x1b" not in html and "/srv/ws" not in html and "\u26a0" not in html
    assert "labels at datasets/shapes/labels" in html
    assert "10%" not in html and "Epoch 1/3: 100%" in html  # the bar's last state only
    assert "Saved jobs/abcabcabcabc/run/weights/best.pt" in html


def test_media_panel_warnings_show_workspace_relative_paths() -> None:
    from jupyter_yolo.widgets.media import MediaPanel

    panel = MediaPanel(ListingClient())  # type: ignore[arg-type]
    try:
        message = "\x1b[33mcannot read /srv/ws/jobs/abcabcabcabc/run/frame.jpg\x1b[0m"
        panel._on_page({"events": [{"seq": 1, "type": "warning", "message": message}]})
        assert "cannot read jobs/abcabcabcabc/run/frame.jpg" in panel.status_w.value
        assert "/srv/ws" not in panel.status_w.value and "\x1b" not in panel.status_w.value
    finally:
        panel.close()
