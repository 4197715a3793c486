"""Unit checks of the archive rules that the REST tests cannot reach one by one: entry names,
image sniffing, the entry count read before zipfile parses, and the checks on real bytes."""

from __future__ import annotations

import io
import os
import struct
import zipfile
from pathlib import Path, PurePosixPath

import pytest

from jupyter_yolo.datasets.archive import (
    Limits,
    _copy_stream,
    _Counter,
    check_entry_name,
    copy_folder,
    count_entries,
    extract_zip,
    is_kept,
    looks_like_image,
)
from jupyter_yolo.errors import InvalidRequest, PayloadTooLarge, UnsafeArchive

LIMITS = Limits(max_extracted_bytes=10_000, max_entries=10, max_compression_ratio=20)


@pytest.mark.parametrize(
    "name",
    [
        "../x.jpg",
        "a/../../x.jpg",
        "/etc/passwd",
        "C:/x.jpg",
        "c:x.jpg",
        "a\\b.jpg",
        "a//b.jpg",
        "./a.jpg",
        "a/\x00.jpg",
        "a/\n.jpg",
        "x" * 300 + ".jpg",
        "/".join(["d"] * 40) + "/x.jpg",
    ],
)
def test_bad_names(name: str) -> None:
    with pytest.raises(UnsafeArchive):
        check_entry_name(name)


@pytest.mark.parametrize(
    "name", ["a.jpg", "coco8/images/train/0001.jpg", "dir/", "é/ü.png", "ab:c/d.jpg"]
)
def test_good_names(name: str) -> None:
    assert check_entry_name(name).as_posix() == name.rstrip("/")


def test_kept_files() -> None:
    assert is_kept(PurePosixPath("images/a.JPG")) and is_kept(PurePosixPath("a/data.yaml"))
    for name in (
        "__MACOSX/images/._a.jpg",
        "images/._a.jpg",
        ".git/config.json",
        "x.py",
        "a.cache",
        "README.md",
    ):
        assert not is_kept(PurePosixPath(name)), name


def test_image_signatures() -> None:
    assert looks_like_image(b"\xff\xd8\xff\xe0" + b"\0" * 12)
    assert looks_like_image(b"\x89PNG\r\n\x1a\n" + b"\0" * 8)
    assert looks_like_image(b"RIFF\0\0\0\0WEBPVP8 ")
    assert looks_like_image(b"\0\0\0\x18ftypheic\0\0\0\0")
    for head in (b"#!/bin/sh\n", b"<html>", b"PK\x03\x04", b"\x7fELF", b""):
        assert not looks_like_image(head)


def _central_directory_with(entries: int) -> bytes:
    """A zip whose end record claims 1 entry while the directory holds ``entries``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i in range(entries):
            archive.writestr(f"labels/{i}.txt", b"")
    data = bytearray(buffer.getvalue())
    end = data.rfind(b"PK\x05\x06")
    struct.pack_into("<HH", data, end + 8, 1, 1)  # entries on this disk, entries in total
    return bytes(data)


def test_entry_count_is_read_before_zipfile_parses_the_directory() -> None:
    lying = io.BytesIO(_central_directory_with(50))
    with pytest.raises(PayloadTooLarge, match="more than 10 entries"):
        count_entries(lying, 10)
    assert count_entries(io.BytesIO(_central_directory_with(5)), 10) == 5


def test_real_bytes_are_counted_while_decompressing(tmp_path: Path) -> None:
    # more real bytes than the header declares
    fd = os.open(tmp_path / "a.txt", os.O_WRONLY | os.O_CREAT)
    with pytest.raises(UnsafeArchive, match="more data than its header"):
        _copy_stream(
            io.BytesIO(b"x" * 5000),
            fd,
            PurePosixPath("a.txt"),
            _Counter(LIMITS, 100, None),
            declared=100,
            compressed=None,
        )
    # more real bytes than the total limit, whatever the headers said
    fd = os.open(tmp_path / "b.txt", os.O_WRONLY | os.O_CREAT)
    with pytest.raises(PayloadTooLarge, match="max_extracted_bytes"):
        _copy_stream(
            io.BytesIO(b"x" * 20_000),
            fd,
            PurePosixPath("b.txt"),
            _Counter(LIMITS, 100, None),
            declared=None,
            compressed=None,
        )
    # a ratio computed on the real bytes
    big = Limits(max_extracted_bytes=10**9, max_entries=10, max_compression_ratio=20)
    fd = os.open(tmp_path / "c.txt", os.O_WRONLY | os.O_CREAT)
    with pytest.raises(UnsafeArchive, match="zip bomb"):
        _copy_stream(
            io.BytesIO(b"x" * (3 * 1024 * 1024)),
            fd,
            PurePosixPath("c.txt"),
            _Counter(big, 0, None),
            declared=None,
            compressed=1000,
        )


def test_extraction_reports_progress_and_skips_junk(tmp_path: Path) -> None:
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("images/a.jpg", b"\xff\xd8\xff" + b"\0" * 100)
        zf.writestr("labels/a.txt", b"0 0.5 0.5 0.1 0.1\n")
        zf.writestr("notes.md", b"hello")
        zf.writestr("images/", b"")
    steps: list[tuple[int, int]] = []
    result = extract_zip(
        archive, tmp_path / "out", LIMITS, progress=lambda d, t: steps.append((d, t))
    )
    assert result.files == 2 and result.skipped == ["notes.md"]
    assert steps[-1][0] == steps[-1][1] == result.bytes
    assert sorted(
        p.relative_to(tmp_path / "out").as_posix()
        for p in (tmp_path / "out").rglob("*")
        if p.is_file()
    ) == ["images/a.jpg", "labels/a.txt"]


def test_folder_copy_limits(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for i in range(12):
        (source / f"{i}.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    with pytest.raises(PayloadTooLarge, match="entries"):
        copy_folder(source, tmp_path / "out", LIMITS)
    assert not (tmp_path / "out").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.md").write_text("x")
    with pytest.raises(InvalidRequest, match="no images"):
        copy_folder(empty, tmp_path / "out2", LIMITS)
