"""Every ``/yolo`` GET route that needs no id answers 2xx with strict JSON.

Used after a poisoned state and a restart to prove the extension loaded and nothing is broken::

    with serving(workspace) as server:
        assert_routes_answer(server.request)            # ServerProcess.request

    await assert_routes_answer_async(jp_fetch_request(jp_fetch))   # inside a jp_fetch test

The request callable takes ``(method, path)`` (``path`` starting with ``/yolo``) and returns the
response body: raw ``bytes``/``str`` (parsed here strictly) or the already decoded JSON value
(as :meth:`ServerProcess.request` returns; then it is checked for non-finite numbers, which is
what a lenient parser turns ``NaN``/``Infinity`` into). A non-2xx answer must raise, as both
urllib and tornado's client do.

``GET /yolo/accelerators`` is left out: its first answer probes torch in a subprocess (slow);
``/yolo/accelerators/usage`` is checked instead.
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Awaitable, Callable
from typing import Any

ROUTES: tuple[str, ...] = (
    "/yolo/accelerators/usage",
    "/yolo/datasets",
    "/yolo/datasets/uploads",
    "/yolo/jobs",
    "/yolo/models",
    "/yolo/openapi.json",
    "/yolo/workspace",
)

SyncRequest = Callable[[str, str], Any]
AsyncRequest = Callable[[str, str], Awaitable[Any]]


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"bare {name} in the response")


def _non_finite(value: Any, where: str = "$") -> str | None:
    """Where a non-finite float hides in a decoded JSON value, or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return where
    if isinstance(value, dict):
        for key, item in value.items():
            found = _non_finite(item, f"{where}.{key}")
            if found:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _non_finite(item, f"{where}[{index}]")
            if found:
                return found
    return None


def check_body(path: str, body: Any) -> Any:
    """Assert ``body`` (raw or decoded) is strict JSON; return the decoded value."""
    if isinstance(body, (bytes, bytearray, str)):
        try:
            value = json.loads(body, parse_constant=_refuse_constant)
        except ValueError as exc:
            raise AssertionError(f"GET {path}: not strict JSON ({exc}): {body[:300]!r}") from None
    else:
        value = body
    where = _non_finite(value)
    assert where is None, f"GET {path}: a non-finite number at {where}"
    assert value is not None, f"GET {path}: an empty body"
    return value


def _failure(path: str, exc: BaseException) -> AssertionError:
    response = getattr(exc, "response", None)
    raw = getattr(response, "body", None)
    if raw is None and hasattr(exc, "read"):
        try:
            raw = exc.read()
        except Exception:
            raw = None
    code = getattr(exc, "code", None)
    return AssertionError(f"GET {path} failed ({code}): {exc}; body {raw!r:.500}")


def assert_routes_answer(request: SyncRequest) -> dict[str, Any]:
    """GET every id-free ``/yolo`` route with ``request``; each must answer 2xx strict JSON.

    Returns the decoded bodies by path, for further checks.
    """
    answers: dict[str, Any] = {}
    for path in ROUTES:
        try:
            body = request("GET", path)
        except Exception as exc:
            raise _failure(path, exc) from exc
        assert not inspect.isawaitable(body), "use assert_routes_answer_async for async requests"
        answers[path] = check_body(path, body)
    return answers


async def assert_routes_answer_async(request: AsyncRequest) -> dict[str, Any]:
    """:func:`assert_routes_answer` for an async request callable (see :func:`jp_fetch_request`)."""
    answers: dict[str, Any] = {}
    for path in ROUTES:
        try:
            body = await request("GET", path)
        except Exception as exc:
            raise _failure(path, exc) from exc
        answers[path] = check_body(path, body)
    return answers


def jp_fetch_request(jp_fetch: Any) -> AsyncRequest:
    """Adapt pytest-jupyter's ``jp_fetch`` (authenticated) to ``(method, path) -> raw body``."""

    async def request(method: str, path: str) -> bytes:
        parts = [part for part in path.split("/") if part]
        response = await jp_fetch(*parts, method=method)
        assert 200 <= response.code < 300, f"{method} {path}: {response.code}"
        body: bytes = response.body
        return body

    return request
