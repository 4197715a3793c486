"""Panel figures a (re)connecting view draws fully: the synced state is the current figure.

plotly 7's FigureWidget sends every change as a one-shot message; a view that connects later
(reload, second browser) gets the widget's state, which must be the figure as it is now, and
stay as large as the figure itself (never a log of updates). No browser here: the browser side
is tests/browser/test_panel_reload.py.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import numpy as np
import plotly.graph_objects as go
import pytest

from jupyter_yolo.client import YoloClient
from jupyter_yolo.plotly_bundle import ROUTE, bundle_path, bundle_version
from jupyter_yolo.widgets.datasets import histogram_figure
from jupyter_yolo.widgets.detection_draw import detection_figure
from jupyter_yolo.widgets.drawing import scores_figure
from jupyter_yolo.widgets.figure import BUNDLE_EVENT, LiveFigure, live_figure, state_size
from jupyter_yolo.widgets.training import TrainingPanel
from jupyter_yolo.widgets.training_figure import training_figure

from .server_process import ServerProcess, serving

PIXEL = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8Bw"
    "HwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)


def plain(value: Any) -> Any:
    """JSON-comparable: arrays as lists, tuples as lists."""
    return json.loads(json.dumps(value, default=lambda v: v.tolist()))


def unbuffer(value: Any) -> Any:
    """plotly's typed-array buffers (``{"buffer", "dtype", "shape"}``) back to plain lists."""
    if isinstance(value, dict):
        if "buffer" in value and "dtype" in value:
            return np.frombuffer(value["buffer"], dtype=value["dtype"]).tolist()
        return {key: unbuffer(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [unbuffer(item) for item in value]
    return value


def view_state(figure: LiveFigure) -> tuple[Any, Any]:
    """What a connecting view receives: the figure state the kernel answers with."""
    state = figure.get_state()
    return plain(unbuffer(state["_widget_data"])), plain(unbuffer(state["_widget_layout"]))


def assert_current(figure: LiveFigure) -> None:
    """The state a view gets is the figure as it is now."""
    data, layout = view_state(figure)
    assert data == plain(figure._data)
    assert layout == plain(figure._layout)


def test_every_kind_of_change_reaches_the_state() -> None:
    figure = live_figure(go.Figure(data=[go.Scatter(x=[], y=[], name="a")]))
    assert isinstance(figure, go.FigureWidget)
    assert_current(figure)
    figure.data[0].x = [1, 2, 3]  # restyle
    figure.data[0].y = np.array([3.0, 2.0, 1.0], dtype=np.float32)  # a typed-array buffer
    assert_current(figure)
    with figure.batch_update():  # update
        figure.data[0].x = [1, 2, 3, 4]
        figure.data[0].y = [4, 3, 2, 1]
        figure.layout.title.text = "batched"
    assert_current(figure)
    figure.add_traces([go.Bar(x=["a"], y=[1], name="b"), go.Scatter(x=[0], y=[0], name="c")])
    assert_current(figure)
    figure.data = [figure.data[2], figure.data[0]]  # delete and move
    assert [t.name for t in figure.data] == ["c", "a"]
    assert_current(figure)
    figure.layout.images = [{"source": PIXEL, "x": 0, "y": 0, "sizex": 1, "sizey": 1}]
    assert_current(figure)
    figure.layout.images[0].source = PIXEL + "#2"  # a nested layout change
    assert_current(figure)
    figure.layout = {"height": 300}  # the whole layout replaced
    assert_current(figure)
    figure.data = []
    assert_current(figure)
    assert view_state(figure)[0] == []


def test_panel_figures_are_live() -> None:
    for figure in (training_figure(), detection_figure(), scores_figure(), histogram_figure()):
        assert isinstance(figure, LiveFigure)
        assert_current(figure)


def test_image_figure_sends_its_image_and_boxes_again() -> None:
    figure = detection_figure()
    figure.data = figure.data[:2]
    with figure.batch_update():
        figure.data[0].source = PIXEL
        figure.layout.annotations = [{"text": "circle 0.9", "x": 0, "y": 0}]
        figure.layout.xaxis.range = [0, 1]
    figure.add_traces([go.Scatter(x=[0, 1, 1, 0, 0], y=[0, 0, 1, 1, 0], name="circle 0.9")])
    data, layout = view_state(figure)
    assert data[0]["source"] == PIXEL
    assert data[2]["name"] == "circle 0.9"
    assert layout["annotations"][0]["text"] == "circle 0.9"
    # the state holds the image once, shared with the figure (no copy per update)
    assert figure._trait_values["_widget_data"][0]["source"] is figure._data[0]["source"]


def test_a_view_reading_while_another_thread_draws_gets_whole_figures() -> None:
    figure = live_figure(go.Figure(data=[go.Scatter(x=[], y=[], name=str(i)) for i in range(4)]))
    done = threading.Event()
    errors: list[BaseException] = []

    def draw() -> None:
        try:
            for n in range(1, 301):
                with figure.batch_update():
                    for trace in figure.data:
                        trace.x = list(range(n))
                        trace.y = list(range(n))
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)
        finally:
            done.set()

    thread = threading.Thread(target=draw)
    thread.start()
    reads = 0
    while not done.is_set() or reads == 0:
        data, _ = view_state(figure)
        # every read is one whole update: all traces equally long, x and y alike
        lengths = {len(t.get("x", [])) for t in data} | {len(t.get("y", [])) for t in data}
        assert len(lengths) == 1, lengths
        reads += 1
    thread.join()
    assert not errors
    assert_current(figure)
    assert len(view_state(figure)[0][0]["x"]) == 300


def test_the_state_carries_a_small_loader_and_the_kernel_falls_back_to_the_bundle() -> None:
    figure = training_figure()
    state = figure.get_state()
    bundle = bundle_path()
    assert bundle is not None
    assert len(state["_esm"]) < 4000 < bundle.stat().st_size  # not plotly's 5 MB
    assert ROUTE in state["_esm"] and f'"{bundle_version()}"' in state["_esm"]
    figure._answer_bundle(figure, {"event": "something else"}, [])
    assert figure.get_state("_esm")["_esm"] == state["_esm"]
    # a view that cannot import it from the server asks: the figure then carries plotly's own
    figure._answer_bundle(figure, {"event": BUNDLE_EVENT}, [])
    assert figure.get_state("_esm")["_esm"] == bundle.read_text("utf-8")
    assert training_figure().get_state("_esm")["_esm"] == state["_esm"]  # only that figure


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    workspace = tmp_path_factory.mktemp("figure-reconnect") / "workspace"
    workspace.mkdir()
    with serving(workspace) as process:
        yield process


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> YoloClient:
    return YoloClient(server.url, server.token)


def fetch(url: str, token: str | None) -> tuple[int, dict[str, str], bytes]:
    headers = {"Authorization": f"token {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_the_server_serves_plotly_widget_bundle(server: ServerProcess) -> None:
    bundle = bundle_path()
    assert bundle is not None
    url = f"{server.url}{ROUTE}?v={bundle_version()}"
    status, headers, body = fetch(url, server.token)
    assert status == 200
    assert headers["Content-Type"].startswith("text/javascript")
    assert "max-age" in headers["Cache-Control"]
    assert body == bundle.read_bytes()
    status, _, body = fetch(f"{server.url}{ROUTE}?v=0.0.1", server.token)
    assert status == 404 and b"not 0.0.1" in body
    status, _, _ = fetch(url, None)
    assert status == 403


def batch_events(first_seq: int, epoch: int, batches: int) -> list[dict[str, Any]]:
    return [
        {
            "seq": first_seq + i,
            "type": "batch",
            "epoch": epoch,
            "batch": i + 1,
            "batches": batches,
            "loss": {"box": 1.0 + (i % 7) / 10, "cls": 2.0, "dfl": 3.0},
            "time": 0.0,
            "images_per_s": 10.0,
        }
        for i in range(batches)
    ]


def test_training_figure_state_is_current_and_bounded(client: YoloClient) -> None:
    panel = TrainingPanel(client, epochs=3, extra={"plots": False})
    try:
        seq = 0
        sizes = []
        events: list[dict[str, Any]] = []
        for epoch in range(1, 17):
            events += batch_events(seq + 1, epoch, 500)
            seq += 501
            events.append(
                {"seq": seq, "type": "epoch", "epoch": epoch, "epochs": 16, "loss": {"box": 1.0}}
            )
            panel.load_events(events)  # the whole run so far, as a (re)attached panel gets it
            assert_current(panel.figure)
            sizes.append(state_size(panel.figure))
        assert panel.history.batch_points == 8000
        data, _ = view_state(panel.figure)
        assert data[0]["name"] == "box loss / batch"
        assert data[0]["x"][-1] == pytest.approx(16.0)
        # decimated: the state stops growing once the curves are longer than the figure shows
        assert sizes[-1] < 1.2 * sizes[len(sizes) // 2]
        points = sum(len(t.get("x") or []) for t in data)
        assert points < 8 * 2000
    finally:
        panel.close()
