"""How a training job runs fast on the container it has: threads, workers, caching, memory format.

ultralytics' own choices are poor in containers: it sets torch to ``os.cpu_count() - 1`` threads
capped at 8 (one thread on a 2-CPU box, all but one core idle), forces ``workers=0`` for CPU
training and leaves image caching off. :func:`plan_training_speed` makes the choices from what
the container offers (usable CPUs under the cgroup quota and affinity, the memory it may still
use, the accelerator) and from the training set's size, each with the reason a person reads.

A value the request sets (``workers``, ``cache``) is kept as it is; thread counts set in the
environment (``OMP_NUM_THREADS``) are kept too. The runner applies the plan and records it in the
job's result (``speed``); the accelerator report's recommendation states the same choices for a
typical dataset. Measured on 2 CPU cores (imgsz 128, batch 16, yolov8n): one forward and backward
pass takes 379 ms on 1 thread, 235 ms on 2 and 212 ms on 2 threads in channels-last memory
format; loading and augmenting a batch takes 27 ms (22 ms from RAM).

Pure (stdlib only): the runner, the server's report and the benchmark import it alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, NotRequired, TypedDict

GIB = 1 << 30

#: The share of the memory still free that a RAM image cache may take.
RAM_CACHE_SHARE = 0.25

#: CPU training keeps every usable core for torch up to this many CPUs; above, some load data.
CPU_ALL_COMPUTE_UP_TO = 8

#: Torch threads of the training process when an accelerator does the compute.
ACCELERATOR_THREADS = 4

#: Dataloader workers per accelerator never go above this (ultralytics' own default is 8).
MAX_WORKERS = 8

ChoiceSource = Literal["request", "environment", "chosen"]


class SpeedChoice(TypedDict):
    """One setting of a training job: its value, who set it and why."""

    name: str
    """``workers``, ``threads``, ``omp_wait_policy``, ``interop_threads``, ``cache`` or
    ``channels_last``."""
    value: int | str | bool
    source: ChoiceSource
    """``request`` (the job's arguments), ``environment`` (e.g. OMP_NUM_THREADS) or ``chosen``."""
    reason: str


class SpeedPlan(TypedDict):
    """The choices of one job (``result["speed"]``) or of the report's recommendation."""

    choices: list[SpeedChoice]
    device: str
    """The training device kind the plan is for (``cpu``, ``cuda`` ...)."""
    facts: str
    """What the choices were made from, in words (CPUs, memory, device, images)."""
    applied: NotRequired[dict[str, object]]
    """What the trainer ran with, read back when training started (a job's plan only)."""


@dataclass(frozen=True)
class SpeedFacts:
    """What the container offers the job."""

    device_kind: str
    """The training device: ``cpu``, ``cuda``, ``rocm``, ``mps``, ``xpu`` or ``npu``."""
    cpus: int
    """CPUs usable under the cgroup quota and the affinity mask."""
    memory_free_bytes: int | None
    """Memory the job may still take: the cgroup limit less its use, or MemAvailable."""
    devices: int = 0
    """Accelerators training together (0 on CPU)."""
    env_threads: int | None = None
    """``OMP_NUM_THREADS`` when the environment sets it."""
    env_wait_policy: str | None = None
    """``OMP_WAIT_POLICY`` when the environment sets it."""


@dataclass(frozen=True)
class DatasetSize:
    """The training and validation images (ultralytics caches both), for the cache choice."""

    images: int
    bytes_per_image: int
    """What one image takes in ultralytics' RAM cache (decoded, uint8, resized for detection)."""

    @property
    def cached_bytes(self) -> int:
        """The RAM a ``cache="ram"`` of these images takes."""
        return self.images * self.bytes_per_image


def _gib(value: int) -> str:
    if value >= GIB // 10:
        return f"{value / GIB:.1f} GiB"
    mib = value / 2**20
    return f"{mib:.0f} MiB" if mib >= 10 else f"{mib:.1f} MiB"


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def plan_training_speed(
    facts: SpeedFacts,
    request: Mapping[str, object],
    dataset: DatasetSize | None,
    *,
    per_job: bool = True,
) -> SpeedPlan:
    """The speed settings of one training job (see the module docstring).

    ``per_job=False`` states the choices for this machine without a dataset (the hardware
    report): the cache is then the rule a job applies to its own training images.
    """
    cpu = facts.device_kind == "cpu"
    cpus = max(1, facts.cpus)
    devices = max(1, facts.devices)
    choices: list[SpeedChoice] = []

    workers = _workers(facts.device_kind, cpus, devices, request.get("workers"))
    choices.append(workers)
    busy = int(workers["value"]) * devices
    choices.append(_threads(cpu, cpus, busy, facts.env_threads))
    choices.append(_wait_policy(facts.env_wait_policy))
    choices.append(
        {
            "name": "interop_threads",
            "value": 1,
            "source": "chosen",
            "reason": "eager training runs one operator at a time; a pool of idle inter-op "
            "threads would only compete for the cores",
        }
    )
    copies = devices if not cpu and facts.device_kind != "mps" else 1
    choices.append(_cache(request.get("cache"), dataset, facts.memory_free_bytes, per_job, copies))
    choices.append(_channels_last(cpu))
    memory = (
        f", {_gib(facts.memory_free_bytes)} memory free"
        if facts.memory_free_bytes is not None
        else ""
    )
    images = f", {dataset.images} images (training and validation)" if dataset else ""
    device = (
        facts.device_kind
        if cpu or facts.device_kind == "mps"
        else f"{devices} {facts.device_kind} device(s)"
    )
    return {
        "choices": choices,
        "device": facts.device_kind,
        "facts": f"{cpus} usable CPU(s){memory}, {device}{images}",
    }


def cpu_training_workers(cpus: int) -> int:
    """Dataloader workers of a CPU training: none up to 8 CPUs (compute dominates), then a few."""
    if cpus <= CPU_ALL_COMPUTE_UP_TO:
        return 0
    return min(4, (cpus - CPU_ALL_COMPUTE_UP_TO) // 2 + 1)


def accelerator_workers(cpus: int, devices: int) -> int:
    """Dataloader workers per accelerator: the CPUs per device less one, at most 8."""
    return max(1, min(MAX_WORKERS, cpus // max(1, devices) - 1))


def _workers(kind: str, cpus: int, devices: int, requested: object) -> SpeedChoice:
    cpu = kind == "cpu"
    if kind == "mps":
        return {
            "name": "workers",
            "value": 0,
            "source": "request" if _is_int(requested) else "chosen",
            "reason": "ultralytics loads the data of an MPS training in the training process",
        }
    if _is_int(requested):
        note = " (kept for CPU training, where ultralytics would use none)" if cpu else ""
        return {
            "name": "workers",
            "value": int(requested),  # type: ignore[call-overload]
            "source": "request",
            "reason": f"set by the request{note}",
        }
    if cpu:
        extra = cpu_training_workers(cpus)
        if extra == 0:
            return {
                "name": "workers",
                "value": 0,
                "source": "chosen",
                "reason": f"on {cpus} CPU(s) the forward and backward passes take over 90 % of a "
                "batch; every core goes to torch and the data loads in the training process",
            }
        return {
            "name": "workers",
            "value": extra,
            "source": "chosen",
            "reason": f"{extra} worker(s) augment the next batches while {cpus - extra} CPUs "
            "compute",
        }
    per_device = accelerator_workers(cpus, devices)
    return {
        "name": "workers",
        "value": per_device,
        "source": "chosen",
        "reason": f"{per_device} worker(s) per device keep the accelerator fed and leave a CPU "
        "for the training process (lowered later if /dev/shm is small)",
    }


def _threads(cpu: bool, cpus: int, busy_workers: int, env_threads: int | None) -> SpeedChoice:
    if env_threads is not None and env_threads > 0:
        return {
            "name": "threads",
            "value": env_threads,
            "source": "environment",
            "reason": "OMP_NUM_THREADS is set in the environment",
        }
    if cpu:
        value = max(1, cpus - busy_workers)
        return {
            "name": "threads",
            "value": value,
            "source": "chosen",
            "reason": f"torch computes on {value} of the {cpus} usable CPU(s) (ultralytics "
            f"would use {min(8, max(1, cpus - 1))})",
        }
    value = max(1, min(ACCELERATOR_THREADS, cpus - busy_workers))
    return {
        "name": "threads",
        "value": value,
        "source": "chosen",
        "reason": f"the accelerator computes; {value} CPU thread(s) prepare batches and run the "
        "validation's post-processing",
    }


def _wait_policy(env_value: str | None) -> SpeedChoice:
    if env_value:
        return {
            "name": "omp_wait_policy",
            "value": env_value,
            "source": "environment",
            "reason": "OMP_WAIT_POLICY is set in the environment",
        }
    return {
        "name": "omp_wait_policy",
        "value": "PASSIVE",
        "source": "chosen",
        "reason": "waiting OpenMP threads sleep instead of spinning: with every core computing, "
        "a core taken by other work (the server, a notebook, a prediction) would otherwise "
        "stall each step (measured on 2 CPUs with one busy process beside: 8.4-13 s a batch "
        "spinning, 0.53 s passive, 0.29 s passive or spinning with nothing beside)",
    }


def _cache(
    requested: object, dataset: DatasetSize | None, free: int | None, per_job: bool, copies: int
) -> SpeedChoice:
    if requested is not None:
        return {
            "name": "cache",
            "value": requested if isinstance(requested, (str, bool)) else str(requested),
            "source": "request",
            "reason": "set by the request",
        }
    if free is None:
        return {
            "name": "cache",
            "value": False,
            "source": "chosen",
            "reason": "the memory this container may still use is unknown",
        }
    if dataset is None and per_job:
        return {
            "name": "cache",
            "value": False,
            "source": "chosen",
            "reason": "the training images could not be counted from the dataset's data.yaml",
        }
    if dataset is None:
        return {
            "name": "cache",
            "value": "ram",
            "source": "chosen",
            "reason": "per job: in RAM when the decoded training images fit in a quarter of the "
            f"{_gib(free)} of memory free (up to {_gib(int(free * RAM_CACHE_SHARE))})",
        }
    need, budget = dataset.cached_bytes * copies, int(free * RAM_CACHE_SHARE)
    each = f" ({copies} training processes, one copy each)" if copies > 1 else ""
    if need <= budget:
        return {
            "name": "cache",
            "value": "ram",
            "source": "chosen",
            "reason": f"the decoded images take {_gib(need)}{each}, within a quarter of the "
            f"{_gib(free)} of memory free: no image is read and decoded twice (ultralytics draws "
            "mosaic partners differently from a RAM cache; set cache=false in the request for "
            "runs that repeat bit for bit)",
        }
    return {
        "name": "cache",
        "value": False,
        "source": "chosen",
        "reason": f"the decoded images would take {_gib(need)}{each}, more than a quarter of "
        f"the {_gib(free)} of memory free",
    }


def _channels_last(cpu: bool) -> SpeedChoice:
    if cpu:
        return {
            "name": "channels_last",
            "value": True,
            "source": "chosen",
            "reason": "oneDNN convolutions run about 10 % faster on CPU in channels-last format",
        }
    return {
        "name": "channels_last",
        "value": False,
        "source": "chosen",
        "reason": "kept as ultralytics trains (not measured on accelerators here)",
    }


def choice_value(plan: SpeedPlan, name: str) -> int | str | bool | None:
    """The value of the choice ``name`` in ``plan`` (None when it has none)."""
    for choice in plan["choices"]:
        if choice["name"] == name:
            return choice["value"]
    return None
