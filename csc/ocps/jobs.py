"""The OCPS job table: every job, its configuration, state and result, next to the repository.

A job is QUEUED when accepted, RUNNING while its worker process lives, then DONE or FAILED with
its result. The table outlives the service: at start, jobs left QUEUED or RUNNING (their worker
died with the old service) are queued again, and finished results stay readable. It is an SQLite
file, or a table in the site's PostgreSQL database (`obsq.csc.database`).
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from obsq.csc.database import Database, Row, Transaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, number INTEGER NOT NULL, pipeline TEXT NOT NULL, config TEXT NOT NULL,
    state TEXT NOT NULL, created DOUBLE PRECISION NOT NULL, started DOUBLE PRECISION, finished DOUBLE PRECISION,
    exit_code INTEGER, result TEXT NOT NULL DEFAULT '', attempts INTEGER NOT NULL DEFAULT 0
);
"""


@dataclass(frozen=True)
class Job:
    """One job row."""

    id: str
    number: int
    pipeline: str
    config: dict[str, Any]
    state: str
    created: float
    started: float | None
    finished: float | None
    exit_code: int | None
    result: str
    attempts: int

    @property
    def finished_ok(self) -> bool:
        return self.state == "DONE"


class JobStore:
    """The job table; any process may open it (the service and its workers do)."""

    def __init__(self, target: str | Path) -> None:
        self.db = Database(target, SCHEMA)

    def connect(self) -> AbstractContextManager[Transaction]:
        return self.db.transaction()

    def add(self, pipeline: str, config: dict[str, Any], now: float) -> Job:
        with self.connect() as db:
            number = int(db.execute("SELECT MAX(number) FROM jobs").scalar() or 0) + 1
            job_id = f"ocps-{number:06d}"
            db.execute(
                "INSERT INTO jobs (id, number, pipeline, config, state, created) VALUES (?, ?, ?, ?, 'QUEUED', ?)",
                (job_id, number, pipeline, json.dumps(config), now),
            )
        return self.get(job_id)

    def get(self, job_id: str) -> Job:
        with self.connect() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise KeyError(f"no job {job_id!r}")
        return _job(row)

    def jobs(self, *states: str) -> list[Job]:
        with self.connect() as db:
            rows = db.execute("SELECT * FROM jobs ORDER BY number").fetchall()
        found = [_job(r) for r in rows]
        return [j for j in found if not states or j.state in states]

    def start(self, job_id: str, now: float) -> None:
        with self.connect() as db:
            db.execute(
                "UPDATE jobs SET state = 'RUNNING', started = ?, attempts = attempts + 1 WHERE id = ?", (now, job_id)
            )

    def finish(self, job_id: str, *, ok: bool, result: Any, now: float, exit_code: int | None = None) -> None:
        with self.connect() as db:
            db.execute(
                "UPDATE jobs SET state = ?, finished = ?, exit_code = ?, result = ? WHERE id = ? AND state = 'RUNNING'",
                ("DONE" if ok else "FAILED", now, exit_code if exit_code is not None else (0 if ok else 1),
                 json.dumps(result), job_id),
            )  # fmt: skip

    def retry(self, job_id: str, *, max_attempts: int) -> bool:
        """Queue a RUNNING job again (its worker died) unless it has had `max_attempts`; True if queued."""
        with self.connect() as db:
            row = db.execute("SELECT state, attempts FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None or row["state"] != "RUNNING" or row["attempts"] >= max_attempts:
                return False
            db.execute("UPDATE jobs SET state = 'QUEUED' WHERE id = ?", (job_id,))
        return True

    def requeue_unfinished(self) -> list[str]:
        with self.connect() as db:
            rows = db.execute("SELECT id FROM jobs WHERE state IN ('QUEUED', 'RUNNING') ORDER BY number").fetchall()
            db.execute("UPDATE jobs SET state = 'QUEUED' WHERE state = 'RUNNING'")
        return [r["id"] for r in rows]


def _job(row: Row) -> Job:
    return Job(**(dict(row) | {"config": json.loads(row["config"])}))
