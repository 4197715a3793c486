"""Start-up is unbreakable on the dataset side (issue 12, section 2).

A corrupt, foreign, half-written or unreadable entry of ``datasets/`` is reported (a dataset with
errors in its report, or a line in the listing's ``warnings`` and the log) and never stops the
extension from loading or the other datasets from being listed. Each poisoned state is put in
place before a server starts on the workspace; the last test also restarts a real server process.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
import urllib.error
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from jupyter_yolo.datasets.store import DATASET_NAME
from jupyter_yolo.datasets.validate import REPORT_VERSION, fingerprint

from .conftest import fetch_json
from .route_check import assert_routes_answer, assert_routes_answer_async, jp_fetch_request
from .server_process import serving

Poison = Callable[[Path, Path, Path], None]  # (datasets folder, shapes template, outside folder)


def _copy(template: Path, dest: Path) -> Path:
    """A copy of the shapes dataset whose data.yaml has no 'path', so the folder can move."""
    shutil.copytree(template, dest)
    for split, keep in (("train", 4), ("val", 2)):  # small, so that checking it is quick
        for image in sorted((dest / "images" / split).glob("*.jpg"))[keep:]:
            image.unlink()
            (dest / "labels" / split / f"{image.stem}.txt").unlink()
    text = (dest / "data.yaml").read_text()
    (dest / "data.yaml").write_text(
        "".join(line for line in text.splitlines(True) if not line.startswith("path:"))
    )
    return dest


def garbage_yaml(datasets: Path, template: Path, outside: Path) -> None:
    _copy(template, datasets / "bad")
    (datasets / "bad" / "data.yaml").write_bytes(b"\x00\xff names: [ unclosed\n")


def no_yaml(datasets: Path, template: Path, outside: Path) -> None:
    _copy(template, datasets / "bad")
    (datasets / "bad" / "data.yaml").unlink()


def yaml_is_a_folder(datasets: Path, template: Path, outside: Path) -> None:
    _copy(template, datasets / "bad")
    (datasets / "bad" / "data.yaml").unlink()
    (datasets / "bad" / "data.yaml").mkdir()


def yaml_with_aliases(datasets: Path, template: Path, outside: Path) -> None:
    _copy(template, datasets / "bad")
    laughs = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol"]']
    laughs += [
        f"{n}: &{n} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]"
        for p, n in zip("abcdef", "bcdefg", strict=True)
    ]
    (datasets / "bad" / "data.yaml").write_text("\n".join([*laughs, "nc: [*g,*g,*g]", ""]))


def half_written(datasets: Path, template: Path, outside: Path) -> None:
    bad = _copy(template, datasets / "bad")
    text = (bad / "data.yaml").read_text()
    (bad / "data.yaml").write_text(text[: len(text) // 2])
    label = next((bad / "labels" / "train").glob("*.txt"))
    label.write_text(label.read_text()[:7])
    image = next((bad / "images" / "val").glob("*.jpg"))
    image.write_bytes(image.read_bytes()[:100])
    stale = datasets.parent / ".tmp" / "ds-0123456789abcdef" / "raw"
    stale.mkdir(parents=True)


def damaged_caches(datasets: Path, template: Path, outside: Path) -> None:
    """report.json and meta.json that are garbage, nested too deep, or well-formed but wrong."""
    for name, raw_report, meta in (
        ("bad", b"{\x00 not json", b"[" * 100_000),
        (
            "bad2",
            b"[" * 100_000 + b"]" * 100_000,
            b'{"notes": "x", "import_problems": [1, "a"], "created": "yesterday", "format": 7}',
        ),
        ("bad3", None, b'{"notes": [1, {"a": 2}], "import_problems": {"a": 1}}'),
        ("bad4", b"", b'{"format": "evil", "source": "x", "notes": ["a note"]}'),
    ):
        folder = _copy(template, datasets / name)
        report = raw_report
        if report == b"":  # right types, but values the API cannot promise
            report = json.dumps(
                {
                    "version": REPORT_VERSION,
                    "fingerprint": fingerprint(folder),
                    "status": "pwned",
                    **dict.fromkeys(("errors", "warnings", "classes", "images", "instances"), 0),
                    "splits": {},
                    "problems": [{"severity": "fatal", "code": "x", "message": "y"}],
                }
            ).encode()
        elif report is None:  # well-formed, current fingerprint, fields of the wrong types
            report = json.dumps(
                {
                    "version": REPORT_VERSION,
                    "fingerprint": fingerprint(folder),
                    "status": 5,
                    "errors": "none",
                    "problems": "x",
                }
            ).encode()
        (folder / "report.json").write_bytes(report)
        (folder / "meta.json").write_bytes(meta)


def file_instead_of_folder(datasets: Path, template: Path, outside: Path) -> None:
    (datasets / "bad").write_text("not a folder")
    bad2 = _copy(template, datasets / "bad2")
    shutil.rmtree(bad2 / "images" / "train")
    (bad2 / "images" / "train").write_text("not a folder either")


def link_outside(datasets: Path, template: Path, outside: Path) -> None:
    _copy(template, outside / "elsewhere")
    (datasets / "bad").symlink_to(outside / "elsewhere")
    bad2 = _copy(template, datasets / "bad2")
    (bad2 / "data.yaml").unlink()
    (bad2 / "data.yaml").symlink_to(outside / "elsewhere" / "data.yaml")
    (bad2 / "images" / "val" / "outside.jpg").symlink_to(
        next((outside / "elsewhere" / "images" / "val").glob("*.jpg"))
    )


def foreign_names(datasets: Path, template: Path, outside: Path) -> None:
    _copy(template, datasets / "bad name")
    (datasets / os.fsdecode(b"bad\xff")).mkdir()
    (datasets / ("x" * 100)).mkdir()
    bad = _copy(template, datasets / "bad")
    image = next((bad / "images" / "val").glob("*.jpg"))
    image.rename(image.parent / os.fsdecode(b"\xff\xfe.jpg"))  # not UTF-8 on disk


def unreadable(datasets: Path, template: Path, outside: Path) -> None:
    bad = _copy(template, datasets / "bad")
    (bad / "labels" / "train").chmod(0)
    (bad / "data.yaml").chmod(0)
    bad2 = _copy(template, datasets / "bad2")
    bad2.chmod(0)


# name: (poison, datasets listed besides 'good' with their status, warnings expected)
CASES: dict[str, tuple[Poison, dict[str, str], int]] = {
    "garbage_yaml": (garbage_yaml, {"bad": "has_errors"}, 0),
    "no_yaml": (no_yaml, {"bad": "has_errors"}, 0),
    "yaml_is_a_folder": (yaml_is_a_folder, {"bad": "has_errors"}, 0),
    "yaml_with_aliases": (yaml_with_aliases, {"bad": "has_errors"}, 0),
    "half_written": (half_written, {"bad": "has_errors"}, 0),
    "damaged_caches": (
        damaged_caches,
        {"bad": "ok", "bad2": "ok", "bad3": "ok", "bad4": "ok"},
        0,
    ),
    "file_instead_of_folder": (file_instead_of_folder, {"bad2": "has_errors"}, 1),
    "link_outside": (link_outside, {"bad2": "has_errors"}, 1),
    "foreign_names": (foreign_names, {"bad": "ok"}, 3),
    "unreadable": (unreadable, {"bad": "has_errors", "bad2": "has_errors"}, 0),
}


@pytest.fixture(params=sorted(CASES))
def poisoned(
    request: pytest.FixtureRequest, yolo_workspace: Path, shapes_template: Path, tmp_path: Path
) -> tuple[str, dict[str, str], int]:
    """The workspace with a good dataset and one poisoned state, before the server starts."""
    name: str = request.param
    if name == "unreadable" and os.geteuid() == 0:
        pytest.skip("permissions do not stop root")
    poison, listed, warnings = CASES[name]
    datasets = yolo_workspace / "datasets"
    datasets.mkdir()
    _copy(shapes_template, datasets / "good")
    outside = tmp_path / "outside"
    outside.mkdir()
    poison(datasets, shapes_template, outside)
    return name, listed, warnings


async def test_poisoned_dataset_folders_do_not_break_start_or_listing(
    poisoned: tuple[str, dict[str, str], int], jp_fetch: Any
) -> None:
    _name, listed, warnings = poisoned
    answers = await assert_routes_answer_async(jp_fetch_request(jp_fetch))
    listing = answers["/yolo/datasets"]
    assert {d["name"]: d["status"] for d in listing["datasets"]} == {"good": "ok", **listed}
    assert {d["format"] for d in listing["datasets"]} <= {"yolo", "coco", "voc"}
    assert len(listing["warnings"]) == warnings, listing["warnings"]
    for warning in listing["warnings"]:
        assert warning.startswith("datasets/") and len(warning) < 300
    for name in listed:
        dataset = await fetch_json(jp_fetch, "yolo", "datasets", name)
        assert len(json.dumps(dataset)) < 64 * 1024
        for problem in dataset["report"]["problems"]:
            assert len(problem["message"]) < 400
        if dataset["status"] == "ok":
            samples = await fetch_json(
                jp_fetch,
                "yolo",
                "datasets",
                name,
                "samples",
                params={"split": "val", "count": "64"},
            )
            assert samples["samples"]
            for sample in samples["samples"]:
                if sample["url"] is not None:
                    response = await jp_fetch(*sample["url"].split("/")[2:])
                    assert response.code == 200
    good = await fetch_json(jp_fetch, "yolo", "datasets", "good")
    assert good["status"] == "ok" and good["errors"] == 0


@pytest.fixture
def half_written_workspace(yolo_workspace: Path, shapes_template: Path, tmp_path: Path) -> Path:
    """A half-written dataset and a scratch leftover, before the server starts."""
    datasets = yolo_workspace / "datasets"
    datasets.mkdir()
    half_written(datasets, shapes_template, tmp_path)
    stale = yolo_workspace / ".tmp" / "ds-0123456789abcdef"
    assert stale.exists()
    return stale


async def test_stale_scratch_is_still_cleaned_beside_poison(
    half_written_workspace: Path, jp_fetch: Any
) -> None:
    listing = await fetch_json(jp_fetch, "yolo", "datasets")
    assert [d["name"] for d in listing["datasets"]] == ["bad"]
    deadline = time.monotonic() + 10
    while half_written_workspace.exists():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)


@pytest.mark.slow  # two real server starts and stops (about 9 s each on 2 busy cores)
def test_a_restarted_server_loads_beside_every_poisoned_state(
    tmp_path: Path, shapes_template: Path
) -> None:
    """Every poisoned state at once, put in place while a real server runs; then a restart."""
    workspace = tmp_path / "workspace"
    datasets = workspace / "datasets"
    outside = tmp_path / "outside"
    outside.mkdir()
    datasets.mkdir(parents=True)
    _copy(shapes_template, datasets / "good")
    args = ("--YoloApp.builtin_dataset=False",)
    expected: dict[str, str] = {"good": "ok"}
    warnings = 0
    with serving(workspace, extra_args=args) as server:
        assert_routes_answer(server.request)
        for index, (name, (poison, listed, count)) in enumerate(sorted(CASES.items())):
            if name == "unreadable" and os.geteuid() == 0:
                continue
            scratch = tmp_path / f"poison-{index}"
            (scratch / "datasets").mkdir(parents=True)
            (scratch / "outside").mkdir()
            poison(scratch / "datasets", shapes_template, scratch / "outside")
            for entry in sorted((scratch / "datasets").iterdir()):
                renamed = f"{entry.name}-{index}" if DATASET_NAME.match(entry.name) else entry.name
                os.rename(entry, datasets / renamed)
            expected.update({f"{k}-{index}": v for k, v in listed.items()})
            warnings += count
        with pytest.raises(urllib.error.HTTPError) as refused:
            server.request("GET", "/yolo/datasets/a%01b")
        assert refused.value.code == 400
        assert_routes_answer(server.request)
    with serving(workspace, extra_args=args) as server:
        answers = assert_routes_answer(server.request)
        listing = answers["/yolo/datasets"]
        assert {d["name"]: d["status"] for d in listing["datasets"]} == expected
        assert len(listing["warnings"]) == warnings, listing["warnings"]
        for name in expected:
            assert server.request("GET", f"/yolo/datasets/{name}")["name"] == name
        log = server.log_path.read_text(errors="replace")
        assert "jupyter_yolo: datasets/" in log
