"""What the Scheduler has decided and queued, kept across restarts (SQLite or the site's database).

Every decision is a row; a run (an occurrence whose blocks were queued) is a row with its plan
(blocks, execution ids, scripts) and its outcome. An occurrence with a run is never queued again, so a
Scheduler restarted mid-week does not queue the week's blocks twice.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from obsq.csc.database import Database
from obsq.csc.scheduler.model import Action, Decision

SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    id {auto_id}, rule TEXT NOT NULL, occurrence DOUBLE PRECISION NOT NULL, at DOUBLE PRECISION NOT NULL,
    action TEXT NOT NULL, blocks TEXT NOT NULL, reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS flats_history (
    session TEXT NOT NULL, params TEXT NOT NULL, PRIMARY KEY (session, params)
);
CREATE TABLE IF NOT EXISTS runs (
    rule TEXT NOT NULL, occurrence DOUBLE PRECISION NOT NULL, started DOUBLE PRECISION NOT NULL,
    indices TEXT NOT NULL, outcome TEXT NOT NULL, ended DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (rule, occurrence)
);
"""

#: A run's outcome while its scripts are queued or running.
RUNNING = "running"


@dataclass(frozen=True)
class Run:
    """An occurrence whose blocks were queued: its scripts and how it ended."""

    rule: str
    occurrence: float
    started: float
    indices: list[int]
    outcome: str
    ended: float
    #: its plan (blocks, execution ids, scripts as last seen: `runs.Run.plan_json`); None for a run of an older obsq
    plan: dict[str, Any] | None = None


class SchedulerStore:
    """The decisions and runs table."""

    def __init__(self, target: str | Path) -> None:
        self.db = Database(target, SCHEMA)

    def record(self, decision: Decision) -> None:
        with self.db.transaction() as tx:
            tx.execute(
                "INSERT INTO decisions (rule, occurrence, at, action, blocks, reason) VALUES (?, ?, ?, ?, ?, ?)",
                (decision.rule, decision.occurrence, decision.time, str(decision.action),
                 json.dumps(list(decision.blocks)), decision.reason),
            )  # fmt: skip

    def final(self, rule: str, occurrence: float) -> Decision | None:
        """The occurrence's queue or skip decision, if it had one (a postponement is not final)."""
        with self.db.transaction() as tx:
            row = tx.execute(
                "SELECT rule, occurrence, at, action, blocks, reason FROM decisions WHERE rule = ? AND occurrence = ?"
                " AND action <> ? ORDER BY id DESC",
                (rule, occurrence, str(Action.POSTPONE)),
            ).fetchone()
        if row is None:
            return None
        return Decision(row["rule"], row["occurrence"], row["at"], Action(row["action"]),
                        tuple(json.loads(row["blocks"])), row["reason"])  # fmt: skip

    def knows(self, rule: str) -> bool:
        """Has the rule had any decision (is the Scheduler's history with it older than now)?"""
        with self.db.transaction() as tx:
            return tx.execute("SELECT 1 FROM decisions WHERE rule = ? LIMIT 1", (rule,)).fetchone() is not None

    def decisions(self, since: float = 0.0) -> list[Decision]:
        with self.db.transaction() as tx:
            rows = tx.execute(
                "SELECT rule, occurrence, at, action, blocks, reason FROM decisions WHERE at >= ? ORDER BY id", (since,)
            ).fetchall()
        return [Decision(r["rule"], r["occurrence"], r["at"], Action(r["action"]), tuple(json.loads(r["blocks"])),
                         r["reason"]) for r in rows]  # fmt: skip

    def add_flats(self, taken: list[tuple[datetime.date, tuple[tuple[str, str], ...]]]) -> None:
        """Record that flats were taken for these (session, parameters)."""
        with self.db.transaction() as tx:
            for session, params in taken:
                key = (session.isoformat(), json.dumps([list(p) for p in params]))
                if tx.execute("SELECT 1 FROM flats_history WHERE session = ? AND params = ?", key).fetchone() is None:
                    tx.execute("INSERT INTO flats_history (session, params) VALUES (?, ?)", key)

    def flats(self) -> list[tuple[datetime.date, tuple[tuple[str, str], ...]]]:
        """The flats history: the (session, parameters) flats were taken for."""
        with self.db.transaction() as tx:
            rows = tx.execute("SELECT session, params FROM flats_history").fetchall()
        return [(datetime.date.fromisoformat(r["session"]), tuple((k, v) for k, v in json.loads(r["params"])))
                for r in rows]  # fmt: skip

    def start_run(self, rule: str, occurrence: float, started: float, plan: str) -> None:
        """A run begins (its plan as `runs.Run.plan_json` gives it; kept in the `indices` column)."""
        with self.db.transaction() as tx:
            tx.execute(
                "INSERT INTO runs (rule, occurrence, started, indices, outcome, ended) VALUES (?, ?, ?, ?, ?, ?)",
                (rule, occurrence, started, plan, RUNNING, 0.0),
            )

    def update_run(self, rule: str, occurrence: float, plan: str) -> None:
        with self.db.transaction() as tx:
            tx.execute("UPDATE runs SET indices = ? WHERE rule = ? AND occurrence = ?", (plan, rule, occurrence))

    def end_run(self, rule: str, occurrence: float, outcome: str, ended: float, plan: str | None = None) -> None:
        with self.db.transaction() as tx:
            if plan is None:
                tx.execute(
                    "UPDATE runs SET outcome = ?, ended = ? WHERE rule = ? AND occurrence = ?",
                    (outcome, ended, rule, occurrence),
                )
            else:
                tx.execute(
                    "UPDATE runs SET outcome = ?, ended = ?, indices = ? WHERE rule = ? AND occurrence = ?",
                    (outcome, ended, plan, rule, occurrence),
                )

    def runs(self, *, unfinished: bool = False) -> list[Run]:
        sql = "SELECT rule, occurrence, started, indices, outcome, ended FROM runs"
        params: tuple[str, ...] = ()
        if unfinished:
            sql, params = sql + " WHERE outcome = ?", (RUNNING,)
        with self.db.transaction() as tx:
            rows = tx.execute(sql + " ORDER BY started", params).fetchall()
        return [_run(r) for r in rows]


def _run(row: Any) -> Run:
    """A runs row: `indices` holds the run's plan (a JSON object), or only its script indices (a list, older)."""
    stored = json.loads(row["indices"])
    if isinstance(stored, list):
        return Run(row["rule"], row["occurrence"], row["started"], stored, row["outcome"], row["ended"])
    indices = sorted({i for block in stored["blocks"] for i in block["scripts"]})
    return Run(row["rule"], row["occurrence"], row["started"], indices, row["outcome"], row["ended"], stored)
