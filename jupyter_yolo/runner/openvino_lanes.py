"""OpenVINO throughput mode for predict jobs: one batch's images on parallel infer requests.

ultralytics 8.4 compiles OpenVINO models with the ``LATENCY`` hint and runs them synchronously
(its ``AsyncInferQueue`` path was removed because it can hang on Intel and AMD CPUs, ultralytics
issue 25923); a batch-1 export gets a batch split by ``AutoBackend`` into one call per image, one
after the other. On a CPU that leaves throughput on the table: OpenVINO's ``THROUGHPUT`` hint
splits the cores into streams, each running its own request on fewer threads, and together they
finish more images per second than one request on every core (about 1.3 to 2.5x on a 2-CPU box).

:func:`enable_lanes` recompiles the predictor's model with ``PERFORMANCE_HINT=THROUGHPUT`` and
``NUM_STREAMS=lanes`` and replaces ``AutoBackend.forward`` on that one model instance: a batch is
split into its images, each runs through ultralytics' own ``forward`` (the same padding,
conversion and output handling) on a thread of a small pool, and the outputs are concatenated in
order. Each thread owns a synchronous ``InferRequest`` of the compiled model (no callbacks, no
``AsyncInferQueue``); their outputs are copies, so a request can be reused at once. Pre- and
postprocessing stay ultralytics' own, so the results are the ones the batch-1 path gives.
"""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

PRECISION_HINT = "INFERENCE_PRECISION_HINT"


class _RequestPerThread:
    """Stands in for ``CompiledModel`` in ultralytics' backend: one infer request per thread."""

    def __init__(self, compiled: Any) -> None:
        self.compiled = compiled
        self._local = threading.local()
        self._first = threading.Lock()

    def __call__(self, inputs: Any) -> Any:
        request = getattr(self._local, "request", None)
        if request is None:
            # A thread's first call runs alone: OpenVINO's Python bindings register some types
            # lazily, and two threads doing it at once failed ("Object of type 'iterator' is not
            # an instance of 'iterator'").
            with self._first:
                request = self.compiled.create_infer_request()
                result = request.infer(inputs)
            self._local.request = request
            return result
        return request.infer(inputs)  # an OVDict of copies: the request may run again at once

    def __getattr__(self, name: str) -> Any:  # input(), get_property() ...: the compiled model's
        return getattr(self.compiled, name)


def _model_file(weights: str) -> Path | None:
    path = Path(weights)
    if path.is_file() and path.suffix == ".xml":
        return path
    if path.is_dir():
        return next(iter(sorted(path.glob("*.xml"))), None)
    return None


def _compiled_for(compiled: Any, lanes: int) -> bool:
    """Whether ``compiled`` already runs in THROUGHPUT mode with at least ``lanes`` streams."""
    try:
        hint = str(compiled.get_property("PERFORMANCE_HINT"))
        streams = int(compiled.get_property("NUM_STREAMS"))
    except Exception:
        return False
    return "THROUGHPUT" in hint and streams >= lanes


def enable_lanes(model: Any, weights: str, cpus: int, lanes: int) -> int:
    """Run ``model``'s OpenVINO batches on ``lanes`` parallel infer requests; the lanes in use.

    ``model`` is an ultralytics model whose predictor is set up (after one predict call);
    ``weights`` its OpenVINO folder or ``.xml``. Returns 1 (nothing changed) when the model is
    not an OpenVINO model on the CPU, runs a dynamic-shape recompiling path, or ``lanes < 2``.
    """
    predictor = getattr(model, "predictor", None)
    auto: Any = getattr(predictor, "model", None)
    backend: Any = getattr(auto, "backend", None)
    xml = _model_file(weights)
    if lanes < 2 or backend is None or xml is None or getattr(auto, "format", "") != "openvino":
        return 1
    if getattr(backend, "read_model", None) is not None or not getattr(backend, "prefetch", False):
        return 1  # the AMX INT8 reshape path, or a device other than the CPU
    compiled = backend.ov_compiled_model
    if not _compiled_for(compiled, lanes):  # loaded before the throughput settings: compile again
        import openvino as ov

        config: dict[str, Any] = {
            "PERFORMANCE_HINT": "THROUGHPUT",
            "NUM_STREAMS": lanes,
            "INFERENCE_NUM_THREADS": max(cpus, lanes),
        }
        if "_int8_" not in str(weights):  # FP32 means FP32 (see jupyter_yolo.inference.threads)
            config[PRECISION_HINT] = "f32"
        core = ov.Core()
        compiled = core.compile_model(core.read_model(str(xml)), "CPU", config)
    backend.ov_compiled_model = _RequestPerThread(compiled)
    pool = ThreadPoolExecutor(max_workers=lanes, thread_name_prefix="openvino-lane")
    single = auto.forward  # ultralytics' own, bound to this instance

    def forward(im: Any, *args: Any, **kwargs: Any) -> Any:
        if im.shape[0] <= 1:
            return single(im, *args, **kwargs)
        import torch

        outputs = list(pool.map(lambda x: single(x, *args, **kwargs), im.split(1)))
        if isinstance(outputs[0], (list, tuple)):
            return [torch.cat(parts) for parts in zip(*outputs, strict=True)]
        return torch.cat(outputs)

    auto.forward = forward  # this instance only; nn.Module.__call__ looks it up on the instance
    auto._jupyter_yolo_lanes = pool  # kept alive with the model
    return lanes


def close_lanes(model: Any) -> None:
    """Stop the lanes' threads (the job is over)."""
    auto = getattr(getattr(model, "predictor", None), "model", None)
    pool = getattr(auto, "_jupyter_yolo_lanes", None)
    if pool is not None:
        with contextlib.suppress(Exception):
            pool.shutdown(wait=False)
