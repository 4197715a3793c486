"""The accelerators panel: the hardware report for people (what matters first, details folded).

A live usage line (CPU, memory, GPUs) is refreshed every couple of seconds in the background.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets

from ..client import YoloClient
from .common import STYLE, Ticker, error_text, esc, fmt_bytes, get_client, note, table

USAGE_INTERVAL = 2.0


def _yes(value: Any) -> str:
    return "yes" if value else "no"


def _device_rows(report: dict[str, Any]) -> list[list[Any]]:
    devices = report.get("devices") or {}
    rows: list[list[Any]] = []
    for backend in ("cuda", "rocm", "xpu", "npu"):
        for device in devices.get(backend) or []:
            if not isinstance(device, dict):
                continue
            details = []
            if device.get("capability"):
                details.append(f"compute {device['capability']}")
            if device.get("arch"):
                details.append(str(device["arch"]))
            if device.get("driver"):
                details.append(f"driver {device['driver']}")
            if device.get("mig"):
                details.append("MIG slice")
            if device.get("integrated"):
                details.append("shares memory with the CPU")
            rows.append(
                [
                    backend.upper(),
                    device.get("index"),
                    device.get("name"),
                    fmt_bytes(device.get("memory_bytes")),
                    ", ".join(details) or None,
                ]
            )
    if devices.get("mps"):
        rows.append(["MPS", 0, "Apple GPU", None, None])
    openvino = devices.get("openvino")
    if isinstance(openvino, dict):
        for device in openvino.get("devices") or []:
            rows.append(
                ["OpenVINO", device.get("name"), device.get("full_name"), None, device.get("type")]
            )
    return rows


def _recommendation_html(rec: dict[str, Any]) -> str:
    items = [
        f"device <b>{esc(rec.get('device'))}</b>",
        f"model <b>{esc(rec.get('model'))}</b>",
        f"batch <b>{esc(rec.get('batch'))}</b>",
    ]
    if rec.get("imgsz"):
        items.append(f"image size <b>{esc(rec.get('imgsz'))} px</b>")
    workers = rec.get("workers")
    items.append(f"<b>{esc(workers)}</b> dataloader worker{'' if workers == 1 else 's'}")
    items.append(f"AMP <b>{_yes(rec.get('amp'))}</b>")
    reason = f'<div class="yolo-muted">{esc(rec.get("reason"))}</div>' if rec.get("reason") else ""
    return note("ok", f"Recommended: {', '.join(items)}.{reason}{_speed_html(rec)}", raw=True)


def _speed_html(rec: dict[str, Any]) -> str:
    """The training speed choices a job makes on this hardware, one line each."""
    speed = rec.get("speed") or {}
    lines = [
        f"<li><b>{esc(c.get('name'))}</b> = {esc(c.get('value'))}: {esc(c.get('reason'))}</li>"
        for c in speed.get("choices") or []
    ]
    if not lines:
        return ""
    return f'<div class="yolo-muted">Training jobs choose:<ul>{"".join(lines)}</ul></div>'


def _summary_rows(report: dict[str, Any]) -> list[list[Any]]:
    """The facts a person looks for first: CPU, memory, accelerators, PyTorch build."""
    host = report.get("host") or {}
    torch = report.get("torch") or {}
    devices = report.get("devices") or {}
    usable, cores = host.get("cpus_usable"), host.get("cpu_count")
    count = f"{usable}" if usable == cores or cores is None else f"{usable} of {cores}"
    rows: list[list[Any]] = [["CPU", f"{host.get('cpu_model') or 'CPU'} ({count} usable)"]]
    memory = host.get("memory_effective_bytes") or host.get("memory_total_bytes")
    if memory:
        limited = " (container limit)" if host.get("memory_limit_bytes") else ""
        rows.append(["Memory", fmt_bytes(memory) + limited])
    accelerators = []
    for backend in ("cuda", "rocm", "xpu", "npu"):
        for device in devices.get(backend) or []:
            if isinstance(device, dict):
                size = (
                    f", {fmt_bytes(device['memory_bytes'])}" if device.get("memory_bytes") else ""
                )
                accelerators.append(f"{device.get('name') or backend.upper()}{size}")
    if devices.get("mps"):
        accelerators.append("Apple GPU (MPS)")
    rows.append(["Accelerators", "; ".join(accelerators) or "none (CPU only)"])
    if torch.get("version"):
        rows.append(["PyTorch", f"{torch['version']} ({_torch_build(torch)})"])
    return rows


def _torch_build(torch: dict[str, Any]) -> str:
    if torch.get("cuda"):
        build = f"CUDA {torch['cuda']}"
    elif torch.get("hip"):
        build = f"ROCm {torch['hip']}"
    else:
        return "CPU build"
    return build + (f", cuDNN {torch['cudnn']}" if torch.get("cudnn") else "")


def _folded(title: str, body: str) -> str:
    return f'<details class="yolo-details"><summary><b>{esc(title)}</b></summary>{body}</details>'


def _host_rows(host: dict[str, Any]) -> list[list[Any]]:
    shm = host.get("shm") or {}
    platform = host.get("platform") or {}
    rows: list[list[Any]] = [
        ["CPU", host.get("cpu_model")],
        [
            "CPUs usable",
            f"{host.get('cpus_usable')} of {host.get('cpu_count')}"
            + (f" (quota {host.get('cpu_quota')})" if host.get("cpu_quota") else ""),
        ],
        ["Memory", fmt_bytes(host.get("memory_total_bytes"))],
        ["Memory available", fmt_bytes(host.get("memory_available_bytes"))],
    ]
    if host.get("memory_limit_bytes"):
        rows.append(["Memory limit (container)", fmt_bytes(host["memory_limit_bytes"])])
    if shm.get("size_bytes") is not None:
        free = f" ({fmt_bytes(shm.get('free_bytes'))} free)" if shm.get("free_bytes") else ""
        rows.append(["Shared memory (/dev/shm)", fmt_bytes(shm.get("size_bytes")) + free])
    if isinstance(platform, dict) and platform.get("system"):
        rows.append(
            [
                "Operating system",
                f"{platform.get('system')} {platform.get('release') or ''} "
                f"({platform.get('machine') or '?'})",
            ]
        )
    if host.get("board_model"):
        rows.append(["Board", host["board_model"]])
    if host.get("tegra_release"):
        rows.append(["L4T release", host["tegra_release"]])
    return [row for row in rows if row[1] not in (None, "", "\u2014")]


def _amount(value: Any) -> str:
    if not isinstance(value, int | float):
        return "?"
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def _node_row(node: dict[str, Any]) -> list[Any]:
    gpus = _amount(node.get("gpus") or 0)
    if node.get("gpus") and node.get("gpu_type"):
        gpus += f" {node['gpu_type']}"
    custom = ", ".join(f"{k} {_amount(v)}" for k, v in (node.get("resources") or {}).items())
    return [
        str(node.get("address") or "") + (" (head)" if node.get("head") else ""),
        _amount(node.get("cpus")),
        gpus,
        custom or "\u2014",
        node.get("state"),
    ]


def cluster_html(report: dict[str, Any]) -> str:
    """The "Ray cluster" section of the report (empty when the server has no Ray cluster)."""
    cluster = report.get("cluster")
    if not isinstance(cluster, dict):
        return ""
    parts = ['<div class="yolo-h">Ray cluster</div>']
    rows: list[list[Any]] = [["Address", cluster.get("address")]]
    executors = report.get("executors") or {}
    if executors.get("available"):
        rows.append(
            [
                "Executors",
                f"{', '.join(executors['available'])} (default {executors.get('default')})",
            ]
        )
    rows.append(["Ray version", cluster.get("ray_version") or "unknown"])
    if cluster.get("error"):
        return "".join(parts) + table(rows) + note("warning", str(cluster["error"]))
    nodes = [n for n in cluster.get("nodes") or [] if isinstance(n, dict)]
    alive = sum(1 for n in nodes if n.get("state") == "ALIVE")
    rows.append(["Nodes", f"{alive} alive of {len(nodes)}"])
    for name, use in (cluster.get("usage") or {}).items():
        total, used = use.get("total") or 0, use.get("used") or 0
        show = fmt_bytes if "memory" in name.lower() else _amount  # Ray counts memory in bytes
        rows.append(
            [name, f"{show(used)} used, {show(max(total - used, 0))} free of {show(total)}"]
        )
    types = cluster.get("gpu_types") or {}
    if types:
        rows.append(["GPUs by type", ", ".join(f"{n}\u00d7 {t}" for t, n in types.items())])
    parts.append(table(rows))
    header = ["node", "CPUs", "GPUs", "custom resources", "state"]
    parts.append(table([_node_row(n) for n in nodes], header))
    return "".join(parts)


def cluster_usage_text(usage: dict[str, Any]) -> str | None:
    """The cluster's part of the live line ("Ray 2 nodes, CPU 1/3 free"), or None without one."""
    cluster = usage.get("cluster")
    if not isinstance(cluster, dict):
        return None
    if not cluster.get("reachable"):
        return "Ray <b>unreachable</b>"
    if cluster.get("error"):
        return "Ray <b>not usable</b>"  # the report says why (another version, an odd answer)
    cpu, gpu = cluster.get("cpu") or {}, cluster.get("gpu") or {}
    return (
        f"Ray {esc(cluster.get('nodes'))} node(s): CPU <b>{_amount(cpu.get('free'))}</b>/"
        f"{_amount(cpu.get('total'))}, GPU <b>{_amount(gpu.get('free'))}</b>/"
        f"{_amount(gpu.get('total'))} free"
    )


def report_html(report: dict[str, Any]) -> str:
    """The accelerator report for people: what matters first, details folded.

    The recommended training settings and the warnings come first, then a summary (CPU, memory,
    accelerators, PyTorch), then folded sections (host, PyTorch, devices, runtimes, Jetson, device
    nodes torch cannot use) with human labels and units; sections that do not apply are left out.
    """
    torch = report.get("torch") or {}
    devices = report.get("devices") or {}
    primary = report.get("primary") or {}
    rec = report.get("recommendation") or {}
    parts = [f'<div class="yolo-h">{esc(primary.get("label") or "No accelerator report")}</div>']
    if rec:
        parts.append(_recommendation_html(rec))
    for warning in report.get("warnings") or []:
        parts.append(note("warning", f"{warning.get('message')} ({warning.get('code')})"))
    parts.append(table(_summary_rows(report)))
    parts.append(cluster_html(report))
    parts.append(_folded("Host", table(_host_rows(report.get("host") or {}))))
    if torch:
        torch_rows: list[list[Any]] = [
            ["Version", torch.get("version")],
            ["Build", _torch_build(torch)],
            ["Devices visible", torch.get("device_count")],
        ]
        if torch.get("arch_list"):
            torch_rows.append(["GPU architectures built for", ", ".join(torch["arch_list"])])
        parts.append(_folded("PyTorch", table(torch_rows)))
    rows = _device_rows(report)
    if rows:
        header = ["backend", "index", "name", "memory", "details"]
        parts.append(_folded(f"Devices ({len(rows)})", table(rows, header)))
    runtimes: list[list[Any]] = []
    onnx = devices.get("onnxruntime")
    if isinstance(onnx, dict):
        providers = ", ".join(onnx.get("providers") or [])
        runtimes.append(["ONNX Runtime", f"{onnx.get('version')} ({providers})"])
    if isinstance(devices.get("openvino"), dict):
        runtimes.append(["OpenVINO", devices["openvino"].get("version")])
    if devices.get("tensorrt"):
        runtimes.append(["TensorRT", str(devices["tensorrt"])])
    if runtimes:
        parts.append(_folded("Inference runtimes", table(runtimes)))
    jetson = devices.get("jetson")
    if isinstance(jetson, dict):
        jetson_rows = [[k.replace("_", " ").capitalize(), v] for k, v in jetson.items() if v]
        parts.append(_folded("Jetson", table(jetson_rows)))
    unusable = report.get("unusable_device_nodes") or []
    if unusable:
        parts.append(
            _folded(
                "Device nodes torch cannot use",
                table(
                    [[n.get("path"), n.get("family"), n.get("cause")] for n in unusable],
                    ["node", "family", "cause"],
                ),
            )
        )
    return STYLE + "".join(parts)


def usage_html(usage: dict[str, Any]) -> str:
    """One line of live utilisation: CPU, memory and each GPU."""
    cpu = usage.get("cpu") or {}
    memory = usage.get("memory") or {}
    items = []
    if isinstance(cpu.get("percent"), int | float):
        items.append(f"CPU <b>{cpu['percent']:.0f}%</b> of {esc(cpu.get('cpus'))}")
    if memory.get("used_bytes") is not None:
        items.append(
            f"memory <b>{fmt_bytes(memory.get('used_bytes'))}</b> / "
            f"{fmt_bytes(memory.get('limit_bytes'))}"
        )
    for gpu in usage.get("gpus") or []:
        text = f"GPU {esc(gpu.get('index'))}"
        if isinstance(gpu.get("utilization_percent"), int | float):
            text += f" <b>{gpu['utilization_percent']:.0f}%</b>"
        if gpu.get("memory_used_bytes") is not None:
            text += (
                f" {fmt_bytes(gpu.get('memory_used_bytes'))} / "
                f"{fmt_bytes(gpu.get('memory_total_bytes'))}"
            )
        if isinstance(gpu.get("temperature_c"), int | float):
            text += f" {gpu['temperature_c']:.0f}\u00b0C"
        items.append(text)
    cluster = cluster_usage_text(usage)
    if cluster:
        items.append(cluster)
    line = " \u00b7 ".join(items) or "no reading"
    return f'<div class="yolo-status">Now: {line}</div>'


class AcceleratorsPanel(widgets.VBox):  # type: ignore[misc]
    """What the container offers: the report with warnings, and live utilisation."""

    def __init__(
        self,
        client: YoloClient | None = None,
        *,
        live: bool = True,
        interval: float = USAGE_INTERVAL,
    ) -> None:
        self.client = get_client(client)
        self.report: dict[str, Any] = {}
        self.usage_w = widgets.HTML('<div class="yolo-muted">reading usage\u2026</div>')
        self.report_w = widgets.HTML()
        self.refresh_button = widgets.Button(
            description="Probe again",
            icon="refresh",
            tooltip="Run the hardware probe again (a few seconds)",
        )
        self.refresh_button.on_click(lambda _: self.refresh(probe=True))
        super().__init__(
            children=[
                widgets.HTML(STYLE + '<div class="yolo-h">Accelerators</div>'),
                self.usage_w,
                self.report_w,
                self.refresh_button,
            ]
        )
        self.add_class("yolo-accelerators-panel")
        self.refresh()
        self._ticker: Ticker | None = None
        if live:
            self._ticker = Ticker(self.update_usage, interval).start()
        else:
            self.update_usage()

    def refresh(self, probe: bool = False) -> None:
        """Read the report again (``probe``: make the server run the hardware probe again)."""
        self.refresh_button.disabled = True
        try:
            self.report = self.client.accelerators(refresh=probe)
            self.report_w.value = report_html(self.report)
        except Exception as exc:
            self.report_w.value = STYLE + note("error", error_text(exc))
        finally:
            self.refresh_button.disabled = False

    def update_usage(self) -> None:
        """Read the live usage once and show it."""
        try:
            self.usage_w.value = usage_html(self.client.usage())
        except Exception as exc:
            self.usage_w.value = note("error", f"usage: {error_text(exc)}")

    def close(self) -> None:
        """Stop the live usage line and close the widgets."""
        if self._ticker is not None:
            self._ticker.stop()
        super().close()
