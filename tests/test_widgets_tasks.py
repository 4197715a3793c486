"""The panels for every task: drawing per geometry, task curves, task-aware form choices.

Real data shapes: ``fixtures/tasks/recorded_runs.json`` holds the events and predictions of real
tiny segment and pose runs (see its ``about``); masks are encoded by the runner's own encoder.
Only the training panel test needs a server (the existing ``client`` fixture).
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from jupyter_yolo.client import YoloClient
from jupyter_yolo.contract.table import task_table
from jupyter_yolo.rle import encode
from jupyter_yolo.widgets.detection_views import results_table, title_text
from jupyter_yolo.widgets.drawing import (
    COCO_SKELETON,
    class_bars,
    decode_rle,
    keypoint_traces,
    label_annotations,
    mask_overlay,
    pixel_map_overlay,
    png_uri,
    polygon_traces,
    rotated_traces,
    text_color,
)
from jupyter_yolo.widgets.history import TrainingHistory
from jupyter_yolo.widgets.samples import samples_figure
from jupyter_yolo.widgets.tasks import TaskFacts
from jupyter_yolo.widgets.training import TrainingPanel
from jupyter_yolo.widgets.training_form import dataset_options, model_options

from .server_process import serving

RECORDED = json.loads(
    (Path(__file__).parent / "fixtures" / "tasks" / "recorded_runs.json").read_text()
)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[YoloClient]:
    """A real server on an empty workspace (the panel reads /yolo/tasks and the listings)."""
    workspace = tmp_path_factory.mktemp("task-widgets") / "workspace"
    workspace.mkdir()
    with serving(workspace) as process:
        yield YoloClient(process.url, process.token)


def overlay_pixels(uri: str) -> np.ndarray:
    import base64

    return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))))


def test_rle_decodes_what_the_runner_encodes() -> None:
    mask = np.random.default_rng(0).random((37, 53)) > 0.6
    mask[0, 0] = True  # a mask starting with a run of 1 (counts start with 0)
    assert np.array_equal(decode_rle(encode(mask)), mask)
    recorded = RECORDED["segment"]["predictions"][0]["detections"][0]
    decoded = decode_rle(recorded["mask"])
    assert decoded.shape == (64, 64) and decoded.any()


def test_mask_overlay_colours_only_the_masked_pixels() -> None:
    mask = np.zeros((20, 30), dtype=bool)
    mask[5:10, 3:12] = True
    det: Any = {"cls": 1, "name": "b", "conf": 0.9, "box_xyxy": [3, 5, 12, 10]}
    assert mask_overlay([det], 30, 20) is None  # no mask: the polygon is filled instead
    uri = mask_overlay([{**det, "mask": encode(mask)}], 30, 20)
    assert uri is not None
    alpha = overlay_pixels(uri)[..., 3]
    assert (alpha[mask] > 0).all() and (alpha[~mask] == 0).all()
    outline = polygon_traces([{**det, "polygon": [[3, 5], [12, 5], [12, 10]]}], filled=False)
    assert list(outline[0].x) == [3, 12, 12, 3] and outline[0].fillcolor.endswith(",0.0)")


def test_keypoint_skeletons_follow_coco_for_17_points_and_the_order_otherwise() -> None:
    points = [[float(i), float(i), 0.9] for i in range(17)]
    det: Any = {"cls": 0, "name": "person", "conf": 0.8, "box_xyxy": [0, 0, 20, 20]}
    traces = keypoint_traces([{**det, "keypoints": points}])
    skeleton = next(t for t in traces if t.meta["kind"] == "skeleton")
    assert len(skeleton.x) == 3 * len(COCO_SKELETON)
    points[0][2] = 0.1  # the nose unseen: its limbs (0-1, 0-2) and point go
    traces = keypoint_traces([{**det, "keypoints": points}])
    skeleton = next(t for t in traces if t.meta["kind"] == "skeleton")
    dots = next(t for t in traces if t.meta["kind"] == "keypoints")
    assert len(skeleton.x) == 3 * (len(COCO_SKELETON) - 2) and len(dots.x) == 16
    # the recorded pose model has 3 keypoints: joined in order
    recorded = RECORDED["pose"]["predictions"][0]["detections"][0]
    assert len(recorded["keypoints"]) == 3
    traces = keypoint_traces([recorded])
    kinds = [t.meta["kind"] for t in traces]
    assert kinds == ["box", "skeleton", "keypoints"]


def test_rotated_boxes_labels_bars_and_pixel_maps() -> None:
    det: Any = {
        "cls": 2,
        "name": "ship",
        "conf": 0.7,
        "box_xyxy": [0, 0, 10, 10],
        "corners": [[5, 0], [10, 5], [5, 10], [0, 5]],
        "angle": 0.785,
    }
    outline = rotated_traces([det])[0]
    assert list(outline.x) == [5, 10, 5, 0, 5] and outline.meta["kind"] == "rotated-box"
    note = label_annotations([det])[0]
    assert note["text"] == "ship 0.7" and note["font"]["color"] == text_color("#4363d8")
    assert text_color("#ffff00") == "#000000" and text_color("#000075") == "#ffffff"
    weaker = {**det, "cls": 0, "conf": 0.1}
    other = {**det, "box_xyxy": [40, 40, 50, 50], "conf": 0.05}
    notes = label_annotations([det, weaker, other])  # best first, as the panel sorts them
    assert [n["text"] for n in notes] == ["ship 0.05", "ship 0.7"]  # one per corner, best on top

    bars = class_bars(
        [{"cls": 0, "name": "cat", "prob": 0.7}, {"cls": 1, "name": "dog", "prob": 0.2}]
    )
    assert list(bars.y) == ["dog", "cat"]  # best on top

    classes = np.array([[0, 1], [255, 2]], dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(classes).save(buffer, format="PNG")
    pixels = overlay_pixels(pixel_map_overlay(buffer.getvalue(), "pixel-map"))
    assert pixels[1, 0, 3] == 0 and pixels[0, 0, 3] > 0  # 255 is "ignore": clear
    depth = np.array([[1000, 2000], [3000, 0]], dtype=np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(depth).save(buffer, format="PNG")
    pixels = overlay_pixels(pixel_map_overlay(buffer.getvalue(), "depth-map"))
    assert pixels[1, 1, 3] == 0 and pixels[0, 0, 3] > 0  # no depth: clear
    assert tuple(pixels[0, 0, :3]) != tuple(pixels[1, 0, :3])  # near and far differ


def test_history_keeps_the_task_losses_and_metrics_of_real_events() -> None:
    history = TrainingHistory()
    history.consume(RECORDED["segment"]["events"])
    assert history.loss_keys[:4] == ["box", "seg", "cls", "dfl"]
    assert history.headline == "metrics/mAP50-95(M)"
    assert "metrics/mAP50-95(M)" in history.metric_keys
    xs, ys = history.metric_curve("metrics/mAP50-95(M)")
    assert xs == [1, 2] and all(isinstance(y, float) for y in ys)
    # events from before ``metrics`` existed: the box metrics are read from the top level
    old = TrainingHistory()
    old.consume([{"seq": 1, "type": "epoch", "epoch": 1, "mAP50-95": 0.4}])
    assert old.metric_curve("metrics/mAP50-95(B)") == ([1], [0.4])


def test_form_lists_architectures_by_task_and_datasets_with_their_task() -> None:
    facts = TaskFacts(dict(task_table()))
    segment = model_options(facts, "segment", [{"model": "mine-seg.pt"}, {"model": "a.pt"}])
    values = [v for _, v in segment]
    assert values[0] == "yolov8n-seg.yaml" and "mine-seg.pt" in values and "a.pt" not in values
    assert all(facts.task_of_model(v) == "segment" for v in values)
    everything = model_options(facts, "", [])
    assert len(everything) == len(facts.architectures)
    labels = dataset_options([{"name": "d", "task": "pose", "images": 12}, {"name": "e"}])
    assert labels == [("d (pose, 12 images)", "d"), ("e (? images)", "e")]


def test_samples_draw_polygons_keypoints_corners_and_classes() -> None:
    sample = {
        "path": "images/val/a.png",
        "width": 64,
        "height": 64,
        "thumbnail_size": [64, 64],
        "class_name": "cat",
        "boxes": [
            {
                "class_id": 0,
                "class_name": "square",
                "xywhn": [0.5, 0.5, 0.5, 0.5],
                "polygon": [[0.25, 0.25], [0.75, 0.25], [0.75, 0.75]],
                "keypoints": [[10, 10, 2], [20, 20, 2], [30, 30, 0]],
                "corners": [[16, 16], [48, 16], [48, 48], [16, 48]],
            }
        ],
    }
    figure = samples_figure({"samples": [sample]})
    scatter = [t for t in figure.data if t.type == "scatter" and t.meta]
    labels = [t.meta["label"] for t in scatter if t.meta.get("kind") != "halo"]
    assert labels == ["polygon", "corners", "skeleton", "keypoints", "box"]
    # every line has a contrasting halo under it (drawn first), the keypoint dots need none
    kinds = [t.meta.get("kind") for t in scatter]
    assert kinds == ["halo"] * 4 + [None] * 5
    polygon = next(t for t in figure.data if t.meta and t.meta.get("label") == "polygon")
    assert list(polygon.x) == [16.0, 48.0, 48.0, 16.0]  # normalised → thumbnail pixels
    dots = next(t for t in figure.data if t.meta and t.meta.get("label") == "keypoints")
    assert len(dots.x) == 2  # the unlabelled keypoint (v=0) is not drawn
    assert figure.layout.annotations[0].text == "cat: a.png"
    overlay = png_uri(np.zeros((64, 64, 4), dtype=np.uint8))
    figure = samples_figure({"samples": [{**sample, "boxes": [], "overlay": overlay}]})
    assert [t.name for t in figure.data if t.type == "image"] == ["overlay"]


def test_training_panel_draws_a_segment_run_headline_first(client: YoloClient) -> None:
    panel = TrainingPanel(client, model="yolov8n-seg.yaml", epochs=2)
    try:
        assert panel.task == "segment" and panel.task_w.value == "segment"
        assert {panel.facts.task_of_model(v) for _, v in panel.model_w.options} == {"segment"}
        job = RECORDED["segment"]["job"]
        panel.load_events(RECORDED["segment"]["events"], status=job["status"], task=job["task"])
        names = [t.name for t in panel.figure.data]
        metrics = [t for t in panel.figure.data if t.meta and "metric" in t.meta]
        assert metrics[0].name == "mask mAP50-95" and metrics[0].line.width == 4
        assert panel.trace_points("mask mAP50-95") == 2
        assert panel.trace_points("seg loss / batch") == panel.history.batch_points > 0
        # ultralytics 8.4's 'sem' loss of a -seg model without a semantic head: always 0, and
        # not drawn as a flat line at 0 beside the task's own losses
        assert {"box loss / batch", "seg loss / batch", "cls loss / batch"} <= set(names)
        assert not [n for n in names if n.startswith("sem ")]
        assert "<b>mask mAP50-95" in panel.status_w.value
        assert "Validation: <b>mask mAP50-95</b>" in panel.figure.layout.annotations[1].text

        # a loss beyond the profile is drawn once the events give it a value
        events = RECORDED["segment"]["events"]
        last = max(int(e["seq"]) for e in events)
        batch = next(e for e in events if e.get("type") == "batch")
        extra = {**batch, "seq": last + 1, "loss": {**batch["loss"], "sem": 0.5}}
        panel.load_events([extra], status=job["status"], task=job["task"])
        assert "sem loss / batch" in [t.name for t in panel.figure.data]

        panel.task_w.value = "pose"  # choosing a task lists its architectures
        assert panel.model_w.value == "yolov8n-pose.yaml"
    finally:
        panel.close()


@pytest.mark.parametrize("task", ["segment", "pose"])
def test_recorded_predictions_have_the_contract_shape(task: str) -> None:
    entry = RECORDED[task]["predictions"][0]
    assert {"file", "width", "height", "detections"} <= set(entry)
    extra = {"segment": {"polygon", "mask"}, "pose": {"keypoints"}}[task]
    assert extra <= set(entry["detections"][0])


def test_titles_and_tables_of_tasks_without_objects() -> None:
    # summaries as a real 1-epoch semantic / depth / classify run's predictions.json has them
    semantic = {"pixel_map": {"summary": {"shares": {"background": 0.75, "circle": 0.25}}}}
    assert title_text("a/x.jpg", semantic, [], "pixel-map") == (
        "x.jpg: shares background 75%, circle 25%"
    )
    depth = {"pixel_map": {"summary": {"min_m": 2.6052, "max_m": 2.6318, "unit": "mm"}}}
    assert "max_m 2.63" in title_text("x.jpg", depth, [], "depth-map")
    assert "<td>2.61</td>" in results_table(depth, [], "depth-map")
    classes = {"classes": [{"cls": 0, "name": "circle", "prob": 0.35}]}
    assert title_text("x.jpg", classes, [], "class-scores") == "x.jpg: circle 35.0%"


class _FlakyTasks:
    """A tiny HTTP server whose ``GET /yolo/tasks`` fails ``failures`` times, then answers."""

    def __init__(self, failures: int, table: dict[str, Any]) -> None:
        import http.server
        import threading

        owner = self
        self.failures = failures
        self.requests = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests += 1
                if owner.requests <= owner.failures:
                    status, body = 503, {"message": "the server is starting"}
                else:
                    status, body = 200, table
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_failed_task_table_read_is_retried_not_cached_for_good(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from jupyter_yolo.widgets import tasks as tasks_module

    served = dict(task_table())
    served["default"] = "segment"  # tells the served table from the contract's fallback
    flaky = _FlakyTasks(failures=1, table=served)
    now = [1000.0]
    monkeypatch.setattr(tasks_module, "_clock", lambda: now[0])
    try:
        client = YoloClient(flaky.url, token="t")
        first = tasks_module.task_facts(client)
        assert first.default == "detect" and flaky.requests == 1  # the fallback table
        # within the minute: the fallback again, without asking the server
        now[0] += tasks_module.RETRY_AFTER_S / 2
        assert tasks_module.task_facts(client).default == "detect"
        assert flaky.requests == 1
        # a minute on: asked again, and the server's table is kept from then on
        now[0] += tasks_module.RETRY_AFTER_S
        assert tasks_module.task_facts(client).default == "segment"
        assert flaky.requests == 2
        now[0] += 10 * tasks_module.RETRY_AFTER_S
        assert tasks_module.task_facts(client).default == "segment"
        assert flaky.requests == 2
    finally:
        flaky.close()


def test_prediction_panel_fits_the_weights_task(tmp_path: Path) -> None:
    from jupyter_yolo.widgets.detection import DetectionPanel

    from .task_data import make_dataset

    workspace = tmp_path / "workspace"
    make_dataset("segment", workspace / "uploads" / "seg", train=2, val=2)
    with serving(workspace) as process:
        client = YoloClient(process.url, process.token)
        for _ in range(3000):  # the built-in shapes dataset is generated at first start
            if all(d.get("status") == "ok" for d in client.datasets()):
                break
            time.sleep(0.1)
        client.import_dataset("zz-seg", "uploads/seg")
        listed = {d["name"]: d.get("task") for d in client.datasets()}
        assert listed["zz-seg"] == "segment" and "detect" in listed.values(), listed
        first = next(iter(listed))
        assert listed[first] != "segment", listed  # the first listed is not the weights' task
        seg = DetectionPanel(client, model="yolov8n-seg.yaml", backend="pytorch")
        detect = DetectionPanel(client, model="yolov8n.yaml", backend="pytorch")
        chosen = DetectionPanel(client, model="yolov8n-seg.yaml", dataset=first)
        try:
            assert seg.dataset_w.value == "zz-seg"
            assert str(seg.image_w.value).startswith("datasets/zz-seg/")
            assert listed[detect.dataset_w.value] == "detect"
            assert chosen.dataset_w.value == first  # an explicit choice stands
            # IoU and the class filter are shown for object tasks only
            assert seg.iou_w.layout.display is None and seg.classes_w.layout.display is None
            seg._show_task("classify")  # what choosing classify weights or showing one does
            assert seg.iou_w.layout.display == "none" == seg.classes_w.layout.display
            assert seg.conf_w.layout.display is None
        finally:
            for panel in (seg, detect, chosen):
                panel.close()


def test_outlines_show_on_a_background_of_their_own_colour() -> None:
    from jupyter_yolo.widgets.detection_draw import PredictionDrawing
    from jupyter_yolo.widgets.drawing import PALETTE, halo_traces

    # a red (class 0) box around a circle on a red image: the red line alone would vanish
    det = {"cls": 0, "name": "circle", "conf": 0.9, "box_xyxy": [10, 10, 40, 40]}
    for geometry, extra in (
        ("box", {}),
        ("polygon", {"polygon": [[10, 10], [40, 10], [40, 40]]}),
        ("rotated-box", {"corners": [[10, 10], [40, 10], [40, 40], [10, 40]]}),
        ("keypoints", {"keypoints": [[10, 10, 0.9], [20, 20, 0.9], [30, 30, 0.9]]}),
    ):
        traces = PredictionDrawing._traces([{**det, **extra}], geometry, masked=False)
        lines = [
            t for t in traces if t.meta["kind"] in ("box", "polygon", "rotated-box", "skeleton")
        ]
        halos = [t for t in traces if t.meta["kind"] == "halo"]
        assert len(halos) == len(lines) >= 1, geometry
        assert traces.index(halos[-1]) < traces.index(lines[0]), geometry  # halos underneath
        for halo, line in zip(halos, lines, strict=True):
            assert halo.line.color == text_color(PALETTE[0]) != line.line.color
            assert halo.line.width > line.line.width and list(halo.x) == list(line.x)
            assert halo.hoverinfo == "skip"  # the hover stays the outline's
    assert halo_traces([]) == []


@pytest.mark.parametrize("task", ["detect", "segment", "pose", "obb", "classify"])
def test_metric_curves_drawn_at_first_never_take_a_loss_colour(task: str) -> None:
    from jupyter_yolo.widgets.training_figure import FigureSpec, spec_traces

    facts = TaskFacts(dict(task_table()))
    spec = FigureSpec(
        tuple(facts.loss_keys(task)), tuple(facts.metric_keys(task)), facts.headline(task)
    )
    traces = spec_traces(spec)
    loss_colors = {t.line.color for t in traces if t.name.endswith(" loss / epoch")}
    drawn = [t for t in traces if t.meta and "metric" in t.meta and t.visible is True]
    assert drawn and drawn[0].meta["headline"], task
    assert not {t.line.color for t in drawn} & loss_colors, task
    assert len({t.line.color for t in drawn}) == len(drawn)  # and not each other's
