"""The queue's store: queue, current slot and history, saved after every change.

After a restart the service loads them back: queued scripts are started again (they never
ran), the one that was running is recorded as lost (never silently re-run), history is kept.
`DatabaseQueueStore` is the real one (an SQLite file per queue, or the site's PostgreSQL database
shared by the queues, each keyed by its name); `MemoryQueueStore` keeps the same rows in
memory, for unit tests.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from pathlib import Path
from typing import Any, Protocol

from obsq.csc.database import Database
from obsq.csc.scriptqueue.model import MAX_HISTORY, QueueItem, QueueModel

SCHEMA = """
CREATE TABLE IF NOT EXISTS queue_items (
    queue TEXT NOT NULL, area TEXT NOT NULL, position INTEGER NOT NULL, item TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS queue_items_by_queue ON queue_items (queue);
CREATE TABLE IF NOT EXISTS queue_meta (
    queue TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (queue, key)
);
"""
#: The tables before queues could share a database (one file per queue): read once, then dropped.
_OLD_TABLES = ("items", "meta")


Rows = list[tuple[str, int, str]]


class QueueStore(Protocol):
    """Where a queue keeps its state between runs of the service."""

    async def save(self, model: QueueModel) -> None: ...

    def load(self, first_index: int) -> QueueModel: ...


def to_rows(model: QueueModel) -> tuple[Rows, dict[str, Any]]:
    """The model as (area, position, item JSON) rows and its meta values."""
    rows = [("queue", i, json.dumps(item.to_json())) for i, item in enumerate(model.queue)]
    if model.current is not None:
        rows.append(("current", 0, json.dumps(model.current.to_json())))
    rows += [("history", i, json.dumps(item.to_json())) for i, item in enumerate(model.history)]
    return rows, {"running": model.running, "next_index": model.next_index, "token": model.token}


def from_rows(first_index: int, rows: list[tuple[str, str]], meta: dict[str, Any]) -> QueueModel:
    """The model back from rows of (area, item JSON) in position order, and its meta values."""
    model = QueueModel(first_index=first_index, next_index=meta.get("next_index", 0), token=meta.get("token", 0))
    model.running = meta.get("running", True)
    model.history = deque(maxlen=MAX_HISTORY)
    for area, text in rows:
        item = QueueItem.from_json(json.loads(text))
        if area == "queue":
            model.queue.append(item)
        elif area == "current":
            model.current = item
        else:
            model.history.append(item)
    return model


class DatabaseQueueStore:
    """The queue `name` in a database (path or URL); saved in a worker thread, so the event loop never waits."""

    def __init__(self, target: str | Path, name: str) -> None:
        self.db = Database(target, SCHEMA)
        self.name = name
        if self.db.dialect == "sqlite":
            self._adopt_old_tables()

    def _adopt_old_tables(self) -> None:
        with self.db.transaction() as db:
            old = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()}
            if not set(_OLD_TABLES) <= old:
                return
            db.execute("DELETE FROM queue_items WHERE queue = ?", (self.name,))
            db.execute("DELETE FROM queue_meta WHERE queue = ?", (self.name,))
            db.execute("INSERT INTO queue_items SELECT ?, area, position, item FROM items", (self.name,))
            db.execute("INSERT INTO queue_meta SELECT ?, key, value FROM meta", (self.name,))
            for table in _OLD_TABLES:
                db.execute(f"DROP TABLE {table}")

    async def save(self, model: QueueModel) -> None:
        rows, meta = to_rows(model)
        await asyncio.to_thread(self._write, rows, meta)

    def _write(self, rows: Rows, meta: dict[str, Any]) -> None:
        with self.db.transaction() as db:
            db.execute("DELETE FROM queue_items WHERE queue = ?", (self.name,))
            db.executemany(
                "INSERT INTO queue_items (queue, area, position, item) VALUES (?, ?, ?, ?)",
                [(self.name, *row) for row in rows],
            )
            db.executemany(
                "INSERT INTO queue_meta (queue, key, value) VALUES (?, ?, ?) "
                "ON CONFLICT (queue, key) DO UPDATE SET value = excluded.value",
                [(self.name, k, json.dumps(v)) for k, v in meta.items()],
            )

    def load(self, first_index: int) -> QueueModel:
        with self.db.transaction() as db:
            pairs = db.execute("SELECT key, value FROM queue_meta WHERE queue = ?", (self.name,)).fetchall()
            rows = db.execute(
                "SELECT area, item FROM queue_items WHERE queue = ? ORDER BY area, position", (self.name,)
            ).fetchall()
        meta = {k: json.loads(v) for k, v in pairs}
        return from_rows(first_index, [(area, item) for area, item in rows], meta)


class MemoryQueueStore:
    """The same rows kept in memory: a restart within one test comes back as from SQLite."""

    def __init__(self) -> None:
        self.rows: Rows = []
        self.meta: dict[str, Any] = {}

    async def save(self, model: QueueModel) -> None:
        self.rows, self.meta = to_rows(model)

    def load(self, first_index: int) -> QueueModel:
        ordered = sorted(self.rows, key=lambda row: (row[0], row[1]))
        return from_rows(first_index, [(area, item) for area, _, item in ordered], self.meta)
