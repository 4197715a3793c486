"""``GET /yolo/static/plotly-widget.js``: plotly's FigureWidget front end, for the panels' figures.

The panels' figures carry a small loader (:mod:`jupyter_yolo.widgets.figure`) that imports this
once per page instead of receiving 5 MB of JavaScript in every figure's state.
"""

from __future__ import annotations

import asyncio

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..errors import NotFound
from ..plotly_bundle import ROUTE, bundle_version, read_bundle
from .base import YoloHandler


class PlotlyWidgetHandler(YoloHandler):
    """``GET /yolo/static/plotly-widget.js?v=<plotly version>``: the bundle, cached by browsers.

    ``v`` must be the server's plotly version when given (a kernel with another plotly falls
    back to sending its own bundle); 404 when plotly is not installed or the version differs.
    """

    auth_resource = "jupyter_yolo:static"
    _track_activity = False  # a page loading its figures is no activity of the person

    @web.authenticated
    @authorized
    async def get(self) -> None:
        """Answer with the JavaScript module."""
        wanted = self.get_query_argument("v", "")
        installed = bundle_version()
        if installed is None:
            raise NotFound("plotly is not installed on the server.")
        if wanted and wanted != installed:
            raise NotFound(f"The server has plotly {installed}, not {wanted}.")
        try:
            content = await asyncio.to_thread(read_bundle)
        except FileNotFoundError:
            raise NotFound("plotly's widget bundle is not installed on the server.") from None
        # versioned URL: the browser keeps it; the page loads it once, not once per figure
        self.set_header("Cache-Control", "private, max-age=86400" if wanted else "no-cache")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.finish(content, set_content_type="text/javascript; charset=utf-8")


HANDLERS = [(ROUTE, PlotlyWidgetHandler)]
