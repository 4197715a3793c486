"""The persistent digest cache of weights files: hash once, rehash on change, survive bad files."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import threading
import time
from pathlib import Path

import pytest

from jupyter_yolo.inference.cache import (
    DIGEST_CACHE_FILE,
    DIGEST_CACHE_MAX_BYTES,
    DigestCache,
    exports_root,
    weights_digest,
)

PAST_NS = 1_600_000_000 * 10**9  # 2020: far from the "racy" window of a fresh write


def weights_file(path: Path, data: bytes, mtime_ns: int = PAST_NS) -> Path:
    """A weights file whose mtime lies in the past (its digest may be remembered)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


def sha16(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def entries(cache_file: Path) -> dict[str, dict[str, object]]:
    document = json.loads(cache_file.read_text())
    return {entry["path"]: entry for entry in document["entries"]}


@pytest.fixture
def cache_file(tmp_path: Path) -> Path:
    return exports_root(tmp_path / "ws") / DIGEST_CACHE_FILE


def test_a_file_is_hashed_once_and_remembered_across_restarts(
    tmp_path: Path, cache_file: Path
) -> None:
    data = os.urandom(3 * 1024 * 1024 + 7)
    weights = weights_file(tmp_path / "ws" / "weights" / "a.pt", data)
    cache = DigestCache(cache_file)
    assert cache.digest(weights) == sha16(data)
    assert cache.digest(weights) == sha16(data)
    assert cache.hashed == 1
    assert stat.S_IMODE(cache_file.stat().st_mode) == 0o600
    assert os.path.abspath(weights) in entries(cache_file)

    restarted = DigestCache(cache_file)  # a new server process reads the file
    assert restarted.digest(weights) == sha16(data)
    assert restarted.hashed == 0


def test_the_cache_file_is_private_whatever_the_umask(tmp_path: Path, cache_file: Path) -> None:
    weights = weights_file(tmp_path / "a.pt", b"weights")
    old = os.umask(0)
    try:
        DigestCache(cache_file).digest(weights)
    finally:
        os.umask(old)
    assert stat.S_IMODE(cache_file.stat().st_mode) == 0o600
    lock = cache_file.with_name(cache_file.name + ".lock")
    assert stat.S_IMODE(lock.stat().st_mode) == 0o600


def test_a_changed_or_replaced_file_is_hashed_again(tmp_path: Path, cache_file: Path) -> None:
    weights = weights_file(tmp_path / "a.pt", b"A" * 1000)
    cache = DigestCache(cache_file)
    assert cache.digest(weights) == sha16(b"A" * 1000)

    # same size, rewritten in place: the mtime moves
    weights_file(weights, b"B" * 1000, mtime_ns=PAST_NS + 10**9)
    assert cache.digest(weights) == sha16(b"B" * 1000)

    # replaced by a rename with the same size and mtime: another inode, another ctime
    other = weights_file(tmp_path / "new.pt", b"C" * 1000, mtime_ns=PAST_NS + 10**9)
    os.replace(other, weights)
    assert cache.digest(weights) == sha16(b"C" * 1000)
    assert cache.hashed == 3
    assert DigestCache(cache_file).digest(weights) == sha16(b"C" * 1000)


def test_a_file_written_just_now_is_not_remembered(tmp_path: Path, cache_file: Path) -> None:
    weights = tmp_path / "fresh.pt"
    weights.write_bytes(b"being written")
    cache = DigestCache(cache_file)
    assert cache.digest(weights) == sha16(b"being written")
    assert cache.digest(weights) == sha16(b"being written")
    assert cache.hashed == 2
    assert not cache_file.exists()


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not json at all",
        b"\xff\xfe binary",
        b"[" * 100_000,
        b'{"version": 1, "entries": {"not": "a list"}}',
        b'{"version": 99, "entries": []}',
        b'{"version": 1, "entries": [1, "x", null, {"path": 3}, {"size": NaN}]}',
        b'{"version": 1, "entries": [{"path": "/a", "size": -1, "mtime_ns": 0, "ctime_ns": 0, '
        b'"ino": 0, "dev": 0, "sha256_prefix": "zz", "hashed_at": 0}]}',
    ],
    ids=[
        "empty",
        "text",
        "binary",
        "deeply-nested",
        "entries-not-a-list",
        "other-version",
        "junk-entries",
        "bad-values",
    ],
)
def test_a_corrupt_cache_file_is_ignored_and_rebuilt(
    tmp_path: Path, cache_file: Path, content: bytes
) -> None:
    cache_file.parent.mkdir(parents=True)
    cache_file.write_bytes(content)
    weights = weights_file(tmp_path / "a.pt", b"weights")
    cache = DigestCache(cache_file)
    assert cache.digest(weights) == sha16(b"weights")
    assert list(entries(cache_file)) == [os.path.abspath(weights)]
    assert stat.S_IMODE(cache_file.stat().st_mode) == 0o600


def test_an_oversize_cache_file_is_not_read(tmp_path: Path, cache_file: Path) -> None:
    cache_file.parent.mkdir(parents=True)
    with cache_file.open("wb") as handle:
        handle.truncate(DIGEST_CACHE_MAX_BYTES + 1)
    weights = weights_file(tmp_path / "a.pt", b"weights")
    assert DigestCache(cache_file).digest(weights) == sha16(b"weights")
    assert cache_file.stat().st_size < 4096


def test_an_entry_for_another_version_of_the_file_is_not_trusted(
    tmp_path: Path, cache_file: Path
) -> None:
    weights = weights_file(tmp_path / "a.pt", b"real weights")
    cache_file.parent.mkdir(parents=True)
    info = weights.stat()
    forged = {
        "path": os.path.abspath(weights),
        "size": info.st_size + 1,
        "mtime_ns": info.st_mtime_ns,
        "ctime_ns": info.st_ctime_ns,
        "ino": info.st_ino,
        "dev": info.st_dev,
        "sha256_prefix": "0123456789abcdef",
        "hashed_at": time.time(),
    }
    cache_file.write_text(json.dumps({"version": 1, "entries": [forged]}))
    cache = DigestCache(cache_file)
    assert cache.digest(weights) == sha16(b"real weights")
    assert cache.hashed == 1


def test_a_linked_cache_file_is_neither_read_nor_followed(tmp_path: Path, cache_file: Path) -> None:
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text("keep me")
    cache_file.parent.mkdir(parents=True)
    cache_file.symlink_to(elsewhere)
    weights = weights_file(tmp_path / "a.pt", b"weights")
    assert DigestCache(cache_file).digest(weights) == sha16(b"weights")
    assert elsewhere.read_text() == "keep me"
    assert not cache_file.is_symlink() and os.path.abspath(weights) in entries(cache_file)


def test_the_cache_is_bounded_to_the_most_recent_entries(tmp_path: Path, cache_file: Path) -> None:
    cache = DigestCache(cache_file, max_entries=3)
    files = [weights_file(tmp_path / f"w{i}.pt", f"weights {i}".encode()) for i in range(5)]
    for path in files:
        cache.digest(path)
    assert set(entries(cache_file)) == {os.path.abspath(p) for p in files[2:]}


def test_processes_sharing_the_file_keep_each_others_entries(
    tmp_path: Path, cache_file: Path
) -> None:
    a = weights_file(tmp_path / "a.pt", b"a")
    b = weights_file(tmp_path / "b.pt", b"b")
    server, runner = DigestCache(cache_file), DigestCache(cache_file)
    server.digest(a)
    runner.digest(b)
    assert set(entries(cache_file)) == {os.path.abspath(a), os.path.abspath(b)}
    assert DigestCache(cache_file).digest(a) == sha16(b"a")


def test_threads_asking_at_once_hash_the_file_once(tmp_path: Path, cache_file: Path) -> None:
    weights = weights_file(tmp_path / "a.pt", os.urandom(4 * 1024 * 1024))
    cache = DigestCache(cache_file)
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.digest(weights))) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 1 and len(results) == 4
    assert cache.hashed == 1


def test_a_fifo_is_refused_instead_of_blocking(tmp_path: Path, cache_file: Path) -> None:
    fifo = tmp_path / "pipe.pt"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="not a regular file"):
        DigestCache(cache_file).digest(fifo)


def test_weights_digest_uses_the_cache_of_the_workspace_the_file_is_in(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    exports_root(workspace).mkdir(parents=True)
    pretrained = weights_file(workspace / "weights" / "yolov8n.pt", b"pretrained")
    trained = weights_file(
        workspace / "jobs" / "0123456789ab" / "run" / "weights" / "best.pt", b"trained"
    )
    assert weights_digest(pretrained) == sha16(b"pretrained")
    assert weights_digest(trained) == sha16(b"trained")
    assert set(entries(exports_root(workspace) / DIGEST_CACHE_FILE)) == {
        os.path.abspath(pretrained),
        os.path.abspath(trained),
    }
