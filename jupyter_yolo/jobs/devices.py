"""Whether a job's ``device`` names hardware this server has, from the accelerator report."""

from __future__ import annotations

import re
from typing import Any

CPU_DEVICES = frozenset({"cpu", "-1"})
_INDEXED = re.compile(r"^(cuda|xpu|npu)(?::(\d+))?$")


def needs_report(device: str | None) -> bool:
    """Whether checking ``device`` needs the hardware report (anything but the CPU)."""
    return bool(device) and device not in CPU_DEVICES


def _indices(report: dict[str, Any], kind: str) -> list[int]:
    devices = (report.get("devices") or {}).get(kind) or []
    found = []
    for position, entry in enumerate(devices):
        index = entry.get("index") if isinstance(entry, dict) else None
        found.append(index if isinstance(index, int) and not isinstance(index, bool) else position)
    return found


def present_devices(report: dict[str, Any]) -> list[str]:
    """The ultralytics device strings this server can run jobs on, CPU first."""
    present = ["cpu"]
    gpus = _indices(report, "cuda") or _indices(report, "rocm")
    present += [str(index) for index in gpus]
    present += [f"xpu:{index}" for index in _indices(report, "xpu")]
    present += [f"npu:{index}" for index in _indices(report, "npu")]
    if (report.get("devices") or {}).get("mps"):
        present.append("mps")
    return present


def absence(
    device: str, report: dict[str, Any] | None, probe_error: str | None = None
) -> str | None:
    """Why ``device`` is not on this server (naming those it has), or None when it is."""
    if device in CPU_DEVICES:
        return None
    if report is None:
        why = f" ({probe_error})" if probe_error else ""
        return (
            f"the device {device!r} cannot be checked because the hardware probe failed{why}; "
            f"use 'cpu', or fix the probe (GET /yolo/accelerators?refresh=1)."
        )
    present = present_devices(report)
    gpus = [int(d) for d in present if d.isdigit()]
    wanted: list[str]
    if re.fullmatch(r"\d+(,\d+)*", device):
        wanted = device.split(",")
        missing = [d for d in wanted if int(d) not in gpus]
    elif device == "mps":
        missing = [] if "mps" in present else ["mps"]
    else:
        match = _INDEXED.match(device)
        if match is None:
            return None  # the syntax check (schema.device_problem) speaks for these
        kind, index = match.group(1), int(match.group(2) or 0)
        name = str(index) if kind == "cuda" else f"{kind}:{index}"
        if kind == "cuda":
            missing = [] if index in gpus else [name]
        else:
            missing = [] if name in present else [name]
    if not missing:
        return None
    return (
        f"this server has no device {', '.join(missing)}; it has: {', '.join(present)}. "
        f"See GET /yolo/accelerators for the hardware report."
    )
