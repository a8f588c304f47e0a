"""The one way obsq opens its SQLite files (registries, job table, queue store).

A call is one transaction on its own connection, so threads and processes may share a file;
files are created with their schema and in WAL mode (readers never block the writer).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: How long a writer waits for another process's transaction (s).
BUSY_TIMEOUT_S = 30.0


def create(path: Path, schema: str) -> None:
    """Make the file (and its folder) if needed, with `schema` applied."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with transaction(path) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(schema)


@contextmanager
def transaction(path: Path, *, named_rows: bool = False) -> Iterator[sqlite3.Connection]:
    """A connection whose work commits on success and rolls back on an exception, then closes."""
    db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S)
    if named_rows:
        db.row_factory = sqlite3.Row
    try:
        with db:
            yield db
    finally:
        db.close()
