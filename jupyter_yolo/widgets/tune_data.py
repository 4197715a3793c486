"""The tune panel's data: trial events folded into the trials table, the best trial, the HTML.

Pure functions and one small class over contract-shaped data (:mod:`jupyter_yolo.contract.tune`):
``trial`` events (:class:`~jupyter_yolo.contract.tune.TrialEvent`) are folded into
:class:`~jupyter_yolo.contract.tune.TrialRecord` rows while a job runs; once it has ended the
job's :class:`~jupyter_yolo.contract.tune.TuneResult` (the runner's own table, its ``best`` and
``best_request``) replaces them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, cast

from ..contract.tasks import higher_is_better, metric_label
from ..contract.tune import (
    DEFAULT_SPACE,
    SEARCH_SPACE,
    TRIAL_EVENT,
    TrialRecord,
    TuneResult,
)
from .common import esc

FITNESS = "fitness"
BEST_MARK = "\u2605"
"""The star that marks the best trial's row and point."""

TABLE_STYLE = """
<style>
.yolo-trials td.yolo-num { text-align: right; font-family: var(--jp-code-font-family, monospace); }
.yolo-trials tr.yolo-best td { background: #fff5cc; font-weight: 600; }
.yolo-trials .yolo-st-failed { color: #c5221f; }
.yolo-trials .yolo-st-running { color: #1a73e8; }
.yolo-trials .yolo-st-pruned, .yolo-trials .yolo-st-stopped { color: #777; }
</style>
"""


def number(value: Any) -> float | None:
    """A finite float, or None (a missing, non-numeric or NaN value)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    result = float(value)
    return result if math.isfinite(result) else None


def fmt(value: Any, digits: int = 4) -> str:
    """A number as a person reads it in the table (small and large ones in e-notation)."""
    v = number(value)
    if v is None:
        return "\u2014"
    if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
        return f"{v:.{max(digits - 2, 1)}e}"
    return f"{v:.{digits}g}"


def default_rows() -> list[tuple[str, float, float, bool]]:
    """The space editor's rows: (name, low, high, searched), the default space's first."""
    rows = [(name, low, high, True) for name, (low, high) in DEFAULT_SPACE.items()]
    rows += [(n, lo, hi, False) for n, (lo, hi) in SEARCH_SPACE.items() if n not in DEFAULT_SPACE]
    return rows


def check_space(space: Mapping[str, tuple[float, float] | list[float]]) -> dict[str, list[float]]:
    """A search space as the request carries it; ValueError with the fix when it is wrong."""
    if not space:
        raise ValueError("Choose at least one parameter to search.")
    checked: dict[str, list[float]] = {}
    for name, bounds in space.items():
        if name not in SEARCH_SPACE:
            raise ValueError(f"{name!r} cannot be searched; choose from {', '.join(SEARCH_SPACE)}.")
        low, high = (float(b) for b in bounds)
        lo, hi = SEARCH_SPACE[name]
        if not lo <= low < high <= hi:
            raise ValueError(
                f"{name}: the bounds must satisfy {lo:g} \u2264 low < high \u2264 {hi:g} "
                f"(got {low:g} to {high:g})."
            )
        checked[name] = [low, high]
    return checked


def headline_of(metrics: Mapping[str, Any] | None, preferred: str | None = None) -> str | None:
    """The metric a trial is compared by: ``preferred`` when present, else the first non-fitness."""
    keys = [k for k in (metrics or {}) if k != FITNESS]
    if preferred and (preferred in keys or not keys):
        return preferred
    return keys[0] if keys else preferred


class TrialBoard:
    """The trials table of one tune job: folded from its events, or read from its result."""

    def __init__(self, metric: str | None = None) -> None:
        self.metric = metric
        self.trials: dict[int, TrialRecord] = {}
        self.result: TuneResult | None = None
        self.version = 0
        self.last_seq = 0
        self.iterations: int | None = None
        """The number of trials, as the trials' start events say it."""

    def consume(self, events: Iterable[Mapping[str, Any]]) -> bool:
        """Fold events (any type; ``trial`` ones count) in; return whether anything changed."""
        changed = False
        for event in events:
            seq = int(event.get("seq") or 0)
            if seq and seq <= self.last_seq:
                continue
            self.last_seq = max(self.last_seq, seq)
            if event.get("type") == TRIAL_EVENT and isinstance(event.get("trial"), int):
                self._fold(event)
                changed = True
        if changed:
            self.version += 1
        return changed

    def _fold(self, event: Mapping[str, Any]) -> None:
        index = int(event["trial"])
        row = self.trials.get(index)
        if row is None:
            row = {
                "trial": index,
                "status": "running",
                "params": {},
                "epochs_done": 0,
                "metrics": {},
                "fitness": None,
                "history": [],
                "error": None,
            }
            self.trials[index] = row
        if isinstance(event.get("iterations"), int):
            self.iterations = int(event["iterations"])
        if event.get("status"):
            row["status"] = event["status"]
        if isinstance(event.get("params"), dict):
            row["params"] = {
                str(k): float(v) for k, v in event["params"].items() if number(v) is not None
            }
        metrics = event.get("metrics")
        if isinstance(metrics, dict):
            row["metrics"] = {str(k): number(v) for k, v in metrics.items()}
            self.metric = self.metric or headline_of(row["metrics"])
        epoch = event.get("epoch")
        if isinstance(epoch, int) and epoch > 0:
            row["epochs_done"] = max(row["epochs_done"], epoch)
            head = headline_of(row["metrics"], self.metric)
            value = row["metrics"].get(head) if head else None
            history = row["history"]
            while len(history) < epoch:
                history.append(None)
            history[epoch - 1] = value
        if "fitness" in event:
            row["fitness"] = number(event.get("fitness"))
        if event.get("error"):
            row["error"] = str(event["error"])

    def set_result(self, result: Mapping[str, Any] | None) -> None:
        """Take the job's own table and best (a :class:`TuneResult`) over the folded events."""
        if not isinstance(result, Mapping) or not isinstance(result.get("trials"), list):
            return
        self.result = dict(result)  # type: ignore[assignment]
        self.metric = str(result.get("metric") or self.metric or "") or None
        rows = [cast(TrialRecord, t) for t in result["trials"] if isinstance(t, dict)]
        self.trials = {int(t["trial"]): t for t in rows}
        self.version += 1

    def rows(self) -> list[TrialRecord]:
        """The trials in order."""
        return [self.trials[k] for k in sorted(self.trials)]

    def score(self, row: TrialRecord) -> tuple[float, float] | None:
        """What ranks a trial (higher is better): its headline metric, then its fitness."""
        value = number((row.get("metrics") or {}).get(self.metric or ""))
        fitness = number(row.get("fitness"))
        if value is None and fitness is None:
            return None
        if value is not None and self.metric and not higher_is_better(self.metric):
            value = -value
        return (-math.inf if value is None else value, -math.inf if fitness is None else fitness)

    @property
    def best(self) -> TrialRecord | None:
        """The best trial: the result's own once known, else the best metric so far."""
        if self.result is not None and self.result.get("best"):
            best = self.result["best"]
            return self.trials.get(int(best["trial"]), best) if best else None
        ranked = [(score, -r["trial"], r) for r in self.rows() if (score := self.score(r))]
        return max(ranked, key=lambda item: (item[0], item[1]))[2] if ranked else None

    @property
    def best_request(self) -> dict[str, object] | None:
        """The training request with the best parameters (known once the job has a result)."""
        if self.result is None:
            return None
        request = self.result.get("best_request")
        return dict(request) if isinstance(request, dict) else None

    def param_names(self, space: Iterable[str] = ()) -> list[str]:
        """The searched parameters: the space's, then any other a trial reports."""
        names = list(self.result.get("space") or {}) if self.result else []
        names += [n for n in space if n not in names]
        for row in self.rows():
            names += [n for n in row["params"] if n not in names]
        return names

    def done(self) -> int:
        """How many trials have ended."""
        return sum(1 for r in self.trials.values() if r["status"] != "running")


def trials_html(board: TrialBoard, space: Iterable[str] = ()) -> str:
    """The trials table: trial, status, parameters, metric, fitness; the best row starred."""
    names = board.param_names(space)
    rows = board.rows()
    if not rows:
        return '<span class="yolo-muted">No trials yet.</span>'
    best = board.best
    best_trial = best["trial"] if best else None
    metric = board.metric or "metric"
    head = ["trial", "status", *names, metric_label(metric), "fitness"]
    out = [TABLE_STYLE, '<table class="yolo-table yolo-trials">']
    out.append("<tr>" + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr>")
    for row in rows:
        is_best = row["trial"] == best_trial
        mark = f" {BEST_MARK} best" if is_best else ""
        status = str(row["status"])
        title = f' title="{esc(row["error"])}"' if row.get("error") else ""
        cells = [
            f"<td>{row['trial']}{mark}</td>",
            f'<td class="yolo-st-{esc(status)}"{title}>{esc(status)}</td>',
            *(f'<td class="yolo-num">{fmt(row["params"].get(n))}</td>' for n in names),
            f'<td class="yolo-num">{fmt((row.get("metrics") or {}).get(metric))}</td>',
            f'<td class="yolo-num">{fmt(row.get("fitness"))}</td>',
        ]
        css = ' class="yolo-best"' if is_best else ""
        out.append(f'<tr data-trial="{row["trial"]}"{css}>' + "".join(cells) + "</tr>")
    out.append("</table>")
    return "".join(out)


def summary_text(board: TrialBoard, iterations: int | None) -> str:
    """``3 of 4 trials done · best: trial 2, mAP50-95 0.41``."""
    total = iterations or len(board.trials)
    text = f"{board.done()} of {total} trials done"
    best = board.best
    if best is not None:
        value = (best.get("metrics") or {}).get(board.metric or "")
        label = metric_label(board.metric) if board.metric else "metric"
        text += f" \u00b7 best: trial {best['trial']}, {label} {fmt(value)}"
    return text
