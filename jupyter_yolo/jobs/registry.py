"""The SQLite job registry in the workspace: one row per job, terminal statuses never rewritten."""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TERMINAL = frozenset({"succeeded", "failed", "stopped", "interrupted"})
ACTIVE = frozenset({"running", "stopping"})
STATUSES = ("queued", "running", "stopping", "succeeded", "failed", "stopped", "interrupted")

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
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, queued);
"""


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

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> JobRecord:
        """Decode a database row."""
        return cls(
            id=row["id"],
            kind=row["kind"],
            name=row["name"],
            status=row["status"],
            request=json.loads(row["request"]),
            params=json.loads(row["params"]),
            devices=json.loads(row["devices"]),
            created=row["created"],
            queued=row["queued"],
            started=row["started"],
            ended=row["ended"],
            pid=row["pid"],
            pid_start=row["pid_start"],
            exit_reason=row["exit_reason"],
            error=row["error"],
            result=json.loads(row["result"]) if row["result"] else None,
            attempts=row["attempts"],
        )

    @property
    def terminal(self) -> bool:
        """Whether the job has ended (it may still be resumed)."""
        return self.status in TERMINAL


class JobRegistry:
    """Persistent list of jobs; every method is one short transaction."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the database connection."""
        self._db.close()

    def insert(
        self,
        *,
        job_id: str,
        kind: str,
        name: str | None,
        request: dict[str, Any],
        params: dict[str, Any],
        devices: list[str],
    ) -> JobRecord:
        """Add a new queued job."""
        now = time.time()
        self._db.execute(
            "INSERT INTO jobs (id, kind, name, status, request, params, devices, created, queued)"
            " VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?)",
            (
                job_id,
                kind,
                name,
                json.dumps(request),
                json.dumps(params),
                json.dumps(devices),
                now,
                now,
            ),
        )
        return self.require(job_id)

    def get(self, job_id: str) -> JobRecord | None:
        """Return one job, or None."""
        row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return JobRecord.from_row(row) if row else None

    def require(self, job_id: str) -> JobRecord:
        """Return one job that must exist."""
        record = self.get(job_id)
        if record is None:
            raise KeyError(job_id)
        return record

    def all(self) -> list[JobRecord]:
        """Every job, newest first."""
        rows = self._db.execute("SELECT * FROM jobs ORDER BY created DESC").fetchall()
        return [JobRecord.from_row(row) for row in rows]

    def with_status(self, *statuses: str) -> list[JobRecord]:
        """Jobs in any of ``statuses``, in queue order."""
        marks = ",".join("?" for _ in statuses)
        rows = self._db.execute(
            f"SELECT * FROM jobs WHERE status IN ({marks}) ORDER BY queued, created", statuses
        ).fetchall()
        return [JobRecord.from_row(row) for row in rows]

    def mark_running(self, job_id: str, pid: int, pid_start: int | None) -> bool:
        """Record the spawn of a queued job's runner."""
        cursor = self._db.execute(
            "UPDATE jobs SET status = 'running', pid = ?, pid_start = ?, started = ?,"
            " ended = NULL, attempts = attempts + 1 WHERE id = ? AND status = 'queued'",
            (pid, pid_start, time.time(), job_id),
        )
        return cursor.rowcount == 1

    def mark_stopping(self, job_id: str) -> bool:
        """A running job was asked to stop."""
        cursor = self._db.execute(
            "UPDATE jobs SET status = 'stopping' WHERE id = ? AND status = 'running'", (job_id,)
        )
        return cursor.rowcount == 1

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
        cursor = self._db.execute(
            "UPDATE jobs SET status = ?, ended = ?, exit_reason = ?, error = ?, result = ?"
            f" WHERE id = ? AND status NOT IN ({placeholders})",
            (
                status,
                time.time(),
                exit_reason,
                error,
                json.dumps(result) if result is not None else None,
                job_id,
                *sorted(TERMINAL),
            ),
        )
        return cursor.rowcount == 1

    def requeue(self, job_id: str, from_statuses: frozenset[str]) -> bool:
        """Put an ended job back in the queue (resume), at the end of the queue."""
        marks = ",".join("?" for _ in from_statuses)
        cursor = self._db.execute(
            "UPDATE jobs SET status = 'queued', queued = ?, ended = NULL, exit_reason = NULL,"
            f" error = NULL, pid = NULL, pid_start = NULL WHERE id = ? AND status IN ({marks})",
            (time.time(), job_id, *sorted(from_statuses)),
        )
        return cursor.rowcount == 1
