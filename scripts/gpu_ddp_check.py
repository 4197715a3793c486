"""Multi-GPU (DDP) check for a machine with 2+ GPUs: a training job through the real server.

Run from the repository root (about 5-10 minutes)::

    .venv/bin/python scripts/gpu_ddp_check.py [--devices 0,1] [--epochs 6] [--keep]

It starts JupyterLab's server with the extension on a fresh workspace (the embedded ``shapes``
dataset), then through the REST client: checks that the accelerator report lists the GPUs,
trains on ``--devices`` and follows the events live (batch curves of epoch 1 before the job ends,
seq contiguous), stops it during epoch 2 (status ``stopped``, a resumable ``last.pt``, no
process of the job left, no launcher file left in ``.ultralytics/Ultralytics/DDP``), resumes it
(continues at epoch 2 with the same devices) and waits for ``succeeded`` with metrics,
``results.json`` and ``best.pt``. Every check prints PASS or FAIL; the exit status is the count of
failures. Nothing here runs on a machine without 2 GPUs (it says so and exits 2), except
``--devices cpu``: the same steps on one CPU device, to try the script itself.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from jupyter_yolo.client import YoloClient  # noqa: E402

FAILURES: list[str] = []


def check(name: str, ok: bool, detail: Any = "") -> bool:
    """Print one check's verdict; remember the failures."""
    print(f"{'PASS' if ok else 'FAIL'} {name}{f': {detail}' if detail not in ('', None) else ''}")
    if not ok:
        FAILURES.append(name)
    return ok


def gpus() -> list[str]:
    """The GPUs ``nvidia-smi -L`` lists (none without the NVIDIA driver)."""
    try:
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False)
    except OSError:
        return []
    return [line for line in listed.stdout.splitlines() if line.startswith("GPU ")]


def free_port() -> int:
    """A free TCP port on localhost."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(workspace: Path, token: str, port: int) -> subprocess.Popen[bytes]:
    """JupyterLab's server with the extension on ``workspace`` (log in workspace/server.log)."""
    env = dict(os.environ, YOLO_WORKSPACE=str(workspace), JUPYTER_TOKEN=token)
    bindir = Path(sys.executable).parent
    subprocess.run(
        [str(bindir / "jupyter-yolo"), "init", "--workspace", str(workspace)], check=True
    )
    log = (workspace / "server.log").open("ab")
    return subprocess.Popen(
        [
            str(bindir / "jupyter"),
            "server",
            "--no-browser",
            f"--ServerApp.root_dir={workspace}",
            f"--ServerApp.port={port}",
            "--ServerApp.ip=127.0.0.1",
            *(["--allow-root"] if os.getuid() == 0 else []),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_for(what: str, predicate: Any, timeout: float, period: float = 1.0) -> Any:
    """``predicate()``'s first true value, polled every ``period`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(period)
    raise TimeoutError(f"waited {timeout:.0f} s for {what}")


def all_events(client: YoloClient, job_id: str) -> list[dict[str, Any]]:
    """Every event of the job so far."""
    out: list[dict[str, Any]] = []
    for page in client.iter_pages(job_id, follow=False):
        out.extend(page["events"])
    return out


def job_processes(job_dir: Path) -> list[str]:
    """Command lines of live processes that mention the job folder or a DDP launcher."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(job_dir) in cmd or "Ultralytics/DDP/_temp_" in cmd:
            found.append(f"{entry}: {cmd[:160]}")
    return found


def main() -> int:
    """Run the check; the exit status is the number of failed checks (2: not enough GPUs)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", default="0,1")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--keep", action="store_true", help="keep the workspace")
    args = parser.parse_args()
    cpu = args.devices == "cpu"  # a dry run of the script's own steps, without DDP
    count = 0 if cpu else len(args.devices.split(","))
    if len(gpus()) < count:
        print(f"this machine shows {len(gpus())} GPU(s); the check needs {count}")
        return 2
    workspace = Path(tempfile.mkdtemp(prefix="yolo-ddp-check-"))
    token, port = secrets.token_hex(16), free_port()
    server = start_server(workspace, token, port)
    try:
        client = YoloClient(f"http://127.0.0.1:{port}/", token, timeout=120)
        wait_for("the server", lambda: _answers(client), 120)
        report = client.accelerators()
        print("accelerator report:", json.dumps(report, default=str)[:1000])
        job = client.train(
            "shapes",
            model="yolov8n.yaml",
            epochs=args.epochs,
            imgsz=args.imgsz,
            batch=args.batch,
            device=args.devices,
            workers=2,
        )
        job_id = job["id"]
        job_dir = workspace / "jobs" / job_id
        print(f"job {job_id} in {job_dir}")

        # live curves: a batch of epoch 2 arrives while the job is still running
        def second_epoch_batch() -> bool:
            evs = all_events(client, job_id)
            status = client.job(job_id)["status"]
            if status not in {"queued", "running"}:
                raise RuntimeError(f"job ended early: {status} {client.job(job_id).get('error')}")
            return any(e["type"] == "batch" and e.get("epoch") == 2 for e in evs)

        wait_for("a batch of epoch 2", second_epoch_batch, 900, 0.5)
        evs = all_events(client, job_id)
        check("batch events of epoch 1 live", any(e["type"] == "batch" for e in evs))
        check("an epoch event live", [e["epoch"] for e in evs if e["type"] == "epoch"][:1] == [1])
        if not cpu:
            check(
                "log events from rank 0",
                any("multi-GPU training (DDP)" in e.get("message", "") for e in evs),
            )
        client.stop(job_id)
        final = wait_for(
            "the stop",
            lambda: (j := client.job(job_id))["status"] in {"stopped", "failed", "succeeded"} and j,
            600,
        )
        check("stopped", final["status"] == "stopped", final.get("error") or final["status"])
        evs = all_events(client, job_id)
        seqs = [e["seq"] for e in evs]
        check("seq contiguous", seqs == list(range(1, len(seqs) + 1)))
        check("last.pt saved", (job_dir / "run" / "weights" / "last.pt").exists())
        check(
            "mid-epoch checkpoint logged",
            any("saved last.pt" in e.get("message", "") for e in evs),
        )
        time.sleep(2)
        check("no process of the job left", job_processes(job_dir) == [], job_processes(job_dir))
        temp = list((workspace / ".ultralytics").rglob("_temp_*"))
        check("launcher files removed", temp == [], temp)

        client.resume(job_id)
        final = wait_for(
            "the resumed run",
            lambda: (j := client.job(job_id))["status"] in {"stopped", "failed", "succeeded"} and j,
            1800,
        )
        check("resumed run succeeded", final["status"] == "succeeded", final.get("error"))
        evs = all_events(client, job_id)
        seqs = [e["seq"] for e in evs]
        check("seq contiguous after resume", seqs == list(range(1, len(seqs) + 1)))
        start = [e.get("resume") for e in evs].index(True)
        done = max([e["epoch"] for e in evs[:start] if e["type"] == "epoch"], default=0)
        first = next((e for e in evs[start:] if e["type"] == "batch"), {})
        check(f"resume continues at epoch {done + 1}", first.get("epoch") == done + 1, first)
        epochs = [e["epoch"] for e in evs if e["type"] == "epoch"]
        check("every epoch once", sorted(set(epochs)) == list(range(1, args.epochs + 1)), epochs)
        result = final.get("result") or {}
        check("final metrics", (result.get("metrics") or {}).get("mAP50-95") is not None, result)
        check("results.json", (job_dir / "results.json").exists())
        check("best.pt", result.get("best") == "run/weights/best.pt", result.get("best"))
        time.sleep(2)
        check("no process left after resume", job_processes(job_dir) == [])
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(60)
        if not args.keep:
            shutil.rmtree(workspace, ignore_errors=True)
        else:
            print(f"workspace kept: {workspace}")
    print(f"{len(FAILURES)} failure(s)" + (f": {', '.join(FAILURES)}" if FAILURES else ""))
    return len(FAILURES)


def _answers(client: YoloClient) -> bool:
    try:
        client.jobs()
    except Exception:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
