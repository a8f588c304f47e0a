"""Where a component's command ledger survives a restart: one SQLite file of admitted commands.

ScriptQueue:2 and OCPS:1 use it, so a command delivered again after their restart (a broker
redelivery, a Remote asking again, a replay) is still recognised and not run a second time. Rows
are appended as commands are admitted (WAL, one connection, no fsync per command: it survives
the process being killed, which is what a restart is) and pruned to each sender's last window.
It stays a local SQLite file on a site with a shared database: it is the process's own memory,
read by nothing else.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

from obsq.csc.core.ledger import DEFAULT_WINDOW, Admitted
from obsq.csc.database import BUSY_TIMEOUT_S, Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS admitted (
    identity TEXT NOT NULL, origin INTEGER NOT NULL, seq INTEGER NOT NULL, stamp REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS admitted_sender ON admitted (identity, origin);
"""
#: Prune every this many admissions.
_PRUNE_EVERY = 1000


class SqliteLedgerStore:
    """Admitted commands in `path`, kept to the last `window` of each sender."""

    def __init__(self, path: Path, *, window: int = DEFAULT_WINDOW) -> None:
        self.path = path
        self.window = window
        Database(path, SCHEMA)
        self._db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._added = 0

    def load(self) -> Iterator[Admitted]:
        self._prune()
        for identity, origin, seq, stamp in self._db.execute(
            "SELECT identity, origin, seq, stamp FROM admitted ORDER BY rowid"
        ):
            yield Admitted(identity, origin, seq, stamp)

    def add(self, admitted: Admitted) -> None:
        self._db.execute(
            "INSERT INTO admitted VALUES (?, ?, ?, ?)",
            (admitted.identity, admitted.origin, admitted.seq_num, admitted.stamp),
        )
        self._added += 1
        if self._added % _PRUNE_EVERY == 0:
            self._prune()

    def _prune(self) -> None:
        self._db.execute(
            "DELETE FROM admitted WHERE rowid IN (SELECT rowid FROM (SELECT rowid, ROW_NUMBER() OVER"
            " (PARTITION BY identity, origin ORDER BY rowid DESC) AS newer FROM admitted) WHERE newer > ?)",
            (self.window,),
        )

    def close(self) -> None:
        self._db.close()
