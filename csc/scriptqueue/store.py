"""The queue's store: queue, current slot and history in SQLite, saved after every change.

After a restart the service loads them back: queued scripts are started again (they never
ran), the one that was running is recorded as lost (never silently re-run), history is kept.
"""

from __future__ import annotations

import json
from collections import deque
from pathlib import Path

from obsq.csc import sqlite
from obsq.csc.scriptqueue.model import MAX_HISTORY, QueueItem, QueueModel

SCHEMA = """
CREATE TABLE IF NOT EXISTS items (area TEXT NOT NULL, position INTEGER NOT NULL, item TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class QueueStore:
    """One SQLite file per queue."""

    def __init__(self, path: Path) -> None:
        self.path = path
        sqlite.create(path, SCHEMA)

    def save(self, model: QueueModel) -> None:
        rows = [("queue", i, json.dumps(item.to_json())) for i, item in enumerate(model.queue)]
        if model.current is not None:
            rows.append(("current", 0, json.dumps(model.current.to_json())))
        rows += [("history", i, json.dumps(item.to_json())) for i, item in enumerate(model.history)]
        meta = {"running": model.running, "next_index": model.next_index, "token": model.token}
        with sqlite.transaction(self.path) as db:
            db.execute("DELETE FROM items")
            db.executemany("INSERT INTO items (area, position, item) VALUES (?, ?, ?)", rows)
            db.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                [(k, json.dumps(v)) for k, v in meta.items()],
            )

    def load(self, first_index: int) -> QueueModel:
        with sqlite.transaction(self.path) as db:
            meta = {k: json.loads(v) for k, v in db.execute("SELECT key, value FROM meta")}
            rows = db.execute("SELECT area, item FROM items ORDER BY area, position").fetchall()
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
