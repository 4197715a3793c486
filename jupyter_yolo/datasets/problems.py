"""A finding of the dataset checks (``Problem``) and what collects them (``Collector``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Problem:
    """One finding: ``severity`` is "error" or "warning"; ``line`` counts from 1."""

    severity: str
    code: str
    message: str
    file: str | None = None
    line: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON form used in the report."""
        return {
            "severity": self.severity,
            "code": self.code,
            "file": self.file,
            "line": self.line,
            "message": self.message,
        }


class Collector:
    """Problems found in one dataset folder, with paths relative to it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.problems: list[Problem] = []

    def rel(self, path: Path) -> str:
        """``path`` relative to the dataset folder (as is when outside it)."""
        try:
            return path.relative_to(self.folder).as_posix()
        except ValueError:
            return str(path)

    def error(
        self, code: str, message: str, path: Path | None = None, line: int | None = None
    ) -> None:
        """Record an error (the dataset cannot be used for training)."""
        self.problems.append(
            Problem("error", code, message, self.rel(path) if path else None, line)
        )

    def warning(
        self, code: str, message: str, path: Path | None = None, line: int | None = None
    ) -> None:
        """Record a warning."""
        self.problems.append(
            Problem("warning", code, message, self.rel(path) if path else None, line)
        )
