"""What the server would accept for a job right now: the ``actions`` of a job and an event page.

Panels and the sidebar enable their Stop and Resume buttons from these flags instead of guessing
from the status, so a button is enabled exactly when a click would be accepted (a click can still
lose a race with a change made elsewhere: the server then answers 409 and the panel refreshes).
"""

from __future__ import annotations

from typing import TypedDict

STOPPABLE: frozenset[str] = frozenset({"queued", "running"})
"""Statuses a stop applies to (a ``stopping`` job is already stopping)."""
RESUMABLE: frozenset[str] = frozenset({"stopped", "interrupted"})
"""Statuses a training can be resumed from (from its ``last.pt``, or from epoch 1 without one)."""


class JobActions(TypedDict):
    """Whether ``POST /yolo/jobs/{id}/stop`` and ``.../resume`` would be accepted now."""

    stop: bool
    resume: bool


def job_actions(kind: str, status: str, supervising: bool = True) -> JobActions:
    """The actions a job of ``kind`` in ``status`` allows.

    ``supervising``: whether the server runs the jobs; one that only shows another server's jobs
    accepts neither.
    """
    return {
        "stop": supervising and status in STOPPABLE,
        "resume": supervising and kind == "train" and status in RESUMABLE,
    }
