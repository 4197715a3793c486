"""Hostile uploads and imports are refused with a 4xx and a JSON message, and leave nothing behind.

Every archive is built here, in tmp_path. After each attempt: the workspace's datasets/ and .tmp/
are empty, and nothing under the test's whole temporary folder (workspace, server root, jupyter
dirs) changed except the files the test itself made.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import secrets
import shutil
import stat
import struct
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from .conftest import fetch_json
from .dataset_tools import raw_request, snapshot

MIB = 1024 * 1024
LIMITS = {
    "max_upload_bytes": 2 * MIB,
    "max_extracted_bytes": 4 * MIB,
    "max_archive_entries": 50,
    "max_compression_ratio": 20.0,
}
JPEG = b"\xff\xd8\xff\xe0" + b"\0" * 64  # starts like a JPEG; enough for the sniffing
OUTSIDE_NAME = f"jupyter-yolo-attack-{secrets.token_hex(6)}"


@pytest.fixture
def yolo_config() -> dict[str, Any]:
    return dict(LIMITS)


def _zip(
    entries: list[tuple[zipfile.ZipInfo | str, bytes]], compression: int = zipfile.ZIP_DEFLATED
) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for info, data in entries:
            archive.writestr(info, data)
    return buffer.getvalue()


def _valid_entries() -> list[tuple[zipfile.ZipInfo | str, bytes]]:
    return [
        ("data.yaml", b"train: images/train\nval: images/val\nnames: [a]\n"),
        ("images/train/a.jpg", JPEG),
        ("labels/train/a.txt", b"0 0.5 0.5 0.1 0.1\n"),
        ("images/val/b.jpg", JPEG),
    ]


def _symlink_entry() -> bytes:
    info = zipfile.ZipInfo("images/train/link.jpg")
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return _zip([*_valid_entries(), (info, b"/etc/passwd")])


def _bomb_by_ratio() -> bytes:
    return _zip([*_valid_entries(), ("labels/train/bomb.txt", b"0" * (3 * MIB))])


def _bomb_with_lying_sizes() -> bytes:
    """The headers say 1000 bytes; the deflated data expands to 3 MiB."""
    data = bytearray(_zip([*_valid_entries(), ("labels/train/liar.txt", b"1" * (3 * MIB))]))
    name = b"labels/train/liar.txt"
    # local header: name length at 26, name at 30, uncompressed size at 22
    # central directory header: name length at 28, name at 46, uncompressed size at 24
    for signature, length_at, name_at, size_at in (
        (b"PK\x03\x04", 26, 30, 22),
        (b"PK\x01\x02", 28, 46, 24),
    ):
        start = 0
        while (start := data.find(signature, start)) >= 0:
            length = struct.unpack_from("<H", data, start + length_at)[0]
            if data[start + name_at : start + name_at + length] == name:
                struct.pack_into("<L", data, start + size_at, 1000)
            start += 4
    return bytes(data)


def _too_many_entries() -> bytes:
    return _zip([*_valid_entries(), *[(f"labels/train/x{i}.txt", b"") for i in range(60)]])


def _too_big_when_extracted() -> bytes:
    # incompressible, 1.5 MiB each, stored: the body is under the upload limit only if small
    return _zip(
        [
            *_valid_entries(),
            *[(f"images/train/n{i}.jpg", JPEG + os.urandom(MIB)) for i in range(5)],
        ],
        zipfile.ZIP_STORED,
    )


def _truncated() -> bytes:
    whole = _zip(
        [
            *_valid_entries(),
            *[(f"images/train/c{i}.jpg", JPEG + os.urandom(4096)) for i in range(8)],
        ]
    )
    return whole[: int(len(whole) * 0.6)]


def _renamed_script() -> bytes:
    return _zip([*_valid_entries(), ("images/train/evil.jpg", b"#!/bin/sh\nrm -rf ~\n" * 4)])


def _html_as_png() -> bytes:
    return _zip([*_valid_entries(), ("images/val/x.png", b"<html><script>alert(1)</script>")])


def _duplicate_entries() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for info, data in _valid_entries():
            archive.writestr(info, data)
        with pytest.warns(UserWarning):
            archive.writestr("images/train/a.jpg", JPEG + b"second")
    return buffer.getvalue()


def _xml_entities() -> bytes:
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
        b"<annotation><filename>a.jpg</filename><object><name>&lol2;</name></object>"
        b"</annotation>"
    )
    return _zip([("Annotations/a.xml", laughs), ("JPEGImages/a.jpg", JPEG)])


def _named(name: str) -> Callable[[], bytes]:
    return lambda: _zip([*_valid_entries(), (name, JPEG)])


ATTACKS: list[tuple[str, Callable[[], bytes], int, str]] = [
    ("traversal", _named("../../../../evil.jpg"), 400, "'..'"),
    ("traversal_nested", _named("images/train/../../../../evil.jpg"), 400, "'..'"),
    ("absolute", _named(f"/tmp/{OUTSIDE_NAME}.jpg"), 400, "absolute"),
    ("drive", _named("C:/Windows/evil.jpg"), 400, "drive letter"),
    ("backslash", _named("..\\..\\evil.jpg"), 400, "backslashes"),
    ("control_chars", _named("images/train/a\x07b.jpg"), 400, "control characters"),
    ("symlink_entry", _symlink_entry, 400, "symbolic link"),
    ("bomb_ratio", _bomb_by_ratio, 400, "zip bomb"),
    ("bomb_lying_sizes", _bomb_with_lying_sizes, 400, "labels/train/liar.txt"),
    ("bomb_entries", _too_many_entries, 413, "entries"),
    ("truncated", _truncated, 400, "zip"),
    ("script_as_jpg", _renamed_script, 400, "not an image"),
    ("html_as_png", _html_as_png, 400, "not an image"),
    ("duplicate_entries", _duplicate_entries, 400, "twice"),
    ("xml_entities", _xml_entities, 400, "DOCTYPE"),
    ("not_a_zip", lambda: b"this is not a zip archive at all" * 10, 400, "not a zip"),
    ("only_junk", lambda: _zip([("README.md", b"hi"), ("run.sh", b"echo")]), 400, "no images"),
]


def assert_nothing_left(workspace: Path, before: dict[str, Any], root: Path) -> None:
    assert list((workspace / "datasets").iterdir()) == []
    assert list((workspace / ".tmp").iterdir()) == []
    after = snapshot(root, ignore=("workspace/jobs.sqlite",))
    assert after == before, {k: after.get(k) for k in set(after) ^ set(before)}
    assert not (Path("/tmp") / f"{OUTSIDE_NAME}.jpg").exists()


async def wait_idle(jp_fetch: Any) -> None:
    deadline = time.monotonic() + 10
    while (await fetch_json(jp_fetch, "yolo", "datasets", "uploads"))["uploads"]:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)


@pytest.mark.parametrize(
    ("attack", "build", "code", "fragment"), ATTACKS, ids=[a[0] for a in ATTACKS]
)
async def test_hostile_archive_is_refused(
    jp_fetch: Any,
    yolo_workspace: Path,
    tmp_path: Path,
    attack: str,
    build: Callable[[], bytes],
    code: int,
    fragment: str,
) -> None:
    body = build()
    before = snapshot(tmp_path, ignore=("workspace/jobs.sqlite",))
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch(
            "yolo",
            "datasets",
            method="POST",
            params={"name": attack},
            body=body,
            headers={"Content-Type": "application/zip"},
            request_timeout=60,
        )
    assert info.value.code == code, info.value.response.body if info.value.response else None
    assert info.value.response is not None
    error = json.loads(info.value.response.body)
    assert fragment in error["message"], error
    await wait_idle(jp_fetch)
    assert_nothing_left(yolo_workspace, before, tmp_path)
    recent = (await fetch_json(jp_fetch, "yolo", "datasets", "uploads"))["recent"]
    assert recent[0]["name"] == attack and recent[0]["stage"] == "failed"


@pytest.mark.parametrize("yolo_config", [{**LIMITS, "max_upload_bytes": 64 * MIB}])
async def test_archive_that_expands_past_the_limit(
    jp_fetch: Any, yolo_workspace: Path, tmp_path: Path
) -> None:
    body = _too_big_when_extracted()
    before = snapshot(tmp_path, ignore=("workspace/jobs.sqlite",))
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch(
            "yolo",
            "datasets",
            method="POST",
            params={"name": "big"},
            body=body,
            headers={"Content-Type": "application/zip"},
        )
    assert info.value.code == 413
    assert "max_extracted_bytes" in json.loads(info.value.response.body)["message"]
    assert_nothing_left(yolo_workspace, before, tmp_path)


async def test_oversized_content_length_is_refused_before_the_body(
    jp_fetch: Any, yolo_workspace: Path, tmp_path: Path
) -> None:
    before = snapshot(tmp_path, ignore=("workspace/jobs.sqlite",))
    produced = False

    async def producer(write: Any) -> None:
        nonlocal produced
        produced = True
        await write(b"\0" * 1024)

    with pytest.raises(HTTPClientError) as info:
        await jp_fetch(
            "yolo",
            "datasets",
            method="POST",
            params={"name": "huge"},
            headers={"Content-Type": "application/zip", "Content-Length": str(3 * MIB)},
            body_producer=producer,
            expect_100_continue=True,
        )
    assert info.value.code == 413
    assert "max_upload_bytes" in json.loads(info.value.response.body)["message"]
    assert not produced, "the server answered before asking for the body"
    assert_nothing_left(yolo_workspace, before, tmp_path)


def _head(port: int, token: str, base: str, extra: str) -> str:
    return (
        f"POST {base}yolo/datasets?name=stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: token {token}\r\nContent-Type: application/zip\r\n{extra}\r\n"
    )


async def test_body_streaming_past_the_limit_is_cut_off(
    jp_fetch: Any,
    jp_http_port: int,
    jp_auth_header: dict[str, str],
    jp_base_url: str,
    yolo_workspace: Path,
    tmp_path: Path,
) -> None:
    token = jp_auth_header["Authorization"].split()[1]
    before = snapshot(tmp_path, ignore=("workspace/jobs.sqlite",))
    chunks = [os.urandom(64 * 1024) for _ in range(80)]  # 5 MiB, no Content-Length
    status, body, sent = await asyncio.to_thread(
        raw_request,
        jp_http_port,
        _head(jp_http_port, token, jp_base_url, "Transfer-Encoding: chunked\r\n"),
        chunks,
        chunked=True,
    )
    assert status == 413, (status, body)
    assert body is not None and "max_upload_bytes" in body["message"]
    assert sent < 4 * MIB, "the server must stop the upload soon after the limit"
    await wait_idle(jp_fetch)
    assert_nothing_left(yolo_workspace, before, tmp_path)


async def test_body_shorter_than_its_content_length_claims(
    jp_fetch: Any,
    jp_http_port: int,
    jp_auth_header: dict[str, str],
    jp_base_url: str,
    yolo_workspace: Path,
    tmp_path: Path,
) -> None:
    """A client that promises 1 MiB, sends 100 KiB and hangs up leaves nothing behind."""
    token = jp_auth_header["Authorization"].split()[1]
    before = snapshot(tmp_path, ignore=("workspace/jobs.sqlite",))
    status, _, _ = await asyncio.to_thread(
        raw_request,
        jp_http_port,
        _head(jp_http_port, token, jp_base_url, f"Content-Length: {MIB}\r\n"),
        [os.urandom(50 * 1024), os.urandom(50 * 1024)],
        chunked=False,
        close_after=True,
    )
    assert status is None
    await wait_idle(jp_fetch)
    assert_nothing_left(yolo_workspace, before, tmp_path)
    recent = (await fetch_json(jp_fetch, "yolo", "datasets", "uploads"))["recent"]
    assert recent[0]["stage"] == "failed" and "closed the connection" in recent[0]["error"]


async def test_body_longer_than_its_content_length_claims(
    jp_fetch: Any,
    jp_http_port: int,
    jp_auth_header: dict[str, str],
    jp_base_url: str,
    yolo_workspace: Path,
    tmp_path: Path,
) -> None:
    """Only the declared bytes are read: the archive is cut short and refused."""
    token = jp_auth_header["Authorization"].split()[1]
    archive = _zip([*_valid_entries(), ("images/train/c.jpg", JPEG + os.urandom(100_000))])
    before = snapshot(tmp_path, ignore=("workspace/jobs.sqlite",))
    status, body, _ = await asyncio.to_thread(
        raw_request,
        jp_http_port,
        _head(jp_http_port, token, jp_base_url, "Content-Length: 2000\r\n"),
        [archive],
        chunked=False,
    )
    assert status == 400 and body is not None and "zip" in body["message"]
    await wait_idle(jp_fetch)
    assert_nothing_left(yolo_workspace, before, tmp_path)


async def test_symlink_planted_as_the_target(
    jp_fetch: Any, yolo_workspace: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (yolo_workspace / "datasets" / "evil").symlink_to(outside)
    (yolo_workspace / "datasets" / "dangling").symlink_to(tmp_path / "nowhere")
    body = _zip(_valid_entries())
    for name in ("evil", "dangling"):
        with pytest.raises(HTTPClientError) as info:
            await jp_fetch(
                "yolo",
                "datasets",
                method="POST",
                params={"name": name},
                body=body,
                headers={"Content-Type": "application/zip"},
            )
        assert info.value.code == 409
    assert list(outside.iterdir()) == []
    assert not (tmp_path / "nowhere").exists()
    listing = (await fetch_json(jp_fetch, "yolo", "datasets"))["datasets"]
    assert listing == [], "links in datasets/ are not datasets"
    with pytest.raises(HTTPClientError) as info:
        await jp_fetch("yolo", "datasets", "evil", "files", "data.yaml")
    assert info.value.code == 404
    (outside / "keep.txt").write_text("mine")
    response = await jp_fetch("yolo", "datasets", "evil", method="DELETE")
    assert response.code == 204, "deleting removes the planted link, never what it points to"
    assert not (yolo_workspace / "datasets" / "evil").is_symlink()
    assert (outside / "keep.txt").read_text() == "mine"
    assert list((yolo_workspace / ".tmp").iterdir()) == []


@pytest.fixture
def planted_tmp(yolo_workspace: Path, tmp_path: Path) -> Path:
    """``.tmp`` replaced by a link to a folder outside, before the server starts."""
    outside = tmp_path / "outside_tmp"
    outside.mkdir()
    (yolo_workspace / ".tmp").symlink_to(outside)
    return outside


async def test_symlink_planted_as_the_scratch_folder(
    planted_tmp: Path, jp_fetch: Any, yolo_workspace: Path
) -> None:
    assert not (yolo_workspace / ".tmp").is_symlink()
    response = await jp_fetch(
        "yolo",
        "datasets",
        method="POST",
        params={"name": "ok"},
        body=_zip(_valid_entries()),
        headers={"Content-Type": "application/zip"},
    )
    assert response.code == 201
    assert list(planted_tmp.iterdir()) == []


async def test_import_refuses_links_in_a_folder(
    jp_fetch: Any, yolo_workspace: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    for kind in ("symlink", "hardlink", "symlink_dir"):
        folder = yolo_workspace / "uploads" / kind
        (folder / "images" / "train").mkdir(parents=True)
        (folder / "images" / "val").mkdir(parents=True)
        (folder / "images" / "train" / "a.jpg").write_bytes(JPEG)
        (folder / "images" / "val" / "b.jpg").write_bytes(JPEG)
        if kind == "symlink":
            (folder / "images" / "train" / "s.jpg").symlink_to(secret)
        elif kind == "hardlink":
            os.link(
                yolo_workspace / "uploads" / "symlink" / "images" / "train" / "a.jpg",
                folder / "images" / "train" / "h.jpg",
            )
        else:
            (folder / "labels").symlink_to(tmp_path)
        before = snapshot(tmp_path, ignore=("workspace/jobs.sqlite",))
        with pytest.raises(HTTPClientError) as info:
            await jp_fetch(
                "yolo",
                "datasets",
                method="POST",
                body=json.dumps({"name": kind, "path": f"uploads/{kind}"}),
            )
        assert info.value.code == 400
        message = json.loads(info.value.response.body)["message"]
        assert ("symbolic link" if "symlink" in kind else "hard link") in message
        assert_nothing_left(yolo_workspace, before, tmp_path)
    for path in ("..", ".tmp", "/etc", "uploads/../../outside"):
        with pytest.raises(HTTPClientError) as info:
            await jp_fetch(
                "yolo", "datasets", method="POST", body=json.dumps({"name": "x", "path": path})
            )
        assert 400 <= info.value.code < 500
    shutil.rmtree(yolo_workspace / "uploads")
