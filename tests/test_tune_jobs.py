"""Tune jobs (issue 16): validation, a local evolution, stop, and parallel trials on Ray."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any, cast

import pytest

from jupyter_yolo.contract.tune import TRIALS_FILE
from jupyter_yolo.jobs.process import session_members

from .conftest import all_events, expect_error, fetch_json, post_json, wait_for_job

TRAIN = {
    "model": "yolov8n.yaml",
    "epochs": 7,
    "imgsz": 64,
    "batch": 8,
    "device": "cpu",
    "workers": 0,
    "plots": False,
}
SPACE = {"lr0": [0.001, 0.02], "momentum": [0.7, 0.95]}


def tune_body(data: str, **extra: Any) -> dict[str, Any]:
    """A 4 x 2 tune request over the tiny shapes dataset."""
    return {
        "kind": "tune",
        "train": {**TRAIN, "data": data},
        "space": SPACE,
        "iterations": 4,
        "epochs": 2,
        **extra,
    }


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"train": None}, "needs 'train'"),
        ({"train": "shapes"}, "needs 'train'"),
        ({"colour": "red"}, "Unknown key(s) for a tune job: colour"),
        ({"iterations": 0}, "'iterations' must be from 1 to 200"),
        ({"iterations": 201}, "'iterations' must be from 1 to 200"),
        ({"iterations": "4"}, "'iterations' must be an integer"),
        ({"iterations": True}, "'iterations' must be an integer"),
        ({"epochs": 0}, "'epochs' must be from 1 to 1000"),
        ({"space": {"lr0": [0.02, 0.001]}}, "low (0.02) must be less than high"),
        ({"space": {"lr0": [0.001, 0.5]}}, "'space.lr0' must lie within [1e-05, 0.1]"),
        ({"space": {"lr0": [0.001]}}, "'space.lr0' must be [low, high]"),
        ({"space": {"lr0": ["a", 1]}}, "bounds must be numbers"),
        ({"space": {"imgsz": [32, 64]}}, "cannot search 'imgsz'"),
        ({"space": {}}, "'space' must be an object"),
        ({"space": [1, 2]}, "'space' must be an object"),
    ],
)
async def test_bad_tune_requests_get_400_and_create_nothing(
    jp_fetch: Any, shapes_dataset: str, yolo_workspace: Path, change: dict[str, Any], fragment: str
) -> None:
    body = {**tune_body(shapes_dataset), **change}
    if change.get("train", 0) is None:
        del body["train"]
    error = await expect_error(jp_fetch, 400, "yolo", "jobs", method="POST", body=json.dumps(body))
    assert fragment in error["message"], error["message"]
    assert list((yolo_workspace / "jobs").iterdir()) == []


@pytest.mark.parametrize(
    ("train", "fragment"),
    [
        ({"epochs": -1}, "'train': 'epochs' must be at least 1"),
        ({"imgsz": 50}, "'train': 'imgsz'"),
        ({"data": "nothing"}, "'train': There is no dataset named 'nothing'"),
        ({"model": "yolov8n.pt"}, "'train': Weights 'yolov8n.pt' are not in the workspace"),
        ({"kind": "val"}, "'train' must be a training request"),
        ({"colour": "red"}, "'train': Unknown key(s) for a train job: colour"),
        ({"device": "0,1"}, "'train.device' is '0,1': a tune runs each trial on one device"),
        ({"device": "2, 3"}, "use device 0, or several trials in parallel on Ray"),
    ],
)
async def test_the_base_request_is_validated_as_a_training(
    jp_fetch: Any, shapes_dataset: str, train: dict[str, Any], fragment: str
) -> None:
    body = tune_body(shapes_dataset)
    body["train"] = {**body["train"], **train}
    error = await expect_error(jp_fetch, 400, "yolo", "jobs", method="POST", body=json.dumps(body))
    assert fragment in error["message"], error["message"]


def check_contiguous(events: list[dict[str, Any]]) -> None:
    """Every event's seq follows the previous one's."""
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs


def trial_spans(events: list[dict[str, Any]]) -> dict[int, tuple[float, float]]:
    """Each trial's (start, end) time from its first and terminal ``trial`` events."""
    starts: dict[int, float] = {}
    ends: dict[int, float] = {}
    for event in events:
        if event["type"] != "trial":
            continue
        if event["status"] == "running" and "params" in event:
            starts[event["trial"]] = event["time"]
        elif event["status"] != "running":
            ends[event["trial"]] = event["time"]
    return {t: (starts[t], ends[t]) for t in starts if t in ends}


def check_table(
    job: dict[str, Any],
    events: list[dict[str, Any]],
    workspace: Path,
    space: dict[str, list[float]] = SPACE,
) -> None:
    """A finished 4 x 2 tune: four trials, a best, a best_request, the file and the events."""
    result = job["result"]
    assert result["metric"] == "metrics/mAP50-95(B)"
    trials = result["trials"]
    assert [t["trial"] for t in trials] == [1, 2, 3, 4]
    for trial in trials:
        assert set(trial["params"]) == set(space)
        for name, (low, high) in space.items():
            assert low <= trial["params"][name] <= high
    finished = [t for t in trials if t["status"] == "succeeded"]
    assert finished, trials
    for trial in finished:
        assert trial["epochs_done"] == 2
        assert len(trial["history"]) == 2
    best = result["best"]
    assert best is not None and best["trial"] in {t["trial"] for t in trials}
    request = result["best_request"]
    assert request["kind"] == "train" and request["epochs"] == TRAIN["epochs"]
    assert {k: request[k] for k in SPACE} == best["params"]
    saved = json.loads((workspace / "jobs" / job["id"] / TRIALS_FILE).read_text())
    assert saved["trials"] == trials
    check_contiguous(events)
    kinds = {e["type"] for e in events}
    assert "trial" in kinds and "batch" not in kinds and "epoch" not in kinds
    epoch_events = [e for e in events if e["type"] == "trial" and "epoch" in e]
    assert {e["trial"] for e in epoch_events} == {1, 2, 3, 4}


@pytest.fixture(scope="module")
def trained_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's plateau-trained detector (tests/inference_models.py), trained once."""
    from .inference_models import trained_model

    return trained_model(tmp_path_factory.getbasetemp()).weights


@pytest.mark.slow
async def test_local_tune_finds_a_best_that_trains(
    jp_fetch: Any, shapes_dataset: str, yolo_workspace: Path, trained_weights: Path
) -> None:
    # from a trained detector (from scratch, 2 epochs at imgsz 64 score mAP 0 in every trial and
    # the best is a tie broken by order): no warm-up, a wide lr range, so the trials' scores
    # differ and the best must be the one with the highest metric. No optimizer named: the
    # server makes it SGD (ultralytics' auto ignores lr0 and momentum: every trial scored alike)
    (yolo_workspace / "weights").mkdir(parents=True, exist_ok=True)
    shutil.copy2(trained_weights, yolo_workspace / "weights" / "shapes-trained.pt")
    space = {"lr0": [0.0002, 0.05], "momentum": [0.6, 0.95]}
    body = tune_body(shapes_dataset, space=space)
    # nbs 8 = batch: an optimizer step per batch (nbs 64 accumulates 8 batches, more than an
    # epoch of 4: the first epoch took no step and scored the starting weights in every trial)
    body["train"].update(model="shapes-trained.pt", imgsz=128, warmup_epochs=0, nbs=8)
    job = await post_json(jp_fetch, "yolo", "jobs", body=body)
    assert job["kind"] == "tune"
    final = await wait_for_job(jp_fetch, job["id"], {"succeeded", "failed", "stopped"}, 400)
    assert final["status"] == "succeeded", final
    events = await all_events(jp_fetch, job["id"])
    check_table(final, events, yolo_workspace, space)
    result = final["result"]
    assert job["request"]["train"]["optimizer"] == "SGD"
    assert result["best_request"]["optimizer"] == "SGD"
    scores = {
        t["trial"]: t["metrics"][result["metric"]]
        for t in result["trials"]
        if t["status"] == "succeeded"
    }
    print("local tune: trial scores", scores)
    assert len(set(scores.values())) > 1, scores  # no tie everywhere: the choice is real
    assert scores[result["best"]["trial"]] == max(scores.values()), (result["best"], scores)
    assert final["result"]["executor"] == "local"
    progress = final["progress"]
    assert progress["fraction"] == 1.0
    assert (progress["media"]["done"], progress["media"]["total"]) == (4, 4)
    spans = sorted(trial_spans(events).values())
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))  # one at a time
    print("local tune: wall", round(final["ended"] - final["started"], 1))
    assert (yolo_workspace / "jobs" / job["id"] / "run" / "weights" / "best.pt").is_file()
    results = await fetch_json(jp_fetch, "yolo", "jobs", job["id"], "results")
    assert results["tune"]["trials"] == final["result"]["trials"]
    # the best request is a valid training request: it is accepted (and stopped at once)
    again = await post_json(jp_fetch, "yolo", "jobs", body=final["result"]["best_request"])
    assert again["kind"] == "train"
    await post_json(jp_fetch, "yolo", "jobs", again["id"], "stop", body={})
    await wait_for_job(jp_fetch, again["id"], {"stopped", "succeeded", "failed"})


@pytest.mark.slow
async def test_stop_mid_tune_ends_stopped_with_no_process_left(
    jp_fetch: Any, shapes_dataset: str, yolo_workspace: Path
) -> None:
    body = tune_body(shapes_dataset, iterations=20, epochs=5)
    job = await post_json(jp_fetch, "yolo", "jobs", body=body)
    deadline = asyncio.get_running_loop().time() + 300
    while True:  # stop once the second trial has started
        events = await all_events(jp_fetch, job["id"])
        if any(e["type"] == "trial" and e["trial"] == 2 for e in events):
            break
        assert asyncio.get_running_loop().time() < deadline, events[-5:]
        await asyncio.sleep(0.3)
    status = json.loads((yolo_workspace / "jobs" / job["id"] / "status.json").read_text())
    pid = int(status["pid"])
    await post_json(jp_fetch, "yolo", "jobs", job["id"], "stop", body={})
    final = await wait_for_job(jp_fetch, job["id"], {"succeeded", "failed", "stopped"}, 120)
    assert final["status"] == "stopped", final
    assert session_members(pid) == []
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    result = final["result"]
    statuses = [t["status"] for t in result["trials"]]
    assert statuses[0] == "succeeded" and statuses[-1] == "stopped", statuses
    assert len(statuses) < 20
    events = await all_events(jp_fetch, job["id"])
    check_contiguous(events)
    assert final["actions"] == {"stop": False, "resume": False}
    error = await expect_error(
        jp_fetch, 409, "yolo", "jobs", job["id"], "resume", method="POST", body="{}"
    )
    assert "tune" in error["message"]


# ---------------------------------------------------------------------------------- on Ray


@pytest.fixture
def yolo_config(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The server's settings: executor=ray at the session's cluster for the tests on Ray."""
    if "ray_cluster" not in request.fixturenames:
        return {}
    cluster = request.getfixturevalue("ray_cluster")
    return {"executor": "ray", "ray_address": cluster.address, "ray_python": sys.executable}


@pytest.mark.slow
async def test_ray_tune_runs_trials_in_parallel(
    ray_cluster: Any, jp_fetch: Any, shapes_dataset: str, yolo_workspace: Path
) -> None:
    job = await post_json(jp_fetch, "yolo", "jobs", body=tune_body(shapes_dataset))
    assert job["request"]["executor"] == "ray"
    final = await wait_for_job(jp_fetch, job["id"], {"succeeded", "failed", "stopped"}, 600)
    if final["status"] != "succeeded":
        log = (await jp_fetch("yolo", "jobs", job["id"], "log")).body.decode()[-4000:]
        raise AssertionError(f"{final}\n{log}")
    events = await all_events(jp_fetch, job["id"])
    result = final["result"]
    assert result["executor"] == "ray"
    assert [t["trial"] for t in result["trials"]] == [1, 2, 3, 4]
    assert {t["status"] for t in result["trials"]} <= {"succeeded", "pruned"}
    assert result["best"] is not None
    assert result["best_request"]["executor"] == "ray"
    check_contiguous(events)
    spans = sorted(trial_spans(events).values())
    assert len(spans) == 4
    overlapping = [
        (a, b) for a, b in itertools.combinations(spans, 2) if a[0] < b[1] and b[0] < a[1]
    ]
    assert overlapping, spans  # at least two trials ran at the same time
    print(  # the figures for a report (pytest -rP)
        "ray tune:",
        [(t["trial"], t["status"], t["epochs_done"]) for t in result["trials"]],
        "spans:",
        [(round(a - spans[0][0], 1), round(b - spans[0][0], 1)) for a, b in spans],
        "wall:",
        round(final["ended"] - final["started"], 1),
    )
    results = await fetch_json(jp_fetch, "yolo", "jobs", job["id"], "results")
    assert results["tune"]["trials"] == result["trials"]


def test_openapi_describes_the_tune_request_and_table() -> None:
    import jsonschema

    from jupyter_yolo.openapi import build_spec

    spec = build_spec()
    schemas = spec["components"]["schemas"]
    request = schemas["TuneJobRequest"]
    jsonschema.validate(tune_body("shapes"), request)
    for bad in (
        {**tune_body("shapes"), "iterations": 0},
        {**tune_body("shapes"), "space": {"imgsz": [32, 64]}},
        {**tune_body("shapes"), "space": {"lr0": [0.001, 0.5]}},
        {**tune_body("shapes"), "train": {**TRAIN, "data": "shapes", "colour": 1}},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, request)
    body = spec["paths"]["/yolo/jobs"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["discriminator"]["mapping"]["tune"].endswith("/TuneJobRequest")
    assert schemas["RunResults"]["properties"]["tune"]["$ref"].endswith("/TuneResult")
    assert set(schemas["TrialRecord"]["properties"]["status"]["enum"]) == {
        "running",
        "succeeded",
        "failed",
        "stopped",
        "pruned",
    }


def test_trial_resources_share_the_free_cpus() -> None:
    from jupyter_yolo.runner.tune_ray import trial_cpus, trial_gpus

    assert trial_cpus(1.0, 4) == (0.5, 2)  # two at once even on one free CPU
    assert trial_cpus(2.0, 4) == (1.0, 2)
    assert trial_cpus(8.0, 4) == (1.0, 4)
    assert trial_cpus(3.0, 1) == (1.0, 1)
    assert trial_cpus(0.0, 4) == (0.25, 2)
    assert (trial_gpus("cpu"), trial_gpus(None), trial_gpus("0"), trial_gpus("0,1")) == (0, 0, 1, 2)


@pytest.mark.parametrize(
    ("optimizer", "space", "expected"),
    [
        (None, {"lr0": [0.001, 0.01]}, "SGD"),
        ("auto", {"momentum": [0.7, 0.9]}, "SGD"),
        ("AdamW", {"lr0": [0.001, 0.01]}, "AdamW"),  # the person's choice is kept
        (None, {"weight_decay": [0.0, 0.001]}, None),  # auto does not ignore this one
    ],
)
def test_a_tune_of_lr0_or_momentum_trains_with_sgd_not_auto(
    optimizer: str | None, space: dict[str, list[float]], expected: str | None
) -> None:
    """ultralytics' optimizer=auto ignores lr0 and momentum: every trial would train alike."""
    from jupyter_yolo.errors import InvalidRequest
    from jupyter_yolo.jobs.tune_schema import validate_tune

    seen: list[dict[str, Any]] = []

    class Recorder:  # what validate_tune hands to the training validator
        def validate(self, body: dict[str, Any]) -> Any:
            seen.append(body)
            raise InvalidRequest("recorded")

    train: dict[str, Any] = {"model": "yolov8n.yaml", "data": "shapes"}
    if optimizer is not None:
        train["optimizer"] = optimizer
    body = {"kind": "tune", "train": train, "space": space, "iterations": 2, "epochs": 1}
    with pytest.raises(InvalidRequest, match="recorded"):
        validate_tune(cast(Any, Recorder()), body)
    assert seen[0].get("optimizer") == expected


def test_the_best_request_keeps_the_tunes_placement() -> None:
    """ "Train with the best" on Ray lands on the same kind of node as the tune's trials."""
    from types import SimpleNamespace

    from jupyter_yolo.runner.tune import base_train_request

    placement = {"executor": "ray", "resources": {"gpu_a100": 1}, "accelerator_type": "A100"}
    train = {"model": "yolov8n.yaml", "data": "shapes", "device": "0"}
    request = {"kind": "tune", "train": train, **placement}
    ctx: Any = SimpleNamespace(spec=SimpleNamespace(request=request))
    assert base_train_request(ctx) == {**train, **placement}
    own = {**train, "executor": "local"}  # the base request's own choice wins
    ctx.spec.request = {"kind": "tune", "train": own, "executor": "ray"}
    assert base_train_request(ctx) == own


def test_the_table_is_rebuilt_from_trial_events(tmp_path: Path) -> None:
    """A runner that died before writing trials.json: the results rebuild the table."""
    from jupyter_yolo.jobs.tune_results import tune_table

    metric = "metrics/mAP50-95(B)"
    lines = [
        {"type": "status", "status": "running"},
        {"type": "trial", "trial": 1, "status": "running", "params": {"lr0": 0.01}, "epochs": 2},
        {"type": "trial", "trial": 1, "status": "running", "epoch": 1, "metrics": {metric: 0.1}},
        {"type": "trial", "trial": 2, "status": "running", "params": {"lr0": 0.02}, "epochs": 2},
        {"type": "trial", "trial": 1, "status": "running", "epoch": 2, "metrics": {metric: 0.2}},
        {"type": "trial", "trial": 1, "status": "succeeded", "epoch": 2, "metrics": {metric: 0.2}},
        {"type": "trial", "trial": 2, "status": "failed", "error": "boom"},
    ]
    text = "".join(json.dumps({"seq": i + 1, "time": 1.0, **e}) + "\n" for i, e in enumerate(lines))
    (tmp_path / "events.jsonl").write_text(text + '{"seq": 8, "type": "tri')  # a torn last line
    params = {"tune": {"space": {"lr0": [0.001, 0.02]}, "iterations": 4, "epochs": 2}}
    table = tune_table(tmp_path, "detect", params, None)
    assert table["space"] == {"lr0": [0.001, 0.02]}
    one, two = table["trials"]
    assert (one["status"], one["epochs_done"], one["history"]) == ("succeeded", 2, [0.1, 0.2])
    assert (two["status"], two["error"], two["params"]) == ("failed", "boom", {"lr0": 0.02})
    assert table["executor"] == "local"
    assert tune_table(tmp_path, "detect", params, None, "ray")["executor"] == "ray"  # the job's
    (tmp_path / TRIALS_FILE).write_text(json.dumps({**table, "executor": "from-file"}))
    assert tune_table(tmp_path, "detect", params, None)["executor"] == "from-file"
    ended = {**table, "executor": "from-result"}
    assert tune_table(tmp_path, "detect", params, dict(ended))["executor"] == "from-result"


@pytest.mark.slow
async def test_stop_on_ray_stops_every_trial(
    ray_cluster: Any, jp_fetch: Any, shapes_dataset: str, yolo_workspace: Path
) -> None:
    body = tune_body(shapes_dataset, iterations=6, epochs=30)
    job = await post_json(jp_fetch, "yolo", "jobs", body=body)
    deadline = asyncio.get_running_loop().time() + 300
    while True:  # stop once two trials have reported an epoch
        events = await all_events(jp_fetch, job["id"])
        reported = {e["trial"] for e in events if e["type"] == "trial" and e.get("epoch")}
        if len(reported) >= 2:
            break
        assert asyncio.get_running_loop().time() < deadline, events[-5:]
        await asyncio.sleep(0.5)
    await post_json(jp_fetch, "yolo", "jobs", job["id"], "stop", body={})
    final = await wait_for_job(jp_fetch, job["id"], {"succeeded", "failed", "stopped"}, 300)
    assert final["status"] == "stopped", final
    statuses = {t["trial"]: t["status"] for t in final["result"]["trials"]}
    assert "running" not in statuses.values(), statuses
    assert list(statuses.values()).count("stopped") >= 2, statuses
    check_contiguous(await all_events(jp_fetch, job["id"]))
    folder = yolo_workspace / "jobs" / job["id"]
    saved = json.loads((folder / TRIALS_FILE).read_text())
    assert [t["status"] for t in saved["trials"]] == list(statuses.values())
    print("ray stop:", statuses, "wall:", round(final["ended"] - final["started"], 1))
