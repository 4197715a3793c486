"""Multi-GPU (DDP) training, the parts that run on a CPU (see jupyter_yolo/runner/ddp.py).

ultralytics refuses a multi-device string without CUDA (``select_device("0,1")`` raises on this
machine) and its ``_setup_ddp`` is CUDA/NPU/XPU only, so a real DDP launch waits for a GPU machine
(``scripts/gpu_ddp_check.py``). Here: the state ultralytics pickles for its launcher (made by its
own ``generate_ddp_file`` from a real trainer with our callbacks) loads in fresh processes that
carry ``RANK``/``LOCAL_RANK``/``WORLD_SIZE`` as ``torch.distributed.run`` sets them; the trainer
is rebuilt from it as the launcher does and its callbacks run the steps of an epoch. Rank 0
writes the events, rank 1 none, a stop file ends both with exit code 0, and seq stays contiguous
with several writers. ultralytics and torch run in subprocesses only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from jupyter_yolo.datasets.synthetic import generate_shapes
from jupyter_yolo.jobs.events import append_event
from jupyter_yolo.runner.ddp import STATE_FILE, device_count, first_device, read_state

PYTHON = sys.executable

LAUNCH = r"""
import json, sys
from pathlib import Path

job, data = Path(sys.argv[1]), sys.argv[2]
from ultralytics import YOLO
from ultralytics.models.yolo.detect import DetectionTrainer
from ultralytics.utils.dist import generate_ddp_file

from jupyter_yolo.runner.callbacks import TrainingReporter
from jupyter_yolo.runner.journal import Journal
from jupyter_yolo.runner.stop import StopController

journal = Journal(job)  # the runner's own journal and stop controller, as main.py makes them
stop = StopController(job / "stop")
stop.install(on_request=lambda reason: journal.status("stopping", reason=reason))
journal.status("running")
reporter = TrainingReporter(journal, stop, job, on_epoch_done=lambda epoch: None)
model = YOLO("yolov8n.yaml")
reporter.attach(model)
args = dict(model="yolov8n.yaml", data=data, epochs=3, imgsz=64, batch=4, workers=0,
            device="cpu", project=str(job), name="run", exist_ok=True, plots=False)
trainer = DetectionTrainer(overrides=args, _callbacks=model.callbacks)
file = generate_ddp_file(trainer)  # what trainer.train() writes before torch.distributed.run
journal.log("launcher written")
journal.close()
print(json.dumps({"file": file, "trainer_id": id(trainer)}))
"""

RANK = r"""
import json, os, sys
from pathlib import Path

state_path, job = sys.argv[1], Path(sys.argv[2])
import torch
from ultralytics.utils import DEFAULT_CFG_DICT
from ultralytics.utils.patches import torch_load

state = torch_load(state_path, map_location="cpu")  # as the generated launcher loads it
from jupyter_yolo.runner.callbacks import TrainingReporter

reporters = {
    id(cb.__self__): cb.__self__
    for cbs in state["callbacks"].values()
    for cb in cbs
    if isinstance(getattr(cb, "__self__", None), TrainingReporter)
}
assert len(reporters) == 1, reporters
(reporter,) = reporters.values()
print(json.dumps({"rank": reporter.ddp_rank, "journal": type(reporter.journal).__name__}),
      flush=True)
cfg = DEFAULT_CFG_DICT.copy()
cfg.update(save_dir="")
trainer = state["trainer"](cfg=cfg, overrides=state["args"], _callbacks=state["callbacks"])
# the trainer as _do_train has it around the callbacks of an epoch
trainer.train_loader = [None] * 3
trainer.tloss = {"box_loss": torch.tensor(1.5), "cls_loss": torch.tensor(2.0)}
trainer.loss = torch.tensor(3.5)
trainer.metrics = {"metrics/mAP50(B)": 0.25, "metrics/mAP50-95(B)": 0.125}
trainer.fitness = 0.15
trainer.epoch_time = 1.0
trainer.start_epoch = 0
trainer.epoch = 0
for event in ("on_pretrain_routine_end", "on_train_start", "on_train_epoch_start"):
    trainer.run_callbacks(event)
for _ in range(3):
    trainer.run_callbacks("on_train_batch_end")
for event in ("on_train_epoch_end", "on_val_start", "on_val_end", "on_fit_epoch_end"):
    trainer.run_callbacks(event)
trainer.epoch = 1
trainer.run_callbacks("on_train_epoch_start")
trainer.run_callbacks("on_train_batch_end")
if sys.argv[3] == "stop":
    (job / "stop").write_text("now")
trainer.run_callbacks("on_train_batch_end")
print("no stop", flush=True)
"""


def env_for(workdir: Path, **extra: str) -> dict[str, str]:
    """The subprocess environment: offline, its own ultralytics config folder, no pytest vars."""
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        env.pop(name, None)
    env.update(YOLO_CONFIG_DIR=str(workdir / "cfg"), YOLO_OFFLINE="1", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def run_py(
    code: str, args: list[str], env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-c", code, *args],
        check=False,
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def events(job: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (job / "events.jsonl").read_text().splitlines()]


def assert_contiguous(evs: list[dict[str, Any]]) -> None:
    seqs = [e["seq"] for e in evs]
    assert seqs == list(range(1, len(seqs) + 1)), seqs


@pytest.fixture(scope="module")
def launched(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A real trainer with our callbacks, its DDP launcher state written by ultralytics."""
    root = tmp_path_factory.mktemp("ddp")
    data = generate_shapes(root / "datasets" / "tiny", train=8, val=4, imgsz=64, seed=0)
    job = root / "job"
    job.mkdir()
    append_event(job / "events.jsonl", "status", status="queued")
    done = run_py(LAUNCH, [str(job), str(data)], env_for(root), root)
    assert done.returncode == 0, done.stderr[-3000:]
    info = json.loads(done.stdout.strip().splitlines()[-1])
    return {"root": root, "job": job, "file": Path(info["file"])}


def run_rank(launched: dict[str, Any], rank: int, mode: str) -> subprocess.CompletedProcess[str]:
    env = env_for(launched["root"], RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2")
    state = launched["file"].with_suffix(".pt")
    return run_py(RANK, [str(state), str(launched["job"]), mode], env, launched["root"])


def test_launcher_state_carries_the_callbacks_rank_0_reports_and_a_stop_ends_every_rank(
    launched: dict[str, Any],
) -> None:
    job: Path = launched["job"]
    launcher = launched["file"].read_text()
    assert "torch_load" in launcher and '_callbacks=state["callbacks"]' in launcher
    before = events(job)
    assert [e["type"] for e in before] == ["status", "status", "log"]
    try:
        # each rank runs an epoch, a batch of the next, writes the stop file, ends its batch
        rank1 = run_rank(launched, 1, "stop")
        # DdpStopped is SystemExit(0): torch.distributed.run sees every worker succeed
        assert rank1.returncode == 0, rank1.stderr[-3000:]
        assert json.loads(rank1.stdout.splitlines()[0]) == {"rank": 1, "journal": "NullJournal"}
        assert "no stop" not in rank1.stdout and "Traceback" not in rank1.stderr
        assert events(job) == before  # rank 1 wrote nothing
        assert not (job / STATE_FILE).exists()
        (job / "stop").unlink()

        rank0 = run_rank(launched, 0, "stop")
        assert rank0.returncode == 0, rank0.stderr[-3000:]
        assert json.loads(rank0.stdout.splitlines()[0]) == {"rank": 0, "journal": "Journal"}
        assert "no stop" not in rank0.stdout and "Traceback" not in rank0.stderr
    finally:
        (job / "stop").unlink(missing_ok=True)
    evs = events(job)
    assert_contiguous(evs)
    new = [e for e in evs[len(before) :] if e["type"] != "log"]
    kinds = [e["type"] for e in new]
    assert kinds == ["batch"] * 3 + ["phase", "epoch", "batch", "batch", "status"], kinds
    assert [(e["epoch"], e["batch"], e["batches"]) for e in new if e["type"] == "batch"] == [
        (1, 1, 3),
        (1, 2, 3),
        (1, 3, 3),
        (2, 1, 3),
        (2, 2, 3),
    ]
    epoch = next(e for e in new if e["type"] == "epoch")
    assert epoch["epoch"] == 1 and epoch["epochs"] == 3
    assert epoch["loss"] == {"box": 1.5, "cls": 2.0}
    assert epoch["metrics"]["metrics/mAP50-95(B)"] == 0.125
    assert (new[-1]["status"], new[-1]["reason"]) == ("stopping", "stop file")
    state = read_state(job)
    assert state["epochs_done"] == 1 and state["stopped"] == "stop file"
    assert state["last_epoch"]["seq"] == epoch["seq"]


WRITER = r"""
import sys
from pathlib import Path
from jupyter_yolo.runner.journal import Journal

journal = Journal(Path(sys.argv[1]))
for i in range(int(sys.argv[2])):
    journal.emit("log", level="info", message=f"{sys.argv[3]} {i}")
journal.close()
"""


def test_seq_stays_contiguous_with_several_writers(tmp_path: Path) -> None:
    job = tmp_path / "job"
    job.mkdir()
    append_event(job / "events.jsonl", "status", status="queued")
    count = 400
    procs = [
        subprocess.Popen([PYTHON, "-c", WRITER, str(job), str(count), name])
        for name in ("runner", "rank0", "third")
    ]
    from jupyter_yolo.runner.journal import Journal

    journal = Journal(job)  # and one in this process, between theirs
    for i in range(count):
        journal.emit("log", level="info", message=f"here {i}")
    journal.close()
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    evs = events(job)
    assert len(evs) == 1 + 4 * count
    assert_contiguous(evs)
    for name in ("runner", "rank0", "third", "here"):
        mine = [int(e["message"].split()[1]) for e in evs if e.get("message", "").startswith(name)]
        assert mine == list(range(count)), name  # each writer's own order is kept


def test_the_journal_locks_a_lock_file_of_its_own_never_the_event_file(tmp_path: Path) -> None:
    """NFS cannot flock through a read-only descriptor and SMB makes a held lock mandatory."""
    import fcntl
    import stat

    from jupyter_yolo.contract.files import EVENTS_LOCK
    from jupyter_yolo.runner.journal import Journal

    job = tmp_path / "job"
    job.mkdir()
    journal = Journal(job)
    lock = job / EVENTS_LOCK
    assert stat.S_IMODE(lock.stat().st_mode) == 0o600
    with journal._file_lock():  # what every emit holds
        events_fd = os.open(job / "events.jsonl", os.O_RDONLY)
        lock_fd = os.open(lock, os.O_RDWR)
        try:
            fcntl.flock(events_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the event file is free
            with pytest.raises(BlockingIOError):  # the lock file is the one held
                fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(events_fd)
            os.close(lock_fd)
    journal.emit("log", level="info", message="after")
    journal.close()
    assert [e["type"] for e in events(job)] == ["log"]


def test_a_killed_writers_fragment_is_dropped(tmp_path: Path) -> None:
    from jupyter_yolo.runner.journal import Journal

    job = tmp_path / "job"
    job.mkdir()
    journal = Journal(job)
    journal.emit("status", status="running")
    with (job / "events.jsonl").open("a") as handle:  # another writer, killed mid-line
        handle.write('{"seq": 2, "time": 1.0, "type": "ba')
    journal.emit("log", level="info", message="after")
    journal.close()
    evs = events(job)
    assert [e["type"] for e in evs] == ["status", "log"]
    assert_contiguous(evs)


def test_device_helpers() -> None:
    assert [device_count(d) for d in ("0,1", "cuda:0,1,2", [0, 1], "0", 0, "cpu", "mps", None)] == [
        2,
        3,
        2,
        1,
        1,
        0,
        0,
        1,
    ]
    assert [first_device(d) for d in ("0,1", "cuda:2,3", [1, 0])] == ["0", "2", "1"]


# -- a real two-process DDP launch through ultralytics, on the CPU (tests/ddp_cpu_shim.py) ------
TESTS = Path(__file__).resolve().parent


def run_shimmed_runner(job: Path, **extra_env: str) -> tuple[int, int]:
    """The runner on ``job`` with ultralytics' DDP on gloo; returns (exit code, its pid)."""
    env = env_for(job.parent, **extra_env)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.pop("YOLO_CONFIG_DIR")  # the runner sets the workspace's own
    code = "import sys, ddp_cpu_shim; ddp_cpu_shim.run_runner(sys.argv[1])"
    with (job / "log.txt").open("ab") as log:
        proc = subprocess.Popen(
            [PYTHON, "-c", code, str(job)],
            cwd=job,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return proc.wait(timeout=900), proc.pid


def session_members(sid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rfind(")") + 2 :].split()
            if len(fields) > 3 and fields[0] != "Z" and int(fields[3]) == sid:
                found.append(int(entry))
    return found


CHECKPOINT = r"""
import json, sys, torch
ckpt = torch.load(sys.argv[1], map_location="cpu", weights_only=False)
print(json.dumps({"epoch": ckpt["epoch"], "optimizer": ckpt.get("optimizer") is not None}))
"""


@pytest.mark.slow
def test_two_rank_ddp_streams_events_stops_and_resumes(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    data = generate_shapes(ws / "datasets" / "tiny", train=8, val=4, imgsz=64, seed=0)
    job = ws / "jobs" / "ddp"
    job.mkdir(parents=True)
    params = {
        "model": "yolov8n.yaml",
        "data": str(data),
        "epochs": 2,
        "imgsz": 64,
        "batch": 4,  # 2 per rank: 2 batches per epoch on each of the 2 ranks
        "workers": 0,
        "device": "0,1",
        "seed": 0,
        "plots": False,
    }
    spec = {"id": "ddp", "kind": "train", "params": params, "workspace": str(ws), "resume": False}
    (job / "job.json").write_text(json.dumps(spec))
    append_event(job / "events.jsonl", "status", status="queued")

    # rank 1 writes the stop file before batch 1 of epoch 2: both ranks stop after that batch
    code, pid = run_shimmed_runner(job, JY_TEST_STOP_AT="2,1")
    log = (job / "log.txt").read_text(errors="replace")
    assert code == 0, log[-4000:]
    status = json.loads((job / "status.json").read_text())
    assert status["status"] == "stopped", log[-4000:]
    assert status["exit_reason"] == "stop requested (stop file)"
    assert status["result"]["epochs_done"] == 1
    assert status["result"]["last"] == "run/weights/last.pt"
    evs = events(job)
    assert_contiguous(evs)
    batches = [(e["epoch"], e["batch"], e["batches"]) for e in evs if e["type"] == "batch"]
    assert batches == [(1, 1, 2), (1, 2, 2), (2, 1, 2)]
    assert [e["epoch"] for e in evs if e["type"] == "epoch"] == [1]
    tail = [e for e in evs if e["type"] not in {"usage", "log", "artifact"}][-4:]
    assert [(e["type"], e.get("status")) for e in tail] == [
        ("batch", None),
        ("status", "stopping"),
        ("result", None),
        ("status", "stopped"),
    ]
    assert any("stopped during epoch 2; saved last.pt" in e.get("message", "") for e in evs)
    ckpt = run_py(CHECKPOINT, [str(job / "run" / "weights" / "last.pt")], env_for(tmp_path), job)
    assert ckpt.returncode == 0 and ckpt.stdout.strip(), (ckpt.stdout + ckpt.stderr)[-3000:]
    assert json.loads(ckpt.stdout.strip().splitlines()[-1]) == {"epoch": 0, "optimizer": True}
    # the launch ended by itself: nothing left to end, no launcher files, no record left
    assert "leftover process" not in log
    assert session_members(pid) == []
    assert list((ws / ".ultralytics").rglob("_temp_*")) == []
    assert not (job / STATE_FILE).exists()

    spec["resume"] = True
    (job / "job.json").write_text(json.dumps(spec))
    (job / "stop").unlink()
    code, pid = run_shimmed_runner(job)
    log = (job / "log.txt").read_text(errors="replace")
    assert code == 0, log[-4000:]
    status = json.loads((job / "status.json").read_text())
    assert status["status"] == "succeeded", log[-4000:]
    result = status["result"]
    assert result["epochs"] == 2 and result["epochs_done"] == 2
    assert result["best"] == "run/weights/best.pt"
    assert set(result["metrics"]) >= {"mAP50", "mAP50-95", "precision", "recall", "fitness"}
    assert status["epochs_done"] == 2
    evs = events(job)
    assert_contiguous(evs)
    resumed = evs[[e.get("resume") for e in evs].index(True) :]
    assert [(e["epoch"], e["batch"]) for e in resumed if e["type"] == "batch"] == [(2, 1), (2, 2)]
    assert [e["epoch"] for e in resumed if e["type"] == "epoch"] == [2]
    assert (job / "results.json").exists()
    assert "leftover process" not in log
    assert session_members(pid) == []
    assert list((ws / ".ultralytics").rglob("_temp_*")) == []
    epochs = [
        int(line.split(",")[0])
        for line in (job / "run" / "results.csv").read_text().splitlines()[1:]
    ]
    assert epochs == [1, 2]


def test_a_failed_launch_names_the_workers_error(tmp_path: Path) -> None:
    from jupyter_yolo.runner.ddp import DdpFailed, worker_error

    log = tmp_path / "log.txt"
    log.write_text(
        "Starting training for 3 epochs...\n"
        "[rank1]: Traceback (most recent call last):\n"
        '[rank1]:   File "_temp_1.py", line 16, in <module>\n'
        "[rank1]: torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n"
        "torch.distributed.elastic.multiprocessing.errors.ChildFailedError: \n"
        "subprocess.CalledProcessError: Command '['python', '-m', 'torch.distributed.run']' "
        "returned non-zero exit status 1.\n"
    )
    error = worker_error(log)
    assert error == "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"
    message = str(DdpFailed(2, 1, error))
    assert message.startswith("multi-GPU (DDP) training failed in one of its 2 worker processes")
    assert "out of memory" in message  # the runner's describe_error turns it into advice
    assert worker_error(tmp_path / "missing.txt") is None
    assert "job log" in str(DdpFailed(2, 1, None))
