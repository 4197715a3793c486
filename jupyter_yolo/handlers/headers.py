"""HTTP header values built from file names, safe whatever the name holds."""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

# RFC 8187 attr-char, less the letters, digits and "-._~" that quote() always keeps
_ATTR_CHAR_EXTRA = "!#$&+^`|"
# what must not appear in a quoted-string filename, or is read specially by some browsers
_UNSAFE_FALLBACK = re.compile(r'[^\x20-\x7e]|["\\;%/]')
FALLBACK_NAME = "download"


def ascii_filename(name: str) -> str:
    """An ASCII stand-in for ``name``: accents dropped, anything unsafe in a header as ``_``.

    Control characters, quotes, backslashes, semicolons, percent signs, slashes and characters
    without an ASCII form become ``_``; an empty or all-dots result becomes ``download``.
    """
    decomposed = unicodedata.normalize("NFKD", name)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    safe = _UNSAFE_FALLBACK.sub("_", stripped).strip(" ")
    return safe if safe.strip(".") else FALLBACK_NAME


def utf8_filename(name: str) -> str:
    """``name`` percent-encoded as UTF-8 for ``filename*=`` (RFC 8187 ``value-chars``).

    Text that is no valid UTF-8 (a file name with undecodable bytes arrives as lone
    surrogates) is encoded as its original bytes read as UTF-8 with replacement characters.
    """
    raw = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return quote(raw.encode("utf-8", "replace"), safe=_ATTR_CHAR_EXTRA)


def content_disposition(name: str, disposition: str = "attachment") -> str:
    """A ``Content-Disposition`` value for a file called ``name`` (RFC 6266).

    Both forms are given: ``filename="..."`` with an ASCII stand-in for old clients and
    ``filename*=UTF-8''...`` with the exact name, which clients that know it prefer. The result
    is printable ASCII whatever ``name`` holds (newlines, quotes, non-ASCII, lone surrogates).
    """
    if disposition not in ("attachment", "inline"):
        raise ValueError(f"unknown disposition {disposition!r}")
    return (
        f'{disposition}; filename="{ascii_filename(name)}"; '
        f"filename*=UTF-8''{utf8_filename(name) or FALLBACK_NAME}"
    )
