"""The job runner (``python -m jupyter_yolo.runner JOB_DIR``) with real ultralytics, no mocks.

Training tests use a tiny generated dataset (16 train / 8 val images at 64 px), yolov8n from its
YAML, batch 4, workers 0, on the CPU. The runner is started like the server does: its own
session, output appended to log.txt, a job.json and a first ``queued`` event written beforehand.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from jupyter_yolo.accelerators import host
from jupyter_yolo.datasets.synthetic import generate_shapes
from jupyter_yolo.jobs.events import append_event
from jupyter_yolo.runner.job import JobFile, JobFileError, StatusFile
from jupyter_yolo.runner.logcap import RotatingLogFile, _LineTidier
from jupyter_yolo.runner.offline import GUARD_LOG_PREFIX
from jupyter_yolo.runner.resources import plan_workers, usable_cpus

# -- helpers: a job folder written the way the server does, the runner started likewise --------
PYTHON = sys.executable


def write_job(
    job_dir: Path,
    kind: str,
    params: dict[str, Any],
    workspace: Path,
    *,
    resume: bool = False,
    log_max_bytes: int = 2 * 2**20,
    first_event: bool = True,
) -> Path:
    """Create ``job_dir`` with job.json and (like the server) the first ``queued`` event."""
    job_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "id": job_dir.name,
        "kind": kind,
        "params": params,
        "workspace": str(workspace),
        "resume": resume,
        "log_max_bytes": log_max_bytes,
    }
    (job_dir / "job.json").write_text(json.dumps(spec), encoding="utf-8")
    (job_dir / "stop").unlink(missing_ok=True)
    if first_event:
        append_event(job_dir / "events.jsonl", "status", status="queued")
    return job_dir


def runner_env() -> dict[str, str]:
    """An environment like the server's: no tokens, unbuffered, no pytest markers."""
    env = {k: v for k, v in os.environ.items() if "TOKEN" not in k and k != "PYTEST_CURRENT_TEST"}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start_runner(job_dir: Path, *, prefix: list[str] | None = None) -> subprocess.Popen[bytes]:
    """Start the runner like the server does: own session, output appended to log.txt."""
    log = (job_dir / "log.txt").open("ab")
    try:
        return subprocess.Popen(
            [*(prefix or []), PYTHON, "-m", "jupyter_yolo.runner", str(job_dir)],
            cwd=job_dir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=runner_env(),
            start_new_session=True,
        )
    finally:
        log.close()


def run_job(job_dir: Path, timeout: float = 240, **kwargs: Any) -> int:
    """Run the runner to its end and return its exit code."""
    proc = start_runner(job_dir, **kwargs)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"runner timed out; log tail:\n{log_tail(job_dir)}") from None


def events(job_dir: Path) -> list[dict[str, Any]]:
    """All events of a job."""
    path = job_dir / "events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def of_type(evs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """The events of one type."""
    return [e for e in evs if e["type"] == kind]


def status(job_dir: Path) -> dict[str, Any]:
    """The runner's status.json."""
    data: dict[str, Any] = json.loads((job_dir / "status.json").read_text(encoding="utf-8"))
    return data


def log_tail(job_dir: Path, size: int = 6000) -> str:
    """The end of the job's log, for assertion messages."""
    path = job_dir / "log.txt"
    return path.read_text(encoding="utf-8", errors="replace")[-size:] if path.exists() else ""


def wait_for_event(
    job_dir: Path,
    predicate: Any,
    proc: subprocess.Popen[bytes],
    timeout: float = 180,
) -> dict[str, Any]:
    """Wait until an event matches ``predicate``; fail if the runner ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in events(job_dir):
            if predicate(event):
                return event
        if proc.poll() is not None:
            raise AssertionError(f"runner ended ({proc.returncode}) first:\n{log_tail(job_dir)}")
        time.sleep(0.05)
    raise AssertionError(f"no matching event within {timeout}s:\n{log_tail(job_dir)}")


def session_members(sid: int) -> list[int]:
    """Pids of live processes whose session id is ``sid``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 3 and fields[0] != "Z" and int(fields[3]) == sid:
            found.append(int(entry))
    return found


def assert_seq_ok(evs: list[dict[str, Any]]) -> None:
    """Sequence numbers start at 1 and increase by one."""
    seqs = [e["seq"] for e in evs]
    assert seqs == list(range(1, len(seqs) + 1)), seqs


# -- fixtures ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ws = tmp_path_factory.mktemp("runner") / "workspace"
    (ws / "datasets").mkdir(parents=True)
    generate_shapes(ws / "datasets" / "tiny", train=16, val=8, imgsz=64, seed=0)
    return ws


@pytest.fixture(scope="module")
def data_yaml(workspace: Path) -> str:
    return str(workspace / "datasets" / "tiny" / "data.yaml")


def train_params(data_yaml: str, epochs: int = 2, **extra: Any) -> dict[str, Any]:
    return {
        "model": "yolov8n.yaml",
        "data": data_yaml,
        "epochs": epochs,
        "imgsz": 64,
        "batch": 4,
        "workers": 0,
        "device": "cpu",
        "seed": 0,
        "plots": False,
        **extra,
    }


@pytest.fixture(scope="module")
def trained_job(workspace: Path, data_yaml: str) -> Path:
    """A finished 2-epoch training run (also the source of weights for predict/export)."""
    job = write_job(workspace / "jobs" / "train2", "train", train_params(data_yaml), workspace)
    code = run_job(job)
    assert code == 0, log_tail(job)
    return job


def results_epochs(job: Path) -> list[int]:
    with (job / "run" / "results.csv").open() as handle:
        return [int(float(row["epoch"])) for row in csv.DictReader(handle)]


def checkpoint_epoch(path: Path) -> int:
    import torch

    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    return int(ckpt["epoch"])


def assert_no_guard_hits(job: Path) -> None:
    assert GUARD_LOG_PREFIX not in (job / "log.txt").read_text(errors="replace"), log_tail(job)


# -- training ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_train_two_epochs(trained_job: Path) -> None:
    evs = events(trained_job)
    assert_seq_ok(evs)
    statuses = [e["status"] for e in of_type(evs, "status")]
    assert statuses == ["queued", "running", "succeeded"]
    assert evs[-1]["type"] == "status"

    batches = of_type(evs, "batch")
    expected = [(e, b) for e in (1, 2) for b in (1, 2, 3, 4)]
    assert [(b["epoch"], b["batch"]) for b in batches] == expected
    first = batches[0]
    assert first["batches"] == 4
    assert set(first["loss"]) == {"box", "cls", "dfl"}
    assert first["lr"] is not None and first["images_per_s"] > 0

    epochs = of_type(evs, "epoch")
    assert [e["epoch"] for e in epochs] == [1, 2]
    for epoch in epochs:
        assert epoch["epochs"] == 2
        assert set(epoch["loss"]) == {"box", "cls", "dfl"}
        assert set(epoch["val_loss"]) == {"box", "cls", "dfl"}
        for key in ("precision", "recall", "mAP50", "mAP50-95", "fitness", "epoch_time", "eta_s"):
            assert key in epoch
    assert epochs[-1]["eta_s"] == 0

    result = of_type(evs, "result")[-1]
    assert result["kind"] == "train" and result["epochs_done"] == 2
    # the speed choices, each with its source and reason (the request's workers=0 is kept)
    speed = {c["name"]: c for c in result["speed"]["choices"]}
    assert set(speed) == {
        "threads",
        "interop_threads",
        "omp_wait_policy",
        "workers",
        "cache",
        "channels_last",
    }
    # read back from the trainer when training started: the choices really apply
    applied = result["speed"]["applied"]
    assert applied["threads"] == speed["threads"]["value"]
    assert applied["workers"] == 0 and applied["cache"] == "ram"
    assert applied["channels_last"] is True and applied["omp_wait_policy"] == "PASSIVE"
    assert (speed["workers"]["value"], speed["workers"]["source"]) == (0, "request")
    assert speed["cache"] == {**speed["cache"], "value": "ram", "source": "chosen"}
    assert speed["channels_last"]["value"] is True and all(c["reason"] for c in speed.values())
    logged = [e for e in of_type(evs, "log") if "speed" in e]
    assert len(logged) == 1 and logged[0]["speed"]["choices"] == result["speed"]["choices"]
    assert logged[0]["message"].startswith("speed choices: workers 0, threads ")
    assert "omp_wait_policy PASSIVE" in logged[0]["message"]
    log_text = (trained_job / "log.txt").read_text()
    assert "speed: channels_last=True (chosen: " in log_text
    assert "may produce non-deterministic" not in log_text  # the cache's reason says it instead
    assert set(result["metrics"]) == {"precision", "recall", "mAP50", "mAP50-95", "fitness"}
    paths = {e["path"] for e in of_type(evs, "artifact")}
    assert {"run/weights/last.pt", "run/weights/best.pt", "run/results.csv"} <= paths

    st = status(trained_job)
    assert st["status"] == "succeeded" and st["exit_reason"] == "completed"
    assert st["epochs_done"] == 2 and st["ended"] >= st["started"] and st["error"] is None
    assert st["result"]["best"] == "run/weights/best.pt"
    assert (trained_job / "run" / "weights" / "best.pt").stat().st_size > 0
    assert results_epochs(trained_job) == [1, 2]
    assert "jupyter-yolo runner" in (trained_job / "log.txt").read_text()
    assert_no_guard_hits(trained_job)


@pytest.mark.slow
def test_stop_mid_epoch_then_resume(workspace: Path, data_yaml: str) -> None:
    """A stop asked for in epoch 2 takes effect within the epoch in which the runner notices it.

    Where that is depends on how fast this machine runs the runner against this test, so the
    checks are stated for whichever epoch it is: the epochs before it are complete and
    checkpointed, it is redone on resume. Three spare epochs keep it before the last one.
    """
    from ultralytics import YOLO

    total = 5
    params = train_params(data_yaml, epochs=total)
    job = write_job(workspace / "jobs" / "stop-usr1", "train", params, workspace)
    proc = start_runner(job)
    wait_for_event(job, lambda e: e["type"] == "batch" and (e["epoch"], e["batch"]) == (2, 2), proc)
    (job / "stop").touch()
    os.kill(proc.pid, signal.SIGUSR1)
    assert proc.wait(timeout=60) == 0, log_tail(job)
    assert session_members(proc.pid) == []

    evs = events(job)
    assert_seq_ok(evs)
    assert [e["status"] for e in of_type(evs, "status")][-2:] == ["stopping", "stopped"]
    done = len(of_type(evs, "epoch"))
    assert 1 <= done < total, f"the stop asked for in epoch 2 ended epoch {done}"
    assert [e["epoch"] for e in of_type(evs, "epoch")] == list(range(1, done + 1))
    assert max(b["epoch"] for b in of_type(evs, "batch")) == done + 1  # stopped inside it
    st = status(job)
    assert st["status"] == "stopped" and st["epochs_done"] == done
    assert "SIGUSR1" in st["exit_reason"]
    last = job / "run" / "weights" / "last.pt"
    # the last COMPLETED epoch (0-based): resume redoes the stopped one
    assert checkpoint_epoch(last) == done - 1
    model = YOLO(str(last))
    assert model.ckpt.get("optimizer") is not None
    assert results_epochs(job) == list(range(1, done + 1))

    write_job(job, "train", params, workspace, resume=True, first_event=False)
    assert run_job(job) == 0, log_tail(job)
    evs = events(job)
    assert_seq_ok(evs)
    statuses = [e["status"] for e in of_type(evs, "status")]
    assert statuses == ["queued", "running", "stopping", "stopped", "running", "succeeded"]
    assert [e["epoch"] for e in of_type(evs, "epoch")] == list(range(1, total + 1))
    assert results_epochs(job) == list(range(1, total + 1))
    assert status(job)["status"] == "succeeded" and status(job)["epochs_done"] == total
    assert_no_guard_hits(job)


@pytest.fixture(scope="module")
def long_val_yaml(workspace: Path) -> str:
    """8 training images and 120 validation images: validation takes about a second."""
    path = generate_shapes(workspace / "datasets" / "longval", train=8, val=120, imgsz=64, seed=1)
    return str(path)


@pytest.mark.slow
def test_sigterm_during_validation_and_resume_restarts(workspace: Path, long_val_yaml: str) -> None:
    """SIGTERM right after the last batch of epoch 1, while its (long) validation runs."""
    params = train_params(long_val_yaml, epochs=2)
    job = write_job(workspace / "jobs" / "stop-term", "train", params, workspace)
    proc = start_runner(job)
    wait_for_event(job, lambda e: e["type"] == "phase" and e["phase"] == "validation", proc)
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=60) == 0, log_tail(job)
    assert session_members(proc.pid) == []

    evs = events(job)
    assert_seq_ok(evs)
    st = status(job)
    assert st["status"] == "stopped" and "SIGTERM" in st["exit_reason"]
    assert st["epochs_done"] == 0 and of_type(evs, "epoch") == []
    last = job / "run" / "weights" / "last.pt"
    assert checkpoint_epoch(last) == -1  # partial weights, no completed epoch: loadable
    assert not (job / "run" / "results.csv").exists()

    write_job(job, "train", params, workspace, resume=True, first_event=False)
    assert run_job(job) == 0, log_tail(job)
    evs = events(job)
    assert_seq_ok(evs)
    assert "resume_restart" in {w["code"] for w in of_type(evs, "warning")}
    assert [e["epoch"] for e in of_type(evs, "epoch")] == [1, 2]
    assert status(job)["status"] == "succeeded"
    assert results_epochs(job) == [1, 2]


@pytest.mark.slow
def test_bad_dataset_fails_with_readable_error(workspace: Path) -> None:
    missing = str(workspace / "datasets" / "nope" / "data.yaml")
    job = write_job(
        workspace / "jobs" / "bad-data", "train", train_params(missing, epochs=1), workspace
    )
    assert run_job(job) == 1
    evs = events(job)
    assert_seq_ok(evs)
    error = of_type(evs, "error")[-1]
    assert missing in error["message"] and "does not exist" in error["message"]
    assert error["exception"]
    assert evs[-1]["type"] == "status" and evs[-1]["status"] == "failed"
    st = status(job)
    assert st["status"] == "failed" and st["error"] == error["message"]
    assert "Traceback" in (job / "log.txt").read_text()


@pytest.mark.slow
def test_missing_cuda_device_fails_with_readable_error(workspace: Path, data_yaml: str) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this box has a CUDA device")
    job = write_job(
        workspace / "jobs" / "no-cuda",
        "train",
        train_params(data_yaml, epochs=1, device="0"),
        workspace,
    )
    assert run_job(job) == 1
    error = of_type(events(job), "error")[-1]
    assert "device=0" in error["message"] and "device=cpu" in error["message"]
    assert status(job)["status"] == "failed"


@pytest.mark.slow
def test_broken_dataset_yaml_fails_with_ultralytics_message(workspace: Path) -> None:
    broken = workspace / "datasets" / "broken"
    broken.mkdir(parents=True, exist_ok=True)
    (broken / "data.yaml").write_text(
        f"path: {broken}\ntrain: images/train\nval: images/val\nnames:\n  0: a\n"
    )
    job = write_job(
        workspace / "jobs" / "broken-data",
        "train",
        train_params(str(broken / "data.yaml"), epochs=1),
        workspace,
    )
    assert run_job(job) == 1
    error = of_type(events(job), "error")[-1]
    assert "Dataset" in error["message"] and "\x1b[" not in error["message"]
    assert_no_guard_hits(job)


# -- predict, export, val --------------------------------------------------------------------------
@pytest.mark.slow
def test_predict_writes_predictions(workspace: Path, trained_job: Path) -> None:
    best = str(trained_job / "run" / "weights" / "best.pt")
    source = workspace / "datasets" / "tiny" / "images" / "val"
    job = write_job(
        workspace / "jobs" / "predict",
        "predict",
        {"model": best, "source": str(source), "conf": 0.0001, "imgsz": 64, "device": "cpu"},
        workspace,
    )
    assert run_job(job) == 0, log_tail(job)

    predictions = json.loads((job / "run" / "predictions.json").read_text())
    assert len(predictions) == 8
    for entry in predictions:
        assert entry["width"] == 64 and entry["height"] == 64
        for det in entry["detections"]:
            assert set(det) == {"cls", "name", "conf", "box_xyxy"} and len(det["box_xyxy"]) == 4
    evs = events(job)
    result = of_type(evs, "result")[-1]
    assert result["images"] == 8 and len(result["per_image"]) == 8
    assert result["detections"] == sum(len(p["detections"]) for p in predictions)
    kinds = {(e["path"], e["kind"]) for e in of_type(evs, "artifact")}
    assert ("run/predictions.json", "results") in kinds
    assert sum(1 for _, kind in kinds if kind == "prediction") == 8
    assert (job / "run" / "shapes_000000.jpg").exists()
    assert status(job)["status"] == "succeeded"


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", "openvino"])
def test_export(workspace: Path, trained_job: Path, fmt: str) -> None:
    best = str(trained_job / "run" / "weights" / "best.pt")
    job = write_job(
        workspace / "jobs" / f"export-{fmt}",
        "export",
        {"model": best, "format": fmt, "imgsz": 64, "device": "cpu"},
        workspace,
    )
    assert run_job(job) == 0, log_tail(job)
    result = status(job)["result"]
    exported = job / result["path"]
    assert result["path"].startswith("run/weights/") and exported.exists()
    if fmt == "onnx":
        assert exported.suffix == ".onnx"
    else:
        assert exported.is_dir() and list(exported.glob("*.xml"))
    artifacts = {(e["kind"], e["path"]) for e in of_type(events(job), "artifact")}
    assert ("export", result["path"]) in artifacts
    assert_no_guard_hits(job)


@pytest.mark.slow
def test_val_reports_metrics(workspace: Path, trained_job: Path, data_yaml: str) -> None:
    best = str(trained_job / "run" / "weights" / "best.pt")
    job = write_job(
        workspace / "jobs" / "val",
        "val",
        {"model": best, "data": data_yaml, "imgsz": 64, "batch": 8, "device": "cpu", "workers": 0},
        workspace,
    )
    assert run_job(job) == 0, log_tail(job)
    result = status(job)["result"]
    assert result["kind"] == "val"
    assert set(result["metrics"]) == {"precision", "recall", "mAP50", "mAP50-95", "fitness"}
    assert set(result["per_class_mAP50-95"]) == {"circle", "square", "triangle"}


# -- offline -------------------------------------------------------------------------------------
def _unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    try:
        done = subprocess.run(
            ["unshare", "-n", "true"], capture_output=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


@pytest.mark.slow
def test_offline_train_predict_export_without_network(workspace: Path, data_yaml: str) -> None:
    """Inside ``unshare -n`` (a network namespace without interfaces) nothing hangs or fails.

    Nothing even tries the network (the guard logs every attempt), so there is no timeout or
    retry to wait for; run_job's deadline catches a hang without timing the jobs themselves.
    """
    if not _unshare_works():
        pytest.skip("unshare -n is not available (needs root or user namespaces)")
    prefix = ["unshare", "-n"]
    train = write_job(
        workspace / "jobs" / "offline-train", "train", train_params(data_yaml, epochs=1), workspace
    )
    assert run_job(train, prefix=prefix, timeout=120) == 0, log_tail(train)
    best = str(train / "run" / "weights" / "best.pt")
    predict = write_job(
        workspace / "jobs" / "offline-predict",
        "predict",
        {
            "model": best,
            "source": str(Path(data_yaml).parent / "images" / "val"),
            "imgsz": 64,
            "device": "cpu",
        },
        workspace,
    )
    assert run_job(predict, prefix=prefix, timeout=120) == 0, log_tail(predict)
    export = write_job(
        workspace / "jobs" / "offline-export",
        "export",
        {"model": best, "format": "onnx", "imgsz": 64, "device": "cpu"},
        workspace,
    )
    assert run_job(export, prefix=prefix, timeout=120) == 0, log_tail(export)
    for job in (train, predict, export):
        assert status(job)["status"] == "succeeded"
        assert_no_guard_hits(job)
        assert "Download" not in (job / "log.txt").read_text(errors="replace")


# -- fast units (no ultralytics) -----------------------------------------------------------------
def test_job_spec_validation(tmp_path: Path) -> None:
    with pytest.raises(JobFileError, match="does not exist"):
        JobFile.load(tmp_path)
    (tmp_path / "job.json").write_text('{"kind": "dance", "workspace": "/w"}')
    with pytest.raises(JobFileError, match="kind"):
        JobFile.load(tmp_path)
    (tmp_path / "job.json").write_text('{"kind": "val", "workspace": "rel", "params": {}}')
    with pytest.raises(JobFileError, match="absolute"):
        JobFile.load(tmp_path)
    (tmp_path / "job.json").write_text('{"id": "j", "kind": "val", "workspace": "/w"}')
    spec = JobFile.load(tmp_path)
    assert spec.kind == "val" and spec.resume is False and spec.log_max_bytes > 0


def test_status_file_is_atomic_json(tmp_path: Path) -> None:
    record = StatusFile(tmp_path / "status.json")
    record.save()
    assert status(tmp_path)["status"] == "running" and status(tmp_path)["ended"] is None
    record.finish("stopped", exit_reason="stop requested (stop file)", result={"epochs_done": 1})
    data = status(tmp_path)
    assert data["status"] == "stopped" and data["ended"] and data["result"] == {"epochs_done": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["status.json"]
    with pytest.raises(ValueError):
        record.finish("running", exit_reason="x")


def test_invalid_job_dir_fails_cleanly(tmp_path: Path) -> None:
    job = tmp_path / "job"
    job.mkdir()
    (job / "job.json").write_text("{not json")
    code = run_job(job, timeout=60)
    assert code == 1
    assert status(job)["status"] == "failed"
    assert "job folder is not valid" in of_type(events(job), "error")[0]["message"]


def test_rotating_log_file(tmp_path: Path) -> None:
    log = RotatingLogFile(tmp_path / "log.txt", max_bytes=2048)
    for i in range(200):
        log.write(f"line {i:04d} ".encode() * 4 + b"\n")
    log.close()
    assert (tmp_path / "log.txt").stat().st_size <= 2048
    assert (tmp_path / "log.1.txt").stat().st_size <= 2048
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.1.txt", "log.txt"]
    assert "line 0199" in (tmp_path / "log.txt").read_text()


def test_line_tidier_collapses_progress_bars() -> None:
    tidier = _LineTidier(progress_every=3600)
    out = tidier.feed(b"\x1b[1mhello\x1b[0m\nepoch 1 10%\r\x1b[Kepoch 1 50%\r\x1b[Kepoch 1 100%\n")
    assert out == b"hello\nepoch 1 100%\n"
    assert tidier.feed(b"windows\r") == b""
    assert tidier.feed(b"\nx") == b"windows\n"
    assert tidier.flush() == b"x\n"


def test_log_capture_redirects_fds_and_children(tmp_path: Path) -> None:
    """A subprocess writing to the captured fds ends up in the rotated log."""
    code = (
        "import os, subprocess, sys\n"
        "from pathlib import Path\n"
        "from jupyter_yolo.runner.logcap import LogCapture\n"
        "cap = LogCapture(Path(sys.argv[1]), max_bytes=4096)\n"
        "cap.start()\n"
        "print('from python')\n"
        "os.write(2, b'from fd 2\\n')\n"
        "subprocess.run(['sh', '-c', 'echo from child; for i in $(seq 1000); do echo p$i; done'])\n"
        "print('the end')\n"
        "cap.stop()\n"
        "print('after stop')\n"
    )
    log = tmp_path / "log.txt"
    out = subprocess.run(
        [sys.executable, "-c", code, str(log)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.strip() == "after stop"
    text = (tmp_path / "log.1.txt").read_text() + log.read_text()
    assert "from python" in text and "from fd 2" in text and "from child" in text
    assert "the end" in log.read_text()
    assert log.stat().st_size <= 4096


def test_usable_cpus_match_the_host() -> None:
    quota = host.cgroup_cpu_quota()
    expected = len(os.sched_getaffinity(0))
    if quota is not None:
        expected = min(expected, max(1, math.ceil(quota)))
    assert usable_cpus() == expected


def test_worker_plan() -> None:
    plan = plan_workers(8, batch=16, imgsz=640, cpus=2, shm_bytes=2**40)
    assert plan.workers == 2 and [code for code, _ in plan.warnings] == ["workers_capped"]
    plan = plan_workers(4, batch=16, imgsz=640, cpus=16, shm_bytes=64 * 2**20)
    assert plan.workers == 0 and [code for code, _ in plan.warnings] == ["low_shm"]
    assert "--shm-size" in plan.warnings[0][1]
    plan = plan_workers(2, batch=8, imgsz=128, cpus=4, shm_bytes=64 * 2**20)
    assert plan.workers == 2 and plan.warnings == ()


def test_end_leftovers_ends_the_whole_session() -> None:
    """Processes left in the runner's session (even ones ignoring SIGTERM) are ended."""
    code = (
        "import subprocess, time\n"
        "from jupyter_yolo.runner.main import _session_processes, end_leftovers\n"
        "child = subprocess.Popen(['sh', '-c', 'trap \"\" TERM; sleep 60 & sleep 60'])\n"
        "def until(predicate):  # a deadline only for when it is broken\n"
        "    deadline = time.monotonic() + 60\n"
        "    while not predicate():\n"
        "        assert time.monotonic() < deadline, _session_processes()\n"
        "        time.sleep(0.05)\n"
        "until(lambda: len(_session_processes()) == 3)\n"
        "end_leftovers(grace=0.5)\n"
        "child.wait(timeout=60)\n"
        "until(lambda: _session_processes() == [])\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        start_new_session=True,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def test_exit_process_skips_only_the_teardown() -> None:
    """The runner's fast exit keeps the exit code, threads, atexit handlers and buffered output."""
    code = (
        "import atexit, concurrent.futures, sys, threading, time\n"
        "from jupyter_yolo.runner.main import exit_process\n"
        "pool = concurrent.futures.ThreadPoolExecutor(1)\n"
        "pool.submit(lambda: None).result()  # an idle non-daemon worker must not hang the exit\n"
        "atexit.register(lambda: print('atexit ran'))\n"
        "threading.Thread(target=lambda: (time.sleep(0.3), print('thread done'))).start()\n"
        "sys.stdout.write('buffered ')\n"
        "exit_process(3)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False
    )
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout.split() == ["buffered", "thread", "done", "atexit", "ran"], proc.stdout


def test_ultralytics_counts_the_usable_cpus_not_the_host() -> None:
    """select_device() resets torch to ultralytics' NUM_THREADS; the runner makes that count
    come from the CPUs the container may use (here: as if the quota gave 5 CPUs)."""
    code = (
        "import torch\n"
        "from ultralytics.utils import torch_utils\n"
        "from jupyter_yolo.runner.offline import apply_ultralytics_thread_count\n"
        "assert apply_ultralytics_thread_count(5) == 4\n"
        "assert apply_ultralytics_thread_count(1) == 1\n"
        "apply_ultralytics_thread_count(5)\n"
        "torch_utils.select_device('cpu', verbose=False)\n"
        "print(torch.get_num_threads())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "YOLO_OFFLINE": "1"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == "4"


def test_rtdetr_architectures_load_with_their_own_class(tmp_path: Path) -> None:
    """ultralytics' YOLO class cannot build an RT-DETR; the runner picks RTDETR for those."""
    from jupyter_yolo.runner.common import is_rtdetr

    assert is_rtdetr("rtdetr-l.yaml") and not is_rtdetr("yolov8n.yaml")
    code = (  # in a child: importing ultralytics patches PIL and cv2 process-wide
        "from jupyter_yolo.runner.common import load_model; "
        "m = load_model('rtdetr-l.yaml'); s = load_model('yolov8n-seg.yaml'); "
        "print(type(m).__name__, m.task, type(s).__name__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    ).stdout
    assert out.split()[-3:] == ["RTDETR", "detect", "YOLO"]
    fake = tmp_path / "best.pt"
    fake.write_bytes(b"not a zip")
    assert not is_rtdetr(fake)
