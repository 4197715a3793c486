"""A kernel restart in the middle of a training, then ``TrainingPanel.attach(job_id)`` in the new
kernel: the figure holds every batch and epoch point of the run.

The kernel is a real ipykernel started in the server's root folder; it finds the server by
itself from the Jupyter runtime folder (no URL, no token given).
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import install_dataset
from .kernel_session import KernelSession
from .server_process import ServerProcess, serving

EPOCHS = 5
# the figure, status, progress, warnings and three buttons; 15 for 2 redraws when measured
MESSAGES_PER_REDRAW = 10


@pytest.fixture
def runtime_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private Jupyter runtime folder for the server and the kernel."""
    path = tmp_path / "runtime"
    path.mkdir()
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(path))
    monkeypatch.delenv("JUPYTER_SERVER_URL", raising=False)
    return path


@pytest.fixture
def server(tmp_path: Path, shapes_template: Path, runtime_dir: Path) -> Iterator[ServerProcess]:
    """A jupyter server with the extension; its root folder is the workspace."""
    workspace = tmp_path / "workspace"
    install_dataset(shapes_template, workspace / "datasets" / "shapes")
    with serving(workspace) as process:
        yield process


@pytest.fixture
def kernel(server: ServerProcess) -> Iterator[KernelSession]:
    """A kernel in the server's root folder, with no URL or token in its environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER_TOKEN")}
    session = KernelSession(server.root, env).start()
    try:
        yield session
    finally:
        session.shutdown()


@pytest.mark.slow
def test_attach_after_kernel_restart_shows_the_full_curve(
    server: ServerProcess, kernel: KernelSession
) -> None:
    job_id = kernel.run(f"""
from jupyter_yolo.widgets import TrainingPanel
panel = TrainingPanel(data="shapes", epochs={EPOCHS}, imgsz=64, batch=8, device="cpu",
                      extra={{"plots": False}})
job_id = panel.start()
panel.wait_until(lambda h: h.batch_points >= 2, timeout=180)
print(job_id, end="")
""")
    assert len(job_id) == 12

    kernel.restart()  # the panel and its threads are gone; the job goes on in the server
    assert server.request("GET", f"/yolo/jobs/{job_id}")["status"] in ("running", "succeeded")

    comm_before = kernel.counts["comm_msg"]
    result = json.loads(
        kernel.run(f"""
import json
from jupyter_yolo.widgets import TrainingPanel
panel = TrainingPanel.attach({job_id!r})
status = panel.wait(timeout=300)
print(json.dumps({{
    "status": status,
    "batch_x": list(map(float, panel.figure.data[0].x)),
    "points": {{t.name: (0 if t.x is None else len(t.x)) for t in panel.figure.data}},
    "redraws": len(panel.render_log),
    "throttled": panel.throttled_redraws,
    "interval": panel.redraw_interval,
}}))
""")
    )
    comm_msgs = kernel.counts["comm_msg"] - comm_before
    events = []
    after = 0
    while True:
        page = server.request("GET", f"/yolo/jobs/{job_id}/events?after={after}&limit=10000")
        events += page["events"]
        if not page["more"]:
            break
        after = page["events"][-1]["seq"]
    batches = [e for e in events if e["type"] == "batch"]
    epochs = [e for e in events if e["type"] == "epoch"]

    assert result["status"] == "succeeded"
    assert len(epochs) == EPOCHS
    expected_x = [round(e["epoch"] - 1 + e["batch"] / e["batches"], 4) for e in batches]
    assert [round(x, 4) for x in result["batch_x"]] == expected_x
    points = result["points"]
    assert points["box loss / batch"] == points["cls loss / batch"] == len(batches)
    assert points["box loss / epoch"] == points["box val loss"] == EPOCHS
    assert points["box mAP50"] == points["box mAP50-95"] == EPOCHS
    # redraws are throttled: far below the server's IOPub limit of 1000 messages a second.
    # Counted, not timed: throttled redraws start at least 1 / max_rate apart by the kernel's
    # monotonic clock, and each redraw sends a bounded number of messages (so does filling the
    # form; and a last throttled redraw may run between the count and the cell's end).
    gaps = [b - a for a, b in itertools.pairwise(result["throttled"])]
    assert all(gap >= result["interval"] - 1e-9 for gap in gaps), gaps
    assert comm_msgs <= MESSAGES_PER_REDRAW * (result["redraws"] + 2), (comm_msgs, result)
    assert kernel.stream_warnings == []
