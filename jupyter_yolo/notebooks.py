"""Example notebooks shipped with the package, and copies of them made for a person to edit.

In an installed wheel the notebooks live in the package (``jupyter_yolo/notebooks/``, put there by
the wheel's force-include of the repository's ``notebooks/``); in an editable install they are read
from the repository's ``notebooks/`` folder. A copy never overwrites a file: it takes the first free
name of ``NAME.ipynb``, ``NAME-1.ipynb``, ``NAME-2.ipynb`` ... and appears whole or not at all.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import CopyFailed, InvalidRequest, NotFound

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
# The repository's notebooks/ folder, next to the package in an editable install.
REPO_NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
MAX_COPIES = 1000


def shipped_notebook(name: str) -> Traversable:
    """Return the shipped notebook ``name`` (without ``.ipynb``), or raise a 400 or 404."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise InvalidRequest(
            f"The notebook name {name!r} must be letters, digits, '-' or '_' (no extension)."
        )
    filename = f"{name}.ipynb"
    candidates: list[Traversable] = [resources.files("jupyter_yolo") / "notebooks" / filename]
    candidates.append(REPO_NOTEBOOKS / filename)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise NotFound(f"There is no example notebook {name!r} in this installation of jupyter-yolo.")


def copy_notebook(name: str, destination: Path) -> Path:
    """Copy the shipped notebook ``name`` into ``destination`` under the first free name.

    The content is written to a temporary file first and then hard-linked to its final name,
    which fails instead of overwriting when another file took that name in the meantime.
    """
    source = shipped_notebook(name)
    content = source.read_bytes()
    destination.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=destination)
    except OSError as exc:
        raise CopyFailed(f"Cannot write into {destination}: {exc.strerror or exc}.") from exc
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        for index in range(MAX_COPIES):
            target = destination / (f"{name}.ipynb" if index == 0 else f"{name}-{index}.ipynb")
            if target.exists() or target.is_symlink():
                continue
            if _link_exclusive(tmp, target):
                return target
        raise CopyFailed(
            f"{destination} already holds {MAX_COPIES} copies of {name}.ipynb; "
            "remove some before making another."
        )
    except OSError as exc:
        raise CopyFailed(f"Cannot write {name}.ipynb into {destination}: {exc}.") from exc
    finally:
        tmp.unlink(missing_ok=True)


def _link_exclusive(source: Path, target: Path) -> bool:
    """Give ``source``'s content the name ``target`` unless ``target`` exists; True on success."""
    try:
        os.link(source, target)
    except FileExistsError:
        return False
    except OSError:
        # no hard links on this file system: create the name exclusively, then fill it
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(source.read_bytes())
        except BaseException:
            with contextlib.suppress(OSError):
                target.unlink()
            raise
    return True


def copy_destination(workspace: Path, root: Path) -> Path:
    """Where copies go: the workspace when the server can open files there, else its root."""
    return workspace if server_path(workspace, root) is not None else root


def server_path(path: Path, root: Path) -> str | None:
    """``path`` relative to the server's root directory as a POSIX string, or None if outside.

    The root itself is ``""``. JupyterLab's file browser and document manager take such paths.
    """
    resolved, base = path.resolve(), root.resolve()
    if not resolved.is_relative_to(base):
        return None
    relative = resolved.relative_to(base).as_posix()
    return "" if relative == "." else relative
