"""Plotly figures whose views render fully whenever they (re)connect.

plotly 7's :class:`plotly.graph_objects.FigureWidget` is an anywidget: its synced state traits
``_widget_data`` and ``_widget_layout`` are set once, when the figure is built, and every later
change travels as a one-shot message (``_py2js_restyle``, ``_py2js_update``, ``_py2js_addTraces``
...). A view that connects later (a browser reload, a second browser, a notebook reopened while
the kernel lives) asks the kernel for the widget's state and gets the figure as it was built: the
training curves empty, the dataset histogram without bars, the prediction without its image.

:class:`LiveFigure` keeps those two traits equal to the current figure: just before each message
goes out, it stores a copy of the figure's traces and layout in them, silently (no message of its
own; only a view that asks for the state reads them). The copy is the figure as it is now, never
a log of updates: it is as large as the figure itself (for the training figure, the decimated
curves), and it is replaced, never mutated, so a kernel thread that answers a new view while a
panel's thread draws reads one whole figure.

Build every panel figure with :func:`live_figure`.
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

STATE_TRAITS = ("_widget_data", "_widget_layout")
"""The synced traits a (re)connecting view draws the figure from."""


def copy_tree(value: Any) -> Any:
    """A copy of nested dicts and lists; leaves (strings, numbers, arrays) are shared.

    plotly replaces the values it validates (arrays are read-only copies) and never changes a
    leaf in place, so sharing the leaves is safe and keeps a large image data URL single.
    """
    if isinstance(value, dict):
        return {key: copy_tree(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [copy_tree(item) for item in value]
    return value


class LiveFigure(go.FigureWidget):  # type: ignore[misc]
    """A ``FigureWidget`` whose synced state is always the current figure (see the module)."""

    def sync_state(self) -> None:
        """Store the current traces and layout in the state traits, without sending them."""
        data = copy_tree(self._data)
        layout = copy_tree(self._layout)
        # set the values directly: a notification would send the whole figure to every view
        self._trait_values["_widget_data"] = data
        self._trait_values["_widget_layout"] = layout

    def notify_change(self, change: Any) -> None:
        """Refresh the state before a message to the views goes out, then send it."""
        name = str(change.get("name", "")) if isinstance(change, dict) else ""
        if name.startswith("_py2js_") and change.get("new") is not None:
            self.sync_state()
        super().notify_change(change)


def live_figure(figure: go.Figure | dict[str, Any] | None = None, **kwargs: Any) -> LiveFigure:
    """A :class:`LiveFigure` of ``figure`` (a ``go.Figure``, its dict, or nothing: empty)."""
    return LiveFigure(figure, **kwargs)


def state_size(figure: LiveFigure) -> int:
    """The size in characters of the state a connecting view receives (data and layout, JSON).

    NumPy arrays count as their JSON lists would; a test bounds memory with it.
    """
    import json

    def plain(value: Any) -> Any:
        if hasattr(value, "tolist"):
            return value.tolist()
        return str(value)

    state = {name: figure._trait_values.get(name) for name in STATE_TRAITS}
    return len(json.dumps(state, default=plain))
