"""The event file: one writer continuing the sequence, readers indexing incrementally."""

from __future__ import annotations

import json
from pathlib import Path

from jupyter_yolo.jobs.events import EventIndex, EventWriter, append_event


def test_writer_continues_sequence_and_drops_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with EventWriter(path) as writer:
        writer.emit("status", status="queued")
        writer.emit("log", message="hello")
    with path.open("a") as handle:
        handle.write('{"seq": 3, "time": 1, "type": "ba')  # a writer killed mid-line
    event = append_event(path, "status", status="interrupted")
    assert event["seq"] == 3
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [e["seq"] for e in lines] == [1, 2, 3]
    assert lines[-1]["status"] == "interrupted"


def test_index_reads_incrementally_and_ignores_partial_lines(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    index = EventIndex(path)
    assert index.read_after(0) == []
    writer = EventWriter(path)
    for i in range(5):
        writer.emit("batch", batch=i + 1)
    assert [e["seq"] for e in index.read_after(0)] == [1, 2, 3, 4, 5]
    assert [e["seq"] for e in index.read_after(3)] == [4, 5]
    assert [e["seq"] for e in index.read_after(1, limit=2)] == [2, 3]
    with path.open("a") as handle:
        handle.write('{"seq": 6, "time": 1, "type": "log", "mess')
        handle.flush()
        assert index.read_after(5) == []
        handle.write('age": "done"}\n')
    assert [e["message"] for e in index.read_after(5)] == ["done"]
    assert index.last_seq == 6
    writer.close()


def test_index_handles_many_events_cheaply(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with EventWriter(path) as writer:
        for i in range(20000):
            writer.emit("batch", batch=i, loss={"box": 1.0, "cls": 2.0, "dfl": 3.0})
    index = EventIndex(path)
    assert len(index.read_after(19990)) == 10
    assert index.read_after(0, limit=1)[0]["seq"] == 1
    assert index.last_seq == 20000
