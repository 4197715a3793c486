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


def test_one_index_shared_by_threads_always_reads_whole_ordered_events(tmp_path: Path) -> None:
    import threading

    path = tmp_path / "events.jsonl"
    index = EventIndex(path)
    total = 3000
    failures: list[BaseException] = []
    done = threading.Event()

    def read() -> None:
        seen = 0
        try:
            while not done.is_set() or seen < total:
                events = index.read_after(seen, limit=50)
                seqs = [e["seq"] for e in events]
                assert seqs == list(range(seen + 1, seen + 1 + len(seqs))), seqs[:5]
                seen += len(seqs)
        except BaseException as exc:  # reported below
            failures.append(exc)

    readers = [threading.Thread(target=read) for _ in range(3)]
    for reader in readers:
        reader.start()
    with EventWriter(path) as writer:
        for i in range(total):
            writer.emit("batch", batch=i)
    done.set()
    for reader in readers:
        reader.join(timeout=120)
    assert not failures, failures[0]
    assert index.last_seq == total


def test_a_damaged_last_line_does_not_restart_the_sequence(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    with EventWriter(path) as writer:
        writer.emit("status", status="queued")
        writer.emit("log", message="hello")
    with path.open("a") as handle:
        handle.write("garbage that is no event\n")
    assert append_event(path, "status", status="interrupted")["seq"] == 3
    seqs = [e["seq"] for e in EventIndex(path).read_after(0)]
    assert seqs == [1, 2, 3]
