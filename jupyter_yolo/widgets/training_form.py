"""The choices of the training form: tasks, architectures by task, weights, datasets, devices.

Pure functions of what the server lists (``/yolo/tasks``, ``/yolo/models``, ``/yolo/datasets``,
``/yolo/accelerators``), so the form reads the same against any server and is easy to test.
"""

from __future__ import annotations

import re
from typing import Any

from .tasks import TaskFacts, task_from_name

SCALES = ("n", "s", "m", "l", "x")
FAMILY_ORDER = ("v8", "11", "26", "12", "rt-detr")
ALL_TASKS = ""
"""The task dropdown's value that lists every architecture."""
DOT = " \u00b7 "
_VARIANT = re.compile(r"-(p2|p6|ghost)")


def _arch_order(arch: dict[str, Any]) -> tuple[int, int, int, str]:
    name = str(arch.get("name") or "")
    family = str(arch.get("family") or "")
    scale = str(arch.get("scale") or "")
    return (
        1 if _VARIANT.search(name) else 0,
        FAMILY_ORDER.index(family) if family in FAMILY_ORDER else len(FAMILY_ORDER),
        SCALES.index(scale) if scale in SCALES else len(SCALES),
        name,
    )


def task_options(facts: TaskFacts) -> list[tuple[str, str]]:
    """The task dropdown: every task of the table by its title, then "all tasks"."""
    options = [(f"{p.get('title') or name} ({name})", name) for name, p in facts.tasks.items()]
    return [*options, ("all tasks", ALL_TASKS)]


def model_options(
    facts: TaskFacts, task: str, weights: list[dict[str, Any]]
) -> list[tuple[str, str]]:
    """Architectures of ``task`` (plain n-to-x first), then pretrained weights of that task.

    With ``task`` empty every architecture is listed, each label naming its task.
    """
    options = []
    for arch in sorted(facts.architectures_for(task), key=_arch_order):
        tail = "from scratch" if task else f"{arch.get('task')}, from scratch"
        options.append((f"{arch['name']} ({tail})", str(arch["name"])))
    for entry in weights:
        model = str(entry.get("model") or "")
        weight_task = str(entry.get("task") or task_from_name(model))
        if model and (not task or weight_task == task):
            tail = "pretrained" if task else f"{weight_task}, pretrained"
            options.append((f"{model} ({tail})", model))
    return options


def dataset_options(datasets: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Datasets by name, with their task (when the listing has it) and image count."""
    options = []
    for entry in datasets:
        facts = [str(entry["task"])] if entry.get("task") else []
        facts.append(f"{entry.get('images', '?')} images")
        label = f"{entry['name']} ({', '.join(facts)})"
        if entry.get("status") not in (None, "ok", "warnings"):
            label += f" [{entry.get('status')}]"
        options.append((label, str(entry["name"])))
    return options


def device_options(report: dict[str, Any]) -> list[tuple[str, str]]:
    """Devices ultralytics can train on here, from the accelerator report."""
    devices = report.get("devices") or {}
    options: list[tuple[str, str]] = []
    for index, gpu in enumerate(devices.get("cuda") or []):
        name = gpu.get("name") if isinstance(gpu, dict) else None
        options.append((f"GPU {index}: {name or 'CUDA'}", str(index)))
    for index, gpu in enumerate(devices.get("rocm") or []):
        name = gpu.get("name") if isinstance(gpu, dict) else None
        options.append((f"GPU {index}: {name or 'ROCm'}", str(index)))
    if len(options) > 1:
        options.append(("all GPUs", ",".join(str(i) for i in range(len(options)))))
    for index, _ in enumerate(devices.get("xpu") or []):
        options.append((f"Intel XPU {index}", f"xpu:{index}"))
    for index, _ in enumerate(devices.get("npu") or []):
        options.append((f"Ascend NPU {index}", f"npu:{index}"))
    if devices.get("mps"):
        options.append(("Apple MPS", "mps"))
    options.append(("CPU", "cpu"))
    return options


def weights_label(entry: dict[str, Any]) -> str:
    """How a weights picker names one entry of ``GET /yolo/models``.

    A training job's weights read ``run · dataset · mAP50-95 0.71 · 2026-12-01 14:02 (job
    3f2a…)`` (the run name only when it has one, ``last`` weights marked); a weights-folder file
    ``name.pt (pretrained · detect)``.
    """
    model = str(entry.get("model") or "")
    if not entry.get("job"):
        task = entry.get("task") or task_from_name(model)
        return f"{model} (pretrained \u00b7 {task})"
    parts = [str(entry["name"])] if entry.get("name") else []
    if entry.get("dataset"):
        parts.append(str(entry["dataset"]).rsplit("/", 1)[-1])
    value = entry.get("metric_value")
    if isinstance(value, int | float):
        parts.append(f"{entry.get('metric_label') or entry.get('metric') or 'metric'} {value:.2f}")
    else:
        parts.append("no metric yet")
    when = _when(entry)
    if when:
        parts.append(when[:16].replace("T", " "))
    which = "" if entry.get("weights", "best") == "best" else ", last"
    return f"{DOT.join(parts)} (job {str(entry['job'])[:4]}\u2026{which})"


def _when(entry: dict[str, Any]) -> str:
    return str(entry.get("ended") or entry.get("created") or "")


def _rank(entry: dict[str, Any]) -> tuple[int, int, float]:
    """Sort key: best weights before last, a metric before none, the better metric first."""
    value = entry.get("metric_value")
    score = float(value) if isinstance(value, int | float) else None
    if score is not None and entry.get("higher_is_better") is False:
        score = -score
    best = 0 if entry.get("weights", "best") == "best" else 1
    return (best, 0 if score is not None else 1, -(score or 0.0))


def weights_choices(
    models: dict[str, Any], task: str | None = None
) -> tuple[list[tuple[str, str]], str | None]:
    """The weights picker of ``GET /yolo/models``: (options, the value to preselect).

    Training jobs' weights come first, ``best.pt`` by headline metric (best first; newest first
    among those without one), then ``last.pt``, then the weights folder's files. With ``task``
    only that task's weights are listed. The preselected value is the best run's weights (not the
    newest), or the first option.
    """
    trained = [
        dict(m)
        for m in models.get("trained") or []
        if isinstance(m, dict) and (not task or m.get("task") == task)
    ]
    ranked = sorted(trained, key=_when, reverse=True)  # newest first among equals (stable sort)
    ranked.sort(key=_rank)
    files = [
        m
        for m in models.get("weights") or []
        if isinstance(m, dict)
        and (not task or (m.get("task") or task_from_name(str(m.get("model")))) == task)
    ]
    options = [(weights_label(e), str(e["model"])) for e in [*ranked, *files]]
    return options, options[0][1] if options else None
