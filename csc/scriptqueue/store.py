"""The queue's store: queue, current slot and history, saved after every change.

After a restart the service loads them back: queued scripts are started again (they never
ran), the one that was running is recorded as lost (never silently re-run), history is kept.
`DatabaseQueueStore` is the real one (an SQLite file per queue, or the site's PostgreSQL database
shared by the queues, each keyed by its name); `MemoryQueueStore` keeps the same rows in
memory, for unit tests.

A save writes what changed since the save before, so its cost does not grow with the history:
the queue and the current slot (rewritten each time: a move shifts every queue position), the
history items a change touched (a history row's position is the item's history position, which
never changes: the newest is the highest) and the removal of the rows that fell off the history
cap. The first save of a model the store did not load or save before writes it whole.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from obsq.csc.database import Database
from obsq.csc.scriptqueue.model import MAX_HISTORY, QueueItem, QueueModel

SCHEMA = """
CREATE TABLE IF NOT EXISTS queue_items (
    queue TEXT NOT NULL, area TEXT NOT NULL, position INTEGER NOT NULL, item TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS queue_items_by_place ON queue_items (queue, area, position);
CREATE TABLE IF NOT EXISTS queue_meta (
    queue TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (queue, key)
);
"""
#: The tables before queues could share a database (one file per queue): read once, then dropped.
_OLD_TABLES = ("items", "meta")
#: The meta key that says history rows are kept by history position (before it: 0 was the newest).
_HISTORY_TOTAL = "history_total"

#: (area, position, item JSON)
Rows = list[tuple[str, int, str]]


class QueueStore(Protocol):
    """Where a queue keeps its state between runs of the service."""

    async def save(self, model: QueueModel) -> None: ...

    def load(self, first_index: int) -> QueueModel: ...


@dataclass(frozen=True)
class Changes:
    """What one save writes: rows to put, what to remove first, the meta values."""

    #: the model whole: every row of the queue is replaced
    whole: bool
    #: rows to write (queue and current slot always; history rows a change touched, or all if `whole`)
    rows: Rows
    #: history rows with a position below this fell off the history cap
    history_floor: int
    meta: dict[str, Any]
    #: the model's token these rows show
    token: int


def _row(area: str, position: int, item: QueueItem) -> tuple[str, int, str]:
    return area, position, json.dumps(item.to_json())


def changes_of(model: QueueModel, since: int | None) -> Changes:
    """The rows that save the changes made to `model` after token `since` (None: the model whole)."""
    rows = [_row("queue", i, item) for i, item in enumerate(model.queue)]
    if model.current is not None:
        rows.append(_row("current", 0, model.current))
    touched = model.history if since is None else model.changed_since(since)
    for item in touched:
        position = model.history_position(item)
        if position is not None:
            rows.append(_row("history", position, item))
    meta = {"running": model.running, "next_index": model.next_index, "token": model.token,
            _HISTORY_TOTAL: model.history_total}  # fmt: skip
    return Changes(since is None, rows, model.history_total - MAX_HISTORY, meta, model.token)


def from_rows(first_index: int, rows: Rows, meta: dict[str, Any]) -> QueueModel:
    """The model back from its rows (area, position, item JSON) and its meta values."""
    queue = sorted((r for r in rows if r[0] == "queue"), key=lambda r: r[1])
    current = [r for r in rows if r[0] == "current"]
    history = sorted((r for r in rows if r[0] == "history"), key=lambda r: -r[1])[:MAX_HISTORY]
    return QueueModel(
        first_index=first_index, next_index=meta.get("next_index", 0), token=meta.get("token", 0),
        running=meta.get("running", True), history_total=meta.get(_HISTORY_TOTAL, 0),
        queue=[_item(r) for r in queue], current=_item(current[0]) if current else None,
        history=deque(_item(r) for r in history), history_positions=[r[1] for r in history],
    )  # fmt: skip


def _item(row: tuple[str, int, str]) -> QueueItem:
    return QueueItem.from_json(json.loads(row[2]))


class _IncrementalSaves:
    """What both stores share: which model they hold, up to which token it is saved; one save at a time."""

    def __init__(self) -> None:
        self._model: QueueModel | None = None
        self._saved_token = 0
        self._saving = asyncio.Lock()  # writes in order: a later save never lands before an earlier one

    async def save(self, model: QueueModel) -> None:
        async with self._saving:
            pending = changes_of(model, self._saved_token if model is self._model else None)
            await self._apply(pending)
            self._model, self._saved_token = model, pending.token

    def _loaded(self, model: QueueModel) -> QueueModel:
        self._model, self._saved_token = model, model.token
        return model

    async def _apply(self, pending: Changes) -> None:
        raise NotImplementedError


class DatabaseQueueStore(_IncrementalSaves):
    """The queue `name` in a database (path or URL); saved in a worker thread, so the event loop never waits."""

    def __init__(self, target: str | Path, name: str) -> None:
        super().__init__()
        self.db = Database(target, SCHEMA)
        self.name = name
        if self.db.dialect == "sqlite":
            self._adopt_old_tables()
        self._adopt_history_positions()

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

    def _adopt_history_positions(self) -> None:
        """Rows saved before history positions (history position 0 was its newest item): renumbered once."""
        with self.db.transaction() as db:
            marked = db.execute(
                "SELECT value FROM queue_meta WHERE queue = ? AND key = ?", (self.name, _HISTORY_TOTAL)
            ).fetchone()
            if marked is not None:
                return
            count = int(
                db.execute(
                    "SELECT COUNT(*) FROM queue_items WHERE queue = ? AND area = 'history'", (self.name,)
                ).scalar()
                or 0
            )
            # p -> count - 1 - p in two steps, so no two rows share a place at any moment (a unique index)
            db.execute("UPDATE queue_items SET position = -1 - position WHERE queue = ? AND area = 'history'",
                       (self.name,))  # fmt: skip
            db.execute("UPDATE queue_items SET position = ? + position WHERE queue = ? AND area = 'history'",
                       (count, self.name))  # fmt: skip
            db.execute(
                "INSERT INTO queue_meta (queue, key, value) VALUES (?, ?, ?) ON CONFLICT (queue, key) DO NOTHING",
                (self.name, _HISTORY_TOTAL, str(count)),
            )

    async def _apply(self, pending: Changes) -> None:
        await asyncio.to_thread(self._write, pending)

    def _write(self, pending: Changes) -> None:
        with self.db.transaction() as db:
            if pending.whole:
                db.execute("DELETE FROM queue_items WHERE queue = ?", (self.name,))
            else:
                db.execute("DELETE FROM queue_items WHERE queue = ? AND area <> 'history'", (self.name,))
                db.execute(
                    "DELETE FROM queue_items WHERE queue = ? AND area = 'history' AND position < ?",
                    (self.name, pending.history_floor),
                )
            db.executemany(
                "INSERT INTO queue_items (queue, area, position, item) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (queue, area, position) DO UPDATE SET item = excluded.item",
                [(self.name, *row) for row in pending.rows],
            )
            db.executemany(
                "INSERT INTO queue_meta (queue, key, value) VALUES (?, ?, ?) "
                "ON CONFLICT (queue, key) DO UPDATE SET value = excluded.value",
                [(self.name, k, json.dumps(v)) for k, v in pending.meta.items()],
            )

    def load(self, first_index: int) -> QueueModel:
        with self.db.transaction() as db:
            pairs = db.execute("SELECT key, value FROM queue_meta WHERE queue = ?", (self.name,)).fetchall()
            rows = db.execute("SELECT area, position, item FROM queue_items WHERE queue = ?", (self.name,)).fetchall()
        meta = {k: json.loads(v) for k, v in pairs}
        return self._loaded(from_rows(first_index, [(area, position, item) for area, position, item in rows], meta))


class MemoryQueueStore(_IncrementalSaves):
    """The same rows kept in memory: a restart within one test comes back as from SQLite."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[tuple[str, int], str] = {}
        self.meta: dict[str, Any] = {}

    async def _apply(self, pending: Changes) -> None:
        for area, position in list(self.rows):
            if pending.whole or area != "history" or position < pending.history_floor:
                del self.rows[area, position]
        self.rows.update(((area, position), item) for area, position, item in pending.rows)
        self.meta = dict(pending.meta)

    def load(self, first_index: int) -> QueueModel:
        rows = [(area, position, item) for (area, position), item in self.rows.items()]
        return self._loaded(from_rows(first_index, rows, self.meta))
