"""REST latency while ``GET /yolo/models`` hashes large weights files: the event loop never blocks.

One real jupyter server with the extension on a workspace whose ``weights/`` holds ``files``
random ``.pt`` files of ``file_mb`` MB each (20 x 40 MB), and whose ``weights/.exports`` exists
(as after a first predict job), so ``/yolo/models`` needs every file's digest:

* ``eventloop.rest_*``: a client sends authenticated GETs every ``interval_ms`` (20 ms), cycling
  over ``/yolo/jobs`` and ``/yolo/accelerators/usage`` on a keep-alive connection; latency
  p50/p99 while nothing else runs (``idle``), while a cold ``/yolo/models`` hashes every file
  (``cold``: the files are touched before each round, so each is hashed again) and while warm
  calls answer from the digest cache back to back (``warm``). ``rest_p99_ms`` counts every
  request sent while a ``/yolo/models`` call was in flight (cold and warm); a request that
  spans a change of phase counts for both.
* ``eventloop.models_*``: the duration of the cold calls (hashing ``files x file_mb`` MB, from
  the page cache: the files were just written), of the warm ones, and of the first call after
  a server restart (digests from the persistent cache, nothing hashed).

After each cold round the digest cache file must show every file hashed during that round, and
after the restart none hashed again; otherwise the section fails (it would not measure what it
says).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jupyter_yolo.inference.cache import DIGEST_CACHE_FILE, exports_root

from .common import Log, Rest, median, percentile, rounded, start_server

PATHS = ("/yolo/jobs", "/yolo/accelerators/usage")
PAST_NS = 1_600_000_000 * 10**9  # mtimes well outside the digest cache's "racy" window
CHUNK = 4 * 1024 * 1024


@dataclass(frozen=True)
class EventLoopConfig:
    """The weights files, the request pace and how long each phase lasts."""

    cold_rounds: int
    warm_s: float
    idle_s: float
    files: int = 20
    file_mb: int = 40
    interval_ms: float = 20.0

    @classmethod
    def for_mode(cls, quick: bool) -> EventLoopConfig:
        """Quick: 3 cold rounds, 5 s warm, 3 s idle; full: 8 cold rounds, 20 s warm, 10 s idle."""
        if quick:
            return cls(cold_rounds=3, warm_s=5.0, idle_s=3.0)
        return cls(cold_rounds=8, warm_s=20.0, idle_s=10.0)


class PhasedSampler(threading.Thread):
    """Sends paced GETs and notes each latency with the phases at its start and at its end."""

    def __init__(self, rest: Rest, interval_s: float) -> None:
        super().__init__(name="bench-eventloop-sampler", daemon=True)
        self.rest = rest
        self.interval_s = interval_s
        self.phase = "idle"  # set by the thread that drives /yolo/models
        self.samples: list[tuple[str, str, float]] = []
        self.errors = 0
        self.done = threading.Event()

    def run(self) -> None:
        """Sample until :attr:`done` is set."""
        i = 0
        next_at = time.monotonic()
        while not self.done.is_set():
            start_phase = self.phase
            try:
                latency = self.rest.timed_get(PATHS[i % len(PATHS)])
            except Exception:
                self.errors += 1
            else:
                self.samples.append((start_phase, self.phase, latency))
            i += 1
            next_at += self.interval_s
            time.sleep(max(0.0, next_at - time.monotonic()))
            next_at = max(next_at, time.monotonic() - self.interval_s)  # no catch-up bursts

    def latencies(self, *phases: str) -> list[float]:
        """Latencies in ms of the requests that started or ended in one of ``phases``."""
        return [1000 * s for a, b, s in self.samples if a in phases or b in phases]


def write_weights(folder: Path, cfg: EventLoopConfig) -> list[Path]:
    """``cfg.files`` random weights files of ``cfg.file_mb`` MB each."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(cfg.files):
        path = folder / f"bench-{i:02d}.pt"
        with path.open("wb") as handle:
            left = cfg.file_mb * 1024 * 1024
            while left > 0:
                handle.write(os.urandom(min(CHUNK, left)))
                left -= CHUNK
        paths.append(path)
    return paths


def touch(paths: list[Path], mtime_ns: int) -> None:
    """Give every file a new mtime (and so a new identity: each is hashed again)."""
    for path in paths:
        os.utime(path, ns=(mtime_ns, mtime_ns))


def hashed_at(cache_file: Path) -> dict[str, float]:
    """When each file of the digest cache was hashed."""
    entries = json.loads(cache_file.read_text())["entries"]
    return {entry["path"]: entry["hashed_at"] for entry in entries}


def timed_models(rest: Rest, files: int) -> float:
    """Seconds one ``GET /yolo/models`` takes; checks that it lists every weights file."""
    started = time.perf_counter()
    answer = rest.get("/yolo/models")
    took = time.perf_counter() - started
    if len(answer["weights"]) != files:
        raise RuntimeError(f"/yolo/models listed {len(answer['weights'])} of {files} files")
    return took


def _stats(values: list[float]) -> dict[str, float | None]:
    return {
        "p50": rounded(percentile(values, 50), 2),
        "p99": rounded(percentile(values, 99), 2),
        "max": rounded(max(values), 2) if values else None,
    }


def run(
    *, quick: bool, workdir: Path, log: Log, config: EventLoopConfig | None = None
) -> dict[str, Any]:
    """Measure REST latency around ``/yolo/models``; return ``{"eventloop": {...}}``."""
    cfg = config or EventLoopConfig.for_mode(quick)
    root = workdir / "eventloop"
    workspace = root / "workspace"
    log(f"eventloop: writing {cfg.files} weights files of {cfg.file_mb} MB")
    weights = write_weights(workspace / "weights", cfg)
    touch(weights, PAST_NS)
    exports_root(workspace).mkdir(parents=True, exist_ok=True)
    cache_file = exports_root(workspace) / DIGEST_CACHE_FILE
    real = [os.path.abspath(p) for p in weights]

    cold: list[float] = []
    warm: list[float] = []
    server = start_server(root, workspace, {})
    sampler = PhasedSampler(Rest(server.url, server.token), cfg.interval_ms / 1000)
    control = Rest(server.url, server.token)
    try:
        sampler.start()
        log(f"eventloop: {cfg.idle_s:.0f} s idle, REST every {cfg.interval_ms:.0f} ms")
        time.sleep(cfg.idle_s)
        for round_no in range(cfg.cold_rounds):
            touch(weights, PAST_NS + (round_no + 1) * 10**9)
            started = time.time()
            sampler.phase = "cold"
            cold.append(timed_models(control, cfg.files))
            sampler.phase = "between"
            stamps = hashed_at(cache_file)
            if not all(stamps.get(p, 0.0) >= started for p in real):
                raise RuntimeError("a cold /yolo/models call did not hash every weights file")
            log(f"eventloop: cold /yolo/models {round_no + 1}/{cfg.cold_rounds}: {cold[-1]:.2f} s")
            time.sleep(0.5)
        sampler.phase = "warm"
        end = time.monotonic() + cfg.warm_s
        while time.monotonic() < end:
            warm.append(timed_models(control, cfg.files))
        sampler.phase = "after"
        log(
            f"eventloop: {len(warm)} warm /yolo/models calls, median "
            f"{1000 * median(warm):.1f} ms; restarting the server"
        )
        sampler.done.set()
        sampler.join(timeout=30)
        control.close()
        before = hashed_at(cache_file)
        server.stop()
        server = start_server(root, workspace, {})
        control = Rest(server.url, server.token)
        after_restart = timed_models(control, cfg.files)
        if hashed_at(cache_file) != before:
            raise RuntimeError("the restarted server hashed files its digest cache holds")
    finally:
        sampler.done.set()
        sampler.rest.close()
        control.close()
        server.stop()

    busy = sampler.latencies("cold", "warm")
    phases = {name: sampler.latencies(name) for name in ("idle", "cold", "warm")}
    total_mb = cfg.files * cfg.file_mb
    figures: dict[str, Any] = {
        "rest_p50_ms": _stats(busy)["p50"],
        "rest_p99_ms": _stats(busy)["p99"],
        "rest_max_ms": _stats(busy)["max"],
    }
    for name, values in phases.items():
        stats = _stats(values)
        figures[f"rest_p50_ms_{name}"] = stats["p50"]
        figures[f"rest_p99_ms_{name}"] = stats["p99"]
        figures[f"rest_max_ms_{name}"] = stats["max"]
    figures.update(
        {
            "requests": {name: len(values) for name, values in phases.items()},
            "errors": sampler.errors,
            "models_cold_s": rounded(median(cold), 3),
            "models_cold_each_s": [rounded(v, 3) for v in cold],
            "models_warm_median_ms": rounded(1000 * median(warm), 2),
            "models_warm_p99_ms": rounded(1000 * percentile(warm, 99), 2),
            "models_warm_calls": len(warm),
            "models_after_restart_ms": rounded(1000 * after_restart, 2),
            "hash_mb_per_s": rounded(total_mb / median(cold), 1),
            "settings": {
                "files": cfg.files,
                "file_mb": cfg.file_mb,
                "interval_ms": cfg.interval_ms,
                "cold_rounds": cfg.cold_rounds,
                "warm_s": cfg.warm_s,
                "idle_s": cfg.idle_s,
                "paths": list(PATHS),
            },
        }
    )
    return {"eventloop": figures}


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.eventloop [--quick]``: this section alone, JSON on stdout."""
    import argparse
    import tempfile

    from .common import stderr_log

    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-eventloop-") as tmp:
        result = run(quick=args.quick, workdir=Path(tmp), log=stderr_log)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
