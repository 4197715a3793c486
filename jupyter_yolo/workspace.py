"""The workspace folder: its layout and the confinement of request paths to it."""

from __future__ import annotations

import os
import time
from pathlib import Path, PurePosixPath
from typing import IO, Any

from .errors import InvalidRequest, NotFound, YoloError
from .strict import describe_text, path_problem

REGISTRY_NAME = "jobs.sqlite"
"""The job registry's file name, in :attr:`Workspace.state`."""


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
    def state(self) -> Path:
        """The server's own files: job registry, workspace lock (and the container's token)."""
        return self.root / ".jupyter-yolo"

    @property
    def registry(self) -> Path:
        """The SQLite job registry, in the hidden state folder (the root stays the person's)."""
        return self.state / REGISTRY_NAME

    def migrate_registry(self) -> bool:
        """Move a registry left at the root by an older version into the state folder.

        The database and its ``-wal`` / ``-shm`` / ``-journal`` companions move together (the
        write-ahead log is replayed when the moved database opens, so nothing is lost); the
        database itself moves last, so an interrupted move finishes at the next start. Nothing
        happens when the state folder already has a registry. True when something moved.
        """
        old = self.root / REGISTRY_NAME
        new = self.registry
        if new.exists() or old.is_symlink() or not old.is_file():
            return False
        self.state.mkdir(parents=True, exist_ok=True)
        for suffix in ("-wal", "-shm", "-journal", ""):
            source = Path(f"{old}{suffix}")
            target = Path(f"{new}{suffix}")
            if source.is_file() and not source.is_symlink() and not target.exists():
                os.replace(source, target)
        return True

    def create(self, *, migrate: bool = True) -> list[str]:
        """Create the workspace layout if it is missing; return what had to be moved aside.

        ``migrate``: also move an older version's root registry (see :meth:`migrate_registry`);
        a server does that itself once it holds the workspace lock.

        A file or a link where one of the layout's folders belongs is renamed to
        ``<name>.not-a-folder-<time>`` (nothing is deleted), so the server can still start.
        """
        moved = []
        self.root.mkdir(parents=True, exist_ok=True)
        for folder in (self.datasets, self.weights, self.jobs, self.tmp, self.state):
            if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
                aside = folder.with_name(f"{folder.name}.not-a-folder-{int(time.time())}")
                os.replace(folder, aside)
                moved.append(
                    f"{folder.name} was not a folder; it was moved to {aside.name} and an empty "
                    f"{folder.name}/ made in its place."
                )
            folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.state, 0o700)
        if migrate:
            problem = self.try_migrate_registry()
            if problem:
                moved.append(problem)
        return moved

    def try_migrate_registry(self) -> str | None:
        """:meth:`migrate_registry`, or why it could not (the server starts all the same).

        The jobs stay in their folders: a registry that could not move is rebuilt from them.
        """
        try:
            self.migrate_registry()
        except OSError as exc:
            return (
                f"the job registry {REGISTRY_NAME} at the workspace root could not be moved "
                f"into {self.state.name}/ ({exc.strerror or exc}); the job list is rebuilt from "
                f"the job folders"
            )
        return None

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
        problem = path_problem(relative)
        if problem:
            raise InvalidRequest(f"The {what} {describe_text(relative)} {problem}.")
        if "\\" in relative:
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
        try:
            present = candidate.exists()
        except OSError as exc:
            raise InvalidRequest(
                f"The {what} {relative!r} cannot be read: {exc.strerror}."
            ) from None
        if must_exist and not present:
            raise missing(f"The {what} {relative!r} does not exist in the workspace.")
        return candidate

    def relative(self, path: Path) -> str:
        """Return ``path`` as a workspace-relative POSIX string (as written, for a link out)."""
        resolved = path.resolve()
        if resolved.is_relative_to(self.root):
            return resolved.relative_to(self.root).as_posix()
        return Path(os.path.relpath(path.absolute(), self.root)).as_posix()


def private_folder(path: Path) -> None:
    """Create ``path`` (and its parents) if needed and make it owner-only (0700), any umask."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)


def open_private(path: Path, mode: str = "ab") -> IO[Any]:
    """Open ``path`` to append (or write), created owner-only (0600) whatever the umask."""
    flags = os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC | (os.O_APPEND if "a" in mode else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    try:
        os.fchmod(fd, 0o600)
        return os.fdopen(fd, mode)
    except BaseException:
        os.close(fd)
        raise
