"""The predict loop's helper threads (read ahead, annotate behind) and the lanes rule; fast.

No model runs here: the threads are exercised with plain iterators and callables, the way the
predict loop drives them (see tests/test_predict_media.py for real jobs on them).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from jupyter_yolo.runner.pipeline import Behind, ReadAhead
from jupyter_yolo.runner.throughput import throughput_lanes


def test_read_ahead_keeps_order_and_stays_bounded() -> None:
    produced: list[int] = []
    gate = threading.Event()

    def frames() -> Iterator[int]:
        for number in range(10):
            produced.append(number)
            yield number
        gate.set()

    ahead = ReadAhead(frames(), depth=3)
    seen = iter(ahead)
    assert next(seen) == 0
    # the reader runs at most depth frames ahead of the consumer (plus the one it holds)
    assert not gate.wait(0.3)
    assert len(produced) <= 1 + 3 + 1
    assert list(seen) == list(range(1, 10))
    ahead.close()


def test_read_ahead_hands_the_readers_error_to_the_consumer() -> None:
    def frames() -> Iterator[int]:
        yield 1
        raise OSError("the disk went away")

    ahead = ReadAhead(frames(), depth=2)
    seen = iter(ahead)
    assert next(seen) == 1
    with pytest.raises(OSError, match="disk went away"):
        next(seen)
    ahead.close()


def test_read_ahead_close_waits_for_the_reader_to_leave_the_source() -> None:
    inside = threading.Event()

    def frames() -> Iterator[int]:
        for number in range(1000):
            inside.set()
            yield number

    ahead = ReadAhead(frames(), depth=2)
    assert inside.wait(5)
    ahead.close()  # the consumer stops early (a stop): the reader waits on a full queue
    assert not ahead._thread.is_alive(), "the reader has left the source"


def test_behind_runs_in_order_and_reports_the_first_error() -> None:
    done: list[int] = []

    def work(item: int) -> None:
        if item == 3:
            raise ValueError("cannot write frame 3")
        done.append(item)

    behind = Behind(work, depth=2)
    for item in range(3):
        behind.put(item)
    assert behind.close() is None
    assert done == [0, 1, 2]

    behind = Behind(work, depth=1)
    with pytest.raises(ValueError, match="frame 3"):
        for item in range(100):
            behind.put(item)
    assert behind.close() is None  # already raised once
    assert done[3:] == [0, 1, 2]  # nothing after the failure was drawn

    behind = Behind(work, depth=8)
    for item in (3, 4):
        behind.put(item)
    error = behind.close()
    assert isinstance(error, ValueError)


def test_lanes_only_for_openvino_batches_on_a_cpu() -> None:
    assert throughput_lanes("openvino-int8", "cpu", 4, 2) == 2
    assert throughput_lanes("openvino", None, 8, 16) == 4
    assert throughput_lanes("openvino", "cpu", 2, 16) == 2  # never more than the batch
    assert throughput_lanes("openvino", "cpu", 1, 2) == 1  # latency mode
    assert throughput_lanes("openvino", "cpu", 4, 1) == 1
    assert throughput_lanes("onnxruntime", "cpu", 4, 2) == 1
    assert throughput_lanes("pytorch", "0", 16, 8) == 1
