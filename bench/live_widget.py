"""How fast a live training panel shows a batch, and what it sends to the browser.

A real jupyter server with the extension, a real ipykernel (driven through jupyter_client, as
the browser's notebook would drive it) and a real training job on the CPU:

* ``delay_ms``: from the trainer's callback (the batch event's ``time``) to the point being in
  the figure's data in the kernel (the panel's redraw log), median, p95 and max;
* ``messages``: comm messages the kernel sent while the run was live, per second on average
  and in the busiest second, with their bytes (the figure's typed arrays included);
* ``redraws_per_s``: figure redraws per second (the throttle allows 5);
* ``kernel_ping_ms``: round trip of a trivial cell executed while the panel is live;
* ``long_curve``: a synthetic run of 200 epochs x 500 batches replayed into a panel: points
  kept, points per trace sent, and the bytes sent for that one redraw.

Run: ``python -m bench.live_widget [--epochs 4 --batch 4 --imgsz 64]``; prints JSON.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.conftest import install_dataset
from tests.kernel_session import KernelSession
from tests.server_process import ServerProcess


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def all_events(server: ServerProcess, job_id: str) -> list[dict[str, Any]]:
    """Every event of the job, through the REST API."""
    events: list[dict[str, Any]] = []
    after = 0
    while True:
        page = server.request("GET", f"/yolo/jobs/{job_id}/events?after={after}&limit=10000")
        events += page["events"]
        if not page["more"]:
            return events
        after = page["events"][-1]["seq"]


def busiest_second(times: list[float]) -> int:
    """Most messages within any one-second window."""
    best = 0
    start = 0
    for end, moment in enumerate(times):
        while moment - times[start] > 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


LONG_CURVE = """
import json, time
events, seq = [], 0
for epoch in range(1, 201):
    for batch in range(1, 501):
        seq += 1
        events.append({"seq": seq, "type": "batch", "epoch": epoch, "batch": batch,
                       "batches": 500, "loss": {"box": 1.0 + batch / 500, "cls": 1.0,
                       "dfl": 1.0}, "time": 0.0})
    seq += 1
    events.append({"seq": seq, "type": "epoch", "epoch": epoch, "epochs": 200,
                   "loss": {"box": 1, "cls": 1, "dfl": 1}, "mAP50": 0.5})
t0 = time.perf_counter()
panel.load_events(events, status="succeeded")
print(json.dumps({"points_kept": panel.history.batch_points,
                  "points_per_trace_sent": panel.trace_points("box loss / batch"),
                  "redraw_s": round(time.perf_counter() - t0, 3)}))
"""


def run(epochs: int, batch: int, imgsz: int) -> dict[str, Any]:
    """Run the measurement once; return the figures."""
    from jupyter_yolo.datasets.synthetic import generate_shapes

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate_shapes(root / "template", train=32, val=8, imgsz=64, seed=0)
        workspace = root / "workspace"
        install_dataset(root / "template", workspace / "datasets" / "shapes")
        runtime = root / "runtime"
        runtime.mkdir()
        os.environ["JUPYTER_RUNTIME_DIR"] = str(runtime)
        os.environ.pop("JUPYTER_SERVER_URL", None)
        server = ServerProcess(workspace, workspace)
        server.start()
        env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER_TOKEN")}
        kernel = KernelSession(workspace, env).start()
        try:
            kernel.run(f"""
from jupyter_yolo.widgets import TrainingPanel
panel = TrainingPanel(data="shapes", epochs={epochs}, imgsz={imgsz}, batch={batch},
                      device="cpu", extra={{"plots": False}})
panel
""")
            comm_before = kernel.counts["comm_msg"]
            bytes_before = kernel.comm_bytes
            started = time.monotonic()
            job_id = kernel.run("print(panel.start(), end='')")
            pings: list[float] = []
            while server.request("GET", f"/yolo/jobs/{job_id}")["status"] not in (
                "succeeded",
                "failed",
                "stopped",
                "interrupted",
            ):
                t0 = time.perf_counter()
                kernel.run("1 + 1")
                pings.append((time.perf_counter() - t0) * 1000)
                time.sleep(0.3)
            log = json.loads(
                kernel.run("import json; panel.wait(60); print(json.dumps(list(panel.render_log)))")
            )
            live_s = time.monotonic() - started
            comm = kernel.counts["comm_msg"] - comm_before
            comm_bytes = kernel.comm_bytes - bytes_before
            window = [t for t in kernel.comm_times if t >= started]
            events = all_events(server, job_id)
            long_bytes_before = kernel.comm_bytes
            long_curve = json.loads(kernel.run(LONG_CURVE))
            long_curve["redraw_bytes"] = kernel.comm_bytes - long_bytes_before
        finally:
            kernel.shutdown()
            server.stop()

    delays = []
    for event in events:
        if event["type"] != "batch":
            continue
        shown = next((t for t, seq in log if seq >= event["seq"]), None)
        if shown is not None:
            delays.append((shown - event["time"]) * 1000)
    redraw_times = [t for t, _ in log[:-1]]  # the last one is wait()'s final, unthrottled one
    span = (redraw_times[-1] - redraw_times[0]) if len(redraw_times) > 1 else 0.0
    gaps = [b - a for a, b in itertools.pairwise(redraw_times)]
    return {
        "settings": {"epochs": epochs, "batch": batch, "imgsz": imgsz, "max_rate_hz": 5},
        "batch_events": sum(1 for e in events if e["type"] == "batch"),
        "delay_ms": {
            "median": round(statistics.median(delays), 1),
            "p95": round(percentile(delays, 95), 1),
            "max": round(max(delays), 1),
            "count": len(delays),
        },
        "redraws": len(log),
        "redraws_per_s": round(len(redraw_times) / span, 2) if span else None,
        "min_gap_between_redraws_ms": round(min(gaps) * 1000, 1) if gaps else None,
        "messages": {
            "comm_msgs": comm,
            "per_s": round(comm / live_s, 2),
            "busiest_second": busiest_second(window),
            "bytes_per_s": round(comm_bytes / live_s),
            "live_s": round(live_s, 1),
            "iopub_rate_limit": 1000,
        },
        "kernel_ping_ms": {
            "median": round(statistics.median(pings), 1) if pings else None,
            "max": round(max(pings), 1) if pings else None,
            "count": len(pings),
        },
        "iopub_warnings": kernel.stream_warnings,
        "long_curve": long_curve,
    }


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run, print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--imgsz", type=int, default=64)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.epochs, args.batch, args.imgsz), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
