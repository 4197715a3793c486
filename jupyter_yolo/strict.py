"""Strict JSON and text for everything that crosses the API: no NaN, no lone surrogates.

Pure helpers (no tornado, no torch) shared by the handlers, the job validator and the stores:

* :func:`loads_request` parses a request body that must be plain JSON: ``NaN`` and
  ``Infinity`` are refused, nesting is bounded, every string is checked by :func:`text_problem`;
* :func:`dumps` writes a response that any JSON parser reads (non-finite numbers become
  ``null``, lone surrogates are replaced);
* :func:`text_problem` says what is wrong with a string that will end up in a file name, a
  database row, a header or a message.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_JSON_DEPTH = 32
MAX_NAME_BYTES = 255  # one path component on Linux filesystems
MAX_PATH_BYTES = 4095

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


class StrictJSONError(ValueError):
    """The text is not strict JSON, or holds a value that is refused."""


def text_problem(
    value: str, *, max_bytes: int | None = None, allow_newlines: bool = False
) -> str | None:
    """Why ``value`` cannot be stored or shown as it is, or None when it is fine.

    Lone surrogates (which no file system, database or UTF-8 encoder takes) and control
    characters are refused; ``max_bytes`` bounds the UTF-8 size.
    """
    if _SURROGATE.search(value):
        return "contains a lone surrogate (\\ud800-\\udfff), which is not text"
    controls = _CONTROL.findall(value)
    if allow_newlines:
        controls = [c for c in controls if c not in "\n\t"]
    if controls:
        return f"contains the control character {controls[0]!r}"
    if max_bytes is not None and len(value.encode("utf-8")) > max_bytes:
        return f"is longer than {max_bytes} bytes in UTF-8"
    return None


def path_problem(value: str) -> str | None:
    """Why ``value`` cannot be a path on a file system (see :func:`text_problem`), or None."""
    problem = text_problem(value, max_bytes=MAX_PATH_BYTES)
    if problem is None and any(len(p.encode("utf-8")) > MAX_NAME_BYTES for p in value.split("/")):
        problem = f"has a name longer than {MAX_NAME_BYTES} bytes, more than the file system allows"
    return problem


def describe_text(value: str, limit: int = 60) -> str:
    """A short, printable rendering of a string for messages (escaped, cut when long)."""
    text = ascii(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def _refuse_constant(name: str) -> Any:
    raise StrictJSONError(f"{name} is not a JSON number; send a finite number or null.")


def _check(value: Any, depth: int, where: str) -> None:
    if depth > MAX_JSON_DEPTH:
        raise StrictJSONError(f"The JSON is nested deeper than {MAX_JSON_DEPTH} levels.")
    if isinstance(value, str):
        problem = text_problem(value, allow_newlines=True)
        if problem:
            raise StrictJSONError(f"The string at {where} {problem}.")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise StrictJSONError(f"The number at {where} is not finite.")
    elif isinstance(value, dict):
        for key, item in value.items():
            problem = text_problem(key)
            if problem:
                raise StrictJSONError(f"A key at {where} {problem}.")
            _check(item, depth + 1, f"{where}.{key}" if where != "$" else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check(item, depth + 1, f"{where}[{index}]")


def loads_request(data: bytes | str) -> Any:
    """Parse a request body as strict JSON, or raise :class:`StrictJSONError` saying why."""
    try:
        value = json.loads(data, parse_constant=_refuse_constant)
    except StrictJSONError:
        raise
    except RecursionError:
        raise StrictJSONError(f"The JSON is nested deeper than {MAX_JSON_DEPTH} levels.") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise StrictJSONError(f"The request body is not valid JSON: {exc}") from None
    _check(value, 0, "$")
    return value


def loads_file(data: bytes | str) -> Any:
    """Parse JSON written by ourselves or by a user (a COCO file): bounded nesting, no NaN."""
    try:
        return json.loads(data, parse_constant=_refuse_constant)
    except RecursionError:
        raise StrictJSONError("The JSON is nested too deeply to be read.") from None
    except (ValueError, UnicodeDecodeError) as exc:
        if isinstance(exc, StrictJSONError):
            raise
        raise StrictJSONError(f"not valid JSON: {exc}") from None


def finite(value: Any) -> Any:
    """A copy of ``value`` that strict JSON can hold: non-finite floats become None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value) if _SURROGATE.search(value) else value
    if isinstance(value, dict):
        return {finite(k) if isinstance(k, str) else k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(item) for item in value]
    return value


def dumps(value: Any, **kwargs: Any) -> str:
    """Serialise ``value`` as strict JSON (what browsers' ``JSON.parse`` accepts)."""
    try:
        return json.dumps(value, allow_nan=False, default=str, **kwargs)
    except ValueError:
        return json.dumps(finite(value), allow_nan=False, default=str, **kwargs)
