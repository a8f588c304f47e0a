"""The acquired-images registry: one row per raw file the camera wrote (others read it through here).

Later issues read it: the flats automation counts what was taken, and the reduction service
ingests raws from it. A row is added only after its file is in place under its final name,
and sequence numbers are unique per observing day, also across restarts of the camera. It
lives in an SQLite file, or in the site's PostgreSQL database (`obsq.csc.database`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

from obsq.csc.database import Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS acquired_images (
    obsid     TEXT PRIMARY KEY,
    dayobs    INTEGER NOT NULL,
    seqnum    INTEGER NOT NULL,
    path      TEXT NOT NULL,
    imgtype   TEXT NOT NULL,
    exptime   DOUBLE PRECISION NOT NULL,
    darktime  DOUBLE PRECISION NOT NULL,
    filter    TEXT NOT NULL,
    grating   TEXT NOT NULL,
    groupid   TEXT NOT NULL,
    program   TEXT NOT NULL,
    reason    TEXT NOT NULL,
    note      TEXT NOT NULL,
    date_obs  TEXT NOT NULL,
    mjd_obs   DOUBLE PRECISION NOT NULL,
    byte_size BIGINT NOT NULL,
    md5       TEXT NOT NULL,
    UNIQUE (dayobs, seqnum)
);
CREATE INDEX IF NOT EXISTS acquired_by_group ON acquired_images (groupid);
CREATE INDEX IF NOT EXISTS acquired_by_type ON acquired_images (imgtype, filter, exptime);
"""


@dataclass(frozen=True)
class AcquiredImage:
    """One raw file."""

    obsid: str
    dayobs: int
    seqnum: int
    path: str
    imgtype: str
    exptime: float
    darktime: float
    filter: str
    grating: str
    groupid: str
    program: str
    reason: str
    note: str
    date_obs: str
    mjd_obs: float
    byte_size: int
    md5: str


_COLUMNS = [f.name for f in fields(AcquiredImage)]


class AcquiredImages:
    """The registry: a file path or a database URL (`obsq.csc.database`); any thread may call it."""

    def __init__(self, target: str | Path) -> None:
        self.db = Database(target, SCHEMA)

    def next_seqnum(self, dayobs: int) -> int:
        query = "SELECT MAX(seqnum) FROM acquired_images WHERE dayobs = ?"
        last = self.db.run(lambda db: db.execute(query, (dayobs,)).scalar())
        return int(last or 0) + 1

    def record(self, image: AcquiredImage) -> None:
        """Add an image; a transaction the server cut off is tried again (in case it committed, its row is kept)."""
        placeholders = ", ".join("?" for _ in _COLUMNS)
        insert = f"INSERT INTO acquired_images ({', '.join(_COLUMNS)}) VALUES ({placeholders})"  # noqa: S608
        values = tuple(asdict(image).values())
        self.db.run(lambda db: db.execute(insert, values),
                    again=lambda db: db.execute(f"{insert} ON CONFLICT (obsid) DO NOTHING", values))  # fmt: skip

    def images(self, **where: str | float | int) -> list[AcquiredImage]:
        """Rows matching every `column=value` given, in sequence order."""
        unknown = set(where) - set(_COLUMNS)
        if unknown:
            raise ValueError(f"unknown registry columns: {', '.join(sorted(unknown))}")
        clause = " AND ".join(f"{column} = ?" for column in where) or "TRUE"
        query = f"SELECT {', '.join(_COLUMNS)} FROM acquired_images WHERE {clause} ORDER BY dayobs, seqnum"  # noqa: S608
        rows = self.db.run(lambda db: db.execute(query, tuple(where.values())).fetchall())
        return [AcquiredImage(*row) for row in rows]
