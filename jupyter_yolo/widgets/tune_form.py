"""The tune panel's search controls: parameters and bounds, trials, epochs, executor.

The parameters and their bounds come from the contract (:data:`~jupyter_yolo.contract.tune.
DEFAULT_SPACE` checked and prefilled, every other :data:`~jupyter_yolo.contract.tune.SEARCH_SPACE`
parameter listed under "More parameters" with ultralytics' bounds). The executor choice shows only
when the server offers more than one (``executors`` of ``GET /yolo/accelerators``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ipywidgets as widgets

from ..contract.tune import DEFAULT_SPACE, MAX_ITERATIONS, MAX_TRIAL_EPOCHS, SEARCH_SPACE
from .tune_data import check_space, default_rows


def executor_options(report: Mapping[str, Any]) -> list[str]:
    """The executors the server offers (``local``, ``ray``), from its accelerator report."""
    offered = report.get("executors")
    names: list[str] = []
    if isinstance(offered, Mapping):
        offered = offered.get("available") or list(offered)
    for entry in offered if isinstance(offered, list) else []:
        name = entry.get("name") if isinstance(entry, Mapping) else entry
        if isinstance(name, str) and name not in names:
            names.append(name)
    return names


class SpaceRow(widgets.HBox):  # type: ignore[misc]
    """One parameter: searched or not, and its low and high bounds."""

    def __init__(self, name: str, low: float, high: float, searched: bool) -> None:
        self.name = name
        self.limits = SEARCH_SPACE[name]
        self.searched_w = widgets.Checkbox(
            value=searched, description=name, indent=False, layout=widgets.Layout(width="150px")
        )
        narrow = widgets.Layout(width="110px")
        self.low_w = widgets.FloatText(value=low, layout=narrow, step=None)
        self.high_w = widgets.FloatText(value=high, layout=narrow, step=None)
        lo, hi = self.limits
        self.range_w = widgets.HTML(f'<span class="yolo-muted">within {lo:g} \u2026 {hi:g}</span>')
        super().__init__(
            [
                self.searched_w,
                widgets.Label("from"),
                self.low_w,
                widgets.Label("to"),
                self.high_w,
                self.range_w,
            ]
        )
        self.add_class("yolo-space-row")


class SearchControls:
    """The search half of the tune form (a mixin of the panel, which lays the widgets out)."""

    def _build_search(
        self,
        report: Mapping[str, Any],
        space: Mapping[str, tuple[float, float] | list[float]] | None,
        iterations: int,
        epochs: int,
        executor: str | None,
    ) -> None:
        wanted = {k: (float(v[0]), float(v[1])) for k, v in (space or DEFAULT_SPACE).items()}
        self.space_rows: dict[str, SpaceRow] = {}
        for name, low, high, _ in default_rows():
            bounds = wanted.get(name, (low, high))
            self.space_rows[name] = SpaceRow(name, bounds[0], bounds[1], name in wanted)
        main = [r for n, r in self.space_rows.items() if n in DEFAULT_SPACE or n in wanted]
        more = [r for n, r in self.space_rows.items() if r not in main]
        self.more_space_w = widgets.Accordion(children=[widgets.VBox(more)])
        self.more_space_w.set_title(0, f"More parameters ({len(more)})")
        self.more_space_w.selected_index = None
        self.space_w = widgets.VBox([widgets.VBox(main), self.more_space_w])
        self.iterations_w = widgets.BoundedIntText(
            value=iterations,
            min=1,
            max=MAX_ITERATIONS,
            description="trials",
            layout=widgets.Layout(width="200px"),
        )
        self.trial_epochs_w = widgets.BoundedIntText(
            value=epochs,
            min=1,
            max=MAX_TRIAL_EPOCHS,
            description="epochs / trial",
            style={"description_width": "initial"},
            layout=widgets.Layout(width="200px"),
        )
        names = executor_options(report)
        offered = report.get("executors")
        default = offered.get("default") if isinstance(offered, Mapping) else None
        chosen = next((e for e in (executor, default) if e in names), names[0] if names else None)
        self.executor_w = widgets.Dropdown(
            options=names or ["local"],
            value=chosen or "local",
            description="executor",
            layout=widgets.Layout(width="200px"),
        )
        # one executor (or a server that does not say): no choice to make
        self.executor_w.layout.display = "" if len(names) > 1 else "none"

    def space(self) -> dict[str, list[float]]:
        """The checked parameters and their bounds (ValueError with the fix when wrong)."""
        chosen = {
            name: (float(row.low_w.value), float(row.high_w.value))
            for name, row in self.space_rows.items()
            if row.searched_w.value
        }
        return check_space(chosen)

    def executor(self) -> str | None:
        """The executor chosen, or None where the server offers no choice."""
        return str(self.executor_w.value) if self.executor_w.layout.display != "none" else None

    def _fill_search(self, request: Mapping[str, Any]) -> None:
        """Show a followed job's search settings."""
        space = request.get("space")
        if isinstance(space, Mapping):
            for name, row in self.space_rows.items():
                bounds = space.get(name)
                row.searched_w.value = bounds is not None
                if isinstance(bounds, list | tuple) and len(bounds) == 2:
                    row.low_w.value, row.high_w.value = float(bounds[0]), float(bounds[1])
        if isinstance(request.get("iterations"), int):
            self.iterations_w.value = request["iterations"]
        if isinstance(request.get("epochs"), int):
            self.trial_epochs_w.value = request["epochs"]
        if request.get("executor") in self.executor_w.options:
            self.executor_w.value = request["executor"]
