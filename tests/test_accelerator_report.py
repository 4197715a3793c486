"""build_report on recorded probe facts from other hardware: 8 x H100, MI300X, Ascend, Jetson ...

Each fixture in tests/fixtures/accelerators is the raw JSON the probe prints on that machine, so
these tests pin what the report recommends and warns about there without that hardware.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from jupyter_yolo.accelerators.report import build_report

FIXTURES = Path(__file__).parent / "fixtures" / "accelerators"

# fixture -> (primary kind, device, model, batch, workers, amp, warning codes, unusable nodes)
EXPECTED: dict[str, tuple[str, str, str, int, int, bool, set[str], int]] = {
    "nvidia_h100_x8": ("cuda", "0,1,2,3,4,5,6,7", "yolov8x.yaml", 256, 8, True, set(), 0),
    "nvidia_rtx4070": ("cuda", "0", "yolov8m.yaml", 16, 8, True, set(), 0),
    "rocm_mi300x_x8": ("rocm", "0,1,2,3,4,5,6,7", "yolov8x.yaml", 256, 8, True, set(), 0),
    "ascend_910b": ("npu", "npu:0,1", "yolov8x.yaml", 64, 8, True, set(), 0),
    "jetson_orin_nx": ("cuda", "0", "yolov8n.yaml", 8, 2, True, set(), 0),
    "cpu_openvino": ("cpu", "cpu", "yolov8n.yaml", 16, 0, False, {"no_accelerator"}, 0),
    "nvidia_nodes_cpu_torch": (
        "cpu",
        "cpu",
        "yolov8n.yaml",
        16,
        0,
        False,
        {"torch_cpu_only_build"},
        3,
    ),
    "small_shm_cpu_quota": (
        "cpu",
        "cpu",
        "yolov8n.yaml",
        16,
        0,
        False,
        {"no_accelerator", "cpu_quota"},  # CPU training loads data in-process: no shm needed
        0,
    ),
    "nvidia_driver_too_old": (
        "cpu",
        "cpu",
        "yolov8n.yaml",
        16,
        4,
        False,
        {"device_nodes_unusable"},
        3,
    ),
    "nvidia_a100_mig": ("cuda", "0", "yolov8m.yaml", 16, 5, True, {"mig", "cpu_quota"}, 0),
    "apple_m2_mps": ("mps", "mps", "yolov8n.yaml", 16, 4, False, set(), 0),
}


def load(name: str) -> dict[str, Any]:
    facts: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return facts


def codes(report: dict[str, Any]) -> set[str]:
    return {w["code"] for w in report["warnings"]}


def message(report: dict[str, Any], code: str) -> str:
    return next(w["message"] for w in report["warnings"] if w["code"] == code)


def test_every_fixture_has_expectations() -> None:
    assert {p.stem for p in FIXTURES.glob("*.json")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recommendation_and_warnings(name: str) -> None:
    kind, device, model, batch, workers, amp, warning_codes, unusable = EXPECTED[name]
    report = build_report(load(name))
    rec = report["recommendation"]
    assert report["primary"]["kind"] == kind
    assert (rec["device"], rec["model"], rec["batch"], rec["workers"], rec["amp"]) == (
        device,
        model,
        batch,
        workers,
        amp,
    )
    assert codes(report) == warning_codes
    assert len(report["unusable_device_nodes"]) == unusable
    assert rec["reason"] and report["primary"]["label"]
    for warning in report["warnings"]:
        assert len(warning["message"]) > 40, warning
    json.dumps(report)  # JSON-ready as it is


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_build_report_is_pure(name: str) -> None:
    facts = load(name)
    before = copy.deepcopy(facts)
    first = build_report(facts)
    assert facts == before
    assert build_report(facts) == first


def test_labels() -> None:
    assert build_report(load("nvidia_h100_x8"))["primary"]["label"] == (
        "8 \u00d7 NVIDIA H100 80GB HBM3, 79 GiB each"
    )
    assert build_report(load("nvidia_rtx4070"))["primary"]["label"] == (
        "NVIDIA GeForce RTX 4070, 12 GiB"
    )
    assert build_report(load("cpu_openvino"))["primary"]["label"] == "CPU 8 cores"
    jetson = build_report(load("jetson_orin_nx"))
    assert jetson["primary"]["label"].startswith("NVIDIA Jetson Orin NX")
    assert jetson["devices"]["jetson"]["tegra_release"].startswith("R36")


def test_sections_pass_backends_through() -> None:
    report = build_report(load("nvidia_h100_x8"))
    assert len(report["devices"]["cuda"]) == 8
    assert report["devices"]["cuda"][0]["capability"] == "9.0"
    assert report["devices"]["cuda"][0]["driver"] == "550.90.07"
    assert report["devices"]["tensorrt"] == "10.3.0"
    assert report["torch"]["cudnn"] == "9.1.0"
    assert report["generated_at"] == "2024-11-21T14:40:00.250000Z"
    assert report["host"]["platform"]["machine"] == "x86_64"
    rocm = build_report(load("rocm_mi300x_x8"))
    assert rocm["torch"]["miopen"] == "3.2.0" and rocm["torch"]["cudnn"] is None
    assert rocm["devices"]["rocm"][0]["arch"].startswith("gfx942")


def test_cpu_only_build_names_the_nodes_and_the_fix() -> None:
    report = build_report(load("nvidia_nodes_cpu_torch"))
    text = message(report, "torch_cpu_only_build")
    assert "/dev/nvidia0" in text and "CPU-only" in text and "cu124" in text
    assert {n["path"] for n in report["unusable_device_nodes"]} == {
        "/dev/nvidia0",
        "/dev/nvidiactl",
        "/dev/nvidia-uvm",
    }


def test_driver_mismatch_names_both_versions() -> None:
    text = message(build_report(load("nvidia_driver_too_old")), "device_nodes_unusable")
    assert "mismatch" in text and "470.256.02" in text and "12.4" in text


def test_small_shm_and_quota_messages_are_actionable() -> None:
    report = build_report(load("small_shm_cpu_quota"))
    assert report["host"]["cpus_usable"] == 4
    assert "OMP_NUM_THREADS=4" in message(report, "cpu_quota")
    gpu = load("nvidia_rtx4070")
    gpu["host"]["shm"] = {"size_bytes": 64 << 20, "free_bytes": 64 << 20}
    small_shm = build_report(gpu)
    assert "--shm-size" in message(small_shm, "small_shm")
    assert "64 MiB" in message(small_shm, "small_shm")


def test_small_shm_limits_gpu_workers() -> None:
    facts = load("nvidia_rtx4070")
    facts["host"]["shm"] = {"size_bytes": 64 << 20, "free_bytes": 64 << 20}
    report = build_report(facts)
    assert report["recommendation"]["workers"] == 0
    assert codes(report) == {"small_shm"}
    facts["host"]["shm"] = {"size_bytes": 1 << 30, "free_bytes": 1 << 30}
    assert build_report(facts)["recommendation"]["workers"] == 4


def test_ascend_without_torch_npu() -> None:
    facts = load("ascend_910b")
    facts["npu"] = None
    report = build_report(facts)
    assert report["primary"]["kind"] == "cpu"
    assert report["recommendation"]["device"] == "cpu"
    assert "torch_npu is not installed" in message(report, "device_nodes_unusable")
    assert len(report["unusable_device_nodes"]) == 9


def test_ascend_with_torch_npu_but_no_device() -> None:
    facts = load("ascend_910b")
    facts["npu"] = []
    assert "CANN" in message(build_report(facts), "device_nodes_unusable")


def test_rocm_nodes_with_cpu_torch() -> None:
    facts = load("rocm_mi300x_x8")
    facts["rocm"] = []
    facts["torch"].update(hip=None, cudnn=None, version="2.5.1+cpu", device_count=0)
    report = build_report(facts)
    assert report["recommendation"]["device"] == "cpu"
    assert "rocm" in message(report, "torch_cpu_only_build")
    assert {n["family"] for n in report["unusable_device_nodes"]} == {"amd"}


def test_rocm_nodes_with_cuda_torch() -> None:
    facts = load("rocm_mi300x_x8")
    facts["rocm"] = []
    facts["torch"].update(hip=None, cuda="12.4", version="2.5.1+cu124")
    assert "not a ROCm build" in message(build_report(facts), "device_nodes_unusable")


def test_nvidia_nodes_without_driver_libraries() -> None:
    facts = load("nvidia_nodes_cpu_torch")
    facts["torch"].update(cuda="12.4", version="2.5.1+cu124")
    facts["nvml"], facts["nvml_error"] = None, "NVML Shared Library Not Found"
    assert "--gpus all" in message(build_report(facts), "device_nodes_unusable")


def test_cuda_visible_devices_hides_gpus() -> None:
    facts = load("nvidia_nodes_cpu_torch")
    facts["torch"].update(cuda="12.4", version="2.5.1+cu124")
    facts["env"] = {"CUDA_VISIBLE_DEVICES": ""}
    assert "CUDA_VISIBLE_DEVICES=''" in message(build_report(facts), "device_nodes_unusable")


def test_node_permissions() -> None:
    facts = load("rocm_mi300x_x8")
    facts["rocm"] = []
    for node in facts["host"]["device_nodes"]:
        node["accessible"] = False
    text = message(build_report(facts), "device_nodes_unusable")
    assert "/dev/kfd" in text and "render" in text


def test_jetson_without_cuda() -> None:
    facts = load("jetson_orin_nx")
    facts["cuda"] = []
    facts["torch"].update(cuda=None, version="2.3.0+cpu", cudnn=None)
    report = build_report(facts)
    assert report["recommendation"]["device"] == "cpu"
    assert "JetPack" in message(report, "torch_cpu_only_build")


def test_torch_missing() -> None:
    facts = load("cpu_openvino")
    facts["torch"] = None
    facts["errors"] = ["torch: ModuleNotFoundError: No module named 'torch'"]
    report = build_report(facts)
    assert {"torch_missing", "probe_error", "no_accelerator"} <= codes(report)
    assert "probe_python" in message(report, "torch_missing")
    assert report["torch"] is None


def test_unsupported_cuda_arch() -> None:
    facts = load("nvidia_rtx4070")
    facts["cuda"][0].update(
        name="NVIDIA GeForce RTX 5090", capability="12.0", memory_bytes=34190917632
    )
    report = build_report(facts)
    assert codes(report) == {"cuda_arch_unsupported"}
    assert "no kernel image" in message(report, "cuda_arch_unsupported")
    assert report["recommendation"]["model"] == "yolov8l.yaml"
    facts["torch"]["arch_list"] = [*facts["torch"]["arch_list"], "sm_120"]
    assert codes(build_report(facts)) == set()


def test_amp_off_where_ultralytics_turns_it_off() -> None:
    facts = load("nvidia_rtx4070")
    facts["cuda"][0].update(
        name="NVIDIA GeForce GTX 1660 SUPER", capability="7.5", memory_bytes=6442450944
    )
    rec = build_report(facts)["recommendation"]
    assert rec["amp"] is False and rec["model"] == "yolov8s.yaml"


def test_low_memory() -> None:
    facts = load("small_shm_cpu_quota")
    facts["host"]["memory_limit_bytes"] = facts["host"]["memory_effective_bytes"] = 3 << 30
    report = build_report(facts)
    assert "low_memory" in codes(report)
    assert report["recommendation"]["batch"] <= 4
    assert report["recommendation"]["workers"] == 0


def test_mixed_gpus_use_the_biggest_kind() -> None:
    facts = load("nvidia_rtx4070")
    small = dict(facts["cuda"][0], index=1, name="NVIDIA GeForce GT 1030", memory_bytes=2 << 30)
    facts["cuda"] = [small | {"index": 0}, dict(facts["cuda"][0], index=1)]
    report = build_report(facts)
    assert report["recommendation"]["device"] == "1"
    assert report["primary"]["count"] == 1


def test_probe_errors_become_warnings() -> None:
    facts = load("nvidia_rtx4070")
    facts["errors"] = ["openvino: RuntimeError: plugin failed"]
    report = build_report(facts)
    assert "plugin failed" in message(report, "probe_error")
    assert report["probe"]["errors"] == facts["errors"]


def test_minimal_facts_do_not_crash() -> None:
    report = build_report({})
    assert report["primary"]["kind"] == "cpu"
    assert report["recommendation"]["device"] == "cpu"
    assert report["generated_at"] is None


def test_wsl_dxg() -> None:
    facts = load("nvidia_nodes_cpu_torch")
    facts["host"]["device_nodes"] = [{"path": "/dev/dxg", "accessible": True}]
    facts["torch"].update(cuda="12.4", version="2.5.1+cu124")
    assert "WSL" in message(build_report(facts), "device_nodes_unusable")
    facts["nvml"] = None  # an AMD or Intel GPU under WSL: DirectML, not CUDA
    assert codes(build_report(facts)) == {"no_accelerator"}
