"""Test stand-in: ultralytics' multi-GPU (DDP) training run on the CPU with gloo.

ultralytics runs DDP only on CUDA, NPU or XPU: ``select_device("0,1")`` raises without CUDA,
a CPU trainer gets ``world_size = 0`` and ``_setup_ddp`` asks for NCCL. This module, used only
by tests/test_runner_ddp.py, keeps everything else of ultralytics' launch real (the launcher file
and its cloudpickled state, ``torch.distributed.run`` with two worker processes, the rebuilt
trainer, ``DistributedDataParallel``, the distributed samplers and collectives) and changes only
the device layer: GPU ids select the CPU, the trainer counts the ids as its world size, the
process group uses gloo, and ``DistributedDataParallel`` gets no CUDA ``device_ids``.

``install()`` runs in the runner after ``import ultralytics`` and, through the trainer class
(pickled by value into the launcher state), in every DDP worker. With ``JY_TEST_STOP_AT=E,B``
rank 1 writes the job's stop file before batch B of epoch E: a stop that rank 1 notices first.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

_INSTALLED: dict[str, Any] = {}


def install() -> Any:
    """Patch the device layer (idempotent); return the trainer class for detection."""
    if "trainer" in _INSTALLED:
        return _INSTALLED["trainer"]
    import torch
    import torch.distributed as dist
    import ultralytics.engine.trainer as trainer_module
    import ultralytics.engine.validator as validator_module
    from torch import nn
    from ultralytics.models.yolo import detect
    from ultralytics.utils import DEFAULT_CFG

    def rank(name: str) -> int:  # read at call time: the class travels by value to the workers
        return int(os.environ.get(name, "-1"))

    def select_device(*args: Any, **kwargs: Any) -> torch.device:
        return torch.device("cpu")

    trainer_module.select_device = select_device
    validator_module.select_device = select_device
    # a rank's final validation asks the CUDA backend for its current device
    validator_module.get_torch_device_backend = lambda kind: SimpleNamespace(
        current_device=lambda: 0
    )
    autobackend = validator_module.AutoBackend

    def cpu_autobackend(*args: Any, **kwargs: Any) -> Any:
        kwargs["device"] = torch.device("cpu")
        return autobackend(*args, **kwargs)

    validator_module.AutoBackend = cpu_autobackend

    base_ddp = nn.parallel.DistributedDataParallel

    class CpuDDP(base_ddp):  # type: ignore[misc, valid-type]
        def __init__(self, module: Any, device_ids: Any = None, **kwargs: Any) -> None:
            super().__init__(module, device_ids=None, **kwargs)

    nn.parallel.DistributedDataParallel = CpuDDP

    class CpuDdpTrainer(detect.DetectionTrainer):  # type: ignore[misc]
        def __init__(self, cfg: Any = DEFAULT_CFG, overrides: Any = None, _callbacks: Any = None):
            install()  # in a DDP worker: the class arrives by value, the patches with it
            super().__init__(cfg, overrides, _callbacks)
            ids = [part for part in str(self.args.device).split(",") if part.strip().isdigit()]
            self.world_size = len(ids) if len(ids) > 1 else 0
            self.ddp = self.world_size > 1 and rank("LOCAL_RANK") == -1
            stop_at = os.environ.get("JY_TEST_STOP_AT")
            if stop_at and rank("RANK") == 1:
                self.add_callback("on_train_batch_start", _stopper(stop_at))

        def _setup_ddp(self) -> None:
            self.device = torch.device("cpu")
            dist.init_process_group(
                "gloo",
                timeout=timedelta(seconds=600),
                rank=rank("RANK"),
                world_size=self.world_size,
            )

    detect.DetectionTrainer = CpuDdpTrainer
    _INSTALLED["trainer"] = CpuDdpTrainer
    return CpuDdpTrainer


def _stopper(stop_at: str) -> Any:
    epoch, batch = (int(x) for x in stop_at.split(","))
    count = {"n": 0, "epoch": -1}

    def before_batch(trainer: Any) -> None:
        if trainer.epoch != count["epoch"]:
            count.update(n=0, epoch=trainer.epoch)
        count["n"] += 1
        if trainer.epoch + 1 == epoch and count["n"] == batch:
            stop = Path(trainer.save_dir).parent / "stop"
            stop.write_text("rank 1")

    return before_batch


def run_runner(job_dir: str) -> None:
    """``python -m jupyter_yolo.runner JOB_DIR`` with :func:`install` after ultralytics loads."""
    from jupyter_yolo.runner import offline
    from jupyter_yolo.runner.main import exit_process, main

    after_import = offline.after_import

    def after(cpus: int, warn: Any) -> None:
        after_import(cpus, warn)
        install()

    offline.after_import = after
    exit_process(main([job_dir]))
