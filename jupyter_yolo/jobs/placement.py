"""Where a job runs: the request's ``executor`` and, for Ray jobs, the resources it asks for.

Kept apart from :mod:`.schema` (which checks what the runner does): this module checks where it
runs. A Ray job's GPU device is checked syntactically only (the server may have no GPU at all);
Ray sets ``CUDA_VISIBLE_DEVICES`` on the node to the GPUs it assigned, so the runner's device
string is re-indexed ``0..n-1`` there.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, cast

from ..contract.executors import EXECUTORS, Executor
from ..errors import InvalidRequest

#: Request fields that say where a job runs (not runner parameters).
PLACEMENT_FIELDS = ("executor", "resources", "accelerator_type")
MAX_CUSTOM_RESOURCES = 16
MAX_RESOURCE_AMOUNT = 1_000_000.0
#: CPUs a Ray job reserves at most: the runner plus its data loader workers.
MAX_RAY_CPUS = 64
RESOURCE_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
ACCELERATOR_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
#: Ray's own resources: a job asks for them through ``device`` and ``workers``.
RESERVED = frozenset({"CPU", "GPU", "memory", "object_store_memory"})
#: Ray's convention for an accelerator type (``ray.remote(accelerator_type=...)`` asks the same).
ACCELERATOR_SHARE = 0.001


@dataclass(frozen=True)
class Placement:
    """Where a job runs, as the request chose it (the server's default filled in)."""

    executor: Executor
    resources: dict[str, float] = field(default_factory=dict)
    """Custom Ray resources, ``accelerator_type:NAME`` included."""

    def shown(self) -> dict[str, Any]:
        """The fields to keep in the job's request (so a resume asks for the same)."""
        if self.executor == "local":
            return {"executor": "local"}
        custom = {k: v for k, v in self.resources.items() if not k.startswith("accelerator_type:")}
        types = [k.split(":", 1)[1] for k in self.resources if k.startswith("accelerator_type:")]
        shown: dict[str, Any] = {"executor": "ray"}
        if custom:
            shown["resources"] = custom
        if types:
            shown["accelerator_type"] = types[0]
        return shown


def split_placement(
    body: dict[str, Any], *, default: str, ray_configured: bool
) -> tuple[dict[str, Any], Placement]:
    """Take the placement fields out of a job request and check them (400 when wrong)."""
    rest = {k: v for k, v in body.items() if k not in PLACEMENT_FIELDS}
    executor = body.get("executor", default)
    if executor not in EXECUTORS:
        raise InvalidRequest(f"'executor' must be one of {', '.join(EXECUTORS)}, got {executor!r}.")
    if executor == "ray" and not ray_configured:
        raise InvalidRequest(
            "'executor': this server has no Ray cluster: set YoloApp.ray_address (the Ray "
            "head's Jobs API URL, e.g. http://ray-head:8265) to run jobs on Ray, or use "
            '"executor": "local".'
        )
    if executor == "local":
        extra = [k for k in ("resources", "accelerator_type") if k in body]
        if extra:
            raise InvalidRequest(
                f'{", ".join(repr(k) for k in extra)} only apply to Ray jobs ("executor": "ray").'
            )
        return rest, Placement("local")
    resources = _custom_resources(body.get("resources", {}))
    if "accelerator_type" in body:
        name = body["accelerator_type"]
        if not isinstance(name, str) or not ACCELERATOR_NAME.fullmatch(name):
            raise InvalidRequest(
                "'accelerator_type' must be Ray's name of a GPU type (letters, digits, '_', "
                f"'.', '-'; 1 to 64 characters), e.g. 'A100' or 'H100', got {name!r}."
            )
        resources[f"accelerator_type:{name}"] = ACCELERATOR_SHARE
    return rest, Placement("ray", resources)


def _custom_resources(value: Any) -> dict[str, float]:
    if not isinstance(value, dict):
        raise InvalidRequest(
            "'resources' must be an object of Ray custom resources and amounts, e.g. "
            '{"big_disk": 1}.'
        )
    if len(value) > MAX_CUSTOM_RESOURCES:
        raise InvalidRequest(
            f"'resources' may name at most {MAX_CUSTOM_RESOURCES} resources, got {len(value)}."
        )
    found: dict[str, float] = {}
    for name, amount in cast(dict[str, Any], value).items():
        if not RESOURCE_NAME.fullmatch(name):
            raise InvalidRequest(
                f"'resources': {name[:80]!r} is not a Ray resource name (letters, digits, '_', "
                f"'.', ':', '-'; 1 to 64 characters)."
            )
        if name in RESERVED or name.startswith("node:"):
            raise InvalidRequest(
                f"'resources': {name!r} is Ray's own resource: a job asks for GPUs with "
                f"'device' and for CPUs with 'workers'."
            )
        if (
            isinstance(amount, bool)
            or not isinstance(amount, int | float)
            or not math.isfinite(amount)
            or not 0 < amount <= MAX_RESOURCE_AMOUNT
        ):
            raise InvalidRequest(
                f"'resources': the amount of {name!r} must be a number above 0 and at most "
                f"{MAX_RESOURCE_AMOUNT:g}, got {amount!r}."
            )
        found[name] = float(amount)
    return found


def ray_device(device: str | None) -> tuple[int, str | None]:
    """GPUs a Ray job asks for, and its device string on the node (re-indexed from 0).

    ``"0,1"`` asks for 2 GPUs and runs with ``"0,1"`` on the node whatever their indices
    there; ``"3"`` and ``"cuda:3"`` ask for one and run with ``"0"``; ``"cpu"`` and no device
    ask for none.
    """
    if device is None or device == "" or device in ("cpu", "-1"):
        return 0, device
    if re.fullmatch(r"\d+(,\d+)*", device):
        count = len(set(device.split(",")))
        return count, ",".join(str(i) for i in range(count))
    if device == "cuda" or re.fullmatch(r"cuda:\d+", device):
        return 1, "0"
    raise InvalidRequest(
        f"'device': a Ray job runs on CUDA GPUs or the CPU of its node: use 'cpu', GPU indices "
        f"such as '0' or '0,1' (the number of GPUs it needs), or 'cuda', got {device!r}."
    )


def ray_resources(
    params: dict[str, Any], placement: Placement, workers: Any = None
) -> dict[str, Any]:
    """What a Ray job asks Ray for; re-indexes ``params['device']`` for the node in place.

    CPUs: one for the runner plus the request's data loader ``workers`` when it set them.
    """
    gpus, device = ray_device(params.get("device"))
    if device is not None:
        params["device"] = device
    extra = workers if isinstance(workers, int) and not isinstance(workers, bool) else 0
    return {
        "num_cpus": float(min(MAX_RAY_CPUS, 1 + max(0, extra))),
        "num_gpus": float(gpus),
        "resources": dict(placement.resources),
    }
