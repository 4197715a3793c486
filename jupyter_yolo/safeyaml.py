"""YAML that cannot grow: no aliases, bounded size and nesting, plain safe types only.

``yaml.safe_load`` still expands aliases, so a 4 KB file with nested anchors becomes megabytes
(a "billion laughs"). Every YAML file a user can write (data.yaml, dataset metadata) is read with
:func:`load_yaml` instead, which refuses aliases outright and bounds the text and its nesting.
"""

from __future__ import annotations

from typing import Any

import yaml

MAX_YAML_BYTES = 1024 * 1024
MAX_YAML_DEPTH = 32


class YamlRefused(ValueError):
    """The YAML text is malformed or uses something refused (aliases, deep nesting)."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


class _NoAliasLoader(yaml.SafeLoader):
    """A safe loader that refuses aliases and nesting past :data:`MAX_YAML_DEPTH`."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(
                None,
                None,
                "YAML aliases (*name) are not accepted: write the values out",
                event.start_mark,
            )
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"YAML nested deeper than {MAX_YAML_DEPTH} levels is not accepted",
                    self.peek_event().start_mark,  # type: ignore[no-untyped-call]
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def load_yaml(text: str | bytes) -> Any:
    """Parse YAML without alias expansion; raise :class:`YamlRefused` with the line if known."""
    size = len(text.encode("utf-8") if isinstance(text, str) else text)
    if size > MAX_YAML_BYTES:
        raise YamlRefused(f"the YAML is over {MAX_YAML_BYTES} bytes")
    try:
        return yaml.load(text, Loader=_NoAliasLoader)  # a SafeLoader subclass
    except RecursionError:
        raise YamlRefused(f"the YAML is nested deeper than {MAX_YAML_DEPTH} levels") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise YamlRefused(str(exc), mark.line + 1 if mark is not None else None) from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise YamlRefused(f"the YAML cannot be read: {exc}") from None


def describe(value: Any, limit: int = 60) -> str:
    """A short, safe rendering of a YAML value for messages (never the whole of a huge value)."""
    if isinstance(value, (dict, list)):
        return f"a {type(value).__name__} of {len(value)} item(s)"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
