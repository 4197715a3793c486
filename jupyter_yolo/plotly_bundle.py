"""Where plotly's FigureWidget front end (its anywidget ESM bundle) is, and the route serving it.

plotly 7's ``FigureWidget`` carries its whole front end (about 5 MB of JavaScript) in every
figure's synced state, so a page with five figures receives 25 MB when it (re)connects, and the
widget restore of a reloaded JupyterLab page then fails now and then ("model not found"). The
panels' figures (:mod:`jupyter_yolo.widgets.figure`) carry a small loader instead, which imports
the bundle once per page from :data:`ROUTE` on the Jupyter server (or asks the kernel for it where
there is no such server). Stdlib only: the server uses this without importing plotly.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from functools import lru_cache
from pathlib import Path

ROUTE = "/yolo/static/plotly-widget.js"
"""Where the server answers with plotly's widget bundle (``?v=`` the plotly version)."""


@lru_cache(maxsize=1)
def bundle_version() -> str | None:
    """The installed plotly's version (None without plotly)."""
    try:
        return importlib.metadata.version("plotly")
    except importlib.metadata.PackageNotFoundError:
        return None


@lru_cache(maxsize=1)
def bundle_path() -> Path | None:
    """Plotly's ``package_data/widgetbundle.js``, found without importing plotly (None: absent)."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "package_data" / "widgetbundle.js"
        if path.is_file():
            return path
    return None


def read_bundle() -> bytes:
    """The bundle's bytes (blocking: call it off the event loop). FileNotFoundError: absent."""
    path = bundle_path()
    if path is None:
        raise FileNotFoundError("plotly's widgetbundle.js is not installed")
    return path.read_bytes()
