"""The worker pool's rules, fast: eviction, all-busy, start failures, shutdown.

The workers here are a small stand-in process (``STAND_IN`` below, given to the pool as its
"python") that speaks the real framing of :mod:`jupyter_yolo.serving.protocol` and behaves as
its model file says: ``ok`` answers each image with its size, ``slow`` waits for a release file
first (the mode is read again on each request), ``refuse`` says the model is unusable
(``failed`` with status 400), ``broken`` fails without a status, ``mute`` exits without a
word. No torch: the real worker is exercised by
tests/test_predict_service.py; here only the pool's bookkeeping is.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from jupyter_yolo.contract.serving import WorkerKey
from jupyter_yolo.errors import TooManyRequests, WorkerUnavailable, YoloError
from jupyter_yolo.serving.pool import PoolSettings, PredictCall, WorkerPool, WorkerRefused

STAND_IN = f"""#!{sys.executable}
import os, sys, time
from pathlib import Path
sys.path.insert(0, {str(Path(__file__).resolve().parent.parent)!r})
from jupyter_yolo.serving.protocol import encode, read_sync
args = sys.argv[1:]
model = Path(args[args.index("--model") + 1])
mode = model.read_text().strip()
out = sys.stdout.buffer
def send(header):
    out.write(encode(header)); out.flush()
print("stand-in worker starting", mode, file=sys.stderr, flush=True)
with open(model.with_suffix(".pids"), "a") as pids:
    print(os.getpid(), file=pids)
if mode == "mute":
    sys.exit(3)
if mode == "refuse":
    send({{"op": "failed", "status": 400, "message": "not a checkpoint"}}); sys.exit(1)
if mode == "broken":
    print("the backend library is missing", file=sys.stderr, flush=True)
    send({{"op": "failed", "message": "backend failed"}}); sys.exit(1)
send({{"op": "ready", "task": "detect", "imgsz": 64, "model": str(model), "load_ms": 1.0,
      "backend": {{"name": "pytorch", "requested": "auto"}}}})
while True:
    frame = read_sync(sys.stdin.buffer)
    if frame is None:
        sys.exit(0)
    header, blobs = frame
    mode = model.read_text().strip()  # read per request: a test may slow a warm worker
    if mode == "slow":
        release = model.with_suffix(".go")
        while not release.exists():
            time.sleep(0.02)
    images = [{{"file": n, "width": len(b), "height": 1, "detections": []}}
              for n, b in zip(header["names"], blobs)]
    send({{"op": "result", "id": header["id"], "images": images,
          "timing": {{"preprocess_ms": 1.0, "inference_ms": 2.0, "postprocess_ms": 3.0}}}})
"""


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    folder = tmp_path / "workspace"
    folder.mkdir()
    script = tmp_path / "stand-in"
    script.write_text(STAND_IN)
    script.chmod(0o755)
    return folder


def make_pool(workspace: Path, **limits: Any) -> WorkerPool:
    python = str(workspace.parent / "stand-in")
    return WorkerPool(PoolSettings(workspace=workspace, python=python, kill_grace=2.0, **limits))


def call(workspace: Path, name: str, mode: str = "ok", data: bytes = b"abc") -> PredictCall:
    path = workspace / f"{name}.pt"
    if not path.exists():
        path.write_text(mode)
    return PredictCall(
        key=WorkerKey(name, "auto", 0, "cpu"),
        model_path=path,
        model_ref=path.name,
        blobs=[data],
        names=["x.jpg"],
        conf=0.25,
        iou=0.7,
        classes=None,
    )


def alive(pid: int | None) -> bool:
    if pid is None or not os.path.exists(f"/proc/{pid}"):
        return False
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"


async def gone(pid: int | None) -> bool:
    for _ in range(200):
        if not alive(pid):
            return True
        await asyncio.sleep(0.05)
    return False


async def test_least_recently_used_idle_worker_makes_room(workspace: Path) -> None:
    pool = make_pool(workspace, max_workers=2)
    try:
        a = await pool.predict(call(workspace, "a", data=b"12345"))
        assert a["images"] == [{"file": "x.jpg", "width": 5, "height": 1, "detections": []}]
        assert a["timing"]["inference_ms"] == 2.0 and "worker_start_ms" in a["timing"]
        b = await pool.predict(call(workspace, "b"))
        again = await pool.predict(call(workspace, "a"))  # a is now the most recently used
        assert again["worker"]["pid"] == a["worker"]["pid"]
        assert "worker_start_ms" not in again["timing"]
        await pool.predict(call(workspace, "c"))
        assert sorted(w["model"] for w in pool.workers()) == ["a.pt", "c.pt"]
        assert await gone(b["worker"]["pid"])
        assert (workspace / ".predict-workers").is_dir()
    finally:
        await pool.shutdown()
    assert pool.workers() == []
    assert await gone(a["worker"]["pid"])


async def test_all_busy_is_503_and_a_full_queue_429(workspace: Path) -> None:
    pool = make_pool(workspace, max_workers=1, queue_size=1)
    try:
        busy = asyncio.ensure_future(pool.predict(call(workspace, "s", "slow")))
        while not pool.workers() or pool.workers()[0]["state"] != "busy":
            await asyncio.sleep(0.02)
        with pytest.raises(WorkerUnavailable) as info:  # a busy worker is never evicted
            await pool.predict(call(workspace, "other"))
        assert info.value.retry_after == 2 and "max_predict_workers" in info.value.message
        queued = asyncio.ensure_future(pool.predict(call(workspace, "s", "slow")))
        while pool.workers()[0]["queued"] != 1:
            await asyncio.sleep(0.02)
        with pytest.raises(TooManyRequests):
            await pool.predict(call(workspace, "s", "slow"))
        (workspace / "s.go").touch()
        first, second = await busy, await queued
        assert first["worker"]["pid"] == second["worker"]["pid"]
        assert second["worker"]["requests"] == 2
    finally:
        await pool.shutdown()


@pytest.mark.parametrize(
    ("mode", "error", "status", "text"),
    [
        ("refuse", WorkerRefused, 400, "not a checkpoint"),
        ("broken", WorkerUnavailable, 503, "the backend library is missing"),
        ("mute", WorkerUnavailable, 503, "exited with code 3"),
    ],
)
async def test_a_worker_that_cannot_start(
    workspace: Path, mode: str, error: type[YoloError], status: int, text: str
) -> None:
    pool = make_pool(workspace)
    try:
        with pytest.raises(error) as info:
            await pool.predict(call(workspace, mode, mode))
        assert info.value.status == status
        assert text in info.value.message and f"{mode}.pt" in info.value.message
        assert pool.workers() == []
        with pytest.raises(error):  # nothing remembered: the next request tries again
            await pool.predict(call(workspace, mode, mode))
    finally:
        await pool.shutdown()


async def test_a_start_timeout_kills_the_worker(workspace: Path, tmp_path: Path) -> None:
    script = tmp_path / "sleeper"
    script.write_text(f"#!{sys.executable}\nimport time\ntime.sleep(600)\n")
    script.chmod(0o755)
    pool = WorkerPool(PoolSettings(workspace=workspace, python=str(script), start_timeout=0.5))
    try:
        with pytest.raises(WorkerUnavailable) as info:
            await pool.predict(call(workspace, "z"))
        assert "predict_start_timeout" in info.value.message
        assert pool.workers() == []
    finally:
        await pool.shutdown()


async def test_the_same_weights_under_two_names_share_a_worker(workspace: Path) -> None:
    from jupyter_yolo.serving.digest import DigestCache

    (workspace / "one.pt").write_text("ok")
    (workspace / "two.pt").write_text("ok")
    (workspace / "three.pt").write_text("ok ")
    cache = DigestCache()
    one, two, three = (cache.digest(workspace / f"{n}.pt") for n in ("one", "two", "three"))
    assert one == two != three
    assert cache.digest(workspace / "one.pt") == one  # cached by size and mtime


async def test_over_the_memory_budget_idle_workers_make_room(workspace: Path) -> None:
    pool = make_pool(workspace, max_workers=4, memory_limit=1)  # any worker is over it
    try:
        a = await pool.predict(call(workspace, "a"))
        assert a["worker"]["rss_bytes"] > 1
        b = await pool.predict(call(workspace, "b"))
        assert [w["model"] for w in pool.workers()] == ["b.pt"]
        assert await gone(a["worker"]["pid"])
        assert alive(b["worker"]["pid"])
    finally:
        await pool.shutdown()


def stand_ins(workspace: Path) -> list[int]:
    """Every stand-in worker ever started for this workspace (they write their pid)."""
    return [int(line) for f in workspace.glob("*.pids") for line in f.read_text().split()]


def spawned_children(workspace: Path) -> list[int]:
    """Live child processes of this test started with this workspace on their command line."""
    import psutil

    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if str(workspace) in " ".join(child.cmdline()) and alive(child.pid):
                found.append(child.pid)
        except psutil.Error:
            continue
    return found


async def test_stop_all_while_a_worker_starts_leaks_nothing(workspace: Path) -> None:
    pool = make_pool(workspace)
    request = asyncio.ensure_future(pool.predict(call(workspace, "a")))
    await asyncio.sleep(0)  # the request is now spawning its worker
    assert await pool.stop_all() == 1
    with pytest.raises(WorkerUnavailable) as info:
        await request
    assert "stopped while it started" in info.value.message and info.value.retry_after == 2
    assert pool.workers() == []
    await asyncio.wait_for(pool.shutdown(), 60)  # before the fix: hung on the leaked worker
    for pid in stand_ins(workspace) + spawned_children(workspace):
        assert await gone(pid)


async def test_shutdown_while_a_worker_starts_and_no_reaper_after_it(workspace: Path) -> None:
    pool = make_pool(workspace)
    request = asyncio.ensure_future(pool.predict(call(workspace, "a")))
    await asyncio.sleep(0)
    await asyncio.wait_for(pool.shutdown(), 60)
    with pytest.raises(WorkerUnavailable):
        await request
    with pytest.raises(WorkerUnavailable) as info:
        await pool.predict(call(workspace, "b"))
    assert "shutting down" in info.value.message
    reapers = [t for t in asyncio.all_tasks() if "_reap_forever" in repr(t.get_coro())]
    assert not [t for t in reapers if not t.done()]
    for pid in stand_ins(workspace) + spawned_children(workspace):
        assert await gone(pid)


async def test_a_zero_queue_serves_an_idle_worker_and_refuses_a_busy_one(workspace: Path) -> None:
    pool = make_pool(workspace, queue_size=0)
    try:
        first = await pool.predict(call(workspace, "s"))
        assert first["worker"]["requests"] == 1
        again = await pool.predict(call(workspace, "s"))  # idle: no queue needed
        assert again["worker"]["pid"] == first["worker"]["pid"]
        (workspace / "s.pt").write_text("slow")  # the stand-in reads its mode per request
        busy = asyncio.ensure_future(pool.predict(call(workspace, "s")))
        while pool.workers()[0]["state"] != "busy":
            await asyncio.sleep(0.02)
        with pytest.raises(TooManyRequests) as info:
            await pool.predict(call(workspace, "s"))
        assert "predict_queue_size = 0" in info.value.message
        (workspace / "s.go").touch()
        assert (await busy)["worker"]["requests"] == 3
    finally:
        await pool.shutdown()


async def test_a_worker_killed_mid_request_is_503_and_the_next_gets_a_fresh_one(
    workspace: Path,
) -> None:
    pool = make_pool(workspace)
    try:
        request = asyncio.ensure_future(pool.predict(call(workspace, "s", "slow")))
        while not pool.workers() or pool.workers()[0]["state"] != "busy":
            await asyncio.sleep(0.02)
        killed = pool.workers()[0]["pid"]
        assert killed is not None
        os.kill(killed, signal.SIGKILL)
        with pytest.raises(WorkerUnavailable) as info:
            await request
        assert "crashed" in info.value.message and "SIGKILL" in info.value.message
        assert info.value.retry_after == 2
        (workspace / "s.go").touch()
        after = await pool.predict(call(workspace, "s"))
        assert after["worker"]["pid"] != killed and after["worker"]["requests"] == 1
        assert "worker_start_ms" in after["timing"]
    finally:
        await pool.shutdown()
