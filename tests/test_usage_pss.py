"""A job's memory counts pages its forked dataloader workers share with it once, not per worker."""

from __future__ import annotations

import os
import time

import pytest

from jupyter_yolo.runner.usage_sampler import PROC, process_memory_bytes

MIB = 2**20


def _rss(pid: int) -> int:
    return int((PROC / str(pid) / "statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(
    not (PROC / "self" / "smaps_rollup").is_file(), reason="this kernel has no smaps_rollup (PSS)"
)
def test_forked_children_share_their_parents_pages_in_the_sum() -> None:
    block = bytearray(64 * MIB)
    for offset in range(0, len(block), 4096):  # touch every page: resident in the parent
        block[offset] = 1
    children = []
    for _ in range(3):
        pid = os.fork()
        if pid == 0:  # a child that only reads: its pages stay shared with the parent
            time.sleep(30)
            os._exit(0)
        children.append(pid)
    try:
        time.sleep(0.2)
        members = [os.getpid(), *children]
        proportional = sum(process_memory_bytes(pid) for pid in members)
        resident = sum(_rss(pid) for pid in members)
        assert proportional >= 64 * MIB  # the block is held once
        assert resident >= proportional + 3 * 48 * MIB  # resident sizes count it per child
    finally:
        for pid in children:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
