"""The contract package: pure, the one owner of job names, and the source of ``GET /yolo/tasks``."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from jupyter_yolo.contract import architectures as arch_module
from jupyter_yolo.contract.architectures import architectures, by_name, models_folder
from jupyter_yolo.contract.jobfile import JobFile, JobFileError
from jupyter_yolo.contract.status import ACTIVE, RUNNER_TERMINAL, STATUSES, TERMINAL, UNFINISHED
from jupyter_yolo.contract.tasks import (
    TASK_NAMES,
    TASKS,
    headline,
    metric_label,
    profile,
    task_from_name,
)

from .conftest import fetch_json

PACKAGE = Path(__file__).resolve().parent.parent / "jupyter_yolo"
CONTRACT = PACKAGE / "contract"


def from_ultralytics(code: str) -> Any:
    """Run ``code`` (which prints JSON) in a child: importing ultralytics patches PIL and cv2 and
    sets thread variables process-wide, which the in-process server of later tests must not see.
    """
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            prefix = "." * node.level
            found.add(prefix + (node.module or ""))
    return found


def test_contract_imports_nothing_of_the_other_parts() -> None:
    allowed_third_party = {"yaml"}
    for path in sorted(CONTRACT.glob("*.py")):
        for name in _imports(path):
            if name.startswith("."):
                assert name.count(".") == 1 or name == ".", f"{path.name} imports {name}"
                continue
            top = name.split(".")[0]
            assert top != "jupyter_yolo", f"{path.name} imports {name}"
            assert top in sys.stdlib_module_names or top in allowed_third_party, (
                f"{path.name} imports {name}: the contract is stdlib and PyYAML only"
            )


def test_no_package_imports_runner_code_except_the_runner() -> None:
    """The server side (inference, jobs, handlers) never loads runner code."""
    for part in ("inference", "jobs", "handlers", "datasets", "accelerators"):
        for path in sorted((PACKAGE / part).glob("*.py")):
            for name in _imports(path):
                assert not name.startswith("..runner"), f"{part}/{path.name} imports {name}"


def test_importing_the_contract_loads_neither_torch_nor_ultralytics() -> None:
    code = (
        "import sys, jupyter_yolo.contract.table as t; t.task_table(); "
        "print(sorted(m for m in ('torch', 'ultralytics', 'tornado', 'cv2') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_statuses_are_consistent() -> None:
    assert set(RUNNER_TERMINAL) < TERMINAL <= set(STATUSES)
    assert ACTIVE < UNFINISHED and not UNFINISHED & TERMINAL
    assert set(STATUSES) == UNFINISHED | TERMINAL


def test_task_table_covers_ultralytics_tasks() -> None:
    """Every task ultralytics 8.4 defines has a profile, with that version's headline metric."""
    found = from_ultralytics(
        "import json; from ultralytics.cfg import TASK2METRIC, TASKS; "
        "print(json.dumps({'tasks': list(TASKS), 'metric': TASK2METRIC}))"
    )
    assert set(TASK_NAMES) == set(found["tasks"])
    for task in TASK_NAMES:
        assert headline(task) == found["metric"][task]
        assert headline(task) in profile(task).metric_keys
        assert {"names"} <= set(profile(task).required_keys)
    assert "kpt_shape" in profile("pose").required_keys
    with pytest.raises(KeyError, match="known"):
        profile("dance")


def test_metric_keys_are_ultralytics_own() -> None:
    """The metric keys of each task are the keys ultralytics' metrics classes report."""
    keys = from_ultralytics(
        "import json; from ultralytics.utils import metrics as m; print(json.dumps({"
        "'detect': m.DetMetrics().keys, 'segment': m.SegmentMetrics().keys, "
        "'pose': m.PoseMetrics().keys, 'obb': m.OBBMetrics().keys, "
        "'classify': m.ClassifyMetrics().keys}))"
    )
    for task, listed in keys.items():
        assert list(profile(task).metric_keys) == listed, task


def test_task_from_name() -> None:
    cases = {
        "yolov8n.yaml": "detect",
        "yolov8n-seg.yaml": "segment",
        "yolov8n-seg-p6.yaml": "segment",
        "yolo11n-pose.pt": "pose",
        "yolo26n-cls.yaml": "classify",
        "yolov8n-obb_openvino_model": "obb",
        "weights/yolo26n-sem.pt": "semantic",
        "yolo26n-depth.onnx": "depth",
        "best.pt": "detect",
        "my-segmenter.pt": "detect",
    }
    assert {name: task_from_name(name) for name in cases} == cases


def test_metric_labels() -> None:
    assert metric_label("metrics/mAP50-95(M)") == "mask mAP50-95"
    assert metric_label("metrics/mAP50(P)") == "pose mAP50"
    assert metric_label("metrics/accuracy_top1") == "accuracy top1"


def test_architectures_come_from_the_installed_ultralytics() -> None:
    folder = models_folder()
    assert folder is not None and (folder / "v8" / "yolov8.yaml").is_file()
    listed = by_name()
    for name, task in {
        "yolov8n.yaml": "detect",
        "yolov8n-seg.yaml": "segment",
        "yolo11n-pose.yaml": "pose",
        "yolo26n-cls.yaml": "classify",
        "yolo12x-obb.yaml": "obb",
        "yolo26n-sem.yaml": "semantic",
        "yolo26n-depth.yaml": "depth",
        "rtdetr-l.yaml": "detect",
    }.items():
        assert listed[name].task == task, name
    assert {arch.task for arch in architectures()} == set(TASK_NAMES)
    # every listed file exists and ultralytics agrees on its task
    files = sorted({arch.file for arch in architectures()})
    guessed = from_ultralytics(
        "import json, sys, yaml; from pathlib import Path; "
        "from ultralytics.nn.tasks import guess_model_task; "
        f"root = Path({str(folder)!r}); files = {files!r}; "
        "print(json.dumps({f: guess_model_task(yaml.safe_load((root / f).read_text())) "
        "for f in files}))"
    )
    for arch in architectures():
        # RT-DETR heads are not guessed by ultralytics (its RTDETR class is detection)
        assert (guessed[arch.file] or "detect") == arch.task, arch
    assert not any("yoloe" in a.name or "world" in a.name for a in architectures())


def test_architectures_follow_a_changed_installation(tmp_path: Path) -> None:
    """A model file added to (or removed from) cfg/models shows up without a code change."""
    folder = tmp_path / "cfg" / "models"
    (folder / "v8").mkdir(parents=True)
    head = {"head": [[[15, 18, 21], 1, "Pose", ["nc", "kpt_shape"]]], "scales": {"n": [], "s": []}}
    (folder / "v8" / "yolov8-pose.yaml").write_text(yaml.safe_dump(head), encoding="utf-8")
    (folder / "v8" / "yolov8-broken.yaml").write_text("{not: [yaml", encoding="utf-8")
    found = arch_module._read(str(folder))
    assert [(a.name, a.task, a.scale) for a in found] == [
        ("yolov8n-pose.yaml", "pose", "n"),
        ("yolov8s-pose.yaml", "pose", "s"),
    ]


def test_job_file_round_trip_and_refusals(tmp_path: Path) -> None:
    job = JobFile(
        id="abc",
        kind="train",
        task="pose",
        params={"epochs": 1},
        workspace=tmp_path,
        devices=("cpu",),
    )
    job.write(tmp_path)
    assert oct((tmp_path / "job.json").stat().st_mode & 0o777) == "0o600"
    assert JobFile.load(tmp_path) == job
    raw = json.loads((tmp_path / "job.json").read_text())
    raw["task"] = "dance"
    (tmp_path / "job.json").write_text(json.dumps(raw))
    with pytest.raises(JobFileError, match="task 'dance'"):
        JobFile.load(tmp_path)
    del raw["task"]
    (tmp_path / "job.json").write_text(json.dumps(raw))
    assert JobFile.load(tmp_path).task == "detect"  # a job written before tasks existed


async def test_tasks_endpoint_serves_the_table(jp_fetch: Any) -> None:
    table = await fetch_json(jp_fetch, "yolo", "tasks")
    assert [t["name"] for t in table["tasks"]] == list(TASK_NAMES)
    by_task = {t["name"]: t for t in table["tasks"]}
    for name, row in TASKS.items():
        assert by_task[name]["headline_metric"] == row.headline_metric
        assert by_task[name]["metric_keys"] == list(row.metric_keys)
        assert by_task[name]["geometry"] == row.geometry
    names = {a["name"]: a["task"] for a in table["architectures"]}
    assert names["yolov8n-seg.yaml"] == "segment" and names["yolo11n-pose.yaml"] == "pose"
    assert table["default"] == "detect"
    assert table["ultralytics"].startswith("8.4")


async def test_tasks_endpoint_needs_authentication(jp_fetch: Any) -> None:
    from tornado.httpclient import HTTPClientError

    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("yolo", "tasks", headers={"Authorization": "token nope"})
    assert info.value.code == 403


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"devices": [1, 2]}, "devices that are not text"),
        ({"devices": "cpu"}, "'devices' that is not a JSON list"),
        ({"request": "x"}, "'request' that is not a JSON object"),
        ({"params": [1]}, "'params' that is not a JSON object"),
        ({"name": "\ud800"}, "name that is not plain text"),
        ({"name": "a\x00b"}, "name that is not plain text"),
        ({"name": "x" * 1025}, "name that is not plain text"),
        ({"name": 7}, "name that is not plain text"),
        ({"kind": "teleport"}, "job kind 'teleport'"),
    ],
)
def test_job_file_rules_are_the_adoption_rules(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    """The server adopts a job folder by the same rules the runner reads job.json with."""
    from jupyter_yolo.contract.jobfile import JobFile, JobFileError, problem_of

    good = {
        "id": "0123456789ab",
        "kind": "train",
        "name": "ok",
        "params": {},
        "request": {},
        "devices": ["cpu"],
        "workspace": str(tmp_path),
    }
    assert problem_of(good) is None
    bad = {**good, **change}
    assert message in (problem_of(bad) or "")
    (tmp_path / "job.json").write_text(json.dumps(bad))
    with pytest.raises(JobFileError, match=r"^its job\.json "):
        JobFile.load(tmp_path, shown="its job.json")


def test_a_job_file_without_its_workspace_is_adopted_into_this_one(tmp_path: Path) -> None:
    """A folder restored from elsewhere (or written by an older version) keeps its job."""
    (tmp_path / "job.json").write_text(json.dumps({"kind": "train", "params": {}}))
    with pytest.raises(JobFileError, match="workspace"):
        JobFile.load(tmp_path)
    job = JobFile.load(tmp_path, workspace=tmp_path)
    assert job.workspace == tmp_path and job.kind == "train"
