"""A tune job's trials table for the server (``tune`` in ``GET /yolo/jobs/{id}/results``).

Sources, best first: the job's ``result`` (a finished tune), the runner's
:data:`~jupyter_yolo.contract.tune.TRIALS_FILE` (rewritten atomically after every change, so it is
current while the job runs), and the ``trial`` events (a runner that died before writing the
file). Blocking file work: call it in a thread.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

from ..contract.files import EVENTS_FILE
from ..contract.tasks import headline
from ..contract.tune import (
    DEFAULT_SPACE,
    TRIAL_EVENT,
    TRIALS_FILE,
    TrialRecord,
    TuneResult,
)

MAX_TABLE_BYTES = 16 * 1024 * 1024
"""A trials file (or event file read for trials) larger than this is not read."""
_TRIAL_MARK = b'"type": "' + TRIAL_EVENT.encode() + b'"'


def _is_table(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("trials"), list)


def _read_json(path: Path) -> Any:
    try:
        if path.stat().st_size > MAX_TABLE_BYTES:
            return None
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None


def _space(params: dict[str, Any]) -> dict[str, list[float]]:
    search = params.get("tune")
    space = search.get("space") if isinstance(search, dict) else None
    if isinstance(space, dict):
        return cast(dict[str, list[float]], space)
    return {k: [lo, hi] for k, (lo, hi) in DEFAULT_SPACE.items()}


def table_from_events(
    path: Path, task: str, params: dict[str, Any], executor: str | None = None
) -> TuneResult:
    """The trials table rebuilt from ``trial`` events (no best: the runner decides that).

    ``executor``: where the job ran (the registry's record); the params do not say it.
    """
    trials: dict[int, TrialRecord] = {}
    try:
        if path.stat().st_size > MAX_TABLE_BYTES:
            raise OSError("too large")
        lines = path.read_bytes().split(b"\n")
    except OSError:
        lines = []
    metric = headline(task)
    for line in lines:
        if _TRIAL_MARK not in line:
            continue
        try:
            event = json.loads(line)
        except (ValueError, RecursionError):
            continue
        number = event.get("trial") if isinstance(event, dict) else None
        if not isinstance(number, int) or isinstance(number, bool):
            continue
        record = trials.setdefault(
            number,
            {
                "trial": number,
                "status": "running",
                "params": {},
                "epochs_done": 0,
                "metrics": {},
                "fitness": None,
                "history": [],
                "error": None,
            },
        )
        if isinstance(event.get("params"), dict):
            record["params"] = event["params"]
        if isinstance(event.get("metrics"), dict):
            record["metrics"] = event["metrics"]
            record["fitness"] = event.get("fitness")
        epoch = event.get("epoch")
        if event.get("status") == "running" and isinstance(epoch, int) and epoch > 0:
            record["epochs_done"] = epoch
            record["history"] = [*record["history"][: epoch - 1], record["metrics"].get(metric)]
        if event.get("status") in ("succeeded", "failed", "stopped", "pruned"):
            record["status"] = event["status"]
            record["error"] = event.get("error")
    return {
        "metric": metric,
        "space": _space(params),
        "trials": [trials[k] for k in sorted(trials)],
        "best": None,
        "best_request": None,
        "executor": executor or str(params.get("executor") or "local"),
    }


def tune_table(
    folder: Path,
    task: str,
    params: dict[str, Any],
    result: dict[str, Any] | None,
    executor: str | None = None,
) -> TuneResult:
    """A tune job's trials table as far as it exists now (``executor``: the job's, if known)."""
    if _is_table(result):
        return cast(TuneResult, result)
    saved = _read_json(folder / TRIALS_FILE)
    if _is_table(saved):
        return cast(TuneResult, saved)
    return table_from_events(folder / EVENTS_FILE, task, params, executor)
