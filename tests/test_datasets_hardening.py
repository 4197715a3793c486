"""No data.yaml, dataset JSON or request string can break the dataset side (issue 12, section 2).

YAML is read without aliases and every value is type-checked before it reaches a message; a
``download`` key (which ultralytics downloads, runs or ``exec``s) is an error with its line;
deeply nested COCO JSON is a 400 naming the file; names and paths no file can have are a 400
JSON answer on every dataset route, and nothing is left half-written.
"""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from jupyter_yolo.datasets.keys import DATA_YAML_KEYS, FORBIDDEN_DATA_KEYS
from jupyter_yolo.datasets.validate import read_description, validate_dataset

from .conftest import expect_error, fetch_json, install_dataset
from .dataset_tools import snapshot, upload, zip_dir
from .route_check import assert_routes_answer_async, jp_fetch_request

TRAIN = {
    "kind": "train",
    "model": "yolov8n.yaml",
    "epochs": 1,
    "imgsz": 64,
    "batch": 4,
    "device": "cpu",
    "workers": 0,
}
MESSAGE_LIMIT = 400  # no problem message may be longer than this, whatever the yaml holds

BILLION_LAUGHS = "\n".join(
    [
        "train: images/train",
        "val: images/val",
        'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
        *(
            f"{name}: &{name} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]"
            for prev, name in zip("abcdefg", "bcdefgh", strict=True)
        ),
        "nc: [*h,*h,*h,*h,*h,*h,*h,*h]",
        "names: [circle, square, triangle]",
    ]
)


def _dataset(template: Path, dest: Path, data_yaml: str | None = None) -> Path:
    """A copy of the shapes dataset, its data.yaml replaced when ``data_yaml`` is given."""
    install_dataset(template, dest)
    if data_yaml is not None:
        (dest / "data.yaml").write_text(data_yaml, encoding="utf-8")
    return dest


def _assert_short(report: dict[str, Any]) -> None:
    for problem in report["problems"]:
        assert len(problem["message"]) <= MESSAGE_LIMIT, problem["message"][:500]
    assert len(json.dumps(report)) < 64 * 1024


# --------------------------------------------------------------------------- keys


def test_key_constants_follow_ultralytics() -> None:
    assert {
        "path",
        "train",
        "val",
        "test",
        "names",
        "nc",
        "kpt_shape",
        "flip_idx",
        "channels",
    } <= DATA_YAML_KEYS
    assert "download" in FORBIDDEN_DATA_KEYS and not DATA_YAML_KEYS & FORBIDDEN_DATA_KEYS
    source = Path(__file__).parent.parent / "jupyter_yolo" / "datasets" / "keys.py"
    assert "from ." not in source.read_text() and "import jupyter_yolo" not in source.read_text()


# --------------------------------------------------------------------------- yaml values

LONG = "x" * 100_000
HOSTILE_YAML = {
    "aliases": (BILLION_LAUGHS, "data_yaml", 4),
    "nc_huge_list": (
        "train: images/train\nval: images/val\nnames: [a, b, c]\nnc: ["
        + ",".join(["0"] * 20_000)
        + "]\n",
        "names_inconsistent",
        4,
    ),
    "nc_text": (
        "train: images/train\nval: images/val\nnames: [a, b, c]\nnc: three\n",
        "names_inconsistent",
        4,
    ),
    "names_huge_key": (
        "train: images/train\nval: images/val\nnames:\n  ? " + LONG + "\n  : a\n",
        "names_invalid",
        3,
    ),
    "names_long_name": (
        "train: images/train\nval: images/val\nnames: [" + LONG + "]\n",
        "names_invalid",
        3,
    ),
    "names_too_many": (
        "train: images/train\nval: images/val\nnames: ["
        + ",".join(f"c{i}" for i in range(10_001))
        + "]\n",
        "names_invalid",
        3,
    ),
    "names_nested": (
        "train: images/train\nval: images/val\nnames: {0: a, 1: {x: [1, 2]}}\n",
        "names_invalid",
        3,
    ),
    "names_control": (
        'train: images/train\nval: images/val\nnames: ["a\\x07b"]\n',
        "names_invalid",
        3,
    ),
    "train_mapping": ("train: {a: b}\nval: images/val\nnames: [a, b, c]\n", "split_not_found", 1),
    "train_too_long": (
        "train: " + LONG + "\nval: images/val\nnames: [a, b, c]\n",
        "split_not_found",
        1,
    ),
    "train_nul": (
        'train: "images/\\0train"\nval: images/val\nnames: [a, b, c]\n',
        "split_not_found",
        1,
    ),
    "val_many": (
        "train: images/train\nval: [" + ",".join(["images/val"] * 1000) + "]\nnames: [a, b, c]\n",
        "split_not_found",
        2,
    ),
    "path_list": (
        "path: [a, b]\ntrain: images/train\nval: images/val\nnames: [a, b, c]\n",
        "data_yaml",
        1,
    ),
    "path_too_long": (
        "path: " + LONG + "\ntrain: images/train\nval: images/val\nnames: [a, b, c]\n",
        "data_yaml",
        1,
    ),
    "channels_text": (
        "train: images/train\nval: images/val\nnames: [a, b, c]\nchannels: rgb\n",
        "data_yaml",
        4,
    ),
    "top_level_list": ("- " + "\n- ".join(["x"] * 1000) + "\n", "data_yaml", 1),
    "deep": ("train: " + "[" * 200 + "]" * 200 + "\n", "data_yaml", 1),
    "not_utf8": (None, "data_yaml", None),
    "too_big": ("train: images/train\n#" + "x" * (2 * 1024 * 1024) + "\n", "data_yaml", None),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_YAML))
def test_hostile_yaml_gives_one_short_problem(
    case: str, shapes_template: Path, tmp_path: Path
) -> None:
    text, code, line = HOSTILE_YAML[case]
    folder = _dataset(shapes_template, tmp_path / "ds", text)
    if text is None:
        (folder / "data.yaml").write_bytes(b"train: images/train\nnames: [\xff\xfe]\n")
    report = validate_dataset(folder)
    _assert_short(report)
    matching = [p for p in report["problems"] if p["code"] == code]
    assert matching, report["problems"]
    assert matching[0]["severity"] == "error" and matching[0]["file"] == "data.yaml"
    assert matching[0]["line"] == line
    assert report["status"] == "has_errors"


def test_alias_is_refused_at_its_line(shapes_template: Path, tmp_path: Path) -> None:
    folder = _dataset(shapes_template, tmp_path / "ds", BILLION_LAUGHS)
    report = validate_dataset(folder)
    assert report["problems"][0]["code"] == "data_yaml"
    assert "alias" in report["problems"][0]["message"]


def test_download_key_is_an_error_with_its_line(shapes_template: Path, tmp_path: Path) -> None:
    folder = _dataset(shapes_template, tmp_path / "ds")
    original = (folder / "data.yaml").read_text()
    (folder / "data.yaml").write_text(
        original + "download: |\n  import os; os.system('touch /tmp/owned')\n"
    )
    line = original.count("\n") + 1
    report = validate_dataset(folder)
    forbidden = [p for p in report["problems"] if p["code"] == "forbidden_key"]
    assert forbidden == [
        {
            "severity": "error",
            "code": "forbidden_key",
            "file": "data.yaml",
            "line": line,
            "message": forbidden[0]["message"],
        }
    ]
    assert "'download'" in forbidden[0]["message"]
    assert report["status"] == "has_errors"


def test_unknown_keys_are_a_warning_and_known_ones_are_quiet(
    shapes_template: Path, tmp_path: Path
) -> None:
    folder = _dataset(shapes_template, tmp_path / "ds")
    (folder / "data.yaml").write_text(
        (folder / "data.yaml").read_text() + "channels: 3\nroboflow: {workspace: w}\n"
    )
    report = validate_dataset(folder)
    assert [p["code"] for p in report["problems"]] == ["unknown_key"]
    assert "roboflow" in report["problems"][0]["message"]


def test_links_out_of_the_dataset_are_not_followed(shapes_template: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.yaml").write_text("train: images/train\nval: images/val\nnames: [a]\n")
    shutil.copy(next((shapes_template / "images" / "val").glob("*.jpg")), outside / "x.jpg")
    folder = _dataset(shapes_template, tmp_path / "ds")
    (folder / "images" / "val" / "planted.jpg").symlink_to(outside / "x.jpg")
    images = validate_dataset(folder)["splits"]["val"]["images"]
    assert images == len(list((shapes_template / "images" / "val").glob("*.jpg")))
    (folder / "data.yaml").unlink()
    (folder / "data.yaml").symlink_to(outside / "secret.yaml")
    description = read_description(folder)
    assert description.names is None and description.splits == {}


def test_calibration_refuses_download_and_aliases(shapes_template: Path, tmp_path: Path) -> None:
    from jupyter_yolo.inference.export import ExportError, calibration_for

    folder = _dataset(shapes_template, tmp_path / "ds")
    assert calibration_for(folder / "data.yaml").split == "train"
    (folder / "data.yaml").write_text((folder / "data.yaml").read_text() + "download: x = 1\n")
    with pytest.raises(ExportError, match="'download'"):
        calibration_for(folder / "data.yaml")
    (folder / "data.yaml").write_text(BILLION_LAUGHS)
    with pytest.raises(ExportError, match="alias"):
        calibration_for(folder / "data.yaml")


# --------------------------------------------------------------------------- through the API


async def test_poisoned_yaml_in_the_workspace_gives_a_short_report_and_no_training(
    jp_fetch: Any, shapes_template: Path, yolo_workspace: Path, tmp_path: Path
) -> None:
    datasets = yolo_workspace / "datasets"
    _dataset(shapes_template, datasets / "laughs", BILLION_LAUGHS)
    marker = tmp_path / "executed"
    dl = _dataset(shapes_template, datasets / "dl")
    (dl / "data.yaml").write_text(
        (dl / "data.yaml").read_text() + f"download: open({str(marker)!r}, 'w').close()\n"
    )
    response = await jp_fetch("yolo", "datasets", "laughs")
    assert len(response.body) < 64 * 1024
    report = json.loads(response.body)["report"]
    assert report["problems"][0]["code"] == "data_yaml" and report["problems"][0]["line"] == 4
    dataset = await fetch_json(jp_fetch, "yolo", "datasets", "dl")
    assert dataset["status"] == "has_errors"
    assert dataset["report"]["problems"][0]["code"] == "forbidden_key"
    for name in ("laughs", "dl"):
        error = await expect_error(
            jp_fetch, 400, "yolo", "jobs", method="POST", body=json.dumps({**TRAIN, "data": name})
        )
        assert f"GET /yolo/datasets/{name}" in error["message"]
        assert "data.yaml:" in error["message"]
    assert not marker.exists()
    listing = await fetch_json(jp_fetch, "yolo", "datasets")
    assert {d["name"]: d["status"] for d in listing["datasets"]} == {
        "dl": "has_errors",
        "laughs": "has_errors",
    }
    await assert_routes_answer_async(jp_fetch_request(jp_fetch))


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _shapes_entries(template: Path) -> dict[str, bytes]:
    return {
        path.relative_to(template).as_posix(): path.read_bytes()
        for path in sorted(template.rglob("*"))
        if path.is_file() and path.name != "data.yaml"
    }


async def test_upload_with_aliases_is_refused_and_leaves_nothing(
    jp_fetch: Any, shapes_template: Path, yolo_workspace: Path
) -> None:
    before = snapshot(yolo_workspace)
    entries = {**_shapes_entries(shapes_template), "data.yaml": BILLION_LAUGHS.encode()}
    error = await expect_error(
        jp_fetch,
        400,
        "yolo",
        "datasets",
        method="POST",
        params={"name": "laughs"},
        body=_zip(entries),
        headers={"Content-Type": "application/zip"},
    )
    assert "data.yaml" in error["message"] and "line 4" in error["message"]
    assert len(error["message"]) < 1000
    assert snapshot(yolo_workspace) == before


async def test_upload_drops_the_download_key_with_a_note(
    jp_fetch: Any, shapes_template: Path, yolo_workspace: Path
) -> None:
    data_yaml = (shapes_template / "data.yaml").read_text().replace("path:", "# path:")
    entries = {
        **_shapes_entries(shapes_template),
        "data.yaml": (data_yaml + "download: bash get.sh\n").encode(),
    }
    dataset = await upload(jp_fetch, "dl", _zip(entries))
    assert dataset["status"] == "ok"
    assert any("'download'" in note for note in dataset["notes"])
    written = (yolo_workspace / "datasets" / "dl" / "data.yaml").read_text()
    assert "download" not in written and "get.sh" not in written


def _nested(depth: int) -> bytes:
    return b'{"images": [], "categories": [], "annotations": ' + b"[" * depth + b"]" * depth + b"}"


@pytest.mark.parametrize("depth", [40, 100_000])
async def test_deeply_nested_coco_json_is_a_400_naming_the_file(
    depth: int, jp_fetch: Any, shapes_template: Path, yolo_workspace: Path, tmp_path: Path
) -> None:
    before = snapshot(yolo_workspace)
    entries = {
        **{k: v for k, v in _shapes_entries(shapes_template).items() if k.startswith("images/")},
        "annotations/instances_train.json": _nested(depth),
    }
    error = await expect_error(
        jp_fetch,
        400,
        "yolo",
        "datasets",
        method="POST",
        params={"name": "deep"},
        body=_zip(entries),
        headers={"Content-Type": "application/zip"},
    )
    assert "instances_train.json" in error["message"] and "nest" in error["message"]
    assert snapshot(yolo_workspace) == before
    # the same folder imported from the workspace
    folder = yolo_workspace / "uploads" / "deep"
    for name, data in entries.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    error = await expect_error(
        jp_fetch,
        400,
        "yolo",
        "datasets",
        method="POST",
        body=json.dumps({"name": "deep", "path": "uploads/deep"}),
    )
    assert "instances_train.json" in error["message"]
    assert list((yolo_workspace / "datasets").iterdir()) == []


async def test_coco_json_with_nan_is_refused(
    jp_fetch: Any, shapes_template: Path, yolo_workspace: Path
) -> None:
    entries = {
        **{k: v for k, v in _shapes_entries(shapes_template).items() if k.startswith("images/")},
        "annotations/instances_train.json": b'{"images": [], "categories": [], '
        b'"annotations": [{"bbox": [NaN, 1, 2, 3]}]}',
    }
    error = await expect_error(
        jp_fetch,
        400,
        "yolo",
        "datasets",
        method="POST",
        params={"name": "nan"},
        body=_zip(entries),
        headers={"Content-Type": "application/zip"},
    )
    assert "instances_train.json" in error["message"] and "NaN" in error["message"]


# --------------------------------------------------------------------------- strings

# what a client can put on the wire: JSON escapes in bodies, percent-escapes in URLs
# (a lone surrogate travels as its CESU-8 bytes, which are not UTF-8)
BAD_STRINGS = {
    "surrogate": ("\ud800", "%ED%A0%80"),
    "control": ("a\x01b", "a%01b"),
    "newline": ("a\nb", "a%0Ab"),
    "nul": ("a\x00b", "a%00b"),
    "too_long": ("a" * 300, "a" * 300),
    "too_long_utf8": ("é" * 200, "%C3%A9" * 200),
}


@pytest.fixture
def raw_fetch(http_server_client: Any, jp_auth_header: dict[str, str], jp_base_url: str) -> Any:
    """Fetch a URL path given already percent-encoded (jp_fetch would encode it again)."""

    def fetch(path_and_query: str, **kwargs: Any) -> Any:
        headers = {**jp_auth_header, **kwargs.pop("headers", {})}
        return http_server_client.fetch(
            jp_base_url.rstrip("/") + path_and_query,
            headers=headers,
            request_timeout=20,
            **kwargs,
        )

    return fetch


async def _expect_400(fetch: Any, path: str, **kwargs: Any) -> dict[str, Any]:
    with pytest.raises(HTTPClientError) as info:
        await fetch(path, **kwargs)
    assert info.value.response is not None
    assert info.value.code == 400, (path, info.value.code, info.value.response.body[:300])
    body: dict[str, Any] = json.loads(info.value.response.body)
    assert body["message"] and len(body["message"]) < 1000
    return body


@pytest.mark.parametrize("case", sorted(BAD_STRINGS))
async def test_bad_strings_on_every_dataset_route_are_a_400(
    case: str,
    raw_fetch: Any,
    jp_fetch: Any,
    shapes_template: Path,
    yolo_workspace: Path,
    tmp_path: Path,
) -> None:
    text, wire = BAD_STRINGS[case]
    install_dataset(shapes_template, yolo_workspace / "datasets" / "shapes")
    (yolo_workspace / "uploads").mkdir()
    archive = zip_dir(shapes_template, yolo_workspace / "uploads" / "s.zip")
    before = snapshot(yolo_workspace)
    zipped = archive.read_bytes()
    await _expect_400(
        raw_fetch,
        f"/yolo/datasets?name={wire}",
        method="POST",
        body=zipped,
        headers={"Content-Type": "application/zip"},
    )
    await _expect_400(
        raw_fetch,
        f"/yolo/datasets?name=ok&filename={wire}",
        method="POST",
        body=zipped,
        headers={"Content-Type": "application/zip"},
    )
    for body in (
        {"name": text, "path": "uploads/s.zip"},
        {"name": "ok", "path": text},
        {"name": "ok", "path": f"uploads/{text}/s.zip"},
    ):
        await _expect_400(raw_fetch, "/yolo/datasets", method="POST", body=json.dumps(body))
    for path in (
        f"/yolo/datasets/{wire}",
        f"/yolo/datasets/{wire}/samples",
        f"/yolo/datasets/shapes/samples?split={wire}",
        f"/yolo/datasets/shapes/files/images/val/{wire}.jpg",
        f"/yolo/datasets/shapes/files/{wire}/x.jpg",
    ):
        await _expect_400(raw_fetch, path)
    await _expect_400(raw_fetch, f"/yolo/datasets/{wire}", method="DELETE")
    assert snapshot(yolo_workspace) == before
    listing = await fetch_json(jp_fetch, "yolo", "datasets")
    assert [d["name"] for d in listing["datasets"]] == ["shapes"]
    await assert_routes_answer_async(jp_fetch_request(jp_fetch))


async def test_a_path_longer_than_the_file_system_allows_is_a_400(
    raw_fetch: Any, shapes_template: Path, yolo_workspace: Path
) -> None:
    install_dataset(shapes_template, yolo_workspace / "datasets" / "shapes")
    deep = "/".join(["d" * 200] * 25) + "/x.jpg"  # 5000 bytes, each name within limits
    await _expect_400(raw_fetch, f"/yolo/datasets/shapes/files/{deep}")
    await _expect_400(
        raw_fetch, "/yolo/datasets", method="POST", body=json.dumps({"name": "ok", "path": deep})
    )
