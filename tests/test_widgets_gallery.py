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

        # the person asks: one prediction, by the model chosen, named in the status line
        found = detection.predict()
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


def test_a_panel_without_weights_asks_for_them(client: YoloClient) -> None:
    panel = DetectionPanel(client, model=None)
    try:
        assert panel.requests_sent == 0
    finally:
        panel.close()
