"""The first prediction after training: from a training job's end to the panel's first answer.

Two real servers on generated shapes workspaces, one with ``prepare_after_training`` on (the
default) and one with it off (the cold path of before: the first ``auto`` request exports the
model and measures its backends while the person waits). Each repeat, alternating which server
goes first, runs a short training job on each, follows its events, and at the moment its
terminal status event arrives asks the prediction panel (a real
:class:`~jupyter_yolo.widgets.detection.DetectionPanel` on the server's client, so the request
is the panel's own default one: ``model=job:<id>:best``, backend ``auto``, its default
confidence and IoU, the server's default device and the model's own image size) to predict its
first image, and times until the answer is drawn (``predict.first_after_train_s``, target
<= 5 s at p50; ``predict.first_after_train_cold_s`` the same with the setting off). With the
setting on it then waits for the background preparation and times the panel's next prediction
(``predict.after_prepared_s``: the measured backend on its warm worker), and reports what the
answers ran on.

This is the ``first_predict`` section of ``python -m bench`` (keys ``predict.*``). Nothing here
imports torch or ultralytics.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .common import Log, Rest, follow_events, make_shapes, median, rounded, start_server

TRAIN = {
    "kind": "train",
    "model": "yolov8n.yaml",
    "data": "shapes",
    "epochs": 1,
    "imgsz": 64,
    "batch": 8,
    "device": "cpu",
    "workers": 0,
    "plots": False,
}
PREPARED_TIMEOUT_S = 600.0


class Side:
    """One server (setting on or off), its REST client and its prediction panel."""

    def __init__(self, name: str, prepare: bool, workdir: Path) -> None:
        from jupyter_yolo.client import YoloClient
        from jupyter_yolo.widgets.detection import DetectionPanel

        self.name = name
        self.prepare = prepare
        root = workdir / name
        workspace = root / "workspace"
        workspace.mkdir(parents=True, exist_ok=True)
        make_shapes(workspace, train=32, val=8, imgsz=64, seed=0)
        self.server = start_server(
            root, workspace, {}, (f"--YoloApp.prepare_after_training={prepare}",)
        )
        self.rest = Rest(self.server.url, self.server.token, timeout=900)
        self.client = YoloClient(self.server.url, self.server.token, timeout=900)
        self.panel = DetectionPanel(self.client, dataset="shapes")
        self.first: list[float] = []
        self.after: list[float] = []
        self.prepare_s: list[float] = []
        self.backends: list[str] = []

    def close(self) -> None:
        """Close the panel and stop the server (its workers and preparation with it)."""
        self.panel.close()
        self.rest.close()
        self.server.stop()

    def panel_predict(self, model: str) -> tuple[float, dict[str, Any]]:
        """Seconds until the panel's prediction with ``model`` is answered; its backend."""
        started = time.perf_counter()
        self.panel.refresh_models(select=model)  # the new weights in the panel's list
        self.panel.predict()
        took = time.perf_counter() - started
        if self.panel.last_error is not None:
            raise RuntimeError(
                f"{self.name}: the panel's prediction failed: {self.panel.last_error}"
            )
        current = self.panel._current
        backend = dict(current[1].backend or {}) if current is not None else {}
        return took, backend

    def repeat(self, index: int, log: Log) -> None:
        """Train, predict at the terminal event, and (setting on) after the preparation."""
        job = self.rest.request("POST", "/yolo/jobs", TRAIN)
        ended = None
        for event, _received in follow_events(self.rest, job["id"], timeout_s=900):
            if event.get("type") == "status" and event.get("status") in ("succeeded", "failed"):
                ended = event["status"]
        if ended != "succeeded":
            raise RuntimeError(f"{self.name}: training job {job['id']} ended {ended}")
        model = f"job:{job['id']}:best"
        ended_at = time.perf_counter()
        took, backend = self.panel_predict(model)
        self.first.append(took)
        report = backend.get("report") or {}
        what = f"{backend.get('name')}" + (" (stand-in)" if report.get("standin") else "")
        self.backends.append(what)
        log(f"first_predict {self.name} #{index}: {took:.2f} s after the job's end, on {what}")
        if not self.prepare:
            return
        info = self.wait_prepared(model)
        self.prepare_s.append(time.perf_counter() - ended_at)
        took, backend = self.panel_predict(model)
        self.after.append(took)
        log(
            f"first_predict {self.name} #{index}: prepared ({info['state']}, auto chose "
            f"{info.get('choice')}) {self.prepare_s[-1]:.1f} s after the job's end; next "
            f"prediction {took:.3f} s on {backend.get('name')}"
        )

    def wait_prepared(self, model: str) -> dict[str, Any]:
        """Poll until the preparation of ``model`` has ended; its listing."""
        deadline = time.monotonic() + PREPARED_TIMEOUT_S
        while time.monotonic() < deadline:
            listed = self.rest.get("/yolo/predict/workers")
            for info in listed.get("preparations") or []:
                if info["model"] == model and info["state"] not in (
                    "waiting",
                    "running",
                    "warming",
                ):
                    return dict(info)
            time.sleep(0.25)
        raise TimeoutError(f"{self.name}: {model} was not prepared within {PREPARED_TIMEOUT_S} s")

    def clear(self) -> None:
        """Stop the workers, so every repeat starts with none (each trains new weights)."""
        self.rest.request("DELETE", "/yolo/predict/workers")


def _values(values: list[float], digits: int = 3) -> list[float | None]:
    return [rounded(v, digits) for v in values]


def run(*, quick: bool, workdir: Path, log: Log) -> dict[str, Any]:
    """The ``first_predict`` section: ``{"predict": {...}}`` (quick: 2 repeats, else 5)."""
    repeats = 2 if quick else 5
    log(f"first_predict: {repeats} short trainings per side, panel prediction at each end")
    sides = [Side("prepared", True, workdir), Side("cold", False, workdir)]
    try:
        for index in range(repeats):
            for side in sides if index % 2 == 0 else reversed(sides):
                side.repeat(index, log)
                side.clear()
    finally:
        for side in sides:
            side.close()
    on, off = sides
    p50 = median(on.first)
    cold = median(off.first)
    return {
        "predict": {
            "first_after_train_s": rounded(p50),
            "first_after_train_cold_s": rounded(cold),
            "first_after_train_speedup": rounded(cold / p50 if p50 > 0 else float("nan"), 2),
            "first_after_train_all_s": _values(on.first),
            "first_after_train_cold_all_s": _values(off.first),
            "first_after_train_backends": on.backends,
            "first_after_train_cold_backends": off.backends,
            "prepared_after_train_s": rounded(median(on.prepare_s), 2),
            "after_prepared_s": rounded(median(on.after), 4),
            "after_prepared_all_s": _values(on.after, 4),
            "repeats": repeats,
        }
    }
