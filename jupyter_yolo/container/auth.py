"""JupyterLab's token, and the checks that keep authentication and XSRF protection on.

The token is given, read from a secret file, or generated and kept; the checks hold whatever
arguments or config files say.

Token policy:

* ``JUPYTER_TOKEN`` set: used as it is; set but empty, blank or padded with white space is refused.
* ``JUPYTER_TOKEN_FILE`` set (a Docker or Kubernetes secret): its content, less one trailing
  newline, with the same checks. Setting both is refused.
* Neither: the token kept in ``$YOLO_WORKSPACE/.jupyter-yolo/token`` is reused, so a restarted
  container keeps its URL; when there is none, a new one (``secrets.token_urlsafe(32)``, 256
  bits) is written there with mode 0600 from the moment the file exists and printed once. A kept
  file that is a link, belongs to another user or can be read by others is refused (delete it to
  get a new token).

The token reaches JupyterLab through its environment only, never through its command line (which
``ps`` shows to every user of the machine), and never goes to a log.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from . import ContainerError
from .config import ContainerConfig

TOKEN_DIR = ".jupyter-yolo"
TOKEN_NAME = "token"
#: below this many characters a token is accepted with a warning
SHORT_TOKEN = 16

_GENERATE_HINT = (
    "unset it to have a strong token generated, or choose one with "
    "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
)


@dataclass(frozen=True)
class TokenChoice:
    """The token of this start and where it came from."""

    token: str
    #: ``JUPYTER_TOKEN``, ``JUPYTER_TOKEN_FILE``, ``generated`` or ``kept``
    source: str
    path: Path | None = None

    def __repr__(self) -> str:  # never show the token in a traceback or a log
        return f"TokenChoice(source={self.source!r}, path={self.path!r})"


def token_path(workspace: Path) -> Path:
    """Where a generated token is kept: ``<workspace>/.jupyter-yolo/token``."""
    return workspace / TOKEN_DIR / TOKEN_NAME


def check_token(token: str, where: str) -> str:
    """Return ``token`` if it can be used; refuse an empty, blank or malformed one."""
    if not token.strip():
        raise ContainerError(
            f"{where} is empty: JupyterLab never runs without authentication; {_GENERATE_HINT}."
        )
    if token != token.strip():
        raise ContainerError(f"{where} starts or ends with white space; remove it.")
    if any(ord(c) < 33 or ord(c) == 127 for c in token):
        raise ContainerError(f"{where} contains white space or control characters.")
    return token


def resolve_token(config: ContainerConfig) -> TokenChoice:
    """Pick the token of this start (see the module's docstring for the policy)."""
    if config.token is not None and config.token_file is not None:
        raise ContainerError(
            "Both JUPYTER_TOKEN and JUPYTER_TOKEN_FILE are set; set only one of them."
        )
    if config.token is not None:
        return TokenChoice(check_token(config.token, "JUPYTER_TOKEN"), "JUPYTER_TOKEN")
    if config.token_file is not None:
        try:
            text = config.token_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ContainerError(
                f"JUPYTER_TOKEN_FILE {config.token_file} cannot be read: {exc}."
            ) from None
        text = text.removesuffix("\n").removesuffix("\r")
        where = f"The token file {config.token_file} (JUPYTER_TOKEN_FILE)"
        return TokenChoice(check_token(text, where), "JUPYTER_TOKEN_FILE", config.token_file)
    path = token_path(config.workspace)
    kept = read_kept_token(path)
    if kept is not None:
        return TokenChoice(kept, "kept", path)
    token = secrets.token_urlsafe(32)
    if write_kept_token(path, token):
        return TokenChoice(token, "generated", path)
    kept = read_kept_token(path)  # another start wrote it a moment ago
    if kept is None:
        raise ContainerError(f"The token file {path} disappeared while it was written.")
    return TokenChoice(kept, "kept", path)


def read_kept_token(path: Path) -> str | None:
    """The token kept in ``path``, None when there is no file; refuse an unsafe or empty one."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ContainerError(
                f"The token file {path} is a symbolic link; delete it to get a new token."
            ) from None
        raise ContainerError(f"The token file {path} cannot be read: {exc.strerror}.") from None
    with os.fdopen(fd, "r", encoding="utf-8", errors="replace") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ContainerError(f"The token file {path} is not a regular file; delete it.")
        if info.st_uid != os.geteuid():
            raise ContainerError(
                f"The token file {path} belongs to uid {info.st_uid}, not to this user "
                f"(uid {os.geteuid()}); delete it to get a new token, or run as its owner."
            )
        if info.st_mode & 0o077:
            raise ContainerError(
                f"The token file {path} can be read by others (mode "
                f"{stat.S_IMODE(info.st_mode):04o}): treat the token as known, delete the file "
                f"to get a new one."
            )
        text = handle.read()
    return check_token(text.removesuffix("\n"), f"The token file {path}")


def write_kept_token(path: Path, token: str) -> bool:
    """Write ``token`` to ``path`` (mode 0600 from the start, never replacing a file).

    Returns False when another start wrote the file first; its token is then the one to use
    and the caller should read it again.
    """
    folder = path.parent
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ContainerError(f"Cannot create {folder}: {exc.strerror}.") from None
    tmp = folder / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (token + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # fails when the file exists: a start never replaces a kept token
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return True


# --------------------------------------------------------------------------- server arguments

_OPTION = re.compile(
    r"^--?(?:(?P<cls>[A-Za-z_]\w*)\.)?(?P<trait>[A-Za-z_][\w-]*)(?:=(?P<value>.*))?$", re.DOTALL
)
_FALSE = {"false", "0", "no", "off"}


def _options(args: Sequence[str]) -> list[tuple[str, str | None]]:
    """``(trait, value)`` for every ``--Class.trait=value`` / ``--trait value`` argument."""
    found: list[tuple[str, str | None]] = []
    for index, arg in enumerate(args):
        match = _OPTION.match(arg)
        if match is None:
            continue
        value = match.group("value")
        if value is None and index + 1 < len(args) and not args[index + 1].startswith("-"):
            value = args[index + 1]
        found.append((match.group("trait").replace("-", "_").lower(), value))
    return found


def check_server_args(args: Sequence[str]) -> None:
    """Refuse JupyterLab arguments that would put a secret in ``ps`` or turn security off."""
    for trait, value in _options(args):
        unquoted = (value or "").strip().strip("'\"")
        if trait == "token":
            raise ContainerError(
                "A token on the command line is visible to every user in ps; set JUPYTER_TOKEN "
                "or JUPYTER_TOKEN_FILE instead (an empty token is never accepted)."
            )
        if trait in ("password", "hashed_password") and not unquoted:
            raise ContainerError(
                "An empty password is refused: JupyterLab never runs without authentication."
            )
        if trait == "disable_check_xsrf" and unquoted.lower() not in _FALSE:
            raise ContainerError("XSRF protection cannot be turned off (disable_check_xsrf).")
        if trait == "tornado_settings" and "xsrf" in unquoted.lower():
            raise ContainerError("XSRF settings cannot be changed through tornado_settings.")


def security_problems(
    token: str, expected: str | None, auth_enabled: bool, settings: dict[str, object]
) -> list[str]:
    """What is wrong with a configured server's security, as read after its initialisation.

    ``token`` is the server's effective token, ``expected`` the one this entrypoint gave it,
    ``settings`` the tornado settings of its web application.
    """
    problems = []
    if not token:
        problems.append("the token is empty (a Jupyter config file sets it to '')")
    elif expected is not None and token != expected:
        problems.append(
            "a Jupyter config file sets its own token; the container's token comes from "
            "JUPYTER_TOKEN or JUPYTER_TOKEN_FILE only"
        )
    if not auth_enabled:
        problems.append("authentication is disabled")
    if settings.get("disable_check_xsrf") or not settings.get("xsrf_cookies"):
        problems.append("XSRF checks are turned off (disable_check_xsrf or tornado_settings)")
    return problems
