"""Host readers against fake /proc, /sys/fs/cgroup and /dev trees, and against this very host."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

from jupyter_yolo.accelerators import host

GIB = 1 << 30


def write(root: Path, path: str, text: str = "") -> Path:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    return target


MEMINFO = "MemTotal:       16318412 kB\nMemFree:         1234567 kB\nMemAvailable:   12000000 kB\n"
CPUINFO = (
    "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Fake CPU @ 3.00GHz\n\n"
    "processor\t: 1\nmodel name\t: Fake CPU @ 3.00GHz\n"
)


@pytest.fixture
def v2(tmp_path: Path) -> Path:
    """A cgroup v2 container: --cpus=2.5 --memory=4g, inside a parent with its own limits."""
    write(tmp_path, "/proc/self/cgroup", "0::/docker/abc\n")
    write(tmp_path, "/proc/meminfo", MEMINFO)
    write(tmp_path, "/proc/cpuinfo", CPUINFO)
    write(tmp_path, "/sys/fs/cgroup/cgroup.controllers", "cpuset cpu io memory pids\n")
    write(tmp_path, "/sys/fs/cgroup/docker/cpu.max", "max 100000\n")
    write(tmp_path, "/sys/fs/cgroup/docker/memory.max", "max\n")
    write(tmp_path, "/sys/fs/cgroup/docker/abc/cpu.max", "250000 100000\n")
    write(tmp_path, "/sys/fs/cgroup/docker/abc/memory.max", f"{4 * GIB}\n")
    (tmp_path / "dev/shm").mkdir(parents=True)
    return tmp_path


def test_v2_quota_and_memory(v2: Path) -> None:
    assert host.cgroup_version(v2) == 2
    assert host.cgroup_cpu_quota(v2) == 2.5
    assert host.cgroup_memory_limit(v2) == 4 * GIB
    facts = host.read_host(v2, cpu_count=16, affinity=8)
    assert facts["cpus_usable"] == 3  # ceil(2.5), below the 8 CPUs of the affinity mask
    assert facts["cpu_count"] == 16 and facts["affinity_cpus"] == 8
    assert facts["memory_total_bytes"] == 16318412 * 1024
    assert facts["memory_available_bytes"] == 12000000 * 1024
    assert facts["memory_limit_bytes"] == 4 * GIB
    assert facts["memory_effective_bytes"] == 4 * GIB
    assert facts["cpu_model"] == "Fake CPU @ 3.00GHz"
    assert facts["cgroup_version"] == 2


def test_v2_parent_limit_is_the_tighter_one(v2: Path) -> None:
    write(v2, "/sys/fs/cgroup/docker/cpu.max", "100000 100000\n")
    write(v2, "/sys/fs/cgroup/docker/memory.max", f"{GIB}\n")
    assert host.cgroup_cpu_quota(v2) == 1.0
    assert host.cgroup_memory_limit(v2) == GIB


def test_v2_with_cgroup_namespace(tmp_path: Path) -> None:
    """Inside a cgroup namespace the process sits at "/" and the limits are at the mount root."""
    write(tmp_path, "/proc/self/cgroup", "0::/\n")
    write(tmp_path, "/sys/fs/cgroup/cgroup.controllers", "cpu memory\n")
    write(tmp_path, "/sys/fs/cgroup/cpu.max", "50000 100000\n")
    write(tmp_path, "/sys/fs/cgroup/memory.max", "max\n")
    assert host.cgroup_cpu_quota(tmp_path) == 0.5
    assert host.cgroup_memory_limit(tmp_path) is None
    assert host.read_host(tmp_path, cpu_count=4, affinity=4)["cpus_usable"] == 1


def test_v2_own_folder_hidden(tmp_path: Path) -> None:
    """Docker without a cgroup namespace: /proc/self/cgroup names a path the mount does not show."""
    write(tmp_path, "/proc/self/cgroup", "0::/system.slice/docker-123.scope\n")
    write(tmp_path, "/sys/fs/cgroup/cgroup.controllers", "cpu memory\n")
    write(tmp_path, "/sys/fs/cgroup/cpu.max", "200000 100000\n")
    assert host.cgroup_cpu_quota(tmp_path) == 2.0


def test_v1_quota_and_memory(tmp_path: Path) -> None:
    write(
        tmp_path,
        "/proc/self/cgroup",
        "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n1:name=systemd:/docker/abc\n",
    )
    write(tmp_path, "/sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "150000\n")
    write(tmp_path, "/sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n")
    write(tmp_path, "/sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes", f"{2 * GIB}\n")
    write(tmp_path, "/sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n")
    assert host.cgroup_version(tmp_path) == 1
    assert host.cgroup_cpu_quota(tmp_path) == 1.5
    assert host.cgroup_memory_limit(tmp_path) == 2 * GIB
    assert host.read_host(tmp_path, cpu_count=8, affinity=8)["cpus_usable"] == 2


def test_v1_unlimited(tmp_path: Path) -> None:
    write(tmp_path, "/proc/self/cgroup", "4:cpu,cpuacct:/\n12:memory:/\n")
    write(tmp_path, "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "-1\n")
    write(tmp_path, "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n")
    write(tmp_path, "/sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n")
    assert host.cgroup_cpu_quota(tmp_path) is None
    assert host.cgroup_memory_limit(tmp_path) is None


def test_no_proc_no_cgroup(tmp_path: Path) -> None:
    """macOS and odd sandboxes: every reader says "unknown" instead of failing."""
    facts = host.read_host(tmp_path, cpu_count=10, affinity=None)
    assert facts["cgroup_version"] is None
    assert facts["cpu_quota"] is None
    assert facts["cpus_usable"] == 10
    assert facts["memory_total_bytes"] is None and facts["memory_effective_bytes"] is None
    assert facts["shm"] is None
    assert facts["device_nodes"] == []
    assert facts["cpu_model"] is None


def test_device_nodes(tmp_path: Path) -> None:
    for name in (
        "nvidia10",
        "nvidia1",
        "nvidia0",
        "nvidiactl",
        "nvidia-uvm",
        "nvidia-caps",
        "kfd",
        "dri/renderD128",
        "dri/card0",
        "davinci0",
        "davinci_manager",
        "nvhost-gpu",
        "nvmap",
        "tty0",
        "null",
    ):
        write(tmp_path, f"/dev/{name}")
    write(tmp_path, "/etc/nv_tegra_release", "# R36 (release), REVISION: 3.0, GCID: 1\n")
    paths = [n["path"] for n in host.device_nodes(tmp_path)]
    assert paths == [
        "/dev/davinci0",
        "/dev/davinci_manager",
        "/dev/dri/renderD128",
        "/dev/kfd",
        "/dev/nvhost-gpu",
        "/dev/nvidia0",
        "/dev/nvidia1",
        "/dev/nvidia10",
        "/dev/nvidia-uvm",
        "/dev/nvidiactl",
        "/dev/nvmap",
    ]
    assert all(n["accessible"] for n in host.device_nodes(tmp_path))
    assert host.tegra_release(tmp_path) == "R36 (release), REVISION: 3.0, GCID: 1"


def test_arm_board_model(tmp_path: Path) -> None:
    write(tmp_path, "/proc/cpuinfo", "processor\t: 0\nBogoMIPS\t: 62.50\nCPU part\t: 0xd42\n")
    write(tmp_path, "/proc/device-tree/model", "NVIDIA Jetson Orin NX Developer Kit\x00")
    assert host.cpu_model(tmp_path) == "NVIDIA Jetson Orin NX Developer Kit"
    assert host.board_model(tmp_path) == "NVIDIA Jetson Orin NX Developer Kit"


def test_shm_of_a_fake_tree(v2: Path) -> None:
    shm = host.shm_facts(v2)
    assert shm is not None and shm["size_bytes"] > 0 and 0 <= shm["free_bytes"] <= shm["size_bytes"]


@pytest.mark.parametrize(
    ("affinity", "count", "quota", "usable"),
    [
        (8, 16, None, 8),
        (8, 16, 2.5, 3),
        (8, 16, 0.2, 1),
        (None, 4, None, 4),
        (None, None, None, 1),
        (2, 2, 64.0, 2),
        (None, None, 2.0, 2),
    ],
)
def test_usable_cpus(
    affinity: int | None, count: int | None, quota: float | None, usable: int
) -> None:
    assert host.usable_cpus(affinity, count, quota) == usable


# --- this host ------------------------------------------------------------------------------


def _real_cgroup_values() -> tuple[float | None, int | None]:
    """An independent reading of this host's CPU quota and memory limit."""
    lines = Path("/proc/self/cgroup").read_text().splitlines()
    base = Path("/sys/fs/cgroup")
    quotas: list[float] = []
    limits: list[int] = []

    def chain(mount: Path, relative: str) -> list[Path]:
        parts = [p for p in relative.split("/") if p]
        return [
            mount.joinpath(*parts[:i])
            for i in range(len(parts), -1, -1)
            if mount.joinpath(*parts[:i]).is_dir()
        ]

    if (base / "cgroup.controllers").exists():
        relative = next(line.split(":", 2)[2] for line in lines if line.startswith("0::"))
        for folder in chain(base, relative):
            if (folder / "cpu.max").exists():
                quota, period = (folder / "cpu.max").read_text().split()
                if quota != "max":
                    quotas.append(int(quota) / int(period))
            if (folder / "memory.max").exists():
                value = (folder / "memory.max").read_text().strip()
                if value != "max" and int(value) < 1 << 60:
                    limits.append(int(value))
    else:
        paths = {c: line.split(":", 2)[2] for line in lines for c in line.split(":")[1].split(",")}
        for mount in base.iterdir():
            if "cpu" in mount.name.split(","):
                for folder in chain(mount, paths.get("cpu", "/")):
                    q = folder / "cpu.cfs_quota_us"
                    if q.exists() and int(q.read_text()) > 0:
                        quotas.append(
                            int(q.read_text()) / int((folder / "cpu.cfs_period_us").read_text())
                        )
            if mount.name == "memory":
                for folder in chain(mount, paths.get("memory", "/")):
                    m = folder / "memory.limit_in_bytes"
                    if m.exists() and int(m.read_text()) < 1 << 60:
                        limits.append(int(m.read_text()))
    return (min(quotas) if quotas else None), (min(limits) if limits else None)


def test_this_host_matches_the_os() -> None:
    facts = host.read_host()
    affinity = len(os.sched_getaffinity(0))
    quota, limit = _real_cgroup_values()
    assert facts["cpu_count"] == os.cpu_count()
    assert facts["affinity_cpus"] == affinity
    assert facts["cpu_quota"] == quota
    expected_usable = min(affinity, math.ceil(quota)) if quota else affinity
    assert facts["cpus_usable"] == max(1, expected_usable)
    assert facts["memory_limit_bytes"] == limit
    meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    total = int(meminfo["MemTotal"].split()[0]) * 1024
    assert facts["memory_total_bytes"] == total
    assert facts["memory_effective_bytes"] == min(total, limit or total)


def test_this_host_cpu_model_and_shm() -> None:
    facts = host.read_host()
    names = [
        line.split(":", 1)[1].strip()
        for line in Path("/proc/cpuinfo").read_text().splitlines()
        if line.startswith("model name")
    ]
    if names:
        assert facts["cpu_model"] == names[0]
    if Path("/dev/shm").is_dir():
        stat = os.statvfs("/dev/shm")
        assert facts["shm"]["size_bytes"] == stat.f_blocks * stat.f_frsize
    else:
        assert facts["shm"] is None


def test_this_host_device_nodes() -> None:
    dev = Path("/dev")
    expected = {p for pattern in host.DEVICE_NODE_PATTERNS for p in dev.glob(pattern)}
    assert {n["path"] for n in host.read_host()["device_nodes"]} == {str(p) for p in expected}
