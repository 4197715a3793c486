"""Thread settings for every backend, derived from the CPUs usable under the container's quota.

Left alone, each runtime counts the host's cores, not the container's quota: ``import
ultralytics`` sets ``OMP_NUM_THREADS=1`` (PyTorch then runs on one core), ONNX Runtime sizes its
pool from the machine and lets idle workers spin, OpenVINO picks its own count. Here:

* PyTorch: ``torch.set_num_threads(cpus)`` (the runner also exports ``OMP_NUM_THREADS=cpus``
  before torch is imported). ultralytics' ``select_device`` resets the count to its own
  ``NUM_THREADS`` (host CPUs - 1, at most 8: one thread on a 2-CPU box, 8 in a 2-CPU container
  on a big host) every time a predictor is set up, so that value is set to ``cpus`` too.
* ONNX Runtime: ``intra_op_num_threads=cpus``, ``inter_op_num_threads=1``, sequential execution,
  and no spinning of idle workers: a spinning pool takes CPU time from the pre- and
  post-processing around each inference, which on a 2-CPU quota (or a box shared with other
  work) doubles the latency.
* OpenVINO: ``INFERENCE_NUM_THREADS=cpus``, ``PERFORMANCE_HINT=LATENCY``, one stream, and
  ``INFERENCE_PRECISION_HINT=f32`` for FP32 models: on a CPU with AMX or AVX512-BF16 OpenVINO
  otherwise computes them in bfloat16, which moved pose keypoints and scores of a weak model far
  enough to fail the agreement check (INT8 models keep OpenVINO's default).

ultralytics builds the ONNX Runtime session and the OpenVINO compiled model inside its
``AutoBackend`` without a way to pass options, so :func:`install` wraps the two backends'
``load_model`` (runner and benchmark processes only): ONNX Runtime gets our ``SessionOptions``
(which its backend accepts), OpenVINO's ``Core.compile_model`` gets our properties merged into
the config ultralytics passes. Importing this module imports nothing heavy.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class ThreadSettings:
    """Threads per runtime for ``cpus`` usable CPUs."""

    cpus: int
    torch_threads: int
    ort_intra_op_threads: int
    ort_inter_op_threads: int
    ort_allow_spinning: bool
    openvino_threads: int
    openvino_hint: str
    openvino_streams: int

    def as_dict(self) -> dict[str, Any]:
        """JSON form, recorded in job results and benchmark output."""
        return asdict(self)

    def openvino_config(self) -> dict[str, Any]:
        """Properties merged into OpenVINO's ``compile_model`` config."""
        return {
            "PERFORMANCE_HINT": self.openvino_hint,
            "INFERENCE_NUM_THREADS": self.openvino_threads,
            "NUM_STREAMS": self.openvino_streams,
        }


def settings_for(cpus: int) -> ThreadSettings:
    """The settings used for ``cpus`` usable CPUs (at least one thread each)."""
    n = max(1, int(cpus))
    return ThreadSettings(
        cpus=n,
        torch_threads=n,
        ort_intra_op_threads=n,
        ort_inter_op_threads=1,
        ort_allow_spinning=False,
        openvino_threads=n,
        openvino_hint="LATENCY",
        openvino_streams=1,
    )


def throughput_settings(settings: ThreadSettings, streams: int) -> ThreadSettings:
    """``settings`` with OpenVINO in its ``THROUGHPUT`` mode: ``streams`` parallel requests.

    For predict jobs on folders and videos (see :mod:`jupyter_yolo.runner.openvino_lanes`);
    the threads are shared among the streams. PyTorch, which then only letterboxes and runs
    NMS (on the job's helper threads, beside the streams), gets one thread: a team per calling
    thread on every CPU would oversubscribe the cores the streams use. Installed after the
    backend choice, whose cached record is keyed by the latency settings.
    """
    from dataclasses import replace

    return replace(
        settings, openvino_hint="THROUGHPUT", openvino_streams=max(1, streams), torch_threads=1
    )


_ACTIVE: dict[str, ThreadSettings] = {}
PRECISION_HINT = "INFERENCE_PRECISION_HINT"


def active() -> ThreadSettings | None:
    """The settings installed in this process, if any."""
    return _ACTIVE.get("settings")


def ort_session_options(settings: ThreadSettings) -> Any:
    """ONNX Runtime ``SessionOptions`` for ``settings``."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = settings.ort_intra_op_threads
    options.inter_op_num_threads = settings.ort_inter_op_threads
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    spin = "1" if settings.ort_allow_spinning else "0"
    options.add_session_config_entry("session.intra_op.allow_spinning", spin)
    options.add_session_config_entry("session.inter_op.allow_spinning", spin)
    return options


def install(settings: ThreadSettings) -> ThreadSettings:
    """Apply ``settings`` to torch and to ultralytics' ONNX Runtime / OpenVINO backends.

    Idempotent; a second call replaces the settings the hooks use.
    """
    import torch

    torch.set_num_threads(settings.torch_threads)
    with contextlib.suppress(ImportError):
        from ultralytics.utils import torch_utils

        # the count select_device() applies (setattr: the module does not export the name)
        setattr(torch_utils, "NUM_THREADS", settings.torch_threads)  # noqa: B010
    first = "settings" not in _ACTIVE
    _ACTIVE["settings"] = settings
    if first:
        _hook_onnxruntime()
        _hook_openvino()
    return settings


def _hook_onnxruntime() -> None:
    with contextlib.suppress(ImportError):
        from ultralytics.nn.backends import onnx as onnx_backend

        cls: Any = onnx_backend.ONNXBackend
        original = cls.load_model

        @functools.wraps(original)
        def load_model(self: Any, weight: Any) -> Any:
            settings = active()
            if (
                settings is not None
                and getattr(self, "session_options", None) is None
                and getattr(self, "format", "onnx") == "onnx"
            ):
                self.session_options = ort_session_options(settings)
            return original(self, weight)

        cls.load_model = load_model


def _hook_openvino() -> None:
    with contextlib.suppress(ImportError):
        from ultralytics.nn.backends import openvino as openvino_backend

        cls: Any = openvino_backend.OpenVINOBackend
        original = cls.load_model

        @functools.wraps(original)
        def load_model(self: Any, weight: Any) -> Any:
            settings = active()
            if settings is None:
                return original(self, weight)
            import openvino

            real_core = openvino.Core
            extra = settings.openvino_config()
            if "_int8_" not in str(weight):
                # FP32 means FP32: on CPUs with AMX or AVX512-BF16 OpenVINO otherwise runs
                # "FP32" models in bfloat16 (pose keypoints moved by up to a third of the box)
                extra[PRECISION_HINT] = "f32"

            class Core(real_core):  # type: ignore[misc, valid-type]
                """ultralytics' Core, with our properties merged into every compile."""

                def compile_model(
                    self, model: Any, device_name: Any = None, config: Any = None, **kwargs: Any
                ) -> Any:
                    device = str(device_name or "")
                    merged = dict(config or {})
                    if device in ("", "CPU"):
                        merged.update(extra)
                    return super().compile_model(model, device_name, merged, **kwargs)

            openvino.Core = Core
            try:
                return original(self, weight)
            finally:
                openvino.Core = real_core

        cls.load_model = load_model
