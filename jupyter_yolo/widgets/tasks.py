"""The task facts the panels draw by, read once from ``GET /yolo/tasks``.

No panel hard-codes a task's metric or loss keys: they come from the server's task table. A
server that does not serve the table yet (an older one) gets the contract's own table, which is
the same data the server would have sent.
"""

from __future__ import annotations

import threading
import time
import weakref
from typing import Any

from ..client import YoloClient, YoloClientError
from ..contract.table import task_table
from ..contract.tasks import DEFAULT_TASK, metric_label, task_from_name

__all__ = ["TaskFacts", "metric_label", "task_facts", "task_from_name"]

RETRY_AFTER_S = 60.0
"""After a failed read of the table, the contract's own table stands in this long before the
server is asked again (a transient error is not remembered for good)."""

_CACHE: weakref.WeakKeyDictionary[YoloClient, TaskFacts] = weakref.WeakKeyDictionary()
_FAILED: weakref.WeakKeyDictionary[YoloClient, tuple[float, TaskFacts]] = (
    weakref.WeakKeyDictionary()
)
_CACHE_LOCK = threading.Lock()
_clock = time.monotonic


class TaskFacts:
    """The task table as the panels use it: profiles by name and architectures by task."""

    def __init__(self, table: dict[str, Any]) -> None:
        self.table = table
        self.tasks: dict[str, dict[str, Any]] = {
            str(t["name"]): t for t in table.get("tasks") or [] if isinstance(t, dict)
        }
        self.default = str(table.get("default") or DEFAULT_TASK)
        self.architectures: list[dict[str, Any]] = [
            a for a in table.get("architectures") or [] if isinstance(a, dict)
        ]

    def profile(self, task: str | None) -> dict[str, Any]:
        """The profile of ``task`` (the default task's when unknown or None)."""
        return self.tasks.get(task or "") or self.tasks.get(self.default) or {}

    def title(self, task: str | None) -> str:
        """A person's name for the task (``Instance segmentation``)."""
        return str(self.profile(task).get("title") or task or self.default)

    def loss_keys(self, task: str | None) -> list[str]:
        """The task's loss names in the order the panels plot them."""
        return [str(k) for k in self.profile(task).get("loss_keys") or []]

    def metric_keys(self, task: str | None) -> list[str]:
        """The task's ultralytics metric keys, the headline first."""
        keys = [str(k) for k in self.profile(task).get("metric_keys") or []]
        head = self.headline(task)
        return ([head] if head else []) + [k for k in keys if k != head]

    def headline(self, task: str | None) -> str | None:
        """The metric key shown first for ``task``."""
        value = self.profile(task).get("headline_metric")
        return str(value) if value else None

    def geometry(self, task: str | None) -> str:
        """What a prediction of the task draws (``box``, ``polygon``, ``keypoints`` ...)."""
        return str(self.profile(task).get("geometry") or "box")

    def architectures_for(self, task: str | None) -> list[dict[str, Any]]:
        """The installed architectures of ``task`` (every one when ``task`` is empty)."""
        return [a for a in self.architectures if not task or a.get("task") == task]

    def task_of_model(self, model: str | None) -> str:
        """The task a model name implies: a listed architecture's own, else its suffix."""
        for arch in self.architectures:
            if arch.get("name") == model:
                return str(arch.get("task") or self.default)
        return task_from_name(model or "") if model else self.default


def task_facts(client: YoloClient) -> TaskFacts:
    """The task table of ``client``'s server, fetched once per client.

    A failed read (an older server, a transient error) falls back to the contract's own table
    and is retried on a use at least :data:`RETRY_AFTER_S` seconds later; only a table the
    server answered is kept for good.
    """
    with _CACHE_LOCK:
        cached = _CACHE.get(client)
        failed = _FAILED.get(client)
    if cached is not None:
        return cached
    if failed is not None and _clock() - failed[0] < RETRY_AFTER_S:
        return failed[1]
    try:
        table = client.tasks()
    except YoloClientError:
        facts = TaskFacts(dict(task_table()))
        with _CACHE_LOCK:
            _FAILED[client] = (_clock(), facts)
        return facts
    facts = TaskFacts(table)
    with _CACHE_LOCK:
        _CACHE[client] = facts
        _FAILED.pop(client, None)
    return facts
