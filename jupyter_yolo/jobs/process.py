"""Runner processes seen from the server: identity across restarts, signals, a clean environment."""

from __future__ import annotations

import contextlib
import os
import re
import signal
from collections.abc import Mapping
from pathlib import Path

_SECRET_NAME = re.compile(
    r"TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|PRIVATE_KEY|AUTHORIZED_KEYS|COOKIE"
)


def process_start_time(pid: int) -> int | None:
    """Start time of a process in clock ticks since boot (field 22 of /proc/PID/stat).

    Together with the pid it identifies a process across server restarts, so a recycled pid is
    never mistaken for the runner that once had it.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return int(fields[19])


def process_state(pid: int) -> str | None:
    """The one-letter state of a process (``Z`` for a zombie), or None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rfind(")") + 2 :].split()[0]


def is_same_process_alive(pid: int | None, start_time: int | None) -> bool:
    """Whether the process ``pid`` started at ``start_time`` still runs (zombies count as gone)."""
    if not pid:
        return False
    state = process_state(pid)
    if state is None or state in ("Z", "X"):
        return False
    return start_time is None or process_start_time(pid) == start_time


def session_members(session_id: int) -> list[int]:
    """Pids of the live processes of a session (a runner and everything it started)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if int(fields[3]) == session_id and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def signal_process(pid: int, sig: signal.Signals) -> None:
    """Send a signal to one process, ignoring one that is already gone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def signal_session(session_id: int, sig: signal.Signals) -> None:
    """Send a signal to the runner's process group and to any member of its session.

    The runner leads its own session and process group; dataloader workers stay in that group,
    but a member that made a group of its own is found through the session id.
    """
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(session_id, sig)
    for pid in session_members(session_id):
        signal_process(pid, sig)


def runner_environment(base: Mapping[str, str]) -> dict[str, str]:
    """The environment of a job: the server's, less anything that looks like a credential."""
    env = {key: value for key, value in base.items() if not _SECRET_NAME.search(key.upper())}
    env["PYTHONUNBUFFERED"] = "1"
    return env
