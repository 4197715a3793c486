"""Folder-change notification (jobs/filewatch.py): real inotify on a temporary folder.

Writes come from another process, as the runner's do. Every assertion is about what woke whom
and how often the loop was woken, never about how long it took.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from jupyter_yolo.contract.files import write_atomic
from jupyter_yolo.jobs.filewatch import FolderWatcher

LONG = 60.0  # a wait that only a notification ends (the test fails by its own timeout otherwise)
EVENTS = "events.jsonl"

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux's")


def append_in_subprocess(path: Path, line: str) -> None:
    """Append one line to ``path`` from another process, as the runner does."""
    code = "import sys; open(sys.argv[1], 'a').write(sys.argv[2] + '\\n')"
    subprocess.run([sys.executable, "-c", code, str(path), line], check=True, timeout=60)


def run(main: Callable[[], Awaitable[Any]]) -> Any:
    """Run one coroutine on a fresh event loop."""
    return asyncio.run(asyncio.wait_for(main(), timeout=120))


async def woken_by(
    watcher: FolderWatcher, folder: Path, change: Callable[[], None], **watch: Any
) -> tuple[bool, int]:
    """Wait on ``folder`` while ``change`` runs in a thread; return (changed, watcher reads)."""
    with watcher.watch(folder, **watch) as waiter:
        assert not waiter.polling
        task = asyncio.create_task(waiter.wait(LONG))
        await asyncio.to_thread(change)
        changed = await task
    return changed, watcher.reads


def test_an_append_by_another_process_wakes_the_waiter(tmp_path: Path) -> None:
    (tmp_path / EVENTS).write_text('{"seq": 1}\n')
    watcher = FolderWatcher()

    async def main() -> tuple[bool, int]:
        return await woken_by(
            watcher, tmp_path, lambda: append_in_subprocess(tmp_path / EVENTS, '{"seq": 2}')
        )

    changed, reads = run(main)
    assert changed and reads >= 1
    watcher.close()


def test_a_file_created_after_the_wait_started_wakes_it(tmp_path: Path) -> None:
    watcher = FolderWatcher()

    async def main() -> tuple[bool, int]:
        return await woken_by(
            watcher,
            tmp_path,
            lambda: append_in_subprocess(tmp_path / EVENTS, '{"seq": 1}'),
            names=[EVENTS],
        )

    assert run(main)[0]
    watcher.close()


def test_an_atomic_rename_wakes_it(tmp_path: Path) -> None:
    (tmp_path / "status.json").write_text("{}")
    watcher = FolderWatcher()

    async def main() -> tuple[bool, int]:
        return await woken_by(
            watcher,
            tmp_path,
            lambda: write_atomic(tmp_path / "status.json", '{"status": "running"}'),
            names=["status.json"],
        )

    assert run(main)[0]
    watcher.close()


def test_other_files_do_not_wake_a_waiter_that_names_its_files(tmp_path: Path) -> None:
    """A runner's log written line by line does not wake a request waiting for events."""
    watcher = FolderWatcher()

    async def main() -> tuple[int, bool]:
        with watcher.watch(tmp_path, names=[EVENTS]) as waiter:
            task = asyncio.create_task(waiter.wait(LONG))
            for i in range(5):
                await asyncio.to_thread(append_in_subprocess, tmp_path / "log.txt", f"line {i}")
            while watcher.reads == 0:  # the loop has read the log's events ...
                await asyncio.sleep(0.05)
            woke_early = task.done()  # ... and left the waiter asleep
            await asyncio.to_thread(append_in_subprocess, tmp_path / EVENTS, '{"seq": 1}')
            assert await task
        return waiter.wakeups, woke_early

    wakeups, woke_early = run(main)
    assert not woke_early and wakeups == 1
    watcher.close()


def test_notify_from_another_thread_wakes_every_waiter_of_the_folder(tmp_path: Path) -> None:
    watcher = FolderWatcher()
    other = tmp_path / "other"
    other.mkdir()

    async def main() -> tuple[list[bool], bool]:
        with (
            watcher.watch(tmp_path) as first,
            watcher.watch(tmp_path) as second,
            watcher.watch(other) as elsewhere,
        ):
            waits = [asyncio.create_task(w.wait(LONG)) for w in (first, second)]
            bystander = asyncio.create_task(elsewhere.wait(LONG))
            thread = threading.Thread(target=watcher.notify, args=(tmp_path,))
            thread.start()
            woken = list(await asyncio.gather(*waits))
            thread.join()
            await asyncio.sleep(0)
            left_asleep = not bystander.done()
            bystander.cancel()
        return woken, left_asleep

    woken, left_asleep = run(main)
    assert woken == [True, True] and left_asleep
    watcher.close()


def test_a_change_between_two_waits_is_not_lost(tmp_path: Path) -> None:
    """A caller re-reads after each return: a change made meanwhile ends the next wait at once."""
    watcher = FolderWatcher()

    async def main() -> bool:
        with watcher.watch(tmp_path) as waiter:
            await asyncio.to_thread(append_in_subprocess, tmp_path / EVENTS, "{}")
            while watcher.reads == 0:
                await asyncio.sleep(0.05)
            return await waiter.wait(LONG)

    assert run(main)
    watcher.close()


def test_watches_are_shared_and_removed_with_the_last_waiter(tmp_path: Path) -> None:
    watcher = FolderWatcher()
    second = tmp_path / "second"
    second.mkdir()

    async def main() -> list[tuple[int, int]]:
        counts = []
        with watcher.watch(tmp_path):
            counts.append((watcher.watched_folders, watcher.waiting(tmp_path)))
            with watcher.watch(tmp_path), watcher.watch(second):
                counts.append((watcher.watched_folders, watcher.waiting(tmp_path)))
            counts.append((watcher.watched_folders, watcher.waiting(tmp_path)))
        counts.append((watcher.watched_folders, watcher.waiting(tmp_path)))
        return counts

    assert run(main) == [(1, 1), (2, 2), (1, 1), (0, 0)]
    assert watcher.mode == "inotify"
    watcher.close()


def test_no_wake_ups_while_nothing_changes(tmp_path: Path) -> None:
    """Idle waiters cost nothing: the loop never reads, no waiter returns (polling: it does)."""
    (tmp_path / EVENTS).write_text("")
    notified = FolderWatcher()
    polled = FolderWatcher(use_inotify=False)

    async def main() -> tuple[int, list[int], list[int]]:
        waiters = [notified.watch(tmp_path) for _ in range(10)]
        pollers = [polled.watch(tmp_path) for _ in range(10)]

        async def follow(waiter: Any) -> None:
            while True:
                await waiter.wait(LONG)

        tasks = [asyncio.create_task(follow(w)) for w in waiters + pollers]
        await asyncio.sleep(1.0)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for waiter in waiters + pollers:
            waiter.close()
        return notified.reads, [w.wakeups for w in waiters], [w.wakeups for w in pollers]

    reads, wakeups, polls = run(main)
    assert reads == 0 and wakeups == [0] * 10
    # the fallback re-checks every 0.25 s: in 1 s every poller woke at least once
    assert all(count >= 1 for count in polls), polls
    notified.close()
    polled.close()


def test_fallback_polling_sees_a_change_without_inotify(tmp_path: Path) -> None:
    watcher = FolderWatcher(use_inotify=False)
    path = tmp_path / EVENTS

    async def main() -> tuple[bool, int, bool]:
        with watcher.watch(tmp_path) as waiter:
            polling = waiter.polling
            await asyncio.to_thread(append_in_subprocess, path, '{"seq": 1}')
            seen = False
            while not seen:  # the caller's loop: wait, then re-read
                await waiter.wait(LONG)
                seen = path.read_text().count("\n") == 1
        return polling, watcher.watched_folders, seen

    polling, watches, seen = run(main)
    assert polling and watches == 0 and seen
    assert watcher.mode == "poll" and watcher.reads == 0


def test_a_folder_that_does_not_exist_is_polled(tmp_path: Path) -> None:
    watcher = FolderWatcher()

    async def main() -> bool:
        with watcher.watch(tmp_path / "missing") as waiter:
            return waiter.polling

    assert run(main)
    assert watcher.watched_folders == 0
    watcher.close()


def test_a_deleted_folder_wakes_its_waiters_who_then_poll(tmp_path: Path) -> None:
    folder = tmp_path / "job"
    folder.mkdir()
    watcher = FolderWatcher()

    async def main() -> tuple[bool, bool]:
        with watcher.watch(folder, names=[EVENTS]) as waiter:
            task = asyncio.create_task(waiter.wait(LONG))
            await asyncio.to_thread(os.rmdir, folder)
            changed = await task
            while watcher.watched_folders:  # the kernel's IN_IGNORED comes after IN_DELETE_SELF
                await waiter.wait(0.05)
            return changed, waiter.polling

    changed, polling = run(main)
    assert changed and polling
    watcher.close()


def test_close_wakes_waiters_and_later_watches_poll(tmp_path: Path) -> None:
    watcher = FolderWatcher()

    async def main() -> tuple[bool, bool, int]:
        with watcher.watch(tmp_path) as waiter:
            task = asyncio.create_task(waiter.wait(LONG))
            await asyncio.sleep(0)
            watcher.close()
            changed = await task
        with watcher.watch(tmp_path) as later:
            return changed, later.polling, watcher.watched_folders

    assert run(main) == (True, True, 0)


def test_a_new_event_loop_gets_a_new_descriptor(tmp_path: Path) -> None:
    """A server restarted in the same process (a new loop) is watched again, not left polling."""
    watcher = FolderWatcher()

    async def main() -> bool:
        changed, _ = await woken_by(
            watcher, tmp_path, lambda: append_in_subprocess(tmp_path / EVENTS, "{}")
        )
        return changed

    assert run(main)
    assert run(main)
    watcher.close()
