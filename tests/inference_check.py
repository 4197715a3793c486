"""Exports against PyTorch, in a process of its own (``python -m tests.inference_check``).

The pytest process never imports ultralytics: ``import ultralytics`` sets OMP_NUM_THREADS=1 in
the environment, which every job runner started afterwards by any test would inherit.

``agree OUT WEIGHTS DATA [COCO8_IMAGES]``: ONNX Runtime and OpenVINO FP32 predictions compared
with PyTorch's on coco8 validation images at 640 (when given) and on generated shapes images at
128; then OpenVINO INT8 (calibrated on DATA's train split) against FP32: mAP50 on DATA's val
split, and the median latency of each over those images. Writes one JSON object to OUT.

``export OUT WEIGHTS WORKSPACE IMGSZ``: the ONNX export of WEIGHTS from WORKSPACE's export cache
(made when missing); writes whether this process made it. Two of these at once make it once.

``tasks OUT WORKSPACE DATASETS TASK...``: for each task a tiny model trained on its synthetic
dataset (tests/inference_models.py), its ONNX and OpenVINO exports judged against PyTorch by the
task's own measure on the validation images, then ``auto`` (measured, then reused), a forced
export backend and a forced TensorRT; writes the figures of each task to OUT.

``orphan SRC DEST``: a copy of the checkpoint SRC whose training data path is gone.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any


def _prepare(workspace: Path) -> None:
    from jupyter_yolo.runner import offline
    from jupyter_yolo.runner.resources import usable_cpus

    offline.prepare(workspace, usable_cpus())
    import ultralytics  # noqa: F401 - after prepare()


def agree(out: Path, weights: Path, data: Path, coco8: Path | None) -> None:
    work = out.parent / "work"  # a workspace of its own: the export cache, settings, val runs
    work.mkdir(parents=True, exist_ok=True)
    _prepare(work)
    from jupyter_yolo.inference import backends as table
    from jupyter_yolo.inference.agreement import TOLERANCES, compare
    from jupyter_yolo.inference.cache import WeightsCache, exports_root, weights_digest
    from jupyter_yolo.inference.export import calibration_for, ensure_export
    from jupyter_yolo.inference.loader import (
        detections,
        generated_images,
        image_files,
        load_yolo,
        read_images,
    )
    from jupyter_yolo.inference.threads import install, settings_for
    from jupyter_yolo.runner.resources import usable_cpus

    install(settings_for(usable_cpus()))
    cache = WeightsCache(exports_root(work), weights_digest(weights))
    floor = 0.005
    report: dict[str, Any] = {}

    def compare_on(images: list[Any], imgsz: int) -> dict[str, Any]:
        models = {"pytorch": load_yolo(weights)}
        for name in ("onnxruntime", "openvino"):
            made = ensure_export(cache, table.get(name), weights, imgsz=imgsz)
            models[name] = load_yolo(made.path, "detect")
        found = {
            name: [
                detections(
                    model.predict(image, imgsz=imgsz, conf=floor, rect=False, verbose=False)[0]
                )
                for image in images
            ]
            for name, model in models.items()
        }
        import torch

        ort_session = models["onnxruntime"].predictor.model.backend.session
        compiled = models["openvino"].predictor.model.backend.ov_compiled_model
        report["threads"] = {
            "cpus": usable_cpus(),
            "torch": torch.get_num_threads(),
            "onnxruntime": ort_session.get_session_options().intra_op_num_threads,
            "openvino": int(compiled.get_property("INFERENCE_NUM_THREADS")),
            "openvino_hint": str(compiled.get_property("PERFORMANCE_HINT")),
        }
        return {
            name: compare(found["pytorch"], found[name], TOLERANCES["fp32"], floor=floor)
            for name in ("onnxruntime", "openvino")
        }

    if coco8 is not None:
        report["coco8"] = compare_on(read_images(image_files(coco8, 8)), 640)
    report["generated"] = compare_on(generated_images(8, 128), 128)

    calibration = calibration_for(data)
    fp32 = ensure_export(cache, table.get("openvino"), weights, imgsz=128)
    int8 = ensure_export(
        cache, table.get("openvino-int8"), weights, imgsz=128, calibration=calibration
    )
    val_images = read_images(image_files(data.parent / "images" / "val", 1000))
    figures: dict[str, Any] = {
        "calibration": calibration.as_dict(),
        "int8_export_s": int8.meta.get("seconds"),
    }
    for name, path in (("pytorch", weights), ("fp32", fp32.path), ("int8", int8.path)):
        model = load_yolo(path, "detect")
        metrics = model.val(
            data=str(data),
            imgsz=128,
            batch=1,
            device="cpu",
            workers=0,
            plots=False,
            verbose=False,
            project=str(work / "val"),
            name=name,
            exist_ok=True,
        )
        figures[f"{name}_map50"] = float(metrics.box.map50)
        model.predict(val_images[0], imgsz=128, verbose=False)
        times = []
        for _ in range(3):
            for image in val_images:
                started = time.perf_counter()
                model.predict(image, imgsz=128, verbose=False)
                times.append(time.perf_counter() - started)
        figures[f"{name}_latency_ms"] = statistics.median(times) * 1000
    figures["int8_map50_drop_pts"] = (figures["fp32_map50"] - figures["int8_map50"]) * 100
    figures["int8_speedup_over_fp32"] = figures["fp32_latency_ms"] / figures["int8_latency_ms"]
    report["int8"] = figures
    out.write_text(json.dumps(report, indent=1), encoding="utf-8")


def export(out: Path, weights: Path, workspace: Path, imgsz: int) -> None:
    _prepare(workspace)
    from jupyter_yolo.inference import backends as table
    from jupyter_yolo.inference.cache import WeightsCache
    from jupyter_yolo.inference.export import ensure_export

    logs: list[str] = []
    made = ensure_export(
        WeightsCache.for_weights(workspace, weights),
        table.get("onnxruntime"),
        weights,
        imgsz=imgsz,
        log=logs.append,
    )
    out.write_text(
        json.dumps({"exported": made.exported, "path": str(made.path), "logs": logs}),
        encoding="utf-8",
    )


def tasks(out: Path, workspace: Path, datasets: Path, names: list[str]) -> None:
    _prepare(workspace)
    from jupyter_yolo.inference import backends as table
    from jupyter_yolo.inference.cache import WeightsCache, exports_root, stored_choices
    from jupyter_yolo.inference.loader import image_files, load_yolo, read_images
    from jupyter_yolo.inference.measure import Loaded, judge, load_backend, measure
    from jupyter_yolo.inference.threads import install, settings_for
    from jupyter_yolo.inference.trial import BackendError, select_backend
    from jupyter_yolo.runner.resources import usable_cpus

    from .inference_models import train_task_model

    cpus = usable_cpus()
    install(settings_for(cpus))
    report: dict[str, Any] = {}
    for task in names:
        started = time.monotonic()
        weights, data = train_task_model(workspace, task, datasets)
        figures: dict[str, Any] = {"train_s": round(time.monotonic() - started, 1)}
        val = data / "val" if task == "classify" else data.parent / "images" / "val"
        images = read_images(image_files(val, 12))
        cache = WeightsCache.for_weights(workspace, weights)
        loaded = {"pytorch": Loaded(table.get("pytorch"), load_yolo(weights), weights)}
        for name in ("onnxruntime", "openvino"):
            loaded[name] = load_backend(
                table.get(name),
                weights,
                cache,
                imgsz=64,
                device="cpu",
                task=task,
                calibration=None,
                check=None,
                log=print,
            )
        _, found = measure(loaded, images, imgsz=64, device="cpu", task=task, rounds=1)
        figures["outputs"] = sum(len(image) for image in found["pytorch"])
        figures["images"] = len(images)
        figures["agreement"] = {
            name: judge(task, found["pytorch"], found[name], "fp32")
            for name in ("onnxruntime", "openvino")
        }
        figures["exports"] = {
            name: item.export.key for name, item in loaded.items() if item.export is not None
        }
        logs: list[str] = []
        auto = select_backend(
            weights,
            workspace=workspace,
            requested="auto",
            device="cpu",
            cpus=cpus,
            imgsz=64,
            source=val,
            rounds=1,
            log=logs.append,
        )
        again = select_backend(
            weights,
            workspace=workspace,
            requested="auto",
            device="cpu",
            cpus=cpus,
            imgsz=64,
            source=val,
            rounds=1,
            log=logs.append,
        )
        auto.model.predict(images[0], imgsz=64, verbose=False)  # the chosen model runs
        forced = select_backend(
            weights, workspace=workspace, requested="openvino", device="cpu", cpus=cpus, imgsz=64
        )
        try:
            select_backend(
                weights, workspace=workspace, requested="tensorrt", device="cpu", cpus=cpus
            )
            refusal = None
        except BackendError as exc:
            refusal = str(exc)
        figures["auto"] = {
            k: auto.report.get(k)
            for k in ("name", "task", "cached", "exported", "latency_ms", "agreement", "skipped")
        }
        figures["auto_again"] = {k: again.report.get(k) for k in ("name", "cached", "exported")}
        figures["auto_record_agreement"] = (auto.record or {}).get("agreement")
        figures["forced"] = {k: forced.report.get(k) for k in ("name", "task", "cached")}
        figures["forced_predicts"] = len(forced.model.predict(images[0], imgsz=64, verbose=False))
        figures["tensorrt_refusal"] = refusal
        figures["choice_files"] = sorted(p.name for p in cache.folder.glob("auto-*.json"))
        figures["stored_choices"] = stored_choices(exports_root(workspace), cache.digest)
        figures["seconds"] = round(time.monotonic() - started, 1)
        report[task] = figures
        print(f"{task}: {json.dumps(figures)[:2000]}", flush=True)
    out.write_text(json.dumps(report, indent=1), encoding="utf-8")


def orphan(src: Path, dest: Path) -> None:
    import torch

    ckpt = torch.load(src, map_location="cpu", weights_only=False)
    ckpt["train_args"] = {**(ckpt.get("train_args") or {}), "data": "/nonexistent/data.yaml"}
    torch.save(ckpt, dest)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    command, *args = sys.argv[1:]
    if command == "agree":
        agree(Path(args[0]), Path(args[1]), Path(args[2]), Path(args[3]) if len(args) > 3 else None)
    elif command == "export":
        export(Path(args[0]), Path(args[1]), Path(args[2]), int(args[3]))
    elif command == "tasks":
        tasks(Path(args[0]), Path(args[1]), Path(args[2]), args[3:])
    elif command == "orphan":
        orphan(Path(args[0]), Path(args[1]))
    else:
        raise SystemExit(f"unknown command {command}")
