"""The base handler: authentication, JSON bodies and the mapping of domain errors to HTTP codes."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web
from tornado.http1connection import HTTP1Connection

from ..errors import InvalidRequest, PayloadTooLarge, YoloError
from ..strict import StrictJSONError, dumps, loads_request, text_problem

if TYPE_CHECKING:
    from ..app import YoloApp


MAX_JSON_BODY = 1024 * 1024
MAX_QUERY_BYTES = 4096
VERBS = ("get", "post", "put", "patch", "delete")


def _unless_answered(method: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """Skip a handler method when its request was already answered (an oversize body).

    tornado calls the method once a streamed body is complete even if ``data_received`` has
    already sent the error; without this a refused request could still act.
    """

    @functools.wraps(method)
    async def guarded(self: YoloHandler, *args: Any, **kwargs: Any) -> None:
        if self._finished:
            return
        await method(self, *args, **kwargs)

    guarded.__dict__["_yolo_guarded"] = True
    return guarded


@web.stream_request_body
class YoloHandler(ExtensionHandlerMixin, APIHandler):
    """Base of every ``/yolo/`` handler.

    Subclasses set ``auth_resource`` and decorate each method with ``@web.authenticated`` and
    ``@authorized``. A :class:`YoloError` raised by the core becomes its HTTP code and a JSON body
    with a ``message`` a person can act on.

    Bodies are streamed: a declared ``Content-Length`` over :data:`MAX_JSON_BODY` is refused
    (413) before a byte of the body is read, and a body that streams past it is cut off.
    Every JSON response is strict (no ``NaN``), every query argument is checked for text that
    is no text (control characters, oversize values).
    """

    auth_resource = "jupyter_yolo"
    max_body_bytes = MAX_JSON_BODY
    _body: bytearray | None = None
    _body_refused = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for verb in VERBS:
            method = cls.__dict__.get(verb)
            if method is not None and not method.__dict__.get("_yolo_guarded"):
                setattr(cls, verb, _unless_answered(method))

    async def prepare(self) -> None:  # type: ignore[override]
        """Authenticate as jupyter_server does, then refuse an oversize body before reading it.

        A request that carries a body (POST, PUT, PATCH, or any with a declared length or a
        chunked encoding) from a client that is not authenticated is refused (403) here, before
        a byte of its body is read: otherwise a stranger could make the server buffer a body of
        up to the limit before ``@web.authenticated`` refuses it.

        A handler that streams its body itself (overrides :meth:`data_received`) checks its size
        there.
        """
        await super().prepare()
        if self._finished:
            return
        if self._carries_body() and not self.current_user:
            raise web.HTTPError(403, log_message="Authentication is required.")
        if type(self).data_received is not YoloHandler.data_received:
            return
        connection = self.request.connection
        if isinstance(connection, HTTP1Connection):
            # tornado's own cut-off (a closed connection, no answer) stays above ours
            connection.set_max_body_size(2 * self.max_body_bytes)
        declared = self.request.headers.get("Content-Length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                raise InvalidRequest("The Content-Length header is not a number.") from None
            if length > self.max_body_bytes:
                raise PayloadTooLarge(
                    f"A request body may have {self.max_body_bytes} bytes at most; this one "
                    f"declares {length}."
                )

    def _carries_body(self) -> bool:
        request = self.request
        return (
            request.method in ("POST", "PUT", "PATCH")
            or "Content-Length" in request.headers
            or "Transfer-Encoding" in request.headers
        )

    def data_received(self, chunk: bytes) -> None:
        """Collect the body, answering 413 as soon as it passes :attr:`max_body_bytes`."""
        if self._body_refused:
            return
        if self._body is None:
            self._body = bytearray()
        if len(self._body) + len(chunk) <= self.max_body_bytes:
            self._body.extend(chunk)
            return
        self._body_refused = True
        self._body = None
        exc = PayloadTooLarge(f"A request body may have {self.max_body_bytes} bytes at most.")
        self.log_exception(type(exc), exc, None)
        if not self._finished:
            self.send_error(exc.status, exc_info=(type(exc), exc, None))

    def decode_argument(self, value: bytes, name: str | None = None) -> str:
        """Decode a query argument or named path part, refusing text that is no text."""
        text = super().decode_argument(value, name)
        if name is not None:
            problem = text_problem(text, max_bytes=MAX_QUERY_BYTES)
            if problem:
                where = "query argument" if name in self.request.query_arguments else "path part"
                raise InvalidRequest(f"The {where} {name!r} {problem}.")
        return text

    @property
    def yolo(self) -> YoloApp:
        """The running extension app, which holds the core services."""
        return cast("YoloApp", self.extensionapp)

    def write_json(self, body: Any, status: int = 200) -> None:
        """Send ``body`` as JSON with the given status."""
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(dumps(body))

    def json_body(self, raw: bytes | None = None) -> dict[str, Any]:
        """Return the request body (or ``raw``) as a strict JSON object, or raise a 400.

        ``NaN`` and ``Infinity``, nesting deeper than 32 levels, lone surrogates and control
        characters in strings are refused with a message that says where.
        """
        data = bytes(self._body or b"") if raw is None else raw
        if not data:
            raise InvalidRequest("The request needs a JSON object as its body.")
        try:
            body = loads_request(data)
        except StrictJSONError as exc:
            raise InvalidRequest(str(exc)) from None
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
            retry_after = getattr(exc, "retry_after", None)
            if retry_after is not None:  # 429 queue full, 503 worker restarting
                self.set_header("Retry-After", str(retry_after))
            self.set_header("Content-Type", "application/json")
            self.finish(dumps(exc.to_json()))
            return
        if isinstance(exc, web.HTTPError):
            self.set_header("Content-Type", "application/json")
            message = (
                exc.log_message % exc.args if exc.log_message and exc.args else exc.log_message
            )
            self.finish(
                dumps({"message": message or self._reason, "reason": exc.reason or self._reason})
            )
            return
        self.set_header("Content-Type", "application/json")
        self.finish(
            dumps(
                {
                    "message": "The server failed on this request; its log has the details.",
                    "reason": self._reason,
                }
            )
        )
