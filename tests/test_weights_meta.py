"""The bounded weights-metadata reader: damaged and hostile files never raise, work is bounded."""

from __future__ import annotations

import json
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any

import pytest

from jupyter_yolo.jobs.weights_task import task_of_weights
from jupyter_yolo.runner.common import is_rtdetr
from jupyter_yolo.weights_meta import (
    MAX_OPCODES,
    MAX_PICKLE_BYTES,
    checkpoint_facts,
    pickle_facts,
    task_in_file,
    task_in_pickle,
)
from tests.conftest import expect_error, fetch_json

# protocol 4, no frames: an ultralytics RT-DETR model object with task 'pose' (nothing runs)
RTDETR_PICKLE = (
    b"\x80\x04\x8c\x14ultralytics.nn.tasks\x94\x8c\x14RTDETRDetectionModel\x94\x93\x94)"
    b"\x81\x94}\x94(\x8c\x04task\x94\x8c\x04pose\x94ub."
)


def zipped(path: Path, member: str, data: bytes, method: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression=method) as archive:
        archive.writestr(member, data)
    return path


def local_data_offset(raw: bytes) -> int:
    """Where the first member's compressed bytes start in a zip."""
    name_len, extra_len = struct.unpack("<HH", raw[26:30])
    return 30 + name_len + extra_len


def corrupt_deflate(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    start = local_data_offset(bytes(raw))
    for i in range(start, start + 40):
        raw[i] = 0xFF  # an invalid deflate block type: zlib.error when read
    path.write_bytes(bytes(raw))


def shorten_member(path: Path) -> None:
    """Declare the member's compressed stream half as long: its end-of-stream never comes."""
    raw = bytearray(path.read_bytes())
    size = struct.unpack("<I", raw[18:22])[0]
    raw[18:22] = struct.pack("<I", size // 2)
    central = raw.rindex(b"PK\x01\x02")
    raw[central + 20 : central + 24] = struct.pack("<I", size // 2)
    path.write_bytes(bytes(raw))


def a_checkpoint() -> bytes:
    return pickle.dumps({"train_args": {"task": "pose"}, "pad": list(range(5000))}, protocol=4)


def test_rtdetr_pickle_facts() -> None:
    facts = pickle_facts(RTDETR_PICKLE)
    assert facts.task == "pose" and "RTDETRDetectionModel" in facts.classes


@pytest.mark.parametrize("damage", [corrupt_deflate, shorten_member])
def test_damaged_checkpoint_falls_back_to_the_name(damage: Any, tmp_path: Path) -> None:
    for name in ("yolo11n-obb.pt", "custom.pt"):
        path = zipped(tmp_path / name, "ckpt/data.pkl", a_checkpoint())
        assert task_in_file(path) == "pose"  # undamaged, the pickle decides
        damage(path)
        assert task_in_file(path) is None
        assert task_of_weights(path) == ("obb" if "obb" in name else "detect")
        assert checkpoint_facts(path).classes == set()
    rtdetr = zipped(tmp_path / "best.pt", "best/data.pkl", RTDETR_PICKLE)
    assert is_rtdetr(rtdetr)
    damage(rtdetr)
    assert not is_rtdetr(rtdetr)


@pytest.mark.parametrize("damage", [corrupt_deflate, shorten_member])
def test_damaged_torchscript_config_falls_back(damage: Any, tmp_path: Path) -> None:
    path = zipped(tmp_path / "m-seg.torchscript", "m/extra/config.txt", b'{"task": "pose"}' * 50)
    damage(path)
    assert task_of_weights(path) == "segment"


def test_deeply_nested_metadata_falls_back(tmp_path: Path) -> None:
    deep = tmp_path / "yolo11n-pose.torchscript"
    zipped(deep, "m/extra/config.txt", b"[" * 200_000 + b"]" * 200_000)
    assert task_of_weights(deep) == "pose"
    folder = tmp_path / "m-obb_openvino_model"
    folder.mkdir()
    (folder / "metadata.yaml").write_text("task: " + "[" * 5000 + "]" * 5000)
    assert task_of_weights(folder) == "obb"


def test_huge_pickle_is_not_read(tmp_path: Path) -> None:
    """A data.pkl over MAX_PICKLE_BYTES is never decompressed (one that lies about its size
    neither): the name decides, even though the pickle starts by naming its task."""
    head = pickle.dumps({"task": "pose"}, protocol=4)[:-1]  # no STOP: the rest follows
    body = head + b"N" * (MAX_PICKLE_BYTES + 1)
    assert task_in_pickle(body) == "pose"  # the stream itself names it early
    huge = zipped(tmp_path / "huge-seg.pt", "huge/data.pkl", body)
    assert huge.stat().st_size < MAX_PICKLE_BYTES // 100  # compresses to little
    assert task_of_weights(huge) == "segment"
    lying = zipped(tmp_path / "lying-seg.pt", "lying/data.pkl", body)
    raw = bytearray(lying.read_bytes())
    raw[22:26] = struct.pack("<I", 100)  # declares 100 bytes, holds 8 MiB
    central = raw.rindex(b"PK\x01\x02")
    raw[central + 24 : central + 28] = struct.pack("<I", 100)
    lying.write_bytes(bytes(raw))
    assert task_of_weights(lying) == "segment"


def test_the_pickle_walk_stops_after_its_opcode_budget() -> None:
    data = pickle.dumps([[None] * MAX_OPCODES, {"task": "pose"}], protocol=4)
    assert len(data) < MAX_PICKLE_BYTES  # within the size bound: only the budget stops it
    assert task_in_pickle(data) is None
    assert pickle_facts(data, max_opcodes=2 * MAX_OPCODES).task == "pose"


async def test_models_and_jobs_answer_beside_a_damaged_checkpoint(
    jp_fetch: Any, yolo_workspace: Path
) -> None:
    weights = yolo_workspace / "weights"
    weights.mkdir(exist_ok=True)
    damaged = zipped(weights / "broken-pose.pt", "broken/data.pkl", a_checkpoint())
    corrupt_deflate(damaged)
    models = await fetch_json(jp_fetch, "yolo", "models")
    assert "broken-pose.pt" in str(models)
    body = {"kind": "val", "model": "broken-pose.pt", "data": "no-such-dataset"}
    error = await expect_error(jp_fetch, 400, "yolo", "jobs", method="POST", body=json.dumps(body))
    assert "message" in error
