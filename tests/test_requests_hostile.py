"""Hostile job requests against a real server: each gets a clear 4xx and leaves nothing behind."""

from __future__ import annotations

import contextlib
import json
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from tests.conftest import expect_error, fetch_json, post_json
from tests.route_check import assert_routes_answer_async, jp_fetch_request

TRAIN = {"kind": "train", "data": "shapes", "epochs": 1, "imgsz": 64, "device": "cpu"}


def workspace_state(workspace: Path) -> tuple[list[str], list[str]]:
    """Job folders and scratch entries: both must stay empty after a refused request."""
    jobs = sorted(p.name for p in (workspace / "jobs").iterdir())
    scratch = sorted(p.name for p in (workspace / ".tmp").iterdir())
    return jobs, scratch


async def refused(jp_fetch: Any, workspace: Path, body: Any, code: int = 400) -> str:
    """POST a job body; expect ``code``, nothing on disk and every route still answering."""
    raw = body if isinstance(body, (bytes, str)) else json.dumps(body)
    answer = await expect_error(jp_fetch, code, "yolo", "jobs", method="POST", body=raw)
    assert workspace_state(workspace) == ([], [])
    listing = await fetch_json(jp_fetch, "yolo", "jobs")
    assert listing["jobs"] == []
    await assert_routes_answer_async(jp_fetch_request(jp_fetch))
    message: str = answer["message"]
    return message


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("\ud800", "surrogate"),
        ("run\udfff", "surrogate"),
        ("bell\x07", "control character"),
        ("line\nbreak", "control character"),
        ("x" * 101, "1 to 100"),
        ("   ", "not only spaces"),
        ("", "1 to 100"),
    ],
)
async def test_bad_job_names_are_refused_before_anything_is_written(
    jp_fetch: Any, yolo_workspace: Path, shapes_dataset: str, name: str, expected: str
) -> None:
    message = await refused(jp_fetch, yolo_workspace, {**TRAIN, "name": name})
    assert expected in message


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "train", "model": "x" * 300 + ".pt", "data": "shapes"},
        {"kind": "train", "data": "d/" + "y" * 256 + ".yaml"},
        {"kind": "train", "data": "a/" * 2100 + "data.yaml"},
        {"kind": "predict", "model": "w\x00.pt", "source": "images"},
        {"kind": "predict", "model": "weights/a.pt", "source": "images/\x1b[31m"},
        {"kind": "train", "data": "shapes\ud83d"},
    ],
)
async def test_paths_the_file_system_cannot_hold_are_400(
    jp_fetch: Any, yolo_workspace: Path, shapes_dataset: str, body: dict[str, Any]
) -> None:
    await refused(jp_fetch, yolo_workspace, body)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"kind": "train", "data": "shapes", "lr0": NaN}', "NaN"),
        ('{"kind": "train", "data": "shapes", "lr0": Infinity}', "Infinity"),
        ('{"kind": "train", "data": "shapes", "lr0": -Infinity}', "Infinity"),
        ('{"kind": "train", "data": "shapes", "momentum": 1e999}', "finite"),
        ('{"kind": "train", "data": "shapes", "epochs": 1e999}', "finite"),
    ],
)
async def test_non_finite_numbers_are_refused(
    jp_fetch: Any, yolo_workspace: Path, shapes_dataset: str, raw: str, expected: str
) -> None:
    assert expected in await refused(jp_fetch, yolo_workspace, raw)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"batch": 0}, "batch"),
        ({"batch": -2}, "at least"),
        ({"epochs": 0}, "at least"),
        ({"imgsz": 10**9}, "at most"),
        ({"lr0": 0.0}, "at least"),
        ({"workers": True}, "boolean"),
        ({"device": "mps"}, "cpu"),
        ({"device": "0"}, "cpu"),
        ({"device": "0,1"}, "cpu"),
        ({"device": "npu:3"}, "cpu"),
    ],
)
async def test_numbers_out_of_bounds_and_absent_devices_are_refused(
    jp_fetch: Any,
    yolo_workspace: Path,
    shapes_dataset: str,
    extra: dict[str, Any],
    expected: str,
) -> None:
    message = await refused(jp_fetch, yolo_workspace, {**TRAIN, **extra})
    assert expected in message
    if "device" in extra:
        assert "it has: cpu" in message


async def test_a_predict_class_list_is_bounded(
    jp_fetch: Any, yolo_workspace: Path, shapes_dataset: str
) -> None:
    body = {"kind": "predict", "model": "job:0123456789ab", "source": "datasets"}
    message = await refused(jp_fetch, yolo_workspace, {**body, "classes": list(range(5000))})
    assert "1 to 1000" in message
    await refused(jp_fetch, yolo_workspace, {**body, "classes": [1, "a"]})


@pytest.mark.parametrize("depth", [40, 100_000])
async def test_deeply_nested_json_is_400(jp_fetch: Any, yolo_workspace: Path, depth: int) -> None:
    raw = '{"kind": "train", "data": ' + "[" * depth + "]" * depth + "}"
    assert "nested" in await refused(jp_fetch, yolo_workspace, raw)


async def test_an_oversize_declared_body_is_413_before_it_is_read(
    jp_fetch: Any, yolo_workspace: Path
) -> None:
    body = json.dumps({"kind": "train", "data": "shapes", "name": "n" * (2 * 1024 * 1024)})
    answer = await expect_error(jp_fetch, 413, "yolo", "jobs", method="POST", body=body)
    assert "bytes at most" in answer["message"]
    assert workspace_state(yolo_workspace) == ([], [])


def _raw_http(url: str, token: str, request_line: str, headers: list[str], body: bytes) -> bytes:
    parsed = urlparse(url)
    with socket.create_connection((parsed.hostname, parsed.port), timeout=30) as sock:
        head = [request_line, f"Host: {parsed.netloc}", f"Authorization: token {token}", *headers]
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks) and b"}" in chunk:
                break
        return b"".join(chunks)


async def test_a_chunked_body_streaming_past_the_limit_is_cut_off_with_413(
    jp_fetch: Any,
    jp_base_url: str,
    jp_http_port: int,
    jp_auth_header: dict[str, str],
    yolo_workspace: Path,
) -> None:
    import asyncio

    token = jp_auth_header["Authorization"].split()[-1]
    piece = b"x" * 65536
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    body = chunk * 20 + b"0\r\n\r\n"  # 1.25 MiB, no Content-Length
    path = jp_base_url.rstrip("/") + "/yolo/jobs"
    answer = await asyncio.to_thread(
        _raw_http,
        f"http://127.0.0.1:{jp_http_port}",
        token,
        f"POST {path} HTTP/1.1",
        ["Transfer-Encoding: chunked", "Content-Type: application/json"],
        body,
    )
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"bytes at most" in answer
    assert workspace_state(yolo_workspace) == ([], [])
    await assert_routes_answer_async(jp_fetch_request(jp_fetch))


async def test_control_characters_in_query_values_are_400(jp_fetch: Any) -> None:
    for value in ("\x00", "\x1b[31m", "1\r\nX-Injected: 1"):
        answer = await expect_error(
            jp_fetch,
            400,
            "yolo",
            "jobs",
            "0123456789ab",
            "events",
            params={"after": value},
        )
        assert "control character" in answer["message"]


def write_yaml(path: Path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path.name


async def test_yaml_aliases_are_not_expanded(
    jp_fetch: Any, yolo_workspace: Path, shapes_dataset: str
) -> None:
    laughs = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 9):
        prev = chr(ord("a") + level - 1)
        name = chr(ord("a") + level)
        laughs.append(f"{name}: &{name} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]")
    text = "train: images/train\nval: images/val\nnames: {0: a}\n" + "\n".join(laughs) + "\n"
    write_yaml(yolo_workspace / "uploads" / "laughs.yaml", text)
    message = await refused(jp_fetch, yolo_workspace, {**TRAIN, "data": "uploads/laughs.yaml"})
    assert "aliases" in message
    assert len(message) < 600


async def test_a_download_entry_is_refused_and_unknown_keys_stay_out_of_the_job(
    jp_fetch: Any, yolo_workspace: Path, shapes_dataset: str
) -> None:
    base = (yolo_workspace / "datasets" / "shapes").as_posix()
    common = (
        f"path: {base}\ntrain: images/train\nval: images/val\n"
        "names: {0: circle, 1: square, 2: triangle}\n"
    )
    write_yaml(
        yolo_workspace / "uploads" / "evil.yaml",
        common + "download: import os; os.system('touch /tmp/pwned')\n",
    )
    message = await refused(jp_fetch, yolo_workspace, {**TRAIN, "data": "uploads/evil.yaml"})
    assert "'download'" in message

    write_yaml(yolo_workspace / "uploads" / "extra.yaml", common + "roboflow: {url: x}\nnc: 3\n")
    job = await post_json(
        jp_fetch, "yolo", "jobs", body={**TRAIN, "data": "uploads/extra.yaml", "epochs": 1}
    )
    await post_json(jp_fetch, "yolo", "jobs", job["id"], "stop", body={})
    copy = yaml.safe_load((yolo_workspace / "jobs" / job["id"] / "data.yaml").read_text())
    assert sorted(copy) == ["names", "nc", "path", "train", "val"]


async def test_nan_in_job_files_never_reaches_a_response(
    jp_fetch: Any, yolo_workspace: Path, shapes_dataset: str
) -> None:
    job = await post_json(jp_fetch, "yolo", "jobs", body={**TRAIN, "name": "nan"})
    await post_json(jp_fetch, "yolo", "jobs", job["id"], "stop", body={})
    events = yolo_workspace / "jobs" / job["id"] / "events.jsonl"
    with events.open("a") as handle:
        handle.write(
            '{"seq": 90, "time": 1, "type": "epoch", "epoch": 1, "mAP50": NaN,'
            ' "loss": {"box": Infinity}}\n'
        )
        handle.write("not json at all\n")
        handle.write('{"seq": 91, "time": 1, "type": "batch", "epoch": "two", "batch": null}\n')
    for raw in (
        (await jp_fetch("yolo", "jobs")).body,
        (await jp_fetch("yolo", "jobs", job["id"])).body,
        (await jp_fetch("yolo", "jobs", job["id"], "events")).body,
    ):
        json.loads(raw, parse_constant=lambda name: pytest.fail(f"bare {name}"))
    page = await fetch_json(jp_fetch, "yolo", "jobs", job["id"], "events")
    assert [e["seq"] for e in page["events"]][-2:] == [90, 91]
    assert page["events"][-2]["mAP50"] is None


@pytest.mark.parametrize(
    "content",
    [
        'path: "a\\0b"\ntrain: images\nval: images\nnames: {0: a}\n',
        "path: " + "p" * 300 + "\ntrain: images\nval: images\nnames: {0: a}\n",
        "train: images\nval: images\ntest: " + "t" * 300 + "\nnames: {0: a}\n",
        "train: [images, 3]\nval: images\nnames: {0: a}\n",
        "train: images\nval: images\npath: [1, 2]\nnames: {0: a}\n",
    ],
)
async def test_a_workspace_data_yaml_naming_impossible_paths_is_400(
    jp_fetch: Any, yolo_workspace: Path, content: str
) -> None:
    (yolo_workspace / "mine" / "images").mkdir(parents=True)
    write_yaml(yolo_workspace / "mine" / "d.yaml", content)
    message = await refused(jp_fetch, yolo_workspace, {**TRAIN, "data": "mine/d.yaml"})
    assert len(message) < 600


async def _unauthenticated_body_answer(port: int, path: str, framing: str) -> bytes:
    """Send a request's head and a first 1 MiB of its body, never the rest; read the answer.

    No token, but a matching ``_xsrf`` cookie and header, so jupyter_server's XSRF check passes
    and only the extension's own check stands between the stranger and the body.
    """
    import asyncio

    xsrf = "00112233445566778899aabbccddeeff"
    piece = b"\xff" * 2**20
    if framing == "chunked":
        head, first = "Transfer-Encoding: chunked", f"{len(piece):x}\r\n".encode() + piece
    else:
        head, first = f"Content-Length: {40 * 2**20}", piece  # declared under the 64 MiB limit
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        lines = [
            f"POST {path} HTTP/1.1",
            f"Host: 127.0.0.1:{port}",
            "Content-Type: image/jpeg",
            head,
            f"Cookie: _xsrf={xsrf}",
            f"X-XSRFToken: {xsrf}",
        ]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + first)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        # the server must answer although the body never ends (before the fix it waited for it)
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 120)
    finally:
        writer.close()


@pytest.mark.parametrize("framing", ["chunked", "declared"])
async def test_an_unauthenticated_body_is_refused_before_it_is_read(
    jp_fetch: Any, jp_base_url: str, jp_http_port: int, framing: str
) -> None:
    for route in ("yolo/predict?model=x.pt", "yolo/jobs", "yolo/datasets?name=x"):
        path = jp_base_url.rstrip("/") + "/" + route
        answer = await _unauthenticated_body_answer(jp_http_port, path, framing)
        assert answer.startswith(b"HTTP/1.1 403"), (route, answer[:200])
    await assert_routes_answer_async(jp_fetch_request(jp_fetch))
