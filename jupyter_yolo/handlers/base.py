"""The base handler: authentication, JSON bodies and the mapping of domain errors to HTTP codes."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, cast

from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web

from ..errors import InvalidRequest, YoloError

if TYPE_CHECKING:
    from ..app import YoloApp


class YoloHandler(ExtensionHandlerMixin, APIHandler):
    """Base of every ``/yolo/`` handler.

    Subclasses set ``auth_resource`` and decorate each method with ``@web.authenticated`` and
    ``@authorized``. A :class:`YoloError` raised by the core becomes its HTTP code and a JSON body
    with a ``message`` a person can act on.
    """

    auth_resource = "jupyter_yolo"

    @property
    def yolo(self) -> YoloApp:
        """The running extension app, which holds the core services."""
        return cast("YoloApp", self.extensionapp)

    def write_json(self, body: Any, status: int = 200) -> None:
        """Send ``body`` as JSON with the given status."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body, default=str))

    def json_body(self, raw: bytes | None = None) -> dict[str, Any]:
        """Return the request body (or ``raw``) as a JSON object, or raise a 400."""
        data = self.request.body if raw is None else raw
        if not data:
            raise InvalidRequest("The request needs a JSON object as its body.")
        try:
            body = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidRequest(f"The request body is not valid JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise InvalidRequest("The request body must be a JSON object.")
        return body

    def query_flag(self, name: str) -> bool:
        """Read a boolean query argument such as ``?refresh=1``."""
        value = self.get_query_argument(name, "0").strip().lower()
        return value in {"1", "true", "yes", "on"}

    def query_int(self, name: str, default: int, minimum: int, maximum: int) -> int:
        """Read a bounded integer query argument, or raise a 400 naming it."""
        raw = self.get_query_argument(name, None)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise InvalidRequest(
                f"Query argument {name!r} must be an integer, got {raw!r}."
            ) from None
        if not minimum <= value <= maximum:
            raise InvalidRequest(
                f"Query argument {name!r} must be between {minimum} and {maximum}."
            )
        return value

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        """Log domain errors as one line; everything else with its traceback."""
        if isinstance(value, YoloError):
            self.log.info(
                "%s %s -> %s: %s",
                self.request.method,
                self.request.path,
                value.status,
                value.message,
            )
            return
        super().log_exception(typ, value, tb)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Write domain errors as their own status and JSON message."""
        exc_info = kwargs.get("exc_info")
        exc = exc_info[1] if exc_info else None
        if isinstance(exc, YoloError):
            self.set_status(exc.status)
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps(exc.to_json(), default=str))
            return
        if isinstance(exc, web.HTTPError):
            self.set_header("Content-Type", "application/json")
            message = (
                exc.log_message % exc.args if exc.log_message and exc.args else exc.log_message
            )
            self.finish(
                json.dumps(
                    {"message": message or self._reason, "reason": exc.reason or self._reason}
                )
            )
            return
        super().write_error(status_code, **kwargs)
