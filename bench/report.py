"""The benchmark report: flat dotted keys, targets with pass/fail, a table and the JSON file."""

from __future__ import annotations

import json
import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jupyter_yolo.contract.files import write_atomic

#: Keys every report carries (null when their section did not run or did not measure them).
REQUIRED_KEYS = (
    "inference.choice",
    "inference.auto_over_best",
    "inference.auto_over_pytorch",
    "training.overhead_ratio",
    "training.speedup_over_cli",
    "training.map50_diff_points",
    "live.callback_to_rest_p95_s",
    "live.idle_longpoll_cpu_percent",
    "rest.p99_ms_under_load",
    "server.startup_delta_s",
    "server.rss_delta_mb",
    "serving.rest_over_compute_p50",
    "serving.rest_over_inference_p50",
    "serving.folder_over_cli",
    "serving.concurrent_errors",
    "predict.first_after_train_s",
)

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">=": operator.ge,
}


@dataclass(frozen=True)
class Target:
    """A figure's goal, shown as pass/fail (never asserted in a timed unit test)."""

    key: str
    op: str
    limit: float
    label: str

    def check(self, value: Any) -> bool | None:
        """Whether ``value`` meets the target (None when it was not measured)."""
        if (
            not isinstance(value, (int, float))
            or isinstance(value, bool)
            or not math.isfinite(value)
        ):
            return None
        return _OPS[self.op](float(value), self.limit)


TARGETS = (
    Target(
        "training.speedup_over_cli",
        ">=",
        1.4,
        "a training job at least 1.4x as fast as plain yolo train with the same arguments",
    ),
    Target(
        "training.map50_diff_points",
        "<=",
        2.0,
        "the job's final mAP50 within 2 points of plain yolo train's (same seed)",
    ),
    Target(
        "training.overhead_ratio",
        "<=",
        1.03,
        "training job at most 3 % slower than yolo train given the job's own choices",
    ),
    Target("inference.auto_over_best", ">=", 0.95, "auto within 5 % of the best backend"),
    Target("inference.auto_over_pytorch", ">=", 2.5, "auto at least 2.5x plain PyTorch"),
    Target(
        "live.callback_to_rest_p95_s",
        "<=",
        0.1,
        "a trainer's event reaches a long-polling REST client within 0.1 s (p95)",
    ),
    Target("eventloop.rest_p99_ms", "<", 20.0, "REST p99 under 20 ms while /yolo/models hashes"),
    Target(  # the worker's own time on the image: decode + pre + inference + post
        "serving.rest_over_compute_p50",
        "<=",
        1.25,
        "POST /yolo/predict round trip at most 25 % over the worker's own work on the image "
        "(its preprocess + inference + postprocess, p50)",
    ),
    Target("serving.folder_over_cli", ">=", 2.0, "folder job at least 2x plain yolo predict"),
    Target(
        "predict.first_after_train_s",
        "<=",
        5.0,
        "first prediction of the panel's default request after training answered within 5 s (p50)",
    ),
    Target("serving.concurrent_errors", "<=", 0, "20 concurrent predict clients without an error"),
    Target(
        "scaling.registry.list_limited_p50_ratio_1000_over_10",
        "<=",
        1.5,
        "GET /yolo/jobs?limit=10 as fast with 1,000 finished jobs as with 10",
    ),
    Target(
        "scaling.registry.events_p50_ratio_1000_over_10",
        "<=",
        1.5,
        "event reads as fast with 1,000 finished jobs as with 10",
    ),
    Target(
        "scaling.registry.events_tail_ratio_100k_over_100",
        "<=",
        1.5,
        "reading the newest events as fast with 100,000 events as with 100",
    ),
)

#: The figures the table shows, in order, with a label; every figure is in the JSON.
HEADLINE: tuple[tuple[str, str], ...] = (
    ("training.speedup_over_cli", "plain yolo train / job wall time (same user arguments)"),
    ("training.images_per_s_job", "job: training images per second (training phase)"),
    ("training.images_per_s_cli", "plain yolo train: training images per second"),
    ("training.images_per_s_cli_chosen", "yolo train with the job's choices: images per second"),
    ("training.map50_job", "job: final mAP50 (median)"),
    ("training.map50_cli", "plain yolo train: final mAP50 (median)"),
    ("training.map50_diff_points", "|job - CLI| final mAP50, points"),
    ("training.overhead_ratio", "job / CLI given the job's choices (job ends when GET says so)"),
    ("training.overhead_ratio_events", "job / CLI with the choices (job ends at its event)"),
    ("training.overhead_ratio_work", "job / CLI with the choices, up to the end of the work"),
    ("training.job_median_s", "job: POST to job record terminal, median s"),
    ("training.cli_median_s", "plain yolo train process, median s"),
    ("training.cli_chosen_median_s", "yolo train with the job's choices, median s"),
    ("inference.choice", "backend auto picked"),
    ("inference.auto_images_per_s", "auto, images/s"),
    ("inference.pytorch_default_images_per_s", "plain PyTorch, images/s"),
    ("inference.auto_over_best", "auto / best single backend"),
    ("inference.auto_over_pytorch", "auto / plain PyTorch"),
    ("live.callback_to_rest_median_s", "trainer callback to event over REST, median s"),
    ("live.callback_to_rest_p95_s", "trainer callback to event over REST, p95 s"),
    ("live.callback_to_rest_max_s", "trainer callback to event over REST, max s"),
    ("live.idle_longpoll_clients", "idle server: clients long-polling an ended job"),
    ("live.idle_longpoll_cpu_percent", "idle server CPU % with those long polls (inotify)"),
    ("live.idle_longpoll_cpu_percent_poll", "the same with event_notification=poll (0.25 s)"),
    ("live.idle_server_cpu_percent", "idle server CPU % with no client"),
    ("live.idle_longpoll_loop_wakeups_per_s", "event-loop wake-ups/s with the long polls"),
    ("live.idle_longpoll_loop_wakeups_per_s_poll", "the same with event_notification=poll"),
    ("live.idle_server_loop_wakeups_per_s", "event-loop wake-ups/s with no client"),
    ("rest.p50_ms_idle", "REST latency p50 ms, idle"),
    ("rest.p50_ms_one_job", "REST latency p50 ms, one training job"),
    ("rest.p50_ms_under_load", "REST latency p50 ms, training saturating the CPUs"),
    ("rest.p99_ms_idle", "REST latency p99 ms, idle"),
    ("rest.p99_ms_one_job", "REST latency p99 ms, one training job"),
    ("rest.p99_ms_under_load", "REST latency p99 ms, training saturating the CPUs"),
    ("rest.cpu_busy_percent_one_job", "CPU busy with one training job, %"),
    ("rest.jobs_under_load", "concurrent training jobs that saturate the CPUs"),
    ("rest.cpu_busy_percent_under_load", "CPU busy while saturated, %"),
    ("server.startup_with_s", "JupyterLab start with the extension, s"),
    ("server.startup_without_s", "JupyterLab start without it, s"),
    ("server.startup_delta_s", "start time added by the extension, s"),
    ("server.rss_with_mb", "server RSS with the extension, MB"),
    ("server.rss_without_mb", "server RSS without it, MB"),
    ("server.rss_delta_mb", "RSS added by the extension, MB"),
    ("server.torch_loaded_in_server", "torch loaded in the server process"),
    ("eventloop.rest_p50_ms", "REST latency p50 ms while /yolo/models runs"),
    ("eventloop.rest_p99_ms", "REST latency p99 ms while /yolo/models runs"),
    ("eventloop.rest_p99_ms_cold", "REST latency p99 ms while /yolo/models hashes (cold)"),
    ("eventloop.rest_p99_ms_warm", "REST latency p99 ms during warm /yolo/models calls"),
    ("eventloop.rest_p99_ms_idle", "REST latency p99 ms, nothing else running"),
    ("eventloop.models_cold_s", "cold /yolo/models (hashes every weights file), median s"),
    ("eventloop.models_warm_median_ms", "warm /yolo/models (digest cache), median ms"),
    ("eventloop.models_after_restart_ms", "first /yolo/models after a restart, ms"),
    ("eventloop.hash_mb_per_s", "weights hashed per second in a cold call, MB/s"),
    ("serving.backend", "backend of the warm worker and the predict jobs"),
    ("serving.rest_p50_ms", "POST /yolo/predict, 640 px JPEG, round trip p50 ms"),
    ("serving.rest_p99_ms", "POST /yolo/predict, round trip p99 ms"),
    ("serving.worker_inference_p50_ms", "worker's own inference (timing.inference_ms) p50 ms"),
    ("serving.worker_compute_p50_ms", "worker's preprocess + inference + postprocess p50 ms"),
    ("serving.rest_over_compute_p50", "REST round trip / worker pre+inference+post, p50"),
    ("serving.rest_over_inference_p50", "REST round trip / worker inference alone, p50"),
    ("serving.worker_start_ms", "first request: worker start (load, backend, warm-up) ms"),
    ("serving.job_one_image_s", "predict job on one image: POST to terminal record, s"),
    ("serving.job_over_rest", "predict job on one image / REST p50"),
    ("serving.folder_job_images_per_s", "folder job (throughput mode), images/s end to end"),
    ("serving.folder_job_fps", "folder job's own rate (model loaded), images/s"),
    ("serving.folder_latency_mode_images_per_s", "folder job, batch 1, images/s end to end"),
    ("serving.folder_cli_images_per_s", "plain yolo predict source=<folder>, images/s"),
    ("serving.folder_over_cli", "folder job / plain yolo predict (end to end)"),
    ("serving.folder_over_latency_mode", "folder job / the same in latency mode"),
    ("serving.video_fps", "video predict job's own rate, frames/s"),
    ("serving.video_frames_per_s_end_to_end", "video predict job, frames/s end to end"),
    ("serving.concurrent_errors", "20 concurrent clients: failed requests"),
    ("serving.concurrent_p99_ms", "20 concurrent clients: p99 ms they saw"),
    ("serving.concurrent.requests_per_s", "20 concurrent clients: requests/s served"),
    ("serving.concurrent.queue_p99_ms", "20 concurrent clients: p99 ms waiting for the worker"),
    ("serving.concurrent.client_spread", "20 concurrent clients: slowest / fastest client"),
    ("serving.raw_fps", "backend's raw limit on this CPU (random input), frames/s"),
    ("serving.raw.method", "how the raw limit was measured"),
    ("serving.folder_over_raw", "folder job's own rate / raw limit"),
    ("serving.folder_end_to_end_over_raw", "folder job end to end / raw limit"),
    ("predict.first_after_train_s", "training end to the panel's first answer, p50 s"),
    ("predict.first_after_train_cold_s", "the same, prepare_after_training off, p50 s"),
    ("predict.first_after_train_speedup", "cold / prepared: first answer after training"),
    ("predict.first_after_train_all_s", "training end to first answer, each repeat, s"),
    ("predict.first_after_train_cold_all_s", "the same with the setting off, each repeat, s"),
    (
        "predict.first_after_train_backends",
        "what answered first (PyTorch stand-in while it prepares)",
    ),
    ("predict.prepared_after_train_s", "training end to preparation done (warm auto), median s"),
    ("predict.after_prepared_s", "the panel's next answer once prepared, median s"),
    ("ray.local_first_batch_s", "local job: POST to first batch event, median s"),
    ("ray.ray_first_batch_s", "Ray job: POST to first batch event, median s"),
    ("ray.first_batch_ratio", "Ray / local: POST to first batch event"),
    ("ray.local_wall_s", "local job, 2 epochs imgsz 64: POST to ended, median s"),
    ("ray.ray_wall_s", "Ray job, the same training: POST to ended, median s"),
    ("ray.wall_ratio", "Ray / local: total wall time"),
    ("scaling.cpus.cpu1.images_per_s", "training images/s with 1 usable CPU (affinity)"),
    ("scaling.cpus.cpu2.images_per_s", "training images/s with 2 usable CPUs"),
    ("scaling.cpu_ratio_2_over_1", "training images/s: 2 CPUs / 1 CPU"),
    ("scaling.dataset.100.s_per_image", "1 epoch on 100 images: training s per image"),
    ("scaling.dataset.500.s_per_image", "1 epoch on 500 images: training s per image"),
    ("scaling.dataset.2000.s_per_image", "1 epoch on 2,000 images: training s per image"),
    ("scaling.dataset.100.runner_peak_rss_mb", "runner peak RSS (VmHWM), 100 images, MB"),
    ("scaling.dataset.2000.runner_peak_rss_mb", "runner peak RSS (VmHWM), 2,000 images, MB"),
    ("scaling.dataset.2000.runner_tree_pss_max_mb", "runner + workers PSS (usage events), MB"),
    ("scaling.dataset.2000.server_after.rss_mb", "server RSS after the 2,000-image job, MB"),
    ("scaling.registry.by_jobs.10.list.p50_ms", "GET /yolo/jobs p50 ms, 10 jobs"),
    ("scaling.registry.by_jobs.100.list.p50_ms", "GET /yolo/jobs p50 ms, 100 jobs"),
    ("scaling.registry.by_jobs.1000.list.p50_ms", "GET /yolo/jobs p50 ms, 1,000 jobs (all listed)"),
    ("scaling.registry.by_jobs.1000.list_ms_per_job", "GET /yolo/jobs p50 ms per job listed"),
    (
        "scaling.registry.list_limited_p50_ratio_1000_over_10",
        "GET /yolo/jobs?limit=10: 1,000 / 10 jobs",
    ),
    ("scaling.registry.events_p50_ratio_1000_over_10", "event tail read p50: 1,000 / 10 jobs"),
    ("scaling.registry.by_jobs.1000.adopted_start_s", "server start adopting 1,000 job folders, s"),
    ("scaling.registry.by_jobs.1000.known_start_s", "server start with 1,000 jobs registered, s"),
    ("scaling.registry.by_events.100000.cold_tail_ms", "first read of a 100,000-event job, ms"),
    (
        "scaling.registry.events_tail_ratio_100k_over_100",
        "event tail read p50: 100,000 / 100 events",
    ),
)
#: Prefixes of further figures shown in the table when present (the inference section's own).
HEADLINE_PREFIXES = ("inference.images_per_s.", "inference.int8_")


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted keys (``{"a": {"b": 1}}`` -> ``{"a.b": 1}``); lists stay values."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities replaced by None, recursively (strict JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def evaluate_targets(figures: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every target with the measured value and whether it passed (None: not measured)."""
    return [
        {
            "key": t.key,
            "op": t.op,
            "limit": t.limit,
            "label": t.label,
            "value": figures.get(t.key),
            "pass": t.check(figures.get(t.key)),
        }
        for t in TARGETS
    ]


def build_document(
    figures: Mapping[str, Any],
    *,
    sections: Mapping[str, Any],
    machine: Mapping[str, Any],
    run: Mapping[str, Any],
) -> dict[str, Any]:
    """The JSON report: figures as flat dotted keys at the top, then what they came from."""
    flat: dict[str, Any] = dict.fromkeys(REQUIRED_KEYS)
    flat.update(figures)
    document: dict[str, Any] = json_safe(
        {
            **flat,
            "targets": evaluate_targets(flat),
            "sections": dict(sections),
            "machine": dict(machine),
            "run": dict(run),
        }
    )
    return document


def write_json(path: Path, document: Mapping[str, Any]) -> None:
    """Write the report (strict JSON, indented), creating the folder; atomic rename."""
    write_atomic(path, json.dumps(document, indent=2, allow_nan=False) + "\n")


def _show(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:.0f}"
    if isinstance(value, list):
        return ", ".join(_show(v) for v in value)
    return str(value)


def _table(rows: list[list[str]], header: list[str]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip(), line]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return out


def format_table(document: Mapping[str, Any]) -> str:
    """The readable summary: machine, sections with status and time, figures with targets."""
    machine = document.get("machine", {})
    run = document.get("run", {})
    versions = machine.get("versions", {})
    lines = [
        f"jupyter-yolo benchmarks ({'quick' if run.get('quick') else 'full'}) on "
        f"{machine.get('cpu_model')}, {machine.get('cpus_usable')} usable CPU(s); torch "
        f"{versions.get('torch')}, ultralytics {versions.get('ultralytics')}, Python "
        f"{machine.get('python')}",
        "",
    ]
    section_rows = []
    for name, info in document.get("sections", {}).items():
        took = info.get("duration_s")
        note = info.get("error") or info.get("reason") or ""
        section_rows.append(
            [
                name,
                info.get("status", "?"),
                "-" if took is None else f"{took:.1f} s",
                _show(info.get("loadavg_before")),
                note.splitlines()[0][:90] if note else "",
            ]
        )
    lines += _table(section_rows, ["section", "status", "time", "load before", "note"])
    lines.append("")
    targets = {t["key"]: t for t in document.get("targets", [])}
    keys = [k for k, _ in HEADLINE]
    keys += sorted(k for k in document if k.startswith(HEADLINE_PREFIXES) and k not in keys)
    labels = dict(HEADLINE)
    rows = []
    for key in keys:
        if key not in document:
            continue
        target = targets.get(key)
        passed = None if target is None else target["pass"]
        rows.append(
            [
                key,
                _show(document[key]),
                "" if target is None else f"{target['op']} {target['limit']:g}",
                "" if target is None else {True: "PASS", False: "FAIL", None: "n/a"}[passed],
                labels.get(key, ""),
            ]
        )
    lines += _table(rows, ["figure", "value", "target", "result", "what"])
    return "\n".join(lines)
