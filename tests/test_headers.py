"""Artifact downloads carry safe, escaped Content-Disposition headers, whatever the name."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from tornado.httpclient import HTTPClientError

from jupyter_yolo.handlers.headers import ascii_filename, content_disposition, utf8_filename

from .conftest import fetch_json

JOB_ID = "0a1b2c3d4e5f"

SERVED = {
    "quotes": 'the "best" run.bin',
    "semicolon": "weights;v2.bin",
    "non-ascii": "résumé 日本語 🚀.onnx",
    "percent-and-spaces": "100%41 done .bin",
    "apostrophe-and-equals": "it's=fine.bin",
}
# names no request path may hold in general; a job's own artifact may have them
CONTROL = {
    "newline": "new\nline.bin",
    "carriage-return": "header\r\nX-Injected: yes.bin",
    "tab": "tab\tbed.bin",
    "backslash": "back\\slash.bin",
}
NAMES = {**SERVED, **CONTROL}
PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*")


# RFC 6266 / RFC 8187: filename*=UTF-8''<attr-char or %XX>...
EXT_VALUE = re.compile(r"filename\*=UTF-8''((?:[A-Za-z0-9!#$&+\-.^_`|~]|%[0-9A-F]{2})+)$")


def parsed_filename(header: str) -> str:
    """The file name a client that follows RFC 6266 reads: ``filename*`` wins over ``filename``."""
    match = EXT_VALUE.search(header)
    assert match, header
    return unquote(match.group(1), encoding="utf-8", errors="strict")


def fallback(header: str) -> str:
    match = re.search(r'filename="([^"]*)"', header)
    assert match, header
    return match.group(1)


# --------------------------------------------------------------------------- the helper


@pytest.mark.parametrize("name", list(NAMES.values()), ids=list(NAMES))
def test_the_header_is_printable_ascii_and_decodes_to_the_name(name: str) -> None:
    header = content_disposition(name)
    assert PRINTABLE_ASCII.fullmatch(header), header
    assert parsed_filename(header) == name
    assert not set(fallback(header)) & set('"\\;%\r\n\t')


def test_the_ascii_fallback_keeps_what_it_can() -> None:
    assert ascii_filename("résumé.onnx") == "resume.onnx"
    assert ascii_filename('a "b";c\\d%e/f\ng.bin') == "a _b__c_d_e_f_g.bin"
    assert ascii_filename("日本") == "__"
    assert ascii_filename("..") == "download"
    assert ascii_filename("") == "download"


def test_undecodable_bytes_in_a_name_become_replacement_characters() -> None:
    name = b"caf\xe9.bin".decode("utf-8", "surrogateescape")  # how Linux hands such a name over
    header = content_disposition(name)
    assert PRINTABLE_ASCII.fullmatch(header)
    assert utf8_filename(name) == "caf%EF%BF%BD.bin"
    assert parsed_filename(header) == "caf\ufffd.bin"


def test_an_unknown_disposition_is_refused() -> None:
    assert content_disposition("a.bin", "inline").startswith('inline; filename="a.bin"')
    with pytest.raises(ValueError, match="disposition"):
        content_disposition("a.bin", "attachment\r\nX: y")


# --------------------------------------------------------------------------- a real server


@pytest.fixture
def finished_job(yolo_workspace: Path) -> dict[str, bytes]:
    """A finished job's folder, written before the server starts, whose run/ holds odd names.

    The server adopts it at start as it adopts any job folder its registry does not know.
    """
    folder = yolo_workspace / "jobs" / JOB_ID
    (folder / "run").mkdir(parents=True)
    job = {
        "id": JOB_ID,
        "kind": "train",
        "name": "odd names",
        "params": {"model": "yolov8n.yaml", "epochs": 1},
        "request": {"kind": "train", "model": "yolov8n.yaml", "data": "shapes", "epochs": 1},
        "devices": ["cpu"],
        "workspace": str(yolo_workspace),
        "resume": False,
        "log_max_bytes": 2**21,
    }
    (folder / "job.json").write_text(json.dumps(job))
    status = {
        "status": "succeeded",
        "pid": 0,
        "started": 1.0,
        "ended": 2.0,
        "exit_reason": "finished",
        "error": None,
        "result": None,
        "epochs_done": 1,
    }
    (folder / "status.json").write_text(json.dumps(status))
    contents = {}
    for key, name in NAMES.items():
        data = f"content of {key}\n".encode()
        (folder / "run" / name).write_bytes(data)
        contents[name] = data
    return contents


@pytest.fixture
def yolo_config(finished_job: dict[str, bytes]) -> dict[str, Any]:
    """The job folder exists before the server starts."""
    return {}


async def fetch_path(jp_fetch: Any, path: str) -> Any:
    """The response to ``GET /yolo/jobs/{id}/artifacts/{path}``, error or not."""
    try:
        return await jp_fetch("yolo", "jobs", JOB_ID, "artifacts", path)
    except HTTPClientError as exc:
        assert exc.response is not None
        return exc.response


async def test_artifacts_with_odd_names_are_listed_and_served_with_safe_headers(
    jp_fetch: Any, finished_job: dict[str, bytes]
) -> None:
    listing = await fetch_json(jp_fetch, "yolo", "jobs", JOB_ID, "artifacts")
    assert {a["path"] for a in listing["artifacts"]} == {f"run/{n}" for n in NAMES.values()}
    for name in NAMES.values():
        response = await fetch_path(jp_fetch, f"run/{name}")
        assert response.code == 200, (name, response.body)
        assert response.body == finished_job[name]
        header = response.headers["Content-Disposition"]
        assert PRINTABLE_ASCII.fullmatch(header) and header.startswith("attachment; ")
        assert parsed_filename(header) == name
        assert response.headers["Content-Type"] == "application/octet-stream"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "X-Injected" not in response.headers


@pytest.mark.parametrize(
    "path",
    ["run/missing\nname.bin", "run/../job.json", "../../jobs.sqlite", "run/a\\..\\b", "\\etc"],
)
async def test_odd_paths_that_are_no_artifact_get_a_clear_4xx(jp_fetch: Any, path: str) -> None:
    response = await fetch_path(jp_fetch, path)
    assert 400 <= response.code < 500, (path, response.code, response.body)
    assert json.loads(response.body)["message"]
    job = await fetch_json(jp_fetch, "yolo", "jobs", JOB_ID)
    assert job["status"] == "succeeded"
