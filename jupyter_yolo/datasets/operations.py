"""Uploads and imports in flight, an archive arriving as a body, and the dataset name rules.

``Operation`` is what ``GET /yolo/datasets/uploads`` shows; ``Upload`` writes a streamed
request body to the scratch folder chunk by chunk, against the size limit.
"""

from __future__ import annotations

import contextlib
import errno
import re
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from ..errors import InsufficientStorage, InvalidRequest, PayloadTooLarge
from ..safeyaml import describe
from ..strict import MAX_NAME_BYTES, text_problem

if TYPE_CHECKING:
    from .store import DatasetStore

DATASET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
RESERVED_NAMES = frozenset({"uploads"})
MAX_NAME_LENGTH = 64
WORK_PREFIX = "ds-"  # scratch folders of the store under the workspace's .tmp

__all__ = ["DATASET_NAME", "Operation", "Upload", "check_name", "check_text"]


def check_text(value: str, what: str, max_bytes: int) -> None:
    """Raise a 400 when ``value`` holds a lone surrogate, a control character or is too long."""
    problem = text_problem(value, max_bytes=max_bytes)
    if problem:
        raise InvalidRequest(f"The {what} {describe(value)} {problem}.")


def check_name(name: Any) -> str:
    """Return a valid dataset name, or raise a 400 that says what a name may be."""
    if isinstance(name, str):
        check_text(name, "dataset name", MAX_NAME_BYTES)
    if not isinstance(name, str) or not DATASET_NAME.match(name):
        raise InvalidRequest(
            f"Invalid dataset name {describe(name)}: use 1 to {MAX_NAME_LENGTH} letters, digits, "
            f"'_', '.' or '-', starting with a letter or digit."
        )
    if name.lower() in RESERVED_NAMES:
        raise InvalidRequest(f"The name {name!r} is reserved; choose another.")
    return name


def _reason(exc: BaseException) -> str:
    """A one-line reason for a log or warning, never the whole of a huge message."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


# --------------------------------------------------------------------------- progress


@dataclass
class Operation:
    """An upload or import in flight, for ``GET /yolo/datasets/uploads``."""

    name: str
    kind: str
    source: str
    id: str = field(default_factory=lambda: secrets.token_hex(6))
    stage: str = "receiving"
    bytes_received: int = 0
    bytes_total: int | None = None
    done: int = 0
    total: int | None = None
    started: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    ended: float | None = None
    error: str | None = None
    task: str | None = None  # the task the person forced, if any

    def enter(self, stage: str, total: int | None = None) -> None:
        """Move to the next stage (receiving, extracting, converting, validating, done...)."""
        self.stage = stage
        self.done = 0
        self.total = total
        self.updated = time.time()

    def step(self, done: int, total: int) -> None:
        """Progress within the stage."""
        self.done = done
        self.total = total
        self.updated = time.time()

    def to_json(self) -> dict[str, Any]:
        """The public view."""
        fraction = None
        if self.stage == "receiving" and self.bytes_total:
            fraction = round(self.bytes_received / self.bytes_total, 4)
        elif self.total:
            fraction = round(self.done / self.total, 4)
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "source": self.source,
            "stage": self.stage,
            "bytes_received": self.bytes_received,
            "bytes_total": self.bytes_total,
            "stage_done": self.done,
            "stage_total": self.total,
            "stage_fraction": fraction,
            "started": self.started,
            "updated": self.updated,
            "ended": self.ended,
            "error": self.error,
        }


class Upload:
    """An archive arriving as a request body: written chunk by chunk to the scratch folder."""

    def __init__(self, store: DatasetStore, op: Operation, work: Path, limit: int) -> None:
        self.store = store
        self.op = op
        self.work = work
        self.path = work / "upload.zip"
        self.limit = limit
        self._file: BinaryIO | None = self.path.open("wb")
        self.closed = False

    def write(self, chunk: bytes) -> None:
        """Append a chunk; raise 413 as soon as the body goes past the limit."""
        if self._file is None:
            return
        self.op.bytes_received += len(chunk)
        self.op.updated = time.time()
        if self.op.bytes_received > self.limit:
            raise PayloadTooLarge(
                f"The upload is larger than the limit of {self.limit} bytes "
                f"(YoloApp.max_upload_bytes).",
                limit=self.limit,
            )
        try:
            self._file.write(chunk)
        except OSError as exc:
            if _disk_full(exc):
                raise _full() from exc
            raise

    def finish(self) -> dict[str, Any]:
        """Build the dataset from the received archive (blocking: run it in a thread)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self.closed = True
        if self.op.bytes_received == 0:
            self.store._fail(self.op, self.work, None)
            raise InvalidRequest(
                "The request body is empty: send the zip archive as the body "
                "(Content-Type: application/zip)."
            )
        return self.store._build(self.op, self.work, archive=self.path)

    def abort(self, reason: str) -> None:
        """Throw the upload away (error, closed connection); safe to call more than once."""
        if self.closed:
            return
        self.closed = True
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
        self.store._fail(self.op, self.work, reason)


def _disk_full(exc: OSError) -> bool:
    return exc.errno in (errno.ENOSPC, errno.EDQUOT)


def _full() -> InsufficientStorage:
    return InsufficientStorage("The workspace's disk is full; free some space and retry.")
