"""The queue's store: queue, current slot and history, saved after every change.

After a restart the service loads them back: queued scripts are started again (they never
ran), the one that was running is recorded as lost (never silently re-run), history is kept.
`SqliteQueueStore` is the real one (one file per queue); `MemoryQueueStore` keeps the same
rows in memory, for unit tests.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from pathlib import Path
from typing import Any, Protocol

from obsq.csc import sqlite
from obsq.csc.scriptqueue.model import MAX_HISTORY, QueueItem, QueueModel

SCHEMA = """
CREATE TABLE IF NOT EXISTS items (area TEXT NOT NULL, position INTEGER NOT NULL, item TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


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


class SqliteQueueStore:
    """One SQLite file per queue; saved in a worker thread, so the event loop never waits on the disk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        sqlite.create(path, SCHEMA)

    async def save(self, model: QueueModel) -> None:
        rows, meta = to_rows(model)
        await asyncio.to_thread(self._write, rows, meta)

    def _write(self, rows: Rows, meta: dict[str, Any]) -> None:
        with sqlite.transaction(self.path) as db:
            db.execute("DELETE FROM items")
            db.executemany("INSERT INTO items (area, position, item) VALUES (?, ?, ?)", rows)
            db.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [(k, json.dumps(v)) for k, v in meta.items()]
            )

    def load(self, first_index: int) -> QueueModel:
        with sqlite.transaction(self.path) as db:
            meta = {k: json.loads(v) for k, v in db.execute("SELECT key, value FROM meta")}
            rows = db.execute("SELECT area, item FROM items ORDER BY area, position").fetchall()
        return from_rows(first_index, rows, meta)


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
