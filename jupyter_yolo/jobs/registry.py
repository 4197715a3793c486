"""The SQLite job registry in the workspace: one row per job, terminal statuses never rewritten."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..contract.status import STATUSES, TERMINAL
from ..errors import ServiceUnavailable
from ..strict import dumps

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT,
    status TEXT NOT NULL,
    request TEXT NOT NULL,
    params TEXT NOT NULL,
    devices TEXT NOT NULL,
    created REAL NOT NULL,
    queued REAL NOT NULL,
    started REAL,
    ended REAL,
    pid INTEGER,
    pid_start INTEGER,
    exit_reason TEXT,
    error TEXT,
    result TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    executor TEXT NOT NULL DEFAULT 'local',
    ray TEXT
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, queued);
"""
#: Columns added after the first release: ``(name, declaration)``; an older registry gains them
#: when it is opened (its jobs are local jobs: the defaults say so).
_ADDED_COLUMNS = (
    ("executor", "TEXT NOT NULL DEFAULT 'local'"),
    ("ray", "TEXT"),
)


@dataclass
class JobRecord:
    """One row of the registry."""

    id: str
    kind: str
    name: str | None
    status: str
    request: dict[str, Any]
    params: dict[str, Any]
    devices: list[str]
    created: float
    queued: float
    started: float | None
    ended: float | None
    pid: int | None
    pid_start: int | None
    exit_reason: str | None
    error: str | None
    result: dict[str, Any] | None
    attempts: int
    executor: str = "local"
    ray: dict[str, Any] | None = None
    """A Ray job's submission: ``submission_id``, ``attempt``, the resources it asks for
    (``num_cpus``, ``num_gpus``, ``resources``), and Ray's last word (``status``, ``message``,
    ``node_id``)."""

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> JobRecord:
        """Decode a database row; raise :class:`BadRow` when it is damaged or foreign."""
        try:
            record = cls(
                id=_text(row["id"]),
                kind=_text(row["kind"]),
                name=_optional(row["name"], str),
                status=_text(row["status"]),
                request=_json(row["request"], dict),
                params=_json(row["params"], dict),
                devices=[str(d) for d in _json(row["devices"], list)],
                created=float(row["created"]),
                queued=float(row["queued"]),
                started=_optional(row["started"], float),
                ended=_optional(row["ended"], float),
                pid=_optional(row["pid"], int),
                pid_start=_optional(row["pid_start"], int),
                exit_reason=_optional(row["exit_reason"], str),
                error=_optional(row["error"], str),
                result=_json(row["result"], dict) if row["result"] else None,
                attempts=int(row["attempts"]),
                executor=_text(row["executor"]),
                ray=_json(row["ray"], dict) if row["ray"] else None,
            )
        except Exception as exc:  # anything a hand-edited or damaged row can hold
            raise BadRow(_row_id(row), f"{type(exc).__name__}: {exc}"[:300]) from None
        if record.status not in STATUSES:
            raise BadRow(record.id, f"unknown status {record.status!r}")
        return record

    @property
    def terminal(self) -> bool:
        """Whether the job has ended (it may still be resumed)."""
        return self.status in TERMINAL


class BadRow(ValueError):
    """A registry row that cannot be decoded (written by hand, by another version, damaged)."""

    def __init__(self, job_id: str, why: str) -> None:
        super().__init__(f"registry row {job_id!r}: {why}")
        self.job_id = job_id
        self.why = why


_COLUMNS = (
    "id, kind, name, status, request, params, devices, created, queued, started, ended, pid,"
    " pid_start, exit_reason, error, result, attempts, executor, ray"
)
_SELECT_ALL = "SELECT * FROM jobs ORDER BY created DESC"
_DAMAGED_CODES = frozenset({11, 26})  # SQLITE_CORRUPT, SQLITE_NOTADB


def _damaged(exc: BaseException) -> bool:
    """Whether opening failed because the file is no registry (not: locked, full disk ...)."""
    if isinstance(exc, IsADirectoryError):
        return True
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    if getattr(exc, "sqlite_errorcode", None) in _DAMAGED_CODES:
        return True
    message = str(exc)
    return isinstance(exc, sqlite3.OperationalError) and message.startswith(
        ("no such column", "no such table")
    )


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError(f"expected text, got {type(value).__name__}")
    return value


def _optional(value: Any, kind: type) -> Any:
    if value is None:
        return None
    if kind is float and isinstance(value, int):
        return float(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")
    return value


def _json(value: Any, kind: type) -> Any:
    decoded = json.loads(value)
    if not isinstance(decoded, kind):
        raise TypeError(f"expected a JSON {kind.__name__}, got {type(decoded).__name__}")
    return decoded


def _row_id(row: sqlite3.Row) -> str:
    with contextlib.suppress(Exception):
        return str(row["id"])
    return "?"


def _private_file(path: Path) -> None:
    """Create ``path`` readable by its owner only (whatever the umask), or make it so."""
    fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def _add_missing_columns(db: sqlite3.Connection) -> None:
    """Migrate a registry written by an older version: add the columns it lacks."""
    present = {str(row[1]) for row in db.execute("PRAGMA table_info(jobs)").fetchall()}
    for name, declaration in _ADDED_COLUMNS:
        if name not in present:
            db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {declaration}")


class JobRegistry:
    """Persistent list of jobs; every method is one short transaction, safe from any thread.

    A file that is not a readable SQLite database is moved aside (``jobs.sqlite.damaged-<time>``)
    and a new registry is started; the job folders on disk are adopted again at start, so no job
    is lost. Rows that cannot be decoded are skipped and listed in :attr:`problems`.
    """

    def __init__(
        self, path: Path, log: logging.Logger | None = None, *, repair: bool = True
    ) -> None:
        self.path = path
        self.log = log or logging.getLogger(__name__)
        self.problems: dict[str, str] = {}
        self._decoded: dict[str, tuple[tuple[Any, ...], JobRecord]] = {}
        self._writes = 0
        self._all: tuple[tuple[int, int], list[JobRecord]] | None = None
        self.on_status: Callable[[str], None] | None = None
        """Called with a job's id after this registry changed its status (from any thread)."""
        self._lock = threading.RLock()
        self._closed = False
        try:
            self._db = self._open(path)
        except (sqlite3.DatabaseError, OSError) as exc:
            if not _damaged(exc):
                raise
            self._db = self._replace_damaged(exc, repair)

    def _replace_damaged(self, exc: BaseException, repair: bool) -> sqlite3.Connection:
        """Move a damaged registry aside and start anew (or, when not ours, work in memory)."""
        if not repair:
            self.problems["registry"] = (
                f"The job registry {self.path.name} cannot be read ({exc}); the server that "
                f"supervises this workspace repairs it when it starts."
            )
            self.log.error("jupyter_yolo: %s", self.problems["registry"])
            return self._open(None)
        aside = self.path.with_name(f"{self.path.name}.damaged-{int(time.time())}")
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.replace(f"{self.path}{suffix}", f"{aside}{suffix}")
        self.problems["registry"] = (
            f"The job registry {self.path.name} could not be read ({exc}); it was moved to "
            f"{aside.name} and a new one was started from the job folders."
        )
        self.log.error("jupyter_yolo: %s", self.problems["registry"])
        return self._open(self.path)

    def _open(self, path: Path | None) -> sqlite3.Connection:
        """Open (and create) the registry; None opens an empty one in memory."""
        if path is not None:
            _private_file(path)
        target = str(path) if path is not None else ":memory:"
        db = sqlite3.connect(target, isolation_level=None, check_same_thread=False)
        try:
            db.row_factory = sqlite3.Row
            # a damaged text cell decodes with U+FFFD instead of failing the whole query
            db.text_factory = lambda raw: raw.decode("utf-8", "replace")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            _add_missing_columns(db)
            db.execute(f"SELECT {_COLUMNS} FROM jobs").fetchall()
        except sqlite3.DatabaseError:
            db.close()
            raise
        if path is not None:
            for suffix in ("-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.chmod(f"{path}{suffix}", 0o600)
        return db

    def close(self) -> None:
        """Close the database connection; later calls raise :class:`ServiceUnavailable`."""
        with self._lock:
            self._closed = True
            self._db.close()

    def _decode(self, rows: list[sqlite3.Row]) -> list[JobRecord]:
        """Decode rows; a row unchanged since it was last decoded gives the same record object.

        Decoding (four JSON columns a row) is most of the cost of listing many jobs; reusing the
        records of unchanged rows keeps a list of 1,000 finished jobs cheap, and lets callers
        cache what they derive from a record by its identity. Records are never modified.
        """
        records = []
        for row in rows:
            raw = tuple(row)
            cached = self._decoded.get(raw[0]) if raw and isinstance(raw[0], str) else None
            if cached is not None and cached[0] == raw:
                records.append(cached[1])
                continue
            try:
                record = JobRecord.from_row(row)
                records.append(record)
                with self._lock:
                    self._decoded[record.id] = (raw, record)
            except BadRow as exc:
                if exc.job_id not in self.problems:
                    self.log.warning("jupyter_yolo: skipping a damaged %s", exc)
                self.problems[exc.job_id] = (
                    f"The registry row of job {exc.job_id} is damaged "
                    f"({exc.why}); it is left out until its row is repaired or deleted."
                )
        return records

    def _execute(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        with self._lock:
            self._check_open()
            self._writes += 1  # every call here writes: the cached list is stale
            return self._db.execute(sql, args)

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            self._check_open()
            return self._db.execute(sql, args).fetchall()

    def _changed(self, job_id: str, cursor: sqlite3.Cursor) -> bool:
        """Whether a status update changed the row; tell :attr:`on_status` when it did."""
        if cursor.rowcount != 1:
            return False
        if self.on_status is not None:
            self.on_status(job_id)
        return True

    def _check_open(self) -> None:
        if self._closed:
            raise ServiceUnavailable("The server is shutting down; try again when it is back.")

    def insert(
        self,
        *,
        job_id: str,
        kind: str,
        name: str | None,
        request: dict[str, Any],
        params: dict[str, Any],
        devices: list[str],
        executor: str = "local",
        ray: dict[str, Any] | None = None,
    ) -> JobRecord:
        """Add a new queued job."""
        now = time.time()
        self._execute(
            "INSERT INTO jobs (id, kind, name, status, request, params, devices, created, queued,"
            " executor, ray) VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?)",
            (
                job_id,
                kind,
                name,
                dumps(request),
                dumps(params),
                dumps(devices),
                now,
                now,
                executor,
                dumps(ray) if ray is not None else None,
            ),
        )
        return self.require(job_id)

    def get(self, job_id: str) -> JobRecord | None:
        """Return one job, or None."""
        records = self._decode(self._rows("SELECT * FROM jobs WHERE id = ?", (job_id,)))
        return records[0] if records else None

    def require(self, job_id: str) -> JobRecord:
        """Return one job that must exist."""
        record = self.get(job_id)
        if record is None:
            raise KeyError(job_id)
        return record

    def all(self) -> list[JobRecord]:
        """Every job, newest first.

        While no row changed (no write through this registry, SQLite's ``data_version`` the
        same: no commit by another connection) the last answer is given again without a query.
        """
        with self._lock:
            self._check_open()
            version = (self._writes, self._db.execute("PRAGMA data_version").fetchone()[0])
            if self._all is not None and self._all[0] == version:
                return list(self._all[1])
            records = self._decode(self._db.execute(_SELECT_ALL).fetchall())
            self._all = (version, records)
            return list(records)

    def with_status(self, *statuses: str) -> list[JobRecord]:
        """Jobs in any of ``statuses``, in queue order."""
        marks = ",".join("?" for _ in statuses)
        return self._decode(
            self._rows(
                f"SELECT * FROM jobs WHERE status IN ({marks}) ORDER BY queued, created", statuses
            )
        )

    def mark_running(self, job_id: str, pid: int, pid_start: int | None) -> bool:
        """Record the spawn of a queued job's runner."""
        cursor = self._execute(
            "UPDATE jobs SET status = 'running', pid = ?, pid_start = ?, started = ?,"
            " ended = NULL, attempts = attempts + 1 WHERE id = ? AND status = 'queued'",
            (pid, pid_start, time.time(), job_id),
        )
        return self._changed(job_id, cursor)

    def claim(self, job_id: str) -> bool:
        """Take a queued job for starting; only one caller ever gets True for one queue entry."""
        cursor = self._execute(
            "UPDATE jobs SET status = 'running', pid = NULL, pid_start = NULL, started = ?,"
            " ended = NULL, attempts = attempts + 1 WHERE id = ? AND status = 'queued'",
            (time.time(), job_id),
        )
        return self._changed(job_id, cursor)

    def set_ray(self, job_id: str, ray: dict[str, Any]) -> None:
        """Record what the server knows of a Ray job's submission (resources, Ray's word)."""
        self._execute("UPDATE jobs SET ray = ? WHERE id = ?", (dumps(ray), job_id))

    def mark_submitted(self, job_id: str, ray: dict[str, Any]) -> bool:
        """A queued Ray job gets its next attempt's submission (it stays queued until placed)."""
        cursor = self._execute(
            "UPDATE jobs SET attempts = attempts + 1, ray = ? WHERE id = ? AND status = 'queued'",
            (dumps(ray), job_id),
        )
        return cursor.rowcount == 1

    def mark_placed(self, job_id: str) -> bool:
        """Ray placed a queued job's runner on a node: it is running now."""
        cursor = self._execute(
            "UPDATE jobs SET status = 'running', started = ?, ended = NULL WHERE id = ?"
            " AND status = 'queued'",
            (time.time(), job_id),
        )
        return self._changed(job_id, cursor)

    def set_process(self, job_id: str, pid: int, pid_start: int | None) -> None:
        """Record the runner process of a claimed job."""
        self._execute(
            "UPDATE jobs SET pid = ?, pid_start = ? WHERE id = ? AND status IN ('running',"
            " 'stopping')",
            (pid, pid_start, job_id),
        )

    def delete(self, job_id: str) -> None:
        """Remove a job's row (a creation that could not be completed)."""
        self._execute("DELETE FROM jobs WHERE id = ?", (job_id,))
        with self._lock:
            self._decoded.pop(job_id, None)

    def mark_stopping(self, job_id: str) -> bool:
        """A running job was asked to stop."""
        cursor = self._execute(
            "UPDATE jobs SET status = 'stopping' WHERE id = ? AND status = 'running'", (job_id,)
        )
        return self._changed(job_id, cursor)

    def finish(
        self,
        job_id: str,
        status: str,
        *,
        exit_reason: str | None = None,
        error: str | None = None,
        result: dict[str, Any] | None = None,
    ) -> bool:
        """Give a job its terminal status; a terminal status already there is kept."""
        if status not in TERMINAL:
            raise ValueError(f"{status!r} is not terminal")
        placeholders = ",".join("?" for _ in TERMINAL)
        cursor = self._execute(
            "UPDATE jobs SET status = ?, ended = ?, exit_reason = ?, error = ?, result = ?"
            f" WHERE id = ? AND status NOT IN ({placeholders})",
            (
                status,
                time.time(),
                exit_reason,
                error,
                dumps(result) if result is not None else None,
                job_id,
                *sorted(TERMINAL),
            ),
        )
        return self._changed(job_id, cursor)

    def requeue(self, job_id: str, from_statuses: frozenset[str]) -> bool:
        """Put an ended job back in the queue (resume), at the end of the queue."""
        marks = ",".join("?" for _ in from_statuses)
        cursor = self._execute(
            "UPDATE jobs SET status = 'queued', queued = ?, ended = NULL, exit_reason = NULL,"
            f" error = NULL, pid = NULL, pid_start = NULL WHERE id = ? AND status IN ({marks})",
            (time.time(), job_id, *sorted(from_statuses)),
        )
        return self._changed(job_id, cursor)
