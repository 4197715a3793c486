"""Inference backends side by side: images/s per backend and for ``auto``, against plain PyTorch.

``python -m bench.inference [--quick] [--out FILE.json] [--workdir DIR]`` prints a table (and
writes the JSON); ``python -m bench`` runs :func:`run` as its ``inference`` section.

What is measured, in one run:

* the model: yolov8n trained from scratch on the synthetic shapes dataset (96 train / 48 val
  images at 128 px, 30 epochs: mAP50 about 0.9) by the real job runner, kept in the work
  folder for the next run;
* the images: coco8's validation images (``../shared/datasets/coco8`` when present), else
  generated shapes images, all predicted at imgsz 640, one image per call from its file, the
  way a predict job reads them (end to end: reading, letterbox, inference, NMS);
* ``auto``: the measured trial a first predict job runs (exports, timing, agreement with
  PyTorch), then the model a later job loads from the stored choice;
* each single backend (``pytorch`` with the runner's thread settings, ``onnxruntime``,
  ``openvino``, ``openvino-int8``), loaded the way a forced predict job loads it;
* plain PyTorch with default settings: ``YOLO(w).predict(image, imgsz=640)`` in a fresh process
  whose environment has no thread variables, so ultralytics' defaults apply as they do for a
  user (``OMP_NUM_THREADS=1``, and torch threads = host CPUs - 1: one on a 2-CPU box), driven
  pass by pass over a pipe so it takes its turn with the others.

Every contestant predicts the whole image set once per round, in a shuffled order, after one
untimed prediction; images/s is the median over rounds (15 in quick mode, 41 otherwise).
INT8: OpenVINO INT8 against FP32 on the shapes validation split at the model's own size (128):
mAP50 of both, and the speedup of INT8 over FP32 from the images/s above. Heavy imports happen
in a child process (``--measure``), so the calling process never imports ultralytics (which
would set OMP_NUM_THREADS=1 for everything it starts afterwards).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jupyter_yolo.datasets.synthetic import RECOMMENDED_TRAIN_ARGS

REPO_ROOT = Path(__file__).resolve().parent.parent
COCO8_VAL = REPO_ROOT.parent / "shared" / "datasets" / "coco8" / "images" / "val"
IMGSZ = 640
BACKENDS = ("pytorch", "onnxruntime", "openvino", "openvino-int8")
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
TRAIN = {
    **RECOMMENDED_TRAIN_ARGS,
    "model": "yolov8n.yaml",
    "device": "cpu",
    "workers": 0,
    "plots": False,
    "seed": 0,
    "val": False,
}
JOB_ID = "00000000be9c"
EPOCHS = 30  # mAP50 about 0.9 on the shapes val split; detections on coco8 images too

Log = Callable[[str], None]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------- preparation


def _clean_env() -> dict[str, str]:
    """The calling environment without tokens; unbuffered output."""
    env = {k: v for k, v in os.environ.items() if "TOKEN" not in k}
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


def plain_env(workdir: Path) -> dict[str, str]:
    """A user's environment: no thread variables, no jupyter-yolo runner settings."""
    env = {
        k: v
        for k, v in _clean_env().items()
        if k not in THREAD_VARS and not k.startswith(("YOLO_", "JUPYTER_YOLO"))
    }
    env["YOLO_OFFLINE"] = "1"  # no update check over the network (it does not change speed)
    env["YOLO_CONFIG_DIR"] = str(workdir / "plain-config")
    return env


def ensure_model(workdir: Path, epochs: int, log: Log) -> tuple[Path, Path, Path]:
    """(workspace, weights, data.yaml): the shapes detector, trained by the runner when missing."""
    from jupyter_yolo.datasets.synthetic import generate_shapes

    workspace = workdir / "workspace"
    dataset = workspace / "datasets" / "shapes"
    data = dataset / "data.yaml"
    if not data.exists():
        generate_shapes(dataset, train=96, val=48, imgsz=128, seed=0)
    job_dir = workspace / "jobs" / f"{JOB_ID[:-2]}{epochs:02d}"
    weights = job_dir / "run" / "weights" / "last.pt"
    if weights.exists():
        log(f"inference: reusing the trained model {weights}")
        return workspace, weights, data
    job_dir.mkdir(parents=True, exist_ok=True)
    params = {**TRAIN, "epochs": epochs, "data": str(data)}
    (job_dir / "job.json").write_text(
        json.dumps(
            {
                "id": job_dir.name,
                "kind": "train",
                "workspace": str(workspace),
                "params": params,
            }
        ),
        encoding="utf-8",
    )
    log(f"inference: training yolov8n on the shapes dataset ({epochs} epochs at 128 px)")
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "jupyter_yolo.runner", str(job_dir)],
        cwd=job_dir,
        env=_clean_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=1800,
        check=False,
    )
    if done.returncode != 0 or not weights.exists():
        tail = (job_dir / "log.txt").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"training the benchmark model failed:\n{tail}")
    log(f"inference: trained in {time.monotonic() - started:.0f} s")
    return workspace, weights, data


def bench_images(workdir: Path) -> tuple[Path, str]:
    """The folder of images predicted at 640, and what they are."""
    if COCO8_VAL.is_dir() and any(COCO8_VAL.glob("*.jpg")):
        return COCO8_VAL, "coco8 val"
    folder = workdir / "generated-640"
    if not folder.is_dir():
        import numpy as np
        from PIL import Image

        from jupyter_yolo.datasets.synthetic import SHAPES, _render

        drawers = [SHAPES[name] for name in ("circle", "square", "triangle")]
        folder.mkdir(parents=True)
        for index in range(8):
            rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([11, index])))
            jpeg, _ = _render(rng, IMGSZ, len(drawers), drawers)
            (folder / f"generated_{index:02d}.jpg").write_bytes(jpeg)
            Image.open(folder / f"generated_{index:02d}.jpg").verify()
    return folder, "generated shapes"


# --------------------------------------------------------------------------------- the section


def run(*, quick: bool, workdir: Path, log: Log) -> dict[str, Any]:
    """Measure the inference figures; a flat JSON-able dict (``python -m bench`` section)."""
    workdir = workdir.absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    workspace, weights, data = ensure_model(workdir, EPOCHS, log)
    images, images_note = bench_images(workdir)
    config = {
        "workspace": str(workspace),
        "weights": str(weights),
        "data": str(data),
        "images": str(images),
        "images_note": images_note,
        "imgsz": IMGSZ,
        "rounds": 15 if quick else 41,
        "trial_rounds": 3 if quick else 5,
        "plain_env": plain_env(workdir),
    }
    config_path = workdir / "inference-config.json"
    out_path = workdir / "inference-result.json"
    config_path.write_text(json.dumps(config, indent=1), encoding="utf-8")
    out_path.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.inference", "--measure", str(config_path), str(out_path)],
        cwd=REPO_ROOT,
        env=_clean_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    tail: list[str] = []
    for raw in proc.stdout:
        line = raw.rstrip()
        tail = [*tail[-60:], line]
        if line.startswith("inference:"):
            log(line)
    if proc.wait() != 0 or not out_path.exists():
        raise RuntimeError("the inference measurement failed:\n" + "\n".join(tail))
    result: dict[str, Any] = json.loads(out_path.read_text(encoding="utf-8"))
    result["section_s"] = round(time.monotonic() - started, 1)
    result["quick"] = quick
    return result


# --------------------------------------------------------------------------------- child: measure


def _say(text: str) -> None:
    print(f"inference: {text}", flush=True)


class PlainPyTorch:
    """``YOLO(w).predict(image)`` in a fresh process with a user's environment, pass by pass."""

    def __init__(self, weights: Path, images: list[Path], imgsz: int, env: dict[str, str]):
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.inference",
                "--plain",
                str(weights),
                str(imgsz),
                *map(str, images),
            ],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.facts = json.loads(self._line())

    def _line(self) -> str:
        assert self.proc.stdout is not None
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("the plain PyTorch process ended")
            if line.startswith("{"):
                return line

    def one_pass(self) -> float:
        """Seconds for one pass over the images."""
        assert self.proc.stdin is not None
        self.proc.stdin.write("pass\n")
        self.proc.stdin.flush()
        return float(json.loads(self._line())["seconds"])

    def close(self) -> None:
        """End the process."""
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def plain_main(weights: str, imgsz: int, images: list[str]) -> None:
    """The plain process: load, warm up, report the facts, then one pass per 'pass' line."""
    import torch
    from ultralytics import YOLO  # type: ignore[attr-defined]  # as a user writes it

    model = YOLO(weights)
    model.predict(images[0], imgsz=imgsz, verbose=False)
    print(
        json.dumps(
            {
                "torch_threads": torch.get_num_threads(),
                "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
            }
        ),
        flush=True,
    )
    for line in sys.stdin:
        if line.strip() != "pass":
            continue
        model.predict(images[0], imgsz=imgsz, verbose=False)
        started = time.perf_counter()
        for image in images:
            model.predict(image, imgsz=imgsz, verbose=False)
        print(json.dumps({"seconds": time.perf_counter() - started}), flush=True)


def r3(value: float) -> float:
    return round(float(value), 3)


def _val_map50(model: Any, data: str, imgsz: int, project: Path, name: str) -> dict[str, float]:
    metrics = model.val(
        data=data,
        imgsz=imgsz,
        batch=1,
        device="cpu",
        workers=0,
        plots=False,
        verbose=False,
        project=str(project),
        name=name,
        exist_ok=True,
    )
    speed = getattr(metrics, "speed", None) or {}
    return {"map50": float(metrics.box.map50), "inference_ms": float(speed.get("inference", 0))}


def measure(config: dict[str, Any]) -> dict[str, Any]:
    """The child process: every figure, side by side."""
    from jupyter_yolo.runner import offline
    from jupyter_yolo.runner.resources import usable_cpus

    workspace = Path(config["workspace"])
    cpus = usable_cpus()
    offline.prepare(workspace, cpus)
    import ultralytics  # noqa: F401 - after prepare()

    from jupyter_yolo.inference import backends as table
    from jupyter_yolo.inference.cache import WeightsCache
    from jupyter_yolo.inference.export import calibration_for, ensure_export
    from jupyter_yolo.inference.loader import image_files, load_yolo
    from jupyter_yolo.inference.trial import select_backend

    weights = Path(config["weights"])
    images = image_files(Path(config["images"]), 64)
    imgsz = int(config["imgsz"])
    rounds = int(config["rounds"])

    _say(f"auto: measuring the backends on {len(images)} {config['images_note']} images")
    started = time.monotonic()
    trial = select_backend(
        weights,
        workspace=workspace,
        requested="auto",
        device="cpu",
        cpus=cpus,
        imgsz=imgsz,
        source=Path(config["images"]),
        remeasure=True,
        rounds=int(config["trial_rounds"]),
        log=_say,
    )
    trial_s = time.monotonic() - started
    report = trial.report
    _say(f"auto chose {trial.name} in {trial_s:.1f} s")
    contestants: dict[str, Any] = {}
    auto = select_backend(
        weights,
        workspace=workspace,
        requested="auto",
        device="cpu",
        cpus=cpus,
        imgsz=imgsz,
        log=_say,
    )  # a later job: the stored choice
    contestants["auto"] = auto.model
    for name in BACKENDS:
        contestants[name] = select_backend(
            weights,
            workspace=workspace,
            requested=name,
            device="cpu",
            cpus=cpus,
            imgsz=imgsz,
            log=_say,
        ).model
    plain = PlainPyTorch(weights, images, imgsz, config["plain_env"])
    names = [*contestants, "pytorch_default"]
    passes: dict[str, list[float]] = {name: [] for name in names}
    args = {"imgsz": imgsz, "verbose": False, "save": False, "device": "cpu"}
    try:
        for model in contestants.values():
            model.predict(str(images[0]), **args)
        _say(f"timing {', '.join(names)}: {rounds} rounds of {len(images)} images")
        for index in range(rounds):
            order = list(names)
            random.Random(index).shuffle(order)  # no contestant always follows the same one
            for name in order:
                if name == "pytorch_default":
                    seconds = plain.one_pass()
                else:
                    model = contestants[name]
                    model.predict(str(images[0]), **args)
                    begun = time.perf_counter()
                    for image in images:
                        model.predict(str(image), **args)
                    seconds = time.perf_counter() - begun
                passes[name].append(len(images) / seconds)
    finally:
        plain.close()
    per_s = {name: statistics.median(values) for name, values in passes.items()}
    singles = {name: per_s[name] for name in BACKENDS}
    agreeing = [
        n for n in BACKENDS if n == "pytorch" or (report["agreement"].get(n) or {}).get("agree")
    ]
    best = max(agreeing, key=lambda n: singles[n])
    fastest = max(singles, key=lambda n: singles[n])

    _say("INT8 against FP32 on the shapes validation split at 128 px")
    data = str(config["data"])
    cache = WeightsCache.for_weights(workspace, weights)
    calibration = calibration_for(Path(data))
    fp32 = ensure_export(cache, table.get("openvino"), weights, imgsz=128, log=_say)
    int8 = ensure_export(
        cache, table.get("openvino-int8"), weights, imgsz=128, calibration=calibration, log=_say
    )
    project = workspace / "runs" / "bench-val"
    val = {
        "pytorch": _val_map50(load_yolo(weights), data, 128, project, "pytorch"),
        "fp32": _val_map50(load_yolo(fp32.path, "detect"), data, 128, project, "fp32"),
        "int8": _val_map50(load_yolo(int8.path, "detect"), data, 128, project, "int8"),
    }
    return {
        "choice": trial.name,
        "auto_over_best": r3(per_s["auto"] / singles[best]),
        "auto_over_pytorch": r3(per_s["auto"] / per_s["pytorch_default"]),
        "auto_over_fastest": r3(per_s["auto"] / singles[fastest]),
        "images_per_s": {name: r3(value) for name, value in singles.items()},
        "auto_images_per_s": r3(per_s["auto"]),
        "pytorch_default_images_per_s": r3(per_s["pytorch_default"]),
        "best_backend": best,
        "fastest_backend": fastest,
        "pytorch_threads_over_default": r3(singles["pytorch"] / per_s["pytorch_default"]),
        "int8_map50": r3(val["int8"]["map50"]),
        "fp32_map50": r3(val["fp32"]["map50"]),
        "pytorch_map50": r3(val["pytorch"]["map50"]),
        "int8_map50_drop_pts": round((val["fp32"]["map50"] - val["int8"]["map50"]) * 100, 2),
        "int8_speedup_over_fp32": r3(singles["openvino-int8"] / singles["openvino"]),
        "int8_calibration_images": calibration.images,
        "trial_latency_ms": report.get("latency_ms"),
        "trial_agreement": {
            n: {k: a.get(k) for k in ("agree", "compared_boxes", "max_score_delta")}
            for n, a in (report.get("agreement") or {}).items()
        },
        "trial_s": round(trial_s, 1),
        "trial_exported": report.get("exported"),
        "images": len(images),
        "images_source": config["images_note"],
        "imgsz": imgsz,
        "rounds": rounds,
        "threads": report.get("threads"),
        "plain_pytorch": plain.facts,
        "passes_images_per_s": {name: [r3(v) for v in values] for name, values in passes.items()},
    }


# --------------------------------------------------------------------------------- command line


def format_table(result: dict[str, Any]) -> str:
    """The figures as a small text table."""
    rows = [(f"{name}", f"{value:.2f} images/s") for name, value in result["images_per_s"].items()]
    rows += [
        ("auto", f"{result['auto_images_per_s']:.2f} images/s (chose {result['choice']})"),
        ("plain PyTorch (default)", f"{result['pytorch_default_images_per_s']:.2f} images/s"),
        (
            "auto / best agreeing backend",
            f"{result['auto_over_best']:.3f} (best: {result['best_backend']})",
        ),
        ("auto / plain PyTorch", f"{result['auto_over_pytorch']:.2f}x"),
        (
            "INT8 mAP50 vs FP32",
            f"{result['int8_map50']:.3f} vs {result['fp32_map50']:.3f} "
            f"({result['int8_map50_drop_pts']:+.2f} points drop)",
        ),
        ("INT8 speedup over FP32", f"{result['int8_speedup_over_fp32']:.2f}x"),
    ]
    width = max(len(name) for name, _ in rows)
    head = (
        f"inference on {result['images']} {result['images_source']} images at "
        f"{result['imgsz']} px, {result['rounds']} rounds, medians"
    )
    return "\n".join([head, *(f"  {name:<{width}}  {value}" for name, value in rows)])


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.inference``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "--measure":
        config = json.loads(Path(args[1]).read_text(encoding="utf-8"))
        result = measure(config)
        Path(args[2]).write_text(json.dumps(result, indent=1), encoding="utf-8")
        return 0
    if args and args[0] == "--plain":
        plain_main(args[1], int(args[2]), args[3:])
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench.inference", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="fewer rounds (about 4 minutes, the training included)"
    )
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=REPO_ROOT / "artifacts" / "bench-inference",
        help="work folder; the trained model is kept there for the next run",
    )
    options = parser.parse_args(args)
    result = run(quick=options.quick, workdir=options.workdir, log=_stderr)
    print(format_table(result))
    if options.out:
        options.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
