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

Its front end is plotly's own, loaded by a small module (:data:`LOADER`) instead of the 5 MB
bundle plotly puts in every figure's state: the page imports the bundle once, from the Jupyter
server (:data:`jupyter_yolo.plotly_bundle.ROUTE`), or, where there is no such server or it has
another plotly, the figure asks the kernel for plotly's own front end (as plain FigureWidgets
carry it) and gets its whole current state first; a change made while that 5 MB front end is
still loading shows with the figure's next change (the panels redraw whole traces). A reloaded
page then restores its widgets from kilobytes instead of megabytes (with five figures, 25 MB made
JupyterLab's widget restore fail now and then: "model not found").

Build every panel figure with :func:`live_figure`.
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from ..plotly_bundle import ROUTE, bundle_version, read_bundle

STATE_TRAITS = ("_widget_data", "_widget_layout")
"""The synced traits a (re)connecting view draws the figure from."""
BUNDLE_EVENT = "yolo-plotly-bundle"
"""The custom message a view sends to get plotly's bundle from the kernel, and the answer's."""

LOADER = """
const VERSION = "__VERSION__";
const ROUTE = "__ROUTE__";
const KEY = Symbol.for("jupyter-yolo.plotly-widget." + VERSION);

function serverBase() {
  const node = document.getElementById("jupyter-config-data");
  if (!node) return null;
  try {
    return JSON.parse(node.textContent || "{}").baseUrl || null;
  } catch (error) {
    return null;
  }
}

async function fromServer() {
  const base = serverBase();
  if (!base) throw new Error("not in a Jupyter server's page");
  const path = base.replace(/\\/?$/, "") + ROUTE + "?v=" + encodeURIComponent(VERSION);
  return await import(/* webpackIgnore: true */ new URL(path, window.location.href).href);
}

function plotly() {
  let loading = globalThis[KEY];
  if (!loading) {
    loading = fromServer();
    globalThis[KEY] = loading;
    // a failed load (the server restarting) is not remembered: the next figure tries again
    loading.catch(() => {
      if (globalThis[KEY] === loading) delete globalThis[KEY];
    });
  }
  return loading;
}

export default () => {
  let widget = null;
  return {
    async initialize({ model }) {
      let bundle;
      try {
        bundle = await plotly();
      } catch (error) {
        // no Jupyter server page, or another plotly there: the kernel puts plotly's own
        // front end in this figure's _esm, and anywidget loads that instead
        model.send({ event: "__EVENT__" });
        return;
      }
      widget = bundle.default();
      return widget.initialize({ model });
    },
    render({ model, el }) {
      return widget ? widget.render({ model, el }) : undefined;
    },
  };
};
"""
"""The figures' front end: plotly's, imported once per page (see the module docstring)."""


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


def loader_source() -> str:
    """:data:`LOADER` for this kernel's plotly."""
    return (
        LOADER.replace("__VERSION__", bundle_version() or "")
        .replace("__ROUTE__", ROUTE)
        .replace("__EVENT__", BUNDLE_EVENT)
    )


class LiveFigure(go.FigureWidget):  # type: ignore[misc]
    """A ``FigureWidget`` whose synced state is always the current figure (see the module).

    Its front end is plotly's, loaded once per page by :data:`LOADER`.
    """

    _esm = loader_source()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_msg(self._answer_bundle)

    def _answer_bundle(self, _widget: Any, content: Any, _buffers: Any) -> None:
        """A view could not import plotly's front end: give this figure plotly's own ``_esm``."""
        if not isinstance(content, dict) or content.get("event") != BUNDLE_EVENT:
            return
        try:
            source = read_bundle().decode("utf-8")
        except (OSError, UnicodeDecodeError):
            return  # nothing better to offer: the figure stays blank, as plotly's would
        # changes sent while no plotly front end listened were lost: the whole figure first,
        # then the front end (which draws what the model holds when it loads)
        self.sync_state()
        self.send_state(list(STATE_TRAITS))
        if self._esm != source:
            self._esm = source

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
