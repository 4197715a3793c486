"""Upload a large dataset archive to a real ``jupyter server`` and measure the server's memory.

Builds a YOLO archive of about ``--size-mb`` MB (unique noise JPEGs with labels, stored without
compression), starts ``jupyter server`` with the extension on a temporary workspace, streams the
archive to ``POST /yolo/datasets?name=big`` and meanwhile samples the server's resident memory
(``/proc/<pid>/status``) and polls ``GET /yolo/datasets/uploads`` for progress. Prints JSON:
RSS before / peak / after, send and end-to-end throughput, and the time seen in each stage.

    python -m bench.upload [--size-mb 500] [--keep]
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from tests.server_process import ServerProcess

IMAGE_SIDE = 1024


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def build_archive(path: Path, size_mb: int, seed: int = 0) -> dict[str, Any]:
    """Write a YOLO zip of about ``size_mb`` MB; return its file and image counts."""
    rng = np.random.default_rng(seed)
    target = size_mb * 1024 * 1024
    written = 0
    images = 0
    base = rng.integers(0, 256, size=(IMAGE_SIDE, IMAGE_SIDE, 3), dtype=np.uint8)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(
            "big/data.yaml", "train: images/train\nval: images/val\nnames: {0: noise, 1: blob}\n"
        )
        while written < target:
            # a fresh noise tile per image keeps every image unique (no duplicate warnings)
            tile = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
            pixels = base.copy()
            y, x = divmod(images % 256, 16)
            pixels[y * 4 : (y * 4) + 64, x * 64 : (x * 64) + 64] = tile
            pixels[:8, :8] = images % 256
            pixels[8:16, :8] = images // 256
            buffer = io.BytesIO()
            Image.fromarray(pixels).save(buffer, format="JPEG", quality=95)
            split = "val" if images % 5 == 0 else "train"
            name = f"img_{images:06d}"
            archive.writestr(f"big/images/{split}/{name}.jpg", buffer.getvalue())
            boxes = "".join(
                f"{int(rng.integers(0, 2))} {rng.uniform(0.2, 0.8):.6f} {rng.uniform(0.2, 0.8):.6f}"
                f" {rng.uniform(0.05, 0.3):.6f} {rng.uniform(0.05, 0.3):.6f}\n"
                for _ in range(int(rng.integers(1, 6)))
            )
            archive.writestr(f"big/labels/{split}/{name}.txt", boxes)
            written += len(buffer.getvalue()) + len(boxes)
            images += 1
    return {"images": images, "archive_bytes": path.stat().st_size}


class Sampler(threading.Thread):
    """Samples the server's RSS every ``interval`` seconds."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.peak = 0.0
        self.stop_flag = threading.Event()

    def run(self) -> None:
        while not self.stop_flag.is_set():
            self.peak = max(self.peak, _rss_mb(self.pid))
            time.sleep(self.interval)


class ProgressPoller(threading.Thread):
    """Polls ``GET /yolo/datasets/uploads`` and records the stages and bytes it sees."""

    def __init__(self, server: ServerProcess, interval: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.interval = interval
        self.samples: list[dict[str, Any]] = []
        self.latencies: list[float] = []
        self.stop_flag = threading.Event()

    def run(self) -> None:
        while not self.stop_flag.is_set():
            asked = time.monotonic()
            try:
                listing = self.server.request("GET", "/yolo/datasets/uploads")
            except OSError:
                listing = {"uploads": []}
            self.latencies.append(time.monotonic() - asked)
            for upload in listing["uploads"]:
                self.samples.append({"t": time.monotonic(), **upload})
            time.sleep(self.interval)


def upload(server: ServerProcess, archive: Path) -> tuple[dict[str, Any], float, float]:
    """Stream the archive; return (answer, seconds to send, seconds to the answer)."""
    size = archive.stat().st_size
    connection = http.client.HTTPConnection(
        "127.0.0.1", server.port, timeout=3600, blocksize=1024 * 1024
    )
    started = time.monotonic()
    with archive.open("rb") as body:
        connection.request(
            "POST",
            "/yolo/datasets?name=big&filename=big.zip",
            body=body,
            headers={
                "Content-Type": "application/zip",
                "Content-Length": str(size),
                "Authorization": f"token {server.token}",
            },
        )
    sent = time.monotonic() - started
    response = connection.getresponse()
    payload = response.read()
    total = time.monotonic() - started
    if response.status != 201:
        raise RuntimeError(f"upload failed: {response.status} {payload[:500]!r}")
    return json.loads(payload), sent, total


def measure(size_mb: int, keep: bool = False) -> dict[str, Any]:
    """Build the archive, start a server, upload, and return the figures."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-upload-"))
    try:
        archive = tmp / "big.zip"
        built_at = time.monotonic()
        info = build_archive(archive, size_mb)
        build_s = time.monotonic() - built_at
        root = tmp / "root"
        root.mkdir()
        server = ServerProcess(
            root, tmp / "workspace", extra_args=("--YoloApp.builtin_dataset=False",)
        )
        server.start()
        try:
            assert server.proc is not None
            pid = server.proc.pid
            server.request("GET", "/yolo/datasets")  # the store's first-request work is done
            time.sleep(0.5)
            before = _rss_mb(pid)
            sampler = Sampler(pid)
            poller = ProgressPoller(server)
            sampler.start()
            poller.start()
            dataset, sent_s, total_s = upload(server, archive)
            poller.stop_flag.set()
            sampler.stop_flag.set()
            sampler.join()
            poller.join()
            time.sleep(1.0)
            after = _rss_mb(pid)
            leftovers = sorted(p.name for p in (tmp / "workspace" / ".tmp").iterdir())
        finally:
            server.stop()
        stages: dict[str, float] = {}
        for earlier, later in zip(poller.samples, poller.samples[1:], strict=False):
            stages[earlier["stage"]] = stages.get(earlier["stage"], 0.0) + (
                later["t"] - earlier["t"]
            )
        receiving = [s for s in poller.samples if s["stage"] == "receiving"]
        size = info["archive_bytes"]
        return {
            "archive_mb": round(size / 2**20, 1),
            "images": info["images"],
            "build_archive_s": round(build_s, 1),
            "server_rss_mb": {
                "before": round(before, 1),
                "peak": round(sampler.peak, 1),
                "after": round(after, 1),
                "peak_growth": round(sampler.peak - before, 1),
                "after_growth": round(after - before, 1),
            },
            "send_s": round(sent_s, 2),
            "total_s": round(total_s, 2),
            "upload_mb_per_s": round(size / 2**20 / sent_s, 1),
            "end_to_end_mb_per_s": round(size / 2**20 / total_s, 1),
            "progress": {
                "samples": len(poller.samples),
                "receiving_samples": len(receiving),
                "bytes_total_reported": receiving[0]["bytes_total"] if receiving else None,
                "max_bytes_received_seen": max(
                    (s["bytes_received"] for s in receiving), default=None
                ),
                "stages_seen_s": {k: round(v, 2) for k, v in stages.items()},
                "poll_latency_ms": {
                    "median": round(1000 * sorted(poller.latencies)[len(poller.latencies) // 2], 1),
                    "max": round(1000 * max(poller.latencies), 1),
                },
            },
            "dataset": {
                k: dataset[k]
                for k in ("status", "images", "instances", "errors", "warnings", "size")
            },
            "check_seconds": dataset["report"]["check_seconds"],
            "scratch_left_after": leftovers,
        }
    finally:
        if keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.upload", description=__doc__)
    parser.add_argument("--size-mb", type=int, default=500, help="archive size (default 500)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    print(json.dumps(measure(args.size_mb, args.keep), indent=2))


if __name__ == "__main__":
    main()
