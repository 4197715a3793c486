"""Live usage readings: CPU deltas from cgroup files and /proc/stat, memory, amdgpu sysfs."""

from __future__ import annotations

import os
import time
from pathlib import Path

from jupyter_yolo.accelerators.usage import FIRST_SAMPLE_S, UsageReader, read_usage

GIB = 1 << 30


def write(root: Path, path: str, text: str) -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


def cgroup_v2(root: Path, usage_usec: int) -> None:
    write(root, "/proc/self/cgroup", "0::/\n")
    write(root, "/sys/fs/cgroup/cgroup.controllers", "cpu memory\n")
    write(root, "/sys/fs/cgroup/cpu.max", "200000 100000\n")
    write(root, "/sys/fs/cgroup/cpu.stat", f"usage_usec {usage_usec}\nuser_usec 1\nsystem_usec 1\n")
    write(root, "/sys/fs/cgroup/memory.max", f"{4 * GIB}\n")
    write(root, "/sys/fs/cgroup/memory.current", f"{GIB + 100}\n")
    write(root, "/sys/fs/cgroup/memory.stat", "anon 5\ninactive_file 100\n")


class FakeClock:
    """A monotonic clock that moves only when told to (and when a reader sleeps on it)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_cgroup_cpu_delta_against_the_quota(tmp_path: Path) -> None:
    cgroup_v2(tmp_path, 1_000_000)
    clock = FakeClock()
    reader = UsageReader(tmp_path, clock=clock, sleep=clock.sleep)
    reader.prime()
    clock.now += 0.5
    # one CPU-second per wall second: half of the two CPUs the quota allows
    write(tmp_path, "/sys/fs/cgroup/cpu.stat", "usage_usec 1500000\n")
    reading = reader.read()
    assert reading["cpu"]["source"] == "cgroup"
    assert reading["cpu"]["cpus"] == 2
    assert reading["cpu"]["percent"] == 50.0
    assert reading["memory"] == {
        "used_bytes": GIB,
        "limit_bytes": 4 * GIB,
        "percent": 25.0,
        "source": "cgroup",
    }
    clock.now += 2.0  # the next reading measures from the previous one: 4 CPU-seconds in 2 s
    write(tmp_path, "/sys/fs/cgroup/cpu.stat", "usage_usec 5500000\n")
    assert reader.read()["cpu"]["percent"] == 100.0
    clock.now += 1.0  # more than the quota (a stale or shared counter) is capped at 100 %
    write(tmp_path, "/sys/fs/cgroup/cpu.stat", "usage_usec 9500000\n")
    assert reader.read()["cpu"]["percent"] == 100.0
    assert clock.slept == []  # primed: no reading waits


def test_proc_stat_fallback(tmp_path: Path) -> None:
    write(tmp_path, "/proc/stat", "cpu  100 0 100 800 0 0 0 0 0 0\n")
    write(tmp_path, "/proc/meminfo", "MemTotal: 1000 kB\nMemAvailable: 250 kB\n")
    reader = UsageReader(tmp_path)
    reader.prime()
    write(tmp_path, "/proc/stat", "cpu  400 0 100 1100 0 0 0 0 0 0\n")  # 300 busy of 600 ticks
    reading = reader.read()
    assert reading["cpu"] == {
        "percent": 50.0,
        "cpus": 1,
        "source": "proc",
        "load_average": reading["cpu"]["load_average"],
    }
    assert reading["memory"] == {
        "used_bytes": 750 * 1024,
        "limit_bytes": 1000 * 1024,
        "percent": 75.0,
        "source": "host",
    }
    assert reading["gpus"] == []


def test_first_reading_without_prime_still_measures(tmp_path: Path) -> None:
    cgroup_v2(tmp_path, 1_000_000)
    clock = FakeClock()
    reader = UsageReader(tmp_path, clock=clock, sleep=clock.sleep)
    reading = reader.read()
    assert clock.slept == [FIRST_SAMPLE_S]  # one short wait for a first sample, then a delta
    assert reading["cpu"]["percent"] == 0.0  # nothing moved during it
    clock.now += 1.0
    write(tmp_path, "/sys/fs/cgroup/cpu.stat", "usage_usec 1500000\n")
    assert reader.read()["cpu"]["percent"] == 25.0
    assert clock.slept == [FIRST_SAMPLE_S]

    write(tmp_path / "proc", "/proc/stat", "cpu  100 0 100 800 0 0 0 0 0 0\n")
    assert UsageReader(tmp_path / "proc").read()["cpu"]["percent"] == 0.0


def test_amdgpu_sysfs(tmp_path: Path) -> None:
    device = "/sys/class/drm/card1/device"
    write(tmp_path, f"{device}/vendor", "0x1002\n")
    write(tmp_path, f"{device}/gpu_busy_percent", "37\n")
    write(tmp_path, f"{device}/mem_info_vram_used", f"{GIB}\n")
    write(tmp_path, f"{device}/mem_info_vram_total", f"{16 * GIB}\n")
    write(tmp_path, f"{device}/hwmon/hwmon3/temp1_input", "51000\n")
    write(tmp_path, f"{device}/hwmon/hwmon3/power1_average", "120000000\n")
    write(tmp_path, "/sys/class/drm/card0/device/vendor", "0x8086\n")  # an Intel iGPU: skipped
    gpus = UsageReader(tmp_path).sysfs_gpus()
    assert gpus == [
        {
            "index": 0,
            "backend": "amdgpu",
            "name": "card1",
            "utilization_percent": 37.0,
            "memory_used_bytes": GIB,
            "memory_total_bytes": 16 * GIB,
            "temperature_c": 51.0,
            "power_w": 120.0,
            "power_limit_w": None,
        }
    ]


def test_jetson_gpu_load(tmp_path: Path) -> None:
    write(tmp_path, "/sys/devices/platform/gpu.0/load", "625\n")
    gpus = UsageReader(tmp_path).sysfs_gpus()
    assert [(g["backend"], g["utilization_percent"]) for g in gpus] == [("jetson", 62.5)]


def test_this_host_is_cheap_and_sane() -> None:
    clock = FakeClock()
    reader = UsageReader(sleep=clock.sleep)
    reader.read()
    # CPU time of this thread, not wall time: what a reading costs, whatever else runs here
    started = time.thread_time()
    reading = reader.read()
    spent = time.thread_time() - started
    assert clock.slept == [FIRST_SAMPLE_S], "only the very first reading waits"
    assert spent < 0.05, spent
    assert 0.0 <= reading["cpu"]["percent"] <= 100.0
    assert reading["cpu"]["cpus"] <= len(os.sched_getaffinity(0))
    assert 0 < reading["memory"]["used_bytes"] <= reading["memory"]["limit_bytes"]
    assert isinstance(reading["gpus"], list)
    assert 0 <= read_usage()["cpu"]["percent"] <= 100.0


def test_busy_process_shows_up() -> None:
    """This process's own CPU time is in the reading, however busy the machine is otherwise."""
    walls: list[float] = []

    def clock() -> float:
        walls.append(time.monotonic())
        return walls[-1]

    reader = UsageReader(clock=clock)
    reader.prime()
    before = time.process_time()
    while time.process_time() - before < 0.3:
        pass
    spent = time.process_time() - before
    reading = reader.read()
    cpu = reading["cpu"]
    assert 0.0 < cpu["percent"] <= 100.0
    if cpu["source"] == "cgroup" and cpu["percent"] < 100.0:
        # the cgroup counts this process and maybe others: at least what this process used;
        # the percent is rounded to 0.1
        wall = walls[-1] - walls[0]
        counted = (cpu["percent"] + 0.05) / 100.0 * cpu["cpus"] * wall
        assert counted >= spent, (cpu, wall, spent)
