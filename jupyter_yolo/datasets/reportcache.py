"""The cached report and the dataset's meta.json: fingerprints, safe reads, atomic writes.

``report.json`` is kept with a fingerprint of the files it describes (names, sizes, times), so
it is recomputed only when they change; a damaged or stale cache counts as none. ``meta.json``
(format, task, source, notes) is read keeping only values of the expected types.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from ..contract.files import write_atomic
from ..contract.tasks import TASK_NAMES
from ..strict import StrictJSONError, loads_file
from .archive import IMAGE_SUFFIXES

REPORT_FILE = "report.json"
META_FILE = "meta.json"
REPORT_VERSION = 2
MAX_LISTED_PROBLEMS = 500
MAX_CACHE_BYTES = 64 * 1024 * 1024  # report.json / meta.json larger than this are not read

__all__ = [
    "FORMATS",
    "META_FILE",
    "REPORT_FILE",
    "REPORT_VERSION",
    "cached_report",
    "fingerprint",
    "folder_size",
    "read_meta",
    "save_report",
]


def fingerprint(folder: Path) -> str:
    """A digest of the names, sizes and times of the files a report describes."""
    digest = hashlib.sha1(usedforsecurity=False)
    for current, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith(".") or name in (REPORT_FILE, META_FILE):
                continue
            suffix = Path(name).suffix.lower()
            if suffix not in IMAGE_SUFFIXES and suffix not in (".txt", ".yaml", ".yml", ".npy"):
                continue
            path = Path(current) / name
            try:
                info = path.lstat()
            except OSError:
                continue
            relative = path.relative_to(folder).as_posix()
            line = f"{relative}\0{info.st_size}\0{info.st_mtime_ns}\n"
            digest.update(line.encode("utf-8", "surrogateescape"))  # names need not be UTF-8
    return digest.hexdigest()


def folder_size(folder: Path) -> int:
    """Total bytes of the regular files under ``folder`` (links not followed)."""
    total = 0
    for current, _dirs, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += (Path(current) / name).lstat().st_size
    return total


def _read_cache_json(path: Path) -> Any:
    """A JSON file the store wrote (report, meta), or None when it is missing or unusable."""
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_CACHE_BYTES:
            return None
        return loads_file(path.read_bytes())
    except (OSError, StrictJSONError):
        return None


FORMATS = ("yolo", "coco", "voc", "class-folders", "dota")
META_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "format": (str,),
    "task": (str,),
    "task_source": (str,),
    "source": (str,),
    "builtin": (bool,),
    "created": (int, float),
    "split_created": (bool,),
    "files": (int,),
    "bytes": (int,),
}


def read_meta(folder: Path) -> dict[str, Any]:
    """The dataset's ``meta.json`` (format, source, notes...), or {} when there is none.

    Only values of the expected types are kept, so a damaged or hand-edited file cannot break
    the listing.
    """
    meta = _read_cache_json(folder / META_FILE)
    if not isinstance(meta, dict):
        return {}
    clean: dict[str, Any] = {
        key: meta[key]
        for key, types in META_TYPES.items()
        if isinstance(meta.get(key), types)
        and not (bool not in types and isinstance(meta.get(key), bool))
    }
    if clean.get("format") not in FORMATS:
        clean.pop("format", None)
    if clean.get("task") not in TASK_NAMES:
        clean.pop("task", None)
        clean.pop("task_source", None)
    notes = meta.get("notes")
    if isinstance(notes, list):
        clean["notes"] = [note for note in notes if isinstance(note, str)][:100]
    problems = meta.get("import_problems")
    if isinstance(problems, list):
        clean["import_problems"] = [
            {
                "severity": "error" if p.get("severity") == "error" else "warning",
                "code": str(p.get("code", "import"))[:64],
                "message": str(p.get("message", ""))[:2000],
                "file": p.get("file") if isinstance(p.get("file"), str) else None,
                "line": p.get("line")
                if isinstance(p.get("line"), int) and not isinstance(p.get("line"), bool)
                else None,
            }
            for p in problems[:MAX_LISTED_PROBLEMS]
            if isinstance(p, dict)
        ]
    return clean


REPORT_TYPES: dict[str, tuple[type, ...]] = {
    "status": (str,),
    "errors": (int,),
    "warnings": (int,),
    "classes": (int,),
    "images": (int,),
    "instances": (int,),
    "splits": (dict,),
    "problems": (list,),
}


def _problem_ok(problem: Any) -> bool:
    """Whether a cached problem has the shape the report promises."""
    return (
        isinstance(problem, dict)
        and problem.get("severity") in ("error", "warning")
        and isinstance(problem.get("code"), str)
        and isinstance(problem.get("message"), str)
        and (problem.get("file") is None or isinstance(problem.get("file"), str))
        and (
            problem.get("line") is None
            or (isinstance(problem.get("line"), int) and not isinstance(problem.get("line"), bool))
        )
    )


def cached_report(folder: Path) -> dict[str, Any] | None:
    """The cached report when it still describes the folder's files, else None.

    A report that is damaged (unreadable, not JSON, missing fields) counts as no report.
    """
    report = _read_cache_json(folder / REPORT_FILE)
    if not isinstance(report, dict) or report.get("version") != REPORT_VERSION:
        return None
    if any(not isinstance(report.get(key), types) for key, types in REPORT_TYPES.items()):
        return None
    if report["status"] not in ("ok", "has_errors") or not all(
        _problem_ok(p) for p in report["problems"]
    ):
        return None
    if report.get("fingerprint") != fingerprint(folder):
        return None
    return report


def save_report(folder: Path, report: dict[str, Any]) -> None:
    """Write ``report.json`` atomically; a read-only folder just goes without a cache."""
    with contextlib.suppress(OSError):
        write_atomic(folder / REPORT_FILE, json.dumps(report, indent=1))
