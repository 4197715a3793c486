"""What a predict job's ``source`` may name, checked by the server before a job is queued.

A source is one of:

* a workspace-relative image, folder of images or video file (:data:`MEDIA_VIDEO_SUFFIXES`),
  confined to the workspace like every path of a request;
* a live stream URL (:data:`STREAM_SCHEMES`: ``rtsp``, ``rtmp``, ``http(s)`` MJPEG or HLS) whose
  host (or ``host:port``) is listed in the app's ``allowed_stream_sources`` setting. The product
  is offline by design, so nothing else is reachable; this allow-list is the real gate, because
  the decoder's own sockets (FFmpeg inside OpenCV, C code) do not pass the runner's Python guard;
* a local capture device ``/dev/videoN`` that exists and is a character device (mapped into the
  container with ``--device /dev/video0``).

Credentials in a URL (``user:pass@``, ``?pwd=``) never appear in messages: :func:`mask_url` hides
them.
"""

from __future__ import annotations

import re
import stat
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import SplitResult, unquote, urlsplit, urlunsplit

from ..contract.serving import DEVICE_SOURCE_PREFIX, MEDIA_VIDEO_SUFFIXES, STREAM_SCHEMES
from ..errors import InvalidRequest
from ..workspace import Workspace

DEVICE_PATH = re.compile(rf"^{re.escape(DEVICE_SOURCE_PREFIX)}(\d{{1,3}})$")
URL_LIKE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
SETTING = "allowed_stream_sources"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".dng", ".mpo")
"""Image files a predict job reads (alone, or in a folder: other files there are skipped)."""

KIND_PATH = "path"
KIND_STREAM = "stream"
KIND_DEVICE = "device"


@dataclass(frozen=True)
class Source:
    """A checked source: what it is and the value the runner gets."""

    kind: str
    """``path`` (image, folder or video in the workspace), ``stream`` or ``device``."""
    value: str
    """An absolute path, the URL as given, or ``/dev/videoN``."""
    shown: str
    """The value with any credentials masked: the only form written to messages and logs."""


URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+")
SECRET_QUERY_KEY = re.compile(
    r"user|pass|pwd|token|auth|key|secret|sig|cred|session|login", re.IGNORECASE
)
"""Query parameters whose values are credentials (``?user=…&pwd=…``, ``token=``, ``sig=``)."""
DEFAULT_PORTS = {"rtsp": 554, "rtmp": 1935, "http": 80, "https": 443}
"""The port a stream URL that names none connects to (for ``host:port`` allow-list entries)."""
MASK = "***"


def _mask_query(query: str) -> str:
    pieces = []
    for piece in query.split("&"):
        name, eq, _ = piece.partition("=")
        pieces.append(f"{name}={MASK}" if eq and SECRET_QUERY_KEY.search(unquote(name)) else piece)
    return "&".join(pieces)


def _mask_one(url: str) -> str:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:  # not a URL urlsplit reads: hide everything up to the last "@"
        return re.sub(r"(?<=://)\S*@", f"{MASK}@", url)
    _, at, place = parts.netloc.rpartition("@")  # like urlsplit and FFmpeg: the last "@"
    netloc = f"{MASK}@{place}" if at else place
    query = _mask_query(parts.query)
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def mask_url(text: str) -> str:
    """``text`` with every URL's credentials hidden: ``user:password@`` becomes ``***@``.

    The user part ends at the netloc's last ``@`` (as ``urlsplit`` and FFmpeg read it), and
    the values of credential-like query parameters (``user``, ``pwd``, ``password``,
    ``token``, ``key``, ``sig``…) become ``***`` too.
    """
    return URL_IN_TEXT.sub(lambda match: _mask_one(match.group(0)), text)


def _split(url: str) -> SplitResult:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError as exc:
        raise InvalidRequest(f"The source {mask_url(url)!r} is not a valid URL: {exc}.") from None
    return parts


def stream_host(url: str) -> tuple[str, int | None]:
    """The host (lower case, no brackets) and port a stream URL connects to."""
    parts = _split(url)
    return (parts.hostname or "").lower(), parts.port


def is_allowed(url: str, allowed: tuple[str, ...]) -> bool:
    """Whether ``url``'s host, or its ``host:port`` (default port of its scheme), is allowed."""
    host, port = stream_host(url)
    if not host:
        return False
    if port is None:  # rtsp://cam/x connects to cam:554, so "cam:554" allows it
        port = DEFAULT_PORTS.get(_split(url).scheme.lower())
    names = {entry.strip().lower().strip("/") for entry in allowed}
    bracketed = f"[{host}]" if ":" in host else host
    candidates = {host, bracketed}
    if port is not None:
        candidates |= {f"{host}:{port}", f"{bracketed}:{port}"}
    return bool(candidates & names)


def _how_to_allow(host: str) -> str:
    return (
        f"jupyter-yolo is offline by design: a stream is read only from a host listed in the "
        f"server setting {SETTING}. To allow this one, add "
        f'c.YoloApp.{SETTING} = ["{host}"] to jupyter_server_config.py, or start the server '
        f"with --YoloApp.{SETTING}={host} (a host, or host:port)."
    )


def check_stream(url: str, allowed: tuple[str, ...]) -> Source:
    """A stream URL whose scheme is known and whose host is allowed, else a 400."""
    shown = mask_url(url)
    parts = _split(url)
    scheme = parts.scheme.lower()
    if scheme not in STREAM_SCHEMES:
        raise InvalidRequest(
            f"The source {shown!r} has the scheme {scheme!r}; a stream must be one of "
            f"{', '.join(s + '://' for s in STREAM_SCHEMES)}. Files are named by their "
            f"workspace-relative path, not by a file:// URL."
        )
    host = (parts.hostname or "").lower()
    if not host:
        raise InvalidRequest(f"The stream URL {shown!r} names no host.")
    if not is_allowed(url, allowed):
        raise InvalidRequest(f"The stream {shown!r} is not allowed. {_how_to_allow(host)}")
    return Source(KIND_STREAM, url, shown)


def check_device(path: str) -> Source:
    """A capture device ``/dev/videoN`` that exists here and is a character device."""
    if not DEVICE_PATH.match(path):
        raise InvalidRequest(
            f"The source {path!r} is not a capture device: devices are named "
            f"{DEVICE_SOURCE_PREFIX}N (for example {DEVICE_SOURCE_PREFIX}0)."
        )
    try:
        mode = Path(path).stat().st_mode
    except OSError:
        raise InvalidRequest(
            f"The capture device {path} does not exist in this container; map it in with "
            f"docker run --device {path} (or devices: in the compose file)."
        ) from None
    if not stat.S_ISCHR(mode):
        raise InvalidRequest(f"{path} is not a character device, so it is not a camera.")
    return Source(KIND_DEVICE, path, path)


def check_source(value: str, workspace: Workspace, allowed: tuple[str, ...]) -> Source:
    """Check a predict job's ``source`` (see the module's docstring); a 400 says what is wrong."""
    if URL_LIKE.match(value):
        return check_stream(value, allowed)
    if value.startswith(DEVICE_SOURCE_PREFIX) or value.startswith("/dev/"):
        return check_device(value)
    path = workspace.resolve(value, what="source", missing=InvalidRequest)
    if path.is_file() and path.suffix.lower() in MEDIA_VIDEO_SUFFIXES:
        return Source(KIND_PATH, str(path), value)
    if path.is_file() and path.suffix.lower() not in IMAGE_SUFFIXES:
        raise InvalidRequest(
            f"The source {value!r} is neither an image ({' '.join(IMAGE_SUFFIXES)}) nor a "
            f"video ({' '.join(MEDIA_VIDEO_SUFFIXES)})."
        )
    if not (path.is_file() or path.is_dir()):
        raise InvalidRequest(f"The source {value!r} is neither a file nor a folder.")
    return Source(KIND_PATH, str(path), value)


def source_kind(value: str) -> str:
    """What a checked source value (as the runner gets it) is: path, stream or device."""
    if URL_LIKE.match(value):
        return KIND_STREAM
    if DEVICE_PATH.match(value):
        return KIND_DEVICE
    return KIND_PATH
