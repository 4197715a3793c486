"""The ``jupyter-yolo`` command (also ``jupyter yolo``).

``info`` prints the accelerator report, ``init`` prepares a workspace, ``serve`` is the container
entrypoint (:mod:`jupyter_yolo.container`) and ``healthcheck`` its health check.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from . import __version__
from .errors import YoloError

DEFAULT_PROBE_TIMEOUT = 90.0


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser; later commands add their own sub-parsers here."""
    parser = argparse.ArgumentParser(
        prog="jupyter-yolo",
        description="Ultralytics YOLO in JupyterLab: tools for the command line.",
    )
    parser.add_argument("--version", action="version", version=f"jupyter-yolo {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    info = commands.add_parser(
        "info",
        help="probe the hardware and print the accelerator report",
        description="Probe the hardware (in a subprocess that imports torch) and print what this "
        "box has and the recommended ultralytics settings.",
    )
    info.add_argument("--json", action="store_true", help="print the report as JSON")
    info.add_argument(
        "--refresh-timeout",
        "--timeout",
        dest="timeout",
        type=float,
        default=DEFAULT_PROBE_TIMEOUT,
        metavar="SECONDS",
        help=f"seconds the probe may take (default {DEFAULT_PROBE_TIMEOUT:g})",
    )
    info.add_argument(
        "--python",
        default=sys.executable,
        metavar="PATH",
        help="Python interpreter that runs the probe (default: this one)",
    )
    info.set_defaults(handler=_info)
    init = commands.add_parser(
        "init",
        help="prepare a workspace with the embedded shapes dataset",
        description="Create the workspace layout (datasets, weights, jobs) and generate the "
        "embedded synthetic shapes dataset when it is missing. Idempotent.",
    )
    init.add_argument(
        "--workspace",
        default=os.environ.get("YOLO_WORKSPACE", "yolo"),
        metavar="PATH",
        help="workspace folder (default: $YOLO_WORKSPACE or ./yolo)",
    )
    init.set_defaults(handler=_init)
    serve = commands.add_parser(
        "serve",
        help="the container entrypoint: JupyterLab with a token, optional sshd",
        usage="jupyter-yolo serve [JUPYTERLAB ARGUMENTS ...]",
        description="Start JupyterLab with the extension (authentication and XSRF checks always "
        "on) and, when SSH_AUTHORIZED_KEYS is set, a keys-only sshd; forward stop "
        "signals so running jobs stop gracefully. Settings come from the environment "
        "(docker/CONTRACT.md); other arguments go to JupyterLab.",
    )
    serve.set_defaults(handler=_serve)
    health = commands.add_parser(
        "healthcheck",
        help="exit 0 when the local JupyterLab answers (no token needed)",
        description="GET {JUPYTER_BASE_URL}api on 127.0.0.1:$JUPYTER_PORT; the container's "
        "HEALTHCHECK.",
    )
    health.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="how long to wait for the answer (default 5)",
    )
    health.set_defaults(handler=_healthcheck)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "serve":
        args.server_args = extra[1:] if extra[:1] == ["--"] else extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        status: int = handler(args)
    except YoloError as exc:
        print(f"jupyter-yolo: {exc.message}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # e.g. `jupyter-yolo info --json | head`
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (silence the flush at exit)
        return 1
    return status


def _info(args: argparse.Namespace) -> int:
    from .accelerators.service import Hints, run_probe_sync

    hints = Hints(
        timeout="pass a larger --refresh-timeout",
        python="pass --python with an interpreter that has torch",
    )
    report = run_probe_sync(args.python, args.timeout, hints)
    if args.json:
        json.dump(report, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        print_report(report, sys.stdout)
    return 0


def _serve(args: argparse.Namespace) -> int:
    from .container.supervisor import serve

    return serve(args.server_args)


def _healthcheck(args: argparse.Namespace) -> int:
    from .container import ContainerError
    from .container.config import ContainerConfig
    from .container.health import check_health

    try:
        config = ContainerConfig.from_environ()
    except ContainerError as exc:
        print(f"jupyter-yolo healthcheck: {exc.message}", file=sys.stderr)
        return 1
    healthy, detail = check_health(config, timeout=args.timeout)
    print(
        f"jupyter-yolo healthcheck: {'ok' if healthy else 'failing'}: {detail}",
        file=sys.stdout if healthy else sys.stderr,
    )
    return 0 if healthy else 1


def _init(args: argparse.Namespace) -> int:
    from .datasets.store import BUILTIN_NAME, ensure_builtin_dataset
    from .workspace import Workspace

    workspace = Workspace(Path(args.workspace))
    workspace.create()
    shapes = workspace.datasets / BUILTIN_NAME
    if not ensure_builtin_dataset(workspace):
        print(f"jupyter-yolo: workspace {workspace.root} is ready ({BUILTIN_NAME} is there)")
        return 0
    print(
        f"jupyter-yolo: workspace {workspace.root} is ready; generated the {BUILTIN_NAME} "
        f"dataset in {shapes}"
    )
    return 0


# --- human-readable report -----------------------------------------------------------------


def _gib(value: Any) -> str:
    from .accelerators.report import gib

    return gib(value) if isinstance(value, int | float) else "unknown"


def _rows(out: TextIO, rows: list[tuple[str, str]], indent: str = "  ") -> None:
    width = max((len(key) for key, _ in rows), default=0)
    for key, value in rows:
        lines = str(value).splitlines() or [""]
        out.write(f"{indent}{key:<{width}}  {lines[0]}\n")
        for line in lines[1:]:
            out.write(f"{indent}{'':<{width}}  {line}\n")


def _host_rows(host: dict[str, Any]) -> list[tuple[str, str]]:
    quota = host.get("cpu_quota")
    cpus = (
        f"{host.get('cpus_usable')} usable ({host.get('cpu_count')} visible, affinity "
        f"{host.get('affinity_cpus')}, "
        + (f"cgroup quota {quota:g})" if quota is not None else "no cgroup CPU quota)")
    )
    limit = host.get("memory_limit_bytes")
    memory = (
        f"{_gib(host.get('memory_effective_bytes'))} usable ("
        + (f"cgroup limit {_gib(limit)}, " if limit else "no cgroup limit, ")
        + f"{_gib(host.get('memory_total_bytes'))} total)"
    )
    shm = host.get("shm")
    shm_text = (
        f"{_gib(shm.get('size_bytes'))} ({_gib(shm.get('free_bytes'))} free)" if shm else "none"
    )
    nodes = ", ".join(str(n.get("path")) for n in host.get("device_nodes") or []) or "none"
    platform = host.get("platform") or {}
    rows = [
        ("CPU", str(host.get("cpu_model") or "unknown")),
        ("CPUs", cpus),
        ("Memory", memory),
        ("/dev/shm", shm_text),
        ("Device nodes", nodes),
    ]
    if platform:
        rows.append(
            (
                "Platform",
                f"{platform.get('system')} {platform.get('machine')} {platform.get('release')}",
            )
        )
    if host.get("tegra_release"):
        rows.append(("Jetson", f"{host.get('board_model') or ''} L4T {host['tegra_release']}"))
    return rows


def _device_lines(devices: list[dict[str, Any]]) -> str:
    if not devices:
        return "none"
    lines = []
    for d in devices:
        extra = [f"{_gib(d.get('memory_bytes'))}"]
        for key, label in (("capability", "capability"), ("arch", "arch"), ("driver", "driver")):
            if d.get(key):
                extra.append(f"{label} {d[key]}")
        if d.get("mig"):
            extra.append("MIG")
        if d.get("integrated"):
            extra.append("integrated")
        lines.append(f"{d.get('index')}: {d.get('name')} ({', '.join(extra)})")
    return "\n".join(lines)


def _backend_rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    torch = report.get("torch")
    if torch:
        build = (
            ", ".join(
                part
                for part in (
                    f"CUDA {torch['cuda']}" if torch.get("cuda") else "",
                    f"HIP {torch['hip']}" if torch.get("hip") else "",
                    f"cuDNN {torch['cudnn']}" if torch.get("cudnn") else "",
                )
                if part
            )
            or "CPU-only build"
        )
        torch_text = f"{torch.get('version')} ({build})"
    else:
        torch_text = "not importable"
    devices = report.get("devices") or {}
    openvino = devices.get("openvino")
    ort = devices.get("onnxruntime")
    return [
        ("torch", torch_text),
        ("CUDA", _device_lines(devices.get("cuda") or [])),
        ("ROCm", _device_lines(devices.get("rocm") or [])),
        ("Intel XPU", _device_lines(devices.get("xpu") or [])),
        ("Apple MPS", "available" if devices.get("mps") else "no"),
        ("Ascend NPU", _device_lines(devices.get("npu") or [])),
        (
            "OpenVINO",
            (
                f"{str(openvino.get('version')).split('-')[0]}: "
                + ", ".join(
                    f"{d.get('name')} ({d.get('full_name')})" for d in openvino.get("devices") or []
                )
            )
            if openvino
            else "not installed",
        ),
        (
            "ONNX Runtime",
            f"{ort.get('version')}: {', '.join(ort.get('providers') or [])}"
            if ort
            else "not installed",
        ),
        ("TensorRT", str(devices.get("tensorrt") or "not installed")),
    ]


def print_report(report: dict[str, Any], out: TextIO) -> None:
    """Write the report as aligned, readable text."""
    rec = report.get("recommendation") or {}
    probe = report.get("probe") or {}
    duration = probe.get("duration_s")
    took = f" (probe {duration:.1f} s)" if isinstance(duration, int | float) else ""
    out.write(f"jupyter-yolo {__version__} accelerator report{took}\n\n")
    _rows(
        out,
        [
            ("Primary", str((report.get("primary") or {}).get("label"))),
            (
                "Recommended",
                " ".join(
                    f"{key}={rec.get(key)}"
                    for key in ("device", "model", "batch", "workers", "amp")
                ),
            ),
            ("", str(rec.get("reason", ""))),
        ],
        indent="",
    )
    out.write("\nHost\n")
    _rows(out, _host_rows(report.get("host") or {}))
    out.write("\nBackends\n")
    _rows(out, _backend_rows(report))
    unusable = report.get("unusable_device_nodes") or []
    if unusable:
        out.write("\nDevice nodes torch cannot use\n")
        _rows(out, [(str(n.get("path")), str(n.get("cause"))) for n in unusable])
    warnings = report.get("warnings") or []
    out.write("\nWarnings\n" if warnings else "\nNo warnings.\n")
    for warning in warnings:
        out.write(f"  [{warning.get('code')}] {warning.get('message')}\n")
