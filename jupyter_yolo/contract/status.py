"""Job kinds and statuses: one name, one meaning."""

from __future__ import annotations

from typing import Literal

JobKind = Literal["train", "val", "predict", "export", "tune"]
JobStatus = Literal[
    "queued", "running", "stopping", "succeeded", "failed", "stopped", "interrupted"
]

KINDS: tuple[JobKind, ...] = ("train", "val", "predict", "export", "tune")
STATUSES: tuple[JobStatus, ...] = (
    "queued",
    "running",
    "stopping",
    "succeeded",
    "failed",
    "stopped",
    "interrupted",
)
TERMINAL: frozenset[str] = frozenset({"succeeded", "failed", "stopped", "interrupted"})
"""A job in one of these will not change again (unless resumed as a new run)."""
RUNNER_TERMINAL: tuple[str, ...] = ("succeeded", "failed", "stopped")
"""The terminal statuses a runner writes itself; ``interrupted`` is the server's verdict on a
runner that died without writing one."""
ACTIVE: frozenset[str] = frozenset({"running", "stopping"})
"""A runner process exists (or is believed to) for a job in one of these."""
UNFINISHED: frozenset[str] = frozenset({"queued", "running", "stopping"})
"""Not terminal: queued or with a live runner."""
