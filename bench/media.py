"""What the ``serving`` section predicts on and measures against, outside the server.

* :func:`make_images`: 640 px JPEGs of the synthetic shapes (a folder to predict, one image for
  the interactive requests);
* :func:`make_video`: an H.264 mp4 of shapes moving over a noisy background (PyAV);
* :func:`plain_cli`: plain ``yolo predict model=... source=<folder>`` in a fresh process with a
  user's environment, timed from start to exit;
* :func:`raw_limit`: the raw model limit of a backend on this machine, in a child process
  (``python -m bench.media --raw CONFIG OUT``): OpenVINO's own throughput path (the exported
  model compiled with ``PERFORMANCE_HINT=THROUGHPUT``, an ``AsyncInferQueue`` of its optimal
  number of infer requests, random input), ONNX Runtime's and PyTorch's bare inference loop.

The benchmark process itself imports neither torch nor ultralytics nor OpenVINO.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------------- inputs


def make_images(folder: Path, count: int, imgsz: int = 640) -> list[Path]:
    """``count`` shapes JPEGs of ``imgsz`` px in ``folder`` (kept when already there)."""
    import numpy as np

    from jupyter_yolo.contract.files import write_atomic
    from jupyter_yolo.datasets.synthetic import SHAPES, _render

    drawers = [SHAPES[name] for name in ("circle", "square", "triangle")]
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        path = folder / f"shapes_{index:04d}.jpg"
        if not path.is_file():
            rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([14, index])))
            jpeg, _ = _render(rng, imgsz, len(drawers), drawers)
            write_atomic(path, jpeg)
        paths.append(path)
    return paths


def _frame(index: int, width: int, height: int, noise: Any) -> Any:
    """One video frame: three shapes crossing a textured background, as an RGB array."""
    import numpy as np
    from PIL import Image, ImageDraw

    image = Image.fromarray(noise)
    draw = ImageDraw.Draw(image)
    x = (index * 7) % (width + 160) - 80
    y = height // 2 + int(60 * ((index % 50) / 25 - 1))
    draw.ellipse((x, 60, x + 120, 180), fill=(220, 40, 40))
    draw.rectangle((width - x - 110, y - 55, width - x, y + 55), fill=(40, 200, 60))
    tx = (index * 5) % width
    corners = [(tx, height - 40), (tx + 70, height - 160), (tx + 140, height - 40)]
    draw.polygon(corners, fill=(40, 60, 230))
    return np.asarray(image)


def make_video(path: Path, frames: int, size: tuple[int, int] = (640, 480), fps: int = 25) -> Path:
    """An H.264 mp4 of ``frames`` frames (kept when already there); written then renamed."""
    if path.is_file():
        return path
    import av
    import numpy as np

    width, height = size
    rng = np.random.default_rng(14)
    noise = rng.integers(90, 170, size=(height, width, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial.mp4")
    with av.open(str(partial), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(_frame(index, width, height, noise), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    os.replace(partial, path)
    return path


# --------------------------------------------------------------------------------- plain CLI


def plain_cli(
    weights: Path, folder: Path, imgsz: int, env: dict[str, str], project: Path
) -> dict[str, Any]:
    """``yolo predict model=W source=FOLDER imgsz=N device=cpu`` in a fresh process, timed.

    ultralytics' defaults apply, as for a user (annotated images saved, one image per call).
    """
    yolo = Path(sys.executable).parent / "yolo"
    command = [
        str(yolo),
        "predict",
        f"model={weights}",
        f"source={folder}",
        f"imgsz={imgsz}",
        "device=cpu",
        f"project={project}",
        "name=predict",
        "exist_ok=True",
        "verbose=False",
    ]
    started = time.perf_counter()
    done = subprocess.run(
        command,
        cwd=project.parent,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"plain yolo predict failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return {"wall_s": wall}


# --------------------------------------------------------------------------------- raw limit


def raw_limit(config: dict[str, Any], workdir: Path, env: dict[str, str]) -> dict[str, Any]:
    """Run :func:`raw_main` in a child process; its figures."""
    config_path = workdir / "raw-config.json"
    out_path = workdir / "raw-result.json"
    config_path.write_text(json.dumps(config), encoding="utf-8")
    out_path.unlink(missing_ok=True)
    done = subprocess.run(
        [sys.executable, "-m", "bench.media", "--raw", str(config_path), str(out_path)],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if done.returncode != 0 or not out_path.exists():
        raise RuntimeError(
            f"the raw model limit failed:\n{done.stdout[-2000:]}{done.stderr[-3000:]}"
        )
    result: dict[str, Any] = json.loads(out_path.read_text(encoding="utf-8"))
    return result


def _openvino(model: Path, imgsz: int, seconds: float) -> dict[str, Any]:
    import numpy as np
    import openvino as ov

    xml = model if model.suffix == ".xml" else next(model.glob("*.xml"))
    core = ov.Core()
    compiled = core.compile_model(str(xml), "CPU", {"PERFORMANCE_HINT": "THROUGHPUT"})
    requests = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
    dims = list(compiled.input(0).get_partial_shape())
    fill = [1, 3, imgsz, imgsz]  # batch, channels, height, width where the model leaves them open
    shape = [d.get_length() if d.is_static else fill[i] for i, d in enumerate(dims)]
    data = np.random.default_rng(0).random(shape, dtype=np.float32)
    queue = ov.AsyncInferQueue(compiled, requests)
    for _ in range(requests * 2):  # warm-up
        queue.start_async({0: data})
    queue.wait_all()
    count = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        queue.start_async({0: data})
        count += 1
    queue.wait_all()
    elapsed = time.perf_counter() - started
    try:
        import openvino.tools.benchmark  # noqa: F401

        benchmark_app = True
    except ImportError:
        benchmark_app = False
    return {
        "method": "openvino AsyncInferQueue, PERFORMANCE_HINT=THROUGHPUT, random input",
        "frames_per_s": count / elapsed,
        "infer_requests": requests,
        "streams": int(compiled.get_property("NUM_STREAMS")),
        "batch": shape[0],
        "inferences": count,
        "benchmark_app_installed": benchmark_app,
    }


def _onnxruntime(model: Path, imgsz: int, seconds: float) -> dict[str, Any]:
    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    data = np.random.default_rng(0).random((1, 3, imgsz, imgsz), dtype=np.float32)
    session.run(None, {name: data})
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        session.run(None, {name: data})
        count += 1
    return {
        "method": "onnxruntime session.run loop, random input",
        "frames_per_s": count / (time.perf_counter() - started),
        "inferences": count,
    }


def _pytorch(model: Path, imgsz: int, seconds: float, cpus: int) -> dict[str, Any]:
    import torch
    from ultralytics import YOLO  # type: ignore[attr-defined]

    torch.set_num_threads(cpus)
    net: Any = YOLO(str(model)).model
    net.eval()
    data = torch.rand(1, 3, imgsz, imgsz)
    count = 0
    with torch.inference_mode():
        net(data)
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            net(data)
            count += 1
    return {
        "method": f"torch forward loop ({cpus} threads), random input",
        "frames_per_s": count / (time.perf_counter() - started),
        "inferences": count,
    }


def raw_main(config: dict[str, Any]) -> dict[str, Any]:
    """The child: the backend's bare throughput on random input of the model's size."""
    backend = str(config["backend"])
    model = Path(config["model"])
    imgsz, seconds, cpus = int(config["imgsz"]), float(config["seconds"]), int(config["cpus"])
    if backend.startswith("openvino"):
        result = _openvino(model, imgsz, seconds)
    elif backend == "onnxruntime":
        result = _onnxruntime(model, imgsz, seconds)
    elif backend == "pytorch":
        result = _pytorch(model, imgsz, seconds, cpus)
    else:
        return {"backend": backend, "frames_per_s": None, "method": "not measured here"}
    return {"backend": backend, "model": model.name, "imgsz": imgsz, **result}


if __name__ == "__main__":
    if sys.argv[1:2] != ["--raw"] or len(sys.argv) != 4:
        sys.exit("usage: python -m bench.media --raw CONFIG.json OUT.json")
    figures = raw_main(json.loads(Path(sys.argv[2]).read_text(encoding="utf-8")))
    Path(sys.argv[3]).write_text(json.dumps(figures, indent=1), encoding="utf-8")
