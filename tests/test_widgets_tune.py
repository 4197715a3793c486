"""The tune panel: trial events folded into the trials table, the best marked in table and chart,
the search form's request and its checks, and "Train with the best" against a real server.

Trials here are contract-shaped data (``trial`` events, a ``TuneResult``); the tune runner
itself is exercised by its own tests and by tests/browser/test_tune_panel.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from jupyter_yolo.client import YoloClient
from jupyter_yolo.contract.tune import DEFAULT_SPACE, SEARCH_SPACE, TuneResult
from jupyter_yolo.widgets import TunePanel
from jupyter_yolo.widgets.dashboard import Dashboard
from jupyter_yolo.widgets.figure import LiveFigure
from jupyter_yolo.widgets.tune_data import (
    BEST_MARK,
    TrialBoard,
    check_space,
    summary_text,
    trials_html,
)
from jupyter_yolo.widgets.tune_figure import best_trace, draw, trials_trace, tune_figure
from jupyter_yolo.widgets.tune_form import executor_options

from .conftest import install_dataset
from .server_process import ServerProcess, serving
from .test_figure_reconnect import assert_current, view_state

METRIC = "mAP50-95"
PARAMS = [
    {"lr0": 0.002, "momentum": 0.8},
    {"lr0": 0.01, "momentum": 0.9},
    {"lr0": 0.015, "momentum": 0.75},
    {"lr0": 0.005, "momentum": 0.93},
]
SCORES = [0.10, 0.42, 0.30, None]  # trial 4 failed in its first epoch


def trial_events() -> list[dict[str, Any]]:
    """Four trials of two epochs as the runner reports them: start, epochs, end."""
    events: list[dict[str, Any]] = []

    def add(**fields: Any) -> None:
        events.append({"seq": len(events) + 1, "type": "trial", "time": 0.0, **fields})

    for index, (params, score) in enumerate(zip(PARAMS, SCORES, strict=True), start=1):
        add(trial=index, status="running", params=params, epochs=2)
        if score is None:
            add(trial=index, status="failed", error="CUDA out of memory")
            continue
        for epoch in (1, 2):
            value = score * epoch / 2
            add(
                trial=index,
                status="running",
                epoch=epoch,
                epochs=2,
                metrics={METRIC: value, "fitness": value},
                fitness=value,
            )
        add(trial=index, status="succeeded", metrics={METRIC: score}, fitness=score)
    return events


def tune_result(board: TrialBoard) -> TuneResult:
    """The result the runner writes at the end (its best: trial 2)."""
    rows = board.rows()
    return {
        "metric": METRIC,
        "space": {"lr0": [0.001, 0.02], "momentum": [0.7, 0.95]},
        "trials": rows,
        "best": rows[1],
        "best_request": {
            "model": "yolov8n.yaml",
            "data": "shapes",
            "epochs": 1,
            "imgsz": 64,
            "batch": 8,
            "device": "cpu",
            "workers": 0,
            "plots": False,
            "lr0": 0.01,
            "momentum": 0.9,
        },
        "executor": "local",
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


def test_board_folds_trial_events_and_ranks_by_the_metric() -> None:
    board = TrialBoard()
    events = trial_events()
    assert board.consume(events[:5])  # trial 1 started, its 2 epochs, ended; trial 2 started
    assert [r["status"] for r in board.rows()] == ["succeeded", "running"]
    assert board.rows()[0]["history"] == [0.05, 0.1]
    assert board.metric == METRIC
    assert board.best is not None and board.best["trial"] == 1
    assert not board.consume(events[:5])  # seen already: nothing changes
    board.consume(events)
    rows = board.rows()
    assert [r["trial"] for r in rows] == [1, 2, 3, 4]
    assert [r["status"] for r in rows] == ["succeeded", "succeeded", "succeeded", "failed"]
    assert rows[3]["error"] == "CUDA out of memory" and rows[3]["fitness"] is None
    assert rows[1]["params"] == PARAMS[1]
    assert board.best is not None and board.best["trial"] == 2
    assert board.best_request is None  # only the job's result has one
    assert summary_text(board, 4) == f"4 of 4 trials done \u00b7 best: trial 2, {METRIC} 0.42"

    html = trials_html(board, ["lr0", "momentum"])
    assert html.count("<tr data-trial=") == 4
    assert html.count('class="yolo-best"') == 1
    assert f'<tr data-trial="2" class="yolo-best"><td>2 {BEST_MARK} best</td>' in html
    assert 'title="CUDA out of memory"' in html


def test_the_result_replaces_the_events_and_names_the_best() -> None:
    board = TrialBoard()
    board.consume(trial_events())
    result = tune_result(board)
    result["best"] = board.rows()[2]  # the runner's own choice wins over the panel's ranking
    board.set_result(result)
    assert board.best is not None and board.best["trial"] == 3
    assert board.best_request is not None and board.best_request["lr0"] == 0.01
    board.set_result({"trials": "not a table"})  # ignored: the last good table stays
    assert board.best is not None and board.best["trial"] == 3


def test_the_chart_is_a_live_figure_whose_state_is_current() -> None:
    """A reloaded page draws the trials and the star again from the widget's state."""
    board = TrialBoard()
    board.consume(trial_events())
    figure = tune_figure(["lr0", "momentum"], METRIC)
    try:
        assert isinstance(figure, LiveFigure)
        draw(figure, board, ["lr0", "momentum"])
        assert_current(figure)
        data, _ = view_state(figure)
        stars = [t for t in data if t.get("name") == best_trace("lr0")]
        assert [list(t["x"]) for t in stars] == [[0.01]]
    finally:
        figure.close()


def test_search_space_checks_say_what_to_fix() -> None:
    assert check_space(DEFAULT_SPACE) == {k: list(v) for k, v in DEFAULT_SPACE.items()}
    with pytest.raises(ValueError, match="at least one parameter"):
        check_space({})
    with pytest.raises(ValueError, match="cannot be searched"):
        check_space({"epochs": (1, 2)})
    low, high = SEARCH_SPACE["lr0"]
    with pytest.raises(ValueError, match=f"{low:g} \u2264 low < high \u2264 {high:g}"):
        check_space({"lr0": (0.01, 0.5)})
    with pytest.raises(ValueError, match="low < high"):
        check_space({"momentum": (0.9, 0.8)})


def test_executor_choices_come_from_the_report() -> None:
    assert executor_options({}) == []
    assert executor_options({"executors": ["local", "ray"]}) == ["local", "ray"]
    assert executor_options({"executors": [{"name": "local"}, {"name": "ray"}]}) == [
        "local",
        "ray",
    ]
    assert executor_options({"executors": {"available": ["local"], "default": "local"}}) == [
        "local"
    ]


# ------------------------------------------------------------------------------- the panel


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, shapes_template: Path
) -> Iterator[ServerProcess]:
    workspace = tmp_path_factory.mktemp("tune-widgets") / "workspace"
    install_dataset(shapes_template, workspace / "datasets" / "shapes")
    with serving(workspace) as process:
        yield process


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> YoloClient:
    return YoloClient(server.url, server.token)


def test_form_prefills_the_default_space_and_builds_the_request(client: YoloClient) -> None:
    panel = TunePanel(
        client, imgsz=64, batch=8, iterations=4, epochs=2, train_epochs=5, extra={"plots": False}
    )
    try:
        searched = [n for n, row in panel.space_rows.items() if row.searched_w.value]
        assert searched == list(DEFAULT_SPACE)
        assert set(panel.space_rows) == set(SEARCH_SPACE)
        assert panel.space_rows["lr0"].low_w.value == DEFAULT_SPACE["lr0"][0]
        body = panel.tune_request()
        assert body["space"] == {k: list(v) for k, v in DEFAULT_SPACE.items()}
        assert (body["iterations"], body["epochs"]) == (4, 2)
        train = body["train"]
        assert train["data"] == "shapes" and train["model"] == "yolov8n.yaml"
        # the base keeps the full training's epochs: best_request is it with the best params
        assert (train["imgsz"], train["batch"], train["epochs"]) == (64, 8, 5)
        assert train["plots"] is False
        assert not set(train) & set(DEFAULT_SPACE)  # the searched values come from the trials
        # a server that offers one executor (or does not say): no choice shown, none sent
        if len(executor_options(client.accelerators())) < 2:
            assert panel.executor_w.layout.display == "none" and "executor" not in body
        assert panel.start_button.disabled is False
        assert panel.stop_button.disabled and panel.train_best_button.disabled

        jobs_before = len(client.jobs())
        panel.space_rows["lr0"].high_w.value = 0.5  # beyond ultralytics' bound
        panel.start_button.click()
        wait_for(lambda: "the bounds must satisfy" in panel.message_w.value)
        assert "lr0" in panel.message_w.value
        assert len(client.jobs()) == jobs_before  # nothing was posted
    finally:
        panel.close()


@pytest.mark.slow
def test_trials_table_chart_and_train_with_the_best(client: YoloClient) -> None:
    panel = TunePanel(client)
    try:
        events = trial_events()
        board = TrialBoard()
        board.consume(events)
        request = {"space": {"lr0": [0.001, 0.02], "momentum": [0.7, 0.95]}, "iterations": 4}
        panel.load(events, request=request, status="running")  # no result yet
        assert panel.table_w.value.count("<tr data-trial=") == 4
        assert '<tr data-trial="2" class="yolo-best">' in panel.table_w.value
        assert panel.train_best_button.disabled  # no best_request before the job's result
        names = [t.name for t in panel.figure.data]
        assert names == [
            trials_trace("lr0"),
            best_trace("lr0"),
            trials_trace("momentum"),
            best_trace("momentum"),
        ]
        points = panel.figure.data[0]
        assert list(points.x) == [0.002, 0.01, 0.015]  # the failed trial has no metric
        assert list(points.y) == [0.10, 0.42, 0.30]
        star = panel.figure.data[1]
        assert (list(star.x), list(star.y)) == ([0.01], [0.42])
        low, high = panel.figure.layout.yaxis.range
        assert low < 0 < 0.42 < high < 1  # from 0, room above the best
        assert list(panel.figure.data[3].x) == [0.9]
        assert "3 of 4" not in panel.status_w.value and "4 of 4 trials done" in panel.status_w.value

        panel.load(events, result=dict(tune_result(board)), request=request, status="succeeded")
        assert not panel.train_best_button.disabled
        job_id = panel.train_best()
        try:
            job = client.job(job_id)
            assert job["kind"] == "train"
            assert job["request"]["lr0"] == 0.01 and job["request"]["momentum"] == 0.9
            assert job_id in panel.message_w.value and "trial 2" in panel.message_w.value
            assert panel.training is not None and panel.training.job_id == job_id
        finally:
            client.stop(job_id)
            client.wait(job_id, timeout=120)
    finally:
        panel.close()
    assert threading.active_count() < 60


def test_attach_refuses_a_job_of_another_kind_and_the_dashboard_has_a_tune_tab(
    client: YoloClient,
) -> None:
    board = Dashboard(client, training={"epochs": 1})
    try:
        assert board.get_title(4) == "Tune"
        assert isinstance(board.tune, TunePanel)
        # a training job's record (as GET /yolo/jobs/<id> gives it): refused in every test order,
        # whether or not this server has run a training yet
        job = {"id": "0000000a11ce", "kind": "train", "status": "succeeded"}
        with pytest.raises(ValueError, match="Job 0000000a11ce is a train job, not a tune job"):
            board.tune.follow(job["id"], job)
    finally:
        board.close()


@pytest.mark.slow
def test_stop_from_the_panel_ends_the_search_with_the_trials_so_far(client: YoloClient) -> None:
    panel = TunePanel(
        client,
        imgsz=64,
        batch=8,
        device="cpu",
        iterations=3,
        epochs=3,
        train_epochs=1,
        extra={"plots": False, "workers": 0},
    )
    try:
        job_id = panel.start()
        assert client.job(job_id)["kind"] == "tune"
        wait_for(lambda: not panel.stop_button.disabled, timeout=60)
        assert panel.start_button.disabled  # one search at a time
        # a trial has reported an epoch: stop mid-search
        wait_for(lambda: any(r["epochs_done"] for r in panel.board.rows()), timeout=300)
        panel.stop_button.click()
        assert panel.wait(timeout=300) == "stopped"
        rows = panel.board.rows()
        assert 1 <= len(rows) < 3 and all(r["status"] != "running" for r in rows)
        assert panel.table_w.value.count("<tr data-trial=") == len(rows)
        assert panel.stop_button.disabled and not panel.start_button.disabled
        assert f"job {job_id}: <b>stopped</b>" in panel.status_w.value
        # the stopped search's own table is what the panel shows
        result = client.trials(job_id)
        assert result is not None and len(result["trials"]) == len(rows)
        assert panel.train_best_button.disabled is (result.get("best_request") is None)
    finally:
        panel.close()
    # another kernel picks the ended search up again: the same trials, best and form
    again = TunePanel.attach(job_id, client)
    try:
        again.wait(timeout=60)
        assert [r["trial"] for r in again.board.rows()] == [r["trial"] for r in rows]
        assert again.table_w.value.count("<tr data-trial=") == len(rows)
        assert (again.iterations_w.value, again.trial_epochs_w.value) == (3, 3)
        assert again.epochs_w.value == 1 and again.imgsz_w.value == 64
    finally:
        again.close()


@pytest.mark.slow
def test_the_executor_choice_shows_when_the_server_offers_ray(
    tmp_path: Path, shapes_template: Path
) -> None:
    workspace = tmp_path / "workspace"
    install_dataset(shapes_template, workspace / "datasets" / "shapes")
    # a Ray head configured (none listens there: nothing is submitted in this test)
    with serving(workspace, extra_args=("--YoloApp.ray_address=http://127.0.0.1:9",)) as server:
        client = YoloClient(server.url, server.token)
        assert executor_options(client.accelerators()) == ["local", "ray"]
        panel = TunePanel(client)
        try:
            assert panel.executor_w.layout.display != "none"
            assert panel.executor_w.value == "local"  # the server's default
            assert panel.tune_request()["executor"] == "local"
            panel.executor_w.value = "ray"
            assert panel.tune_request()["executor"] == "ray"
        finally:
            panel.close()
