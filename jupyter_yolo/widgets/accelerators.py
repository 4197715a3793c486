"""The accelerators panel: the hardware report as readable tables with its warnings.

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


def report_html(report: dict[str, Any]) -> str:
    """The accelerator report as HTML: primary device, recommendation, warnings, details."""
    host = report.get("host") or {}
    torch = report.get("torch") or {}
    devices = report.get("devices") or {}
    primary = report.get("primary") or {}
    rec = report.get("recommendation") or {}
    parts = [f'<div class="yolo-h">{esc(primary.get("label") or "No accelerator report")}</div>']
    if rec:
        parts.append(
            note(
                "ok",
                (
                    f"Recommended: device <b>{esc(rec.get('device'))}</b>, model "
                    f"<b>{esc(rec.get('model'))}</b>, batch <b>{esc(rec.get('batch'))}</b>, "
                    f"<b>{esc(rec.get('workers'))}</b> dataloader workers, AMP "
                    f"<b>{_yes(rec.get('amp'))}</b>. {esc(rec.get('reason'))}"
                ),
                raw=True,
            )
        )
    for warning in report.get("warnings") or []:
        parts.append(note("warning", f"{warning.get('message')} ({warning.get('code')})"))
    shm = host.get("shm") or {}
    memory_limit = host.get("memory_limit_bytes")
    parts.append('<div class="yolo-h">Host</div>')
    parts.append(
        table(
            [
                ["CPU", host.get("cpu_model")],
                [
                    "CPUs usable",
                    f"{esc(host.get('cpus_usable'))} of {esc(host.get('cpu_count'))}"
                    + (f" (quota {esc(host.get('cpu_quota'))})" if host.get("cpu_quota") else ""),
                ],
                [
                    "Memory",
                    fmt_bytes(host.get("memory_effective_bytes"))
                    + (f" (container limit {fmt_bytes(memory_limit)})" if memory_limit else ""),
                ],
                [
                    "/dev/shm",
                    f"{fmt_bytes(shm.get('size_bytes'))} ({fmt_bytes(shm.get('free_bytes'))} free)",
                ],
            ]
        )
    )
    backend = (
        f"CUDA {torch['cuda']}"
        if torch.get("cuda")
        else f"HIP {torch['hip']}"
        if torch.get("hip")
        else "CPU build"
    )
    parts.append('<div class="yolo-h">torch</div>')
    parts.append(
        table(
            [
                ["version", torch.get("version")],
                ["build", backend + (f", cuDNN {torch['cudnn']}" if torch.get("cudnn") else "")],
                ["devices visible", torch.get("device_count")],
            ]
        )
    )
    rows = _device_rows(report)
    parts.append('<div class="yolo-h">Devices</div>')
    parts.append(
        table(rows, ["backend", "index", "name", "memory", "details"])
        if rows
        else '<div class="yolo-muted">No GPU, NPU or OpenVINO device.</div>'
    )
    runtimes: list[list[Any]] = []
    onnx = devices.get("onnxruntime")
    if isinstance(onnx, dict):
        runtimes.append(
            ["ONNX Runtime", f"{onnx.get('version')}: " + ", ".join(onnx.get("providers") or [])]
        )
    if isinstance(devices.get("openvino"), dict):
        runtimes.append(["OpenVINO", devices["openvino"].get("version")])
    runtimes.append(["TensorRT", str(devices.get("tensorrt") or "not installed")])
    jetson = devices.get("jetson")
    if isinstance(jetson, dict):
        runtimes.append(["Jetson", jetson.get("board") or jetson.get("tegra_release")])
    parts.append('<div class="yolo-h">Inference runtimes</div>')
    parts.append(table(runtimes))
    unusable = report.get("unusable_device_nodes") or []
    if unusable:
        parts.append('<div class="yolo-h">Device nodes torch cannot use</div>')
        parts.append(
            table(
                [[n.get("path"), n.get("family"), n.get("cause")] for n in unusable],
                ["node", "family", "cause"],
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
    line = " \u00b7 ".join(items) or "no reading"
    return f'<div class="yolo-status">\u23f1 {line}</div>'


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
