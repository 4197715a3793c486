"""The run results view and the run comparison in the notebook.

Fast tests draw constructed :class:`RunResults` payloads (what ``GET /yolo/jobs/{id}/results``
answers); the slow test trains a tiny detector through a real server and shows its results and
a comparison of two runs from the real endpoint.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from jupyter_yolo.client import YoloClient
from jupyter_yolo.contract.results import CURVE_POINTS, RunResults, ValImage
from jupyter_yolo.widgets.compare import CompareRuns
from jupyter_yolo.widgets.results import ResultsPanel
from jupyter_yolo.widgets.results_compare import (
    ComparedRun,
    best_table_html,
    compare_figure,
    fold_losses,
    job_label,
    params_table_html,
)
from jupyter_yolo.widgets.results_data import (
    class_table_html,
    confusion_cells,
    console_text,
    curve_kinds,
    header_html,
    sorted_classes,
    usage_series,
)
from jupyter_yolo.widgets.results_figures import (
    confusion_figure,
    curves_figure,
    usage_figure,
    val_image_figure,
)
from jupyter_yolo.widgets.results_section import ResultsSection
from jupyter_yolo.widgets.training import TrainingPanel

from .conftest import install_dataset
from .server_process import ServerProcess, serving

NAMES = ["circle", "square", "triangle"]
HEAD = "metrics/mAP50-95(B)"


def _curve(name: str, kind: str = "B") -> dict[str, Any]:
    x = [i / (CURVE_POINTS - 1) for i in range(CURVE_POINTS)]
    per_class = {n: [max(0.0, 1 - xi * (j + 1) / 3) for xi in x] for j, n in enumerate(NAMES)}
    mean = [sum(v[i] for v in per_class.values()) / len(NAMES) for i in range(len(x))]
    labels = {"PR": ("Recall", "Precision"), "F1": ("Confidence", "F1")}
    x_label, y_label = labels.get(name, ("Confidence", name))
    return {
        "name": name,
        "kind": kind,
        "x_label": x_label,
        "y_label": y_label,
        "x": x,
        "per_class": per_class,
        "mean": mean,
    }


def _image() -> ValImage:
    return {
        "image": "datasets/shapes/images/val/a.png",
        "width": 64,
        "height": 48,
        "truth": [
            {"cls": 0, "name": "circle", "conf": None, "box_xyxy": [1, 2, 20, 22]},
            {"cls": 2, "name": "triangle", "conf": None, "box_xyxy": [30, 5, 60, 40]},
        ],
        "predicted": [{"cls": 0, "name": "circle", "conf": 0.91, "box_xyxy": [2, 2, 21, 23]}],
    }


def sample_results(**changes: Any) -> RunResults:
    """A finished detection run's results as the endpoint answers them."""
    epoch = {
        "epoch": 3,
        "metrics": {HEAD: 0.61, "metrics/mAP50(B)": 0.88},
        "fitness": 0.61,
        "time": 1.0,
    }
    results: dict[str, Any] = {
        "job_id": "0123456789ab",
        "kind": "train",
        "status": "succeeded",
        "task": "detect",
        "name": "shapes-run",
        "created": 1_764_633_600.0,
        "started": 1_764_633_605.0,
        "ended": 1_764_633_725.0,
        "params": {"data": "shapes", "model": "yolov8n.yaml", "epochs": 4, "lr0": 0.003},
        "headline": HEAD,
        "best": epoch,
        "last": {**epoch, "epoch": 4, "metrics": {HEAD: 0.55, "metrics/mAP50(B)": 0.8}},
        "epochs": 4,
        "history": [epoch],
        "final": {
            "task": "detect",
            "names": NAMES,
            "weights": "jobs/0123456789ab/run/weights/best.pt",
            "metrics": {HEAD: 0.62, "metrics/mAP50(B)": 0.9, "metrics/precision(B)": 0.8},
            "per_class": [
                {
                    "cls": i,
                    "name": n,
                    "images": 4,
                    "instances": 10 - i,
                    "metrics": {HEAD: 0.5 + i / 10, "metrics/mAP50(B)": 0.8},
                }
                for i, n in enumerate(NAMES)
            ],
            "curves": [_curve(n) for n in ("PR", "F1", "Precision", "Recall")],
            "confusion": {
                "names": [*NAMES, "background"],
                "matrix": [[8, 0, 1, 1], [0, 9, 0, 0], [1, 0, 7, 2], [1, 0, 0, 0]],
            },
            "val_images": [_image()],
            "speed_ms": {"preprocess": 0.3, "inference": 12.0, "postprocess": 1.1},
        },
        "usage": [
            {
                "time": 100.0 + 5 * i,
                "cpu_percent": 50.0 + i,
                "memory_bytes": 2**30 + i,
                "memory_limit_bytes": 8 * 2**30,
                "gpus": [],
            }
            for i in range(4)
        ],
    }
    results.update(changes)
    return results  # type: ignore[return-value]


# ------------------------------------------------------------------------------- pure parts


def test_header_names_the_run_and_labels_the_headline_metric() -> None:
    html = header_html(sample_results(), "Object detection")
    assert "shapes-run" in html and "Object detection" in html and "shapes" in html
    assert "3 of 4" in html and "box mAP50-95 0.610" in html  # best epoch, headline labelled
    assert "4 of 4" in html and "0.550" in html  # last epoch
    assert "<b>box mAP50-95 0.620</b>" in html  # final validation, headline first and bold
    assert "2 min 00 s" in html  # duration from started to ended
    running = sample_results(status="running", final=None, ended=None)
    assert "after the last epoch" in header_html(running, "Object detection")
    copy_of_data = {"data": "/srv/ws/jobs/0123456789ab/data.yaml", "model": "yolov8n.yaml"}
    own = sample_results(params=copy_of_data)
    assert "jobs/0123456789ab/data.yaml" in header_html(own, "x") and "/srv" not in header_html(
        own, "x"
    )
    assert "<td>shapes</td>" in header_html(own, "x", job={"data": "shapes"})
    stopped = sample_results(status="stopped", final=None)
    assert "ended before its final validation" in header_html(stopped, "Object detection")


def test_per_class_table_rows_and_orders() -> None:
    results = sample_results()
    html = class_table_html(results)
    assert html.count("<tr>") == 1 + len(NAMES)
    assert "yolo-classes" in html and "<b>0.700</b>" in html
    assert [r["name"] for r in sorted_classes(results, "headline")] == NAMES[::-1]
    assert [r["name"] for r in sorted_classes(results, "instances")] == NAMES
    assert "final validation" in class_table_html(sample_results(final=None))


def test_confusion_cells_normalize_per_true_class_and_keep_counts() -> None:
    matrix = sample_results()["final"]["confusion"]  # type: ignore[index]
    names, values, texts = confusion_cells(matrix, normalized=False)
    assert names[-1] == "background" and values[0][0] == 8 and texts[0][1] == ""
    _, shares, texts = confusion_cells(matrix, normalized=True)
    for j in range(3):  # every true class with objects sums to 1
        assert math.isclose(sum(row[j] or 0 for row in shares), 1.0)
    assert shares[0][0] == pytest.approx(0.8) and texts[0][0] == "8"
    empty = {"names": ["a", "b"], "matrix": [[1, 0], [0, 0]]}
    assert confusion_cells(empty, normalized=True)[1][0][1] is None  # no invented share


def test_figures_have_the_validator_data() -> None:
    final = sample_results()["final"]
    assert final is not None
    fig = curves_figure(final["curves"], "B")
    pr = [t for t in fig.data if t.meta["curve"] == "PR"]
    assert {t.meta["class"] for t in pr} == {*NAMES, "all"}
    mean = next(t for t in pr if t.meta["class"] == "all")
    assert len(mean.x) == CURVE_POINTS and "area" in mean.name
    assert len(fig.data) == 4 * (len(NAMES) + 1)
    assert curve_kinds([_curve("PR", "M"), _curve("PR", "B")]) == ["B", "M"]

    heat = confusion_figure(final["confusion"], normalized=False).data[0]
    assert list(heat.x) == [*NAMES, "background"] and heat.z[1][1] == 9
    assert confusion_figure(None, False).data == ()

    image = val_image_figure(final["val_images"][0], "data:image/png;base64,AAAA", "box")
    sides = [t.meta.get("side") for t in image.data if t.type == "scatter" and t.name != "halo"]
    assert sides.count("truth") == 2 and sides.count("predicted") == 1
    labels = [a.text for a in image.layout.annotations]
    assert "circle" in labels and "circle 0.91" in labels  # truth has no score

    usage = usage_figure(sample_results()["usage"])
    assert list(usage.data[0].x) == [0.0, 5.0, 10.0, 15.0] and usage.data[0].y[3] == 53.0
    gpu = {"index": 0, "name": "H200", "util_percent": 40.0, "memory_used_bytes": 2**31}
    series = usage_series([{"cpu_percent": 1.0, "gpus": [gpu]}])  # type: ignore[list-item]
    assert series["gpu0 util"] == [40.0] and series["gpu0 mem_gib"] == [2.0]


def test_console_is_clean_and_workspace_relative() -> None:
    log = (
        "\x1b[34mStarting\x1b[0m\n"
        "  1/3  0.1G  1.2: 10%|#   \r  1/3  0.1G  1.1: 100%|####\n"
        "Results saved to /home/u/workspace/jobs/0123/run\n"
        "weights /home/u/workspace/jobs/0123/run/weights/best.pt, 6.2MB\n"
        "settings at '/home/u/workspace/.ultralytics/settings.json' \U0001f680 ready \u2705\n"
    )
    text = console_text(log, job_id="0123")
    assert "\x1b" not in text and "10%" not in text and "100%" in text
    assert "weights jobs/0123/run/weights/best.pt, 6.2MB" in text and "/home/u" not in text
    assert "Results saved to jobs/0123/run" in text
    assert "settings at '.ultralytics/settings.json'  ready" in text  # the root read off jobs/
    assert (
        console_text("see /usr/lib/x.so and http://a/jobs/b")
        == "see /usr/lib/x.so and http://a/jobs/b"
    )


def test_results_shape_is_not_mutated_by_drawing() -> None:
    results = sample_results()
    before = copy.deepcopy(results)
    header_html(results, "x")
    class_table_html(results, "headline")
    assert results["final"] is not None
    val_image_figure(results["final"]["val_images"][0], None, "box")
    assert results == before


def _epoch_event(epoch: int, box: float, cls: float) -> dict[str, Any]:
    return {"type": "epoch", "epoch": epoch, "loss": {"box": box, "cls": cls, "dfl": None}}


def test_compare_overlays_runs_and_highlights_differing_parameters() -> None:
    a = sample_results()
    b = sample_results(
        job_id="ba9876543210",
        name="other-run",
        params={**a["params"], "lr0": 0.01, "workers": 2},
        history=[
            {"epoch": e, "metrics": {HEAD: e / 10}, "fitness": e / 10, "time": 1.0}
            for e in (1, 2, 3, 4)
        ],
    )
    epochs, totals = fold_losses(
        [
            _epoch_event(1, 2.0, 1.0),
            {"type": "batch"},
            _epoch_event(2, 1.0, 1.0),
            _epoch_event(2, 0.5, 0.5),  # epoch 2 done again after a resume replaces the first
        ]
    )
    assert epochs == [1, 2] and totals == [3.0, 1.0]
    runs = [ComparedRun(a, None, epochs, totals), ComparedRun(b, None, [1], [4.0])]

    fig = compare_figure(runs)
    heads = [t for t in fig.data if t.meta["series"] == "headline"]
    assert [t.meta["run"] for t in heads] == ["0123456789ab", "ba9876543210"]
    assert list(heads[1].y) == [0.1, 0.2, 0.3, 0.4] and heads[0].line.color != heads[1].line.color
    assert "box mAP50-95" in fig.layout.annotations[0].text  # the shared headline, labelled

    best = best_table_html(runs)
    assert best.count("<tr>") == 3 and "other-run" in best and "<b>0.610</b>" in best
    params = params_table_html(runs)
    differing = [row for row in params.split("<tr") if "yolo-differs" in row]
    assert len(differing) == 1 and "lr0" in differing[0]  # workers differ but say nothing
    assert params.index(">lr0<") < params.index(">data<")  # differing rows first
    assert "1 parameter(s) differ" in params

    label = job_label(
        {
            "id": "0123456789ab",
            "name": "shapes-run",
            "task": "detect",
            "data": "shapes",
            "status": "succeeded",
            "started": 1_764_633_605.0,
            "progress": {"headline": {"key": HEAD, "best": 0.61234}},
        }
    )
    assert label.startswith("shapes-run") and "shapes" in label and "box mAP50-95 0.612" in label
    assert "2025-12-02" in label


class PayloadClient(YoloClient):
    """A client whose answers are constructed payloads (the panels' drawing without a server).

    ``answers`` is what ``GET /yolo/jobs/{id}/results`` says now; a test changes it to play a
    run going on. Every other request the panels make is answered here too, so nothing leaves
    the process.
    """

    def __init__(self, answers: dict[str, RunResults]) -> None:
        super().__init__("http://127.0.0.1:9/", "unused")
        self.answers = answers
        self.calls: list[str] = []

    def results(self, job_id: str) -> RunResults:
        self.calls.append(job_id)
        return copy.deepcopy(self.answers[job_id])

    def job(self, job_id: str) -> dict[str, Any]:
        answer = self.answers[job_id]
        return {"id": job_id, "kind": "train", "data": "shapes", "status": answer["status"]}

    def jobs(self) -> list[dict[str, Any]]:
        return [
            self.job(j) | {"name": a["name"], "task": "detect"} for j, a in self.answers.items()
        ]

    def log(self, job_id: str, max_bytes: int | None = None) -> str:
        return f"Starting training\nResults saved to /srv/ws/jobs/{job_id}/run\n"

    def tasks(self) -> dict[str, Any]:
        from jupyter_yolo.contract.table import task_table

        return dict(task_table())

    def dataset_file(self, name: str, path: str) -> bytes:
        return PNG_1PX

    def iter_pages(self, job_id: str, after: int = 0, **_: Any) -> Iterator[dict[str, Any]]:
        events = [_epoch_event(e, 2.0 / e, 1.0) for e in (1, 2, 3, 4)]
        yield {"events": events, "last_seq": 4, "status": "succeeded", "more": False}


PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c6360f8cfc0f01f0005000201a5f5c5d30000000049454e44ae426082"
)


def test_results_panel_follows_a_run_to_its_final_results_and_stops_on_close() -> None:
    running = sample_results(status="running", ended=None, final=None, usage=[])
    client = PayloadClient({"0123456789ab": running})
    panel = ResultsPanel("0123456789ab", client, refresh_s=0.05)
    _until(lambda: panel.refreshes >= 2, 30)
    assert "after the last epoch" in panel.header_w.value and "running" in panel.header_w.value
    assert "final validation" in panel.classes_w.value
    assert panel.confusion.data == () and not panel.image_w.options
    assert "come with the final validation" in panel.image_note_w.value
    assert "jobs/0123456789ab/run" in panel.console_w.value and "/srv" not in panel.console_w.value

    client.answers["0123456789ab"] = sample_results()  # the run ended with its validation
    assert panel._ticker is not None
    # the ticker ends after the refresh that found the run complete (drawn by then)
    _until(lambda: not panel._ticker._thread.is_alive(), 30)  # type: ignore[union-attr]
    assert panel.classes_w.value.count("<tr>") == 1 + len(NAMES)
    assert len(panel.confusion.data[0].z) == len(NAMES) + 1
    _until(lambda: panel.images.data[0].source, 30)
    assert panel.images.data[0].source.startswith("data:image/png;base64,")
    assert panel.image_w.options[0][0] == "a.png \u00b7 2 true \u00b7 1 predicted"
    assert len(panel.usage.data[0].x) == 4 and panel.complete
    calls = len(client.calls)
    panel.normalized_w.value = True  # a toggle redraws from what the panel has
    assert panel.confusion.data[0].zmax == 1 and len(client.calls) == calls
    panel.sort_w.value = "headline"
    assert panel.classes_w.value.index("triangle") < panel.classes_w.value.index("circle")
    panel.close()

    still = PayloadClient({"0123456789ab": running})
    closing = ResultsPanel("0123456789ab", still, refresh_s=0.05)
    _until(lambda: closing.refreshes >= 1, 30)
    closing.close()
    assert closing._ticker is not None
    _until(lambda: not closing._ticker._thread.is_alive(), 30)
    asked = len(still.calls)
    time.sleep(0.3)  # no refresh after close (it would ask the client again)
    assert len(still.calls) == asked


def test_compare_runs_panel_draws_picked_runs() -> None:
    a = sample_results()
    b = sample_results(job_id="ba9876543210", name="other-run", params={**a["params"], "lr0": 0.1})
    client = PayloadClient({"0123456789ab": a, "ba9876543210": b})
    compare = CompareRuns(["0123456789ab", "ba9876543210", "000000000000"], client, refresh_s=0)
    _until(lambda: len(compare.runs) == 2 and compare.loads, 30)
    heads = [t for t in compare.figure.data if t.meta["series"] == "headline"]
    assert [t.meta["run"] for t in heads] == ["0123456789ab", "ba9876543210"]
    losses = [t for t in compare.figure.data if t.meta["series"] == "loss"]
    assert list(losses[0].y) == [3.0, 2.0, 2.0 / 3 + 1, 1.5]
    assert "000000000000" in compare.message_w.value  # not a train job of this server
    assert "yolo-differs" in compare.params_w.value and "shapes" in compare.best_w.value
    assert compare.metric_w.options[0] == ("headline", "")
    assert ("box mAP50", "metrics/mAP50(B)") in compare.metric_w.options
    compare.metric_w.value = "metrics/mAP50(B)"
    _until(lambda: "box mAP50<" in compare.figure.layout.annotations[0].text, 30)
    heads = [t for t in compare.figure.data if t.meta["series"] == "headline"]
    assert list(heads[0].y) == [0.88]  # the history's epoch 3 mAP50
    compare.select_w.value = ("ba9876543210",)
    _until(lambda: len(compare.runs) == 1 and len(compare.figure.data) == 2, 30)
    compare.close()


def test_training_panel_results_section_opens_the_runs_results() -> None:
    client = PayloadClient({"0123456789ab": sample_results(), "ba9876543210": sample_results()})
    section = ResultsSection(client)
    section.update(None, None)
    assert section.button.disabled and section.toggle() is None
    section.update("0123456789ab", "running", epochs_done=0)
    assert section.button.disabled  # nothing to show before the first epoch
    section.update("0123456789ab", "succeeded")
    assert not section.button.disabled
    panel = section.toggle()
    assert isinstance(panel, ResultsPanel) and section.holder.children == (panel,)
    assert section.open_results() is panel and section.button.description == "Hide results"
    section.update("ba9876543210", "stopped")  # the training panel shows another job now
    assert section.panel is None and section.holder.children == ()
    assert panel._closed and section.button.description == "Results"
    section.close()


def test_other_tasks_draw_from_their_shapes() -> None:
    classify: ValImage = {
        "image": "datasets/c/val/cat/1.png",
        "width": 32,
        "height": 32,
        "truth": [],
        "predicted": [],
        "truth_class": "cat",
        "predicted_classes": ["dog", "cat"],
    }
    fig = val_image_figure(classify, None, "class-scores")
    titles = [a.text for a in fig.layout.annotations]
    assert titles == ["truth: cat", "predicted: dog, cat"]
    empty = curves_figure([], "B")  # classify has no curves: an empty grid, no error
    assert empty.data == ()
    masks = [_curve("PR", "M"), _curve("F1", "M"), _curve("PR", "B")]
    assert {t.meta["kind"] for t in curves_figure(masks, "M").data} == {"M"}
    assert "mask" in curves_figure(masks, "M").layout.title.text
    square = {"names": ["cat", "dog"], "matrix": [[3, 1], [0, 2]]}  # classify: no background
    assert list(confusion_figure(square, True).data[0].x) == ["cat", "dog"]
    results = sample_results(task="classify", headline="metrics/accuracy_top1", final=None)
    html = header_html(results, "Image classification")
    assert "headline metric: accuracy top1" in html


def test_a_task_without_objects_says_what_it_lacks() -> None:
    final = {
        "task": "semantic",
        "names": NAMES,
        "weights": None,
        "metrics": {"metrics/mIoU": 0.4, "metrics/pixel_acc": 0.8},
        "per_class": [],
        "curves": [],
        "confusion": None,
        "val_images": [],
        "speed_ms": {},
    }
    semantic = sample_results(task="semantic", headline="metrics/mIoU", final=final)
    panel = ResultsPanel("0123456789ab", PayloadClient({"0123456789ab": semantic}), refresh_s=0)
    panel.refresh()
    assert "<b>mIoU 0.400</b>" in panel.header_w.value and "Semantic" in panel.header_w.value
    assert "reports no per-class metrics" in panel.classes_w.value
    assert "no images with objects" in panel.image_note_w.value
    assert panel.confusion.data == () and panel.curves.data == ()
    panel.close()


# ------------------------------------------------------------------------------- real server

TINY = {"imgsz": 64, "batch": 8, "device": "cpu", "workers": 0, "plots": False}


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, shapes_template: Path
) -> Iterator[ServerProcess]:
    """A jupyter server whose workspace has the shapes dataset."""
    workspace = tmp_path_factory.mktemp("results") / "workspace"
    install_dataset(shapes_template, workspace / "datasets" / "shapes")
    with serving(workspace) as process:
        yield process


def _until(predicate: Callable[[], Any], timeout: float, why: Callable[[], Any] = str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"condition not met: {why()}")


@pytest.mark.slow
def test_results_and_comparison_of_real_runs(server: ServerProcess) -> None:
    client = YoloClient(server.url, server.token)
    a = client.train("shapes", model="yolov8n.yaml", epochs=2, lr0=0.01, **TINY)["id"]
    b = client.train("shapes", model="yolov8n.yaml", epochs=2, lr0=0.02, **TINY)["id"]
    following = ResultsPanel(b, client, refresh_s=0.5)  # opened before run b has results
    headers: list[str] = []
    following.header_w.observe(lambda change: headers.append(change["new"]), names="value")
    assert client.wait(a, timeout=600)["status"] == "succeeded"

    panel = ResultsPanel(a, client, refresh_s=0)
    results = panel.refresh()
    final = results["final"]
    assert final is not None and results["status"] == "succeeded"
    assert "box mAP50-95" in panel.header_w.value and "2 of 2" in panel.header_w.value
    # the per-class table: one row per class the validator reported
    assert panel.classes_w.value.count("<tr>") - 1 == len(final["per_class"]) > 0
    # the confusion matrix heatmap counts every validation object in its true class's column
    heat = panel.confusion.data[0]
    assert len(heat.z) == len(final["names"]) + 1 and sum(map(sum, heat.z)) > 0
    # the PR curve: per class and the mean, CURVE_POINTS points each
    pr = [t for t in panel.curves.data if t.meta["curve"] == "PR"]
    assert {t.meta["class"] for t in pr} == {*final["curves"][0]["per_class"], "all"}
    assert all(len(t.y) == CURVE_POINTS for t in pr)
    # a validation image from the dataset route, truth beside predictions
    assert final["val_images"], "no validation images in the results"
    _until(
        lambda: panel.images.data and panel.images.data[0].source,
        60,
        lambda: (panel.image_note_w.value, panel.message_w.value, panel.image_w.options),
    )
    assert panel.images.data[0].source.startswith("data:image/")
    first = final["val_images"][0]
    truth = [t for t in panel.images.data if (t.meta or {}).get("side") == "truth"]
    assert len([t for t in truth if t.name != "halo"]) == len(first["truth"]) > 0
    # the console: the log's tail, no absolute workspace path
    assert "epoch" in panel.console_w.value.lower() or "Epoch" in panel.console_w.value
    assert str(server.workspace.resolve()) not in panel.console_w.value
    # usage over the run
    assert len(panel.usage.data[0].x) == len(results["usage"]) >= 1
    panel.close()

    # the panel opened on run b followed it to its final results, then stopped refreshing
    _until(lambda: following.complete and following.results["final"] is not None, 600)
    assert any("running" in h for h in headers) and "succeeded" in following.header_w.value
    _until(lambda: not following._ticker._thread.is_alive(), 30)  # type: ignore[union-attr]
    following.close()

    # the training panel of run a offers its results
    training = TrainingPanel.attach(a, client)
    _until(lambda: not training.results_w.button.disabled, 60)
    shown = training.results()
    assert isinstance(shown, ResultsPanel) and shown.job_id == a
    _until(lambda: shown.refreshes >= 1, 60)
    assert shown.results is not None and shown.results["final"] is not None
    training.close()
    assert shown._closed

    compare = CompareRuns([a, b], client, refresh_s=0)
    _until(lambda: compare.loads >= 1 and len(compare.runs) == 2, 120)
    heads = [t for t in compare.figure.data if t.meta["series"] == "headline"]
    assert [t.meta["run"] for t in heads] == [a, b]
    assert all(list(t.x) == [1, 2] for t in heads)
    losses = [t for t in compare.figure.data if t.meta["series"] == "loss"]
    assert all(len(t.y) == 2 and all(v > 0 for v in t.y) for t in losses)
    assert compare.best_w.value.count("<tr>") == 3
    differing = [r for r in compare.params_w.value.split("<tr") if "yolo-differs" in r]
    assert len(differing) == 1 and ">lr0<" in differing[0]
    compare.close()
