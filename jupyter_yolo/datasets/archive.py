"""Safe extraction of dataset archives and safe copies of dataset folders.

Both paths apply the same rules:

- every entry name is checked: no ``..``, no absolute or drive paths, no backslashes, no control
  characters, bounded length and depth; symbolic links, hard links and special files are refused
  (zip has no hard-link entry type: the check applies to imported folders, where a file with more
  than one name is refused);
- the number of entries, the total size and the compression ratio are bounded, first from the
  archive's directory (before anything is written) and again while decompressing, counting the
  bytes that really come out;
- only images, label text files and yaml / json / xml annotation files are kept, and every file
  with an image suffix must start like an image (a renamed script is refused);
- files are created with ``O_EXCL | O_NOFOLLOW`` inside a fresh destination folder, which the
  caller renames into place only when everything else has worked.

Nothing here imports tornado, numpy or PIL.
"""

from __future__ import annotations

import os
import re
import stat
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, BinaryIO

from ..errors import InvalidRequest, PayloadTooLarge, UnsafeArchive

#: Image suffixes ultralytics reads (``ultralytics.data.utils.IMG_FORMATS``).
IMAGE_SUFFIXES = frozenset(
    {".bmp", ".dng", ".jpeg", ".jpg", ".mpo", ".png", ".tif", ".tiff", ".webp", ".pfm", ".heic"}
)
#: Label text files, dataset descriptions and annotation files (COCO json, Pascal VOC xml), and
#: float depth maps (.npy, read by ultralytics and here without pickle).
METADATA_SUFFIXES = frozenset({".txt", ".yaml", ".yml", ".json", ".xml", ".npy"})
KEPT_SUFFIXES = IMAGE_SUFFIXES | METADATA_SUFFIXES

CHUNK = 1024 * 1024
#: Entries smaller than this are not held to the compression ratio (tiny files compress well).
RATIO_FLOOR = 1024 * 1024
MAX_NAME_BYTES = 1024
MAX_COMPONENT_BYTES = 255
MAX_DEPTH = 32
MAX_SKIPPED_LISTED = 20

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DRIVE = re.compile(r"^[A-Za-z]:")

Progress = Callable[[int, int], None]
"""Called as ``progress(done, total)`` with byte counts while files are written."""


@dataclass(frozen=True)
class Limits:
    """Bounds for one archive or folder."""

    max_extracted_bytes: int
    max_entries: int
    max_compression_ratio: float


@dataclass
class ExtractResult:
    """What an extraction or copy wrote and what it left out."""

    files: int = 0
    bytes: int = 0
    skipped: list[str] = field(default_factory=list)
    skipped_count: int = 0

    def skip(self, name: str) -> None:
        """Remember a left-out entry (the first few by name)."""
        self.skipped_count += 1
        if len(self.skipped) < MAX_SKIPPED_LISTED:
            self.skipped.append(name)

    def note(self) -> str | None:
        """A sentence about the left-out files, or None when nothing was left out."""
        if not self.skipped_count:
            return None
        more = self.skipped_count - len(self.skipped)
        names = ", ".join(self.skipped) + (f" and {more} more" if more > 0 else "")
        return (
            f"{self.skipped_count} file(s) that are not images, labels or yaml/json/xml "
            f"descriptions were left out: {names}."
        )


def check_entry_name(name: str, *, what: str = "entry") -> PurePosixPath:
    """Return a safe relative path for an archive or folder entry, or raise UnsafeArchive."""
    shown = name if len(name) <= 200 else name[:200] + "..."
    if _CONTROL.search(name):
        raise UnsafeArchive(f"The {what} {shown!r} has control characters in its name.")
    if "\\" in name:
        raise UnsafeArchive(
            f"The {what} {shown!r} uses backslashes; archive names must use '/' between folders."
        )
    if name.startswith("/"):
        raise UnsafeArchive(f"The {what} {shown!r} is an absolute path.")
    if _DRIVE.match(name):
        raise UnsafeArchive(f"The {what} {shown!r} starts with a drive letter.")
    parts = name.rstrip("/").split("/")
    if ".." in parts:
        raise UnsafeArchive(f"The {what} {shown!r} climbs out of its folder with '..'.")
    if any(part in ("", ".") for part in parts):
        raise UnsafeArchive(f"The {what} {shown!r} has an empty or '.' path component.")
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise UnsafeArchive(f"The {what} {shown!r} has a name over {MAX_NAME_BYTES} bytes.")
    if any(len(part.encode("utf-8", "surrogatepass")) > MAX_COMPONENT_BYTES for part in parts):
        raise UnsafeArchive(f"The {what} {shown!r} has a path component over 255 bytes.")
    if len(parts) > MAX_DEPTH:
        raise UnsafeArchive(f"The {what} {shown!r} is nested more than {MAX_DEPTH} folders deep.")
    return PurePosixPath(*parts)


def is_kept(path: PurePosixPath) -> bool:
    """Whether an entry is copied: no hidden or macOS resource files, only known suffixes."""
    if path.parts and path.parts[0] == "__MACOSX":
        return False
    if any(part.startswith(".") for part in path.parts):
        return False
    return path.suffix.lower() in KEPT_SUFFIXES


def looks_like_image(head: bytes) -> bool:
    """Whether the first bytes of a file are those of an image format ultralytics reads."""
    return (
        head.startswith(b"\xff\xd8\xff")  # JPEG, MPO
        or head.startswith(b"\x89PNG\r\n\x1a\n")
        or head.startswith(b"BM")
        or head.startswith((b"II*\x00", b"MM\x00*"))  # TIFF, DNG
        or (head.startswith(b"RIFF") and head[8:12] == b"WEBP")
        or head.startswith((b"PF\n", b"Pf\n", b"PF\r", b"Pf\r"))  # PFM
        or (head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"mif1", b"msf1", b"heim"))
    )


def _ratio_error(name: str, size: int, compressed: int, limit: float) -> UnsafeArchive:
    ratio = size / max(compressed, 1)
    return UnsafeArchive(
        f"The entry {name!r} expands {ratio:.0f} times ({size} bytes from {compressed}); the "
        f"limit is {limit:g} (YoloApp.max_compression_ratio). This looks like a zip bomb.",
        entry=name,
    )


def _size_error(total: int, limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The archive expands to more than {limit} bytes ({total} so far), over the limit "
        f"YoloApp.max_extracted_bytes.",
        limit=limit,
    )


def _count_error(count: int, limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The archive has more than {limit} entries ({count} found), over the limit "
        f"YoloApp.max_archive_entries.",
        limit=limit,
    )


# --------------------------------------------------------------------------- zip directory


def _central_directory(handle: BinaryIO) -> tuple[int, int, int]:
    """Return (entries, start, size) of the central directory, zip64-aware."""
    handle.seek(0, os.SEEK_END)
    file_size = handle.tell()
    tail_size = min(file_size, 22 + 0xFFFF + 20)
    handle.seek(file_size - tail_size)
    tail = handle.read(tail_size)
    pos = tail.rfind(b"PK\x05\x06")
    if pos < 0 or pos + 22 > len(tail):
        raise InvalidRequest(
            "The body is not a zip archive, or it is truncated (no end of central directory)."
        )
    _sig, _disk, _cd_disk, _n_disk, entries, cd_size, cd_offset, _comment = struct.unpack(
        "<4s4H2LH", tail[pos : pos + 22]
    )
    eocd_at = file_size - tail_size + pos
    if entries == 0xFFFF or cd_size == 0xFFFFFFFF or cd_offset == 0xFFFFFFFF:
        locator = tail[pos - 20 : pos] if pos >= 20 else b""
        if len(locator) != 20 or not locator.startswith(b"PK\x06\x07"):
            raise InvalidRequest("The zip64 archive is truncated or damaged (no zip64 locator).")
        _sig, _disk, record_at, _disks = struct.unpack("<4sLQL", locator)
        if record_at + 56 > file_size:
            raise InvalidRequest("The zip64 archive is truncated or damaged.")
        handle.seek(record_at)
        record = handle.read(56)
        if not record.startswith(b"PK\x06\x06"):
            raise InvalidRequest("The zip64 archive is truncated or damaged (bad zip64 record).")
        entries, cd_size, cd_offset = struct.unpack("<QQQ", record[32:56])
        eocd_at = record_at
    start = eocd_at - cd_size  # like zipfile: tolerates data prepended to the archive
    if start < 0 or cd_size < 0:
        raise InvalidRequest("The zip archive is damaged (impossible central directory).")
    return entries, start, cd_size


def count_entries(handle: BinaryIO, limit: int) -> int:
    """Count central-directory entries without building them, stopping past ``limit``.

    This runs before :class:`zipfile.ZipFile` parses the directory, so an archive with millions
    of entries is refused without millions of objects in memory.
    """
    declared, start, size = _central_directory(handle)
    if declared > limit:
        raise _count_error(declared, limit)
    handle.seek(start)
    count = 0
    remaining = size
    while remaining >= 46:
        header = handle.read(46)
        if len(header) < 46 or not header.startswith(b"PK\x01\x02"):
            raise InvalidRequest("The zip archive's central directory is damaged or truncated.")
        name_len, extra_len, comment_len = struct.unpack("<3H", header[28:34])
        skip = name_len + extra_len + comment_len
        handle.seek(skip, os.SEEK_CUR)
        remaining -= 46 + skip
        count += 1
        if count > limit:
            raise _count_error(count, limit)
    return count


# --------------------------------------------------------------------------- writing


def _make_parents(dest: Path, relative: PurePosixPath) -> Path:
    """Create the folders of ``relative`` under ``dest``, refusing anything but real folders."""
    current = dest
    for part in relative.parts[:-1]:
        current = current / part
        try:
            os.mkdir(current, 0o755)
        except FileExistsError:
            mode = os.lstat(current).st_mode
            if not stat.S_ISDIR(mode):
                raise UnsafeArchive(
                    f"The entry {relative.as_posix()!r} needs the folder "
                    f"{current.relative_to(dest).as_posix()!r}, which is also a file."
                ) from None
    return current / relative.name


def _open_new(path: Path, relative: PurePosixPath) -> int:
    try:
        return os.open(
            path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644
        )
    except FileExistsError:
        raise UnsafeArchive(
            f"The entry {relative.as_posix()!r} appears twice, or collides with a folder."
        ) from None


class _Counter:
    """Counts real bytes written and enforces the total-size limit."""

    def __init__(self, limits: Limits, total: int, progress: Progress | None) -> None:
        self.limits = limits
        self.total = total
        self.done = 0
        self.progress = progress

    def add(self, n: int) -> None:
        self.done += n
        if self.done > self.limits.max_extracted_bytes:
            raise _size_error(self.done, self.limits.max_extracted_bytes)
        if self.progress is not None:
            self.progress(self.done, self.total)


def _copy_stream(
    source: IO[bytes],
    fd: int,
    relative: PurePosixPath,
    counter: _Counter,
    *,
    declared: int | None,
    compressed: int | None,
) -> int:
    """Copy ``source`` into the open file ``fd`` chunk by chunk, checking as bytes arrive."""
    name = relative.as_posix()
    image = relative.suffix.lower() in IMAGE_SUFFIXES
    written = 0
    with os.fdopen(fd, "wb") as out:
        head = b""
        while True:
            chunk = source.read(CHUNK)
            if not chunk:
                break
            if image and len(head) < 16:
                head += chunk[: 16 - len(head)]
                if len(head) >= 16 and not looks_like_image(head):
                    raise _not_an_image(name)
            written += len(chunk)
            if declared is not None and written > declared:
                raise UnsafeArchive(
                    f"The entry {name!r} holds more data than its header says ({declared} bytes)."
                )
            limit = counter.limits.max_compression_ratio
            if compressed is not None and written > RATIO_FLOOR and written > compressed * limit:
                raise _ratio_error(name, written, compressed, limit)
            out.write(chunk)
            counter.add(len(chunk))
        if image and len(head) < 16 and not looks_like_image(head):
            raise _not_an_image(name)
    return written


def _not_an_image(name: str) -> UnsafeArchive:
    return UnsafeArchive(
        f"The file {name!r} has an image suffix but its content is not an image "
        f"(JPEG, PNG, BMP, TIFF, WebP, PFM or HEIC).",
        entry=name,
    )


# --------------------------------------------------------------------------- zip


def _zip_entries(archive: zipfile.ZipFile) -> Iterator[tuple[zipfile.ZipInfo, PurePosixPath]]:
    for info in archive.infolist():
        mode = info.external_attr >> 16
        kind = stat.S_IFMT(mode)
        if kind == stat.S_IFLNK:
            raise UnsafeArchive(f"The entry {info.filename!r} is a symbolic link.")
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise UnsafeArchive(f"The entry {info.filename!r} is a device, fifo or socket.")
        if info.flag_bits & 0x1:
            raise UnsafeArchive(
                f"The entry {info.filename!r} is encrypted; upload an unencrypted archive."
            )
        relative = check_entry_name(info.filename)
        yield info, relative


def extract_zip(
    archive_path: Path, dest: Path, limits: Limits, progress: Progress | None = None
) -> ExtractResult:
    """Extract the kept files of a zip archive into the new folder ``dest``.

    ``dest`` must not exist; it is created here. On any error the caller removes ``dest``.
    """
    result = ExtractResult()
    archive_size = archive_path.stat().st_size
    with archive_path.open("rb") as handle:
        count_entries(handle, limits.max_entries)
        handle.seek(0)
        try:
            archive = zipfile.ZipFile(handle)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as exc:
            raise InvalidRequest(f"The archive cannot be read as a zip file: {exc}") from exc
        with archive:
            kept: list[tuple[zipfile.ZipInfo, PurePosixPath]] = []
            seen: set[PurePosixPath] = set()
            declared_total = 0
            for info, relative in _zip_entries(archive):
                if relative in seen and not info.is_dir():
                    raise UnsafeArchive(f"The entry {info.filename!r} appears twice.")
                seen.add(relative)
                if info.is_dir():
                    continue
                if not is_kept(relative):
                    result.skip(relative.as_posix())
                    continue
                if (
                    info.file_size > RATIO_FLOOR
                    and info.file_size > info.compress_size * limits.max_compression_ratio
                ):
                    raise _ratio_error(
                        info.filename,
                        info.file_size,
                        info.compress_size,
                        limits.max_compression_ratio,
                    )
                declared_total += info.file_size
                if declared_total > limits.max_extracted_bytes:
                    raise _size_error(declared_total, limits.max_extracted_bytes)
                kept.append((info, relative))
            if (
                declared_total > RATIO_FLOOR
                and declared_total > max(archive_size, 1) * limits.max_compression_ratio
            ):
                raise _ratio_error(
                    archive_path.name, declared_total, archive_size, limits.max_compression_ratio
                )
            if not kept:
                raise InvalidRequest("The archive holds no images, labels or dataset descriptions.")
            dest.mkdir(mode=0o755)
            counter = _Counter(limits, declared_total, progress)
            for info, relative in kept:
                target = _make_parents(dest, relative)
                fd = _open_new(target, relative)
                try:
                    with archive.open(info) as source:
                        _copy_stream(
                            source,
                            fd,
                            relative,
                            counter,
                            declared=info.file_size,
                            compressed=info.compress_size,
                        )
                except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
                    raise InvalidRequest(
                        f"The archive is damaged or truncated at entry {info.filename!r}: {exc}"
                    ) from exc
                result.files += 1
    result.bytes = counter.done
    return result


# --------------------------------------------------------------------------- folder


def _scan_folder(
    root: Path, limits: Limits, result: ExtractResult
) -> list[tuple[Path, PurePosixPath, int]]:
    """List the files to copy from ``root``, refusing links and special files."""
    files: list[tuple[Path, PurePosixPath, int]] = []
    total = 0
    entries = 0
    stack: list[tuple[Path, PurePosixPath | None]] = [(root, None)]
    while stack:
        folder, prefix = stack.pop()
        with os.scandir(folder) as scan:
            children = sorted(scan, key=lambda e: e.name)
        for entry in children:
            entries += 1
            if entries > limits.max_entries:
                raise _count_error(entries, limits.max_entries)
            name = entry.name if prefix is None else f"{prefix.as_posix()}/{entry.name}"
            relative = check_entry_name(name, what="file")
            info = entry.stat(follow_symlinks=False)
            if stat.S_ISLNK(info.st_mode):
                raise UnsafeArchive(f"The file {name!r} is a symbolic link; links are refused.")
            if stat.S_ISDIR(info.st_mode):
                if entry.name.startswith(".") or (prefix is None and entry.name == "__MACOSX"):
                    continue
                stack.append((Path(entry.path), relative))
                continue
            if not stat.S_ISREG(info.st_mode):
                raise UnsafeArchive(f"The file {name!r} is a device, fifo or socket.")
            if not is_kept(relative):
                result.skip(name)
                continue
            if info.st_nlink > 1:
                raise UnsafeArchive(
                    f"The file {name!r} is a hard link ({info.st_nlink} names); links are refused."
                )
            total += info.st_size
            if total > limits.max_extracted_bytes:
                raise _size_error(total, limits.max_extracted_bytes)
            files.append((Path(entry.path), relative, info.st_size))
    return files


def copy_folder(
    source: Path, dest: Path, limits: Limits, progress: Progress | None = None
) -> ExtractResult:
    """Copy the kept files of the folder ``source`` into the new folder ``dest``.

    The same rules as for archives apply; links anywhere in ``source`` are refused.
    """
    result = ExtractResult()
    files = _scan_folder(source, limits, result)
    if not files:
        raise InvalidRequest("The folder holds no images, labels or dataset descriptions.")
    dest.mkdir(mode=0o755)
    counter = _Counter(limits, sum(size for _, _, size in files), progress)
    for path, relative, _size in files:
        try:
            src_fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            raise UnsafeArchive(
                f"The file {relative.as_posix()!r} cannot be opened safely: {exc.strerror}."
            ) from exc
        with os.fdopen(src_fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode) or info.st_nlink > 1:
                raise UnsafeArchive(f"The file {relative.as_posix()!r} changed into a link.")
            target = _make_parents(dest, relative)
            fd = _open_new(target, relative)
            _copy_stream(handle, fd, relative, counter, declared=None, compressed=None)
        result.files += 1
    result.bytes = counter.done
    return result
