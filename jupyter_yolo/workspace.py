"""The workspace folder: its layout and the confinement of request paths to it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path, PurePosixPath

from .errors import InvalidRequest, NotFound, YoloError


class Workspace:
    """The folder holding datasets, weights, jobs and the registry.

    Every path that arrives in a request is workspace-relative and goes through
    :meth:`resolve`, which refuses anything that would land outside the workspace.
    """

    def __init__(self, root: Path) -> None:
        self.root = root.expanduser().resolve()

    @property
    def datasets(self) -> Path:
        """Registered datasets, one folder each with a ``data.yaml``."""
        return self.root / "datasets"

    @property
    def weights(self) -> Path:
        """Pretrained and user-provided weights files."""
        return self.root / "weights"

    @property
    def jobs(self) -> Path:
        """One folder per job."""
        return self.root / "jobs"

    @property
    def tmp(self) -> Path:
        """Scratch space for half-finished writes; emptied of leftovers at start."""
        return self.root / ".tmp"

    @property
    def registry(self) -> Path:
        """The SQLite job registry."""
        return self.root / "jobs.sqlite"

    def create(self) -> None:
        """Create the workspace layout if it is missing."""
        for folder in (self.root, self.datasets, self.weights, self.jobs, self.tmp):
            folder.mkdir(parents=True, exist_ok=True)

    def contains(self, path: Path) -> bool:
        """Whether ``path`` (resolved) lies inside the workspace."""
        return path.resolve().is_relative_to(self.root)

    def resolve(
        self,
        relative: str,
        *,
        what: str = "path",
        must_exist: bool = True,
        missing: type[YoloError] = NotFound,
    ) -> Path:
        """Resolve a workspace-relative path from a request, refusing escapes.

        Absolute paths, ``..`` components and symbolic links pointing outside the workspace
        are refused with a 400 naming ``what``; a missing file raises ``missing`` (404 by default).
        """
        if not isinstance(relative, str) or not relative.strip():
            raise InvalidRequest(f"The {what} must be a non-empty workspace-relative path.")
        if "\x00" in relative or "\\" in relative:
            raise InvalidRequest(f"The {what} {relative!r} contains a forbidden character.")
        pure = PurePosixPath(relative)
        if pure.is_absolute() or ".." in pure.parts:
            raise InvalidRequest(
                f"The {what} {relative!r} must be relative to the workspace and stay inside it "
                f"(no leading '/', no '..')."
            )
        candidate = (self.root / pure).resolve()
        if not candidate.is_relative_to(self.root):
            raise InvalidRequest(f"The {what} {relative!r} points outside the workspace.")
        if must_exist and not candidate.exists():
            raise missing(f"The {what} {relative!r} does not exist in the workspace.")
        return candidate

    def relative(self, path: Path) -> str:
        """Return ``path`` as a workspace-relative POSIX string."""
        return path.resolve().relative_to(self.root).as_posix()


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write a file through a temporary sibling and rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
