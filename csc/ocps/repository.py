"""The calibration repository: product files plus a registry of what they are and where they came from.

Layout of a repository folder:

- `registry.sqlite3`: products, certifications (the CALIBRATION collection with validity
  ranges), their history, and verification checks; or these tables in the site's PostgreSQL
  database when the repository is given one (`obsq.csc.database`), its files on a shared folder;
- `calib/<type>/<signature>/<filter>/<type>_v<N>.<ext>`: the product files, written under a
  temporary name and renamed into place; a file is never overwritten (a rebuild is version N+1).

Lookup follows filabres (exact signature, then time) with Rubin's certification on top: a
certified product whose validity range holds the time comes first; otherwise the nearest
product in time of the same signature is returned flagged as uncertified with its distance in
days, never a silent substitute.
"""

from __future__ import annotations

import ast
import datetime
import json
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from obsq.csc.database import Database, Row, Transaction
from obsq.csc.ocps.catalog import PRODUCT_TYPES
from obsq.csc.reduction.frames import safe_name, signature_key

SCHEMA = """
CREATE TABLE IF NOT EXISTS products (
    id {auto_id},
    type TEXT NOT NULL, sigkey TEXT NOT NULL, signature TEXT NOT NULL, filter TEXT NOT NULL,
    version INTEGER NOT NULL, path TEXT NOT NULL, collection TEXT NOT NULL,
    mjd_first DOUBLE PRECISION NOT NULL, mjd_last DOUBLE PRECISION NOT NULL, mjd_mean DOUBLE PRECISION NOT NULL,
    inputs TEXT NOT NULL, config TEXT NOT NULL, software TEXT NOT NULL, created TEXT NOT NULL,
    stats TEXT NOT NULL, verified TEXT NOT NULL DEFAULT 'not verified',
    UNIQUE (type, sigkey, filter, version)
);
CREATE TABLE IF NOT EXISTS certifications (
    product_id BIGINT NOT NULL REFERENCES products(id), begin_mjd DOUBLE PRECISION NOT NULL,
    end_mjd DOUBLE PRECISION NOT NULL,
    certified TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS certification_history (
    product_id BIGINT NOT NULL, action TEXT NOT NULL, begin_mjd DOUBLE PRECISION NOT NULL,
    end_mjd DOUBLE PRECISION NOT NULL,
    at TEXT NOT NULL, detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS checks (
    id {auto_id}, job TEXT NOT NULL, product_id BIGINT, kind TEXT NOT NULL,
    name TEXT NOT NULL, amp TEXT NOT NULL, exposure TEXT NOT NULL, passed INTEGER NOT NULL,
    value DOUBLE PRECISION NOT NULL, limit_value DOUBLE PRECISION NOT NULL, detail TEXT NOT NULL, at TEXT NOT NULL
);
"""


class RepositoryError(ValueError):
    """A refused repository operation; the message says what and why."""


@dataclass(frozen=True)
class Product:
    """One registered calibration product."""

    id: int
    type: str
    sigkey: str
    signature: dict[str, Any]
    filter: str
    version: int
    path: str
    collection: str
    mjd_first: float
    mjd_last: float
    mjd_mean: float
    inputs: list[str]
    config: dict[str, Any]
    software: str
    created: str
    stats: dict[str, Any]
    verified: str
    certified: list[tuple[float, float]]

    def row(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Lookup:
    """The answer to "which master for this exposure": the product and how good a match it is."""

    product: Product
    certified: bool
    distance_days: float
    note: str


#: The MJD of 1970-01-01T00:00Z.
MJD_UNIX_EPOCH = 40587.0


def mjd_date(mjd: float) -> str:
    """An MJD as a UTC date and time to the minute (`2026-12-07 13:00`), as an operator reads a validity range."""
    moment = datetime.datetime.fromtimestamp((mjd - MJD_UNIX_EPOCH) * 86400.0, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M")


def certification_text(product: Product, superseded: dict[int, str]) -> str:
    """`2026-12-07 13:00 – 2026-12-14 13:00 UTC`, `superseded by product 12 …`, or `not certified`."""
    if product.certified:
        return "; ".join(f"{mjd_date(b)} – {mjd_date(e)} UTC" for b, e in product.certified)
    return superseded.get(product.id, "not certified")


def iso_stamp(unix_s: float) -> str:
    """A record's time stamp: UTC, ISO 8601, to the second."""
    return datetime.datetime.fromtimestamp(unix_s, tz=datetime.UTC).isoformat(timespec="seconds")


def _write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        if path.exists():
            raise RepositoryError(f"{path} exists already; products are never overwritten")
        os.rename(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _claim_version(folder: Path, stem: str, suffix: str, version: int) -> tuple[Path, Path]:
    """The first free `STEM_vN.SUFFIX` from `version` on, claimed; the path and its claim.

    The claim (an exclusive `.…claim` file) keeps out the other processes adding a product of this
    signature at the same moment (local --jobs, Dask workers, OCPS's two workers). A version whose
    file exists (a crashed job's, unregistered) or that another process has claimed is passed
    over; a claim a crashed process left only costs a version number.
    """
    while True:
        path = folder / f"{stem}_v{version}.{suffix}"
        claim = folder / f".{path.name}.claim"
        if not path.exists():
            try:
                os.close(os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                pass
            else:
                if not path.exists():
                    return path, claim
                claim.unlink(missing_ok=True)
        version += 1


class Repository:
    """A calibration repository folder; `now` gives the wall clock (UTC unix seconds) for its records.

    Its registry is `root/registry.sqlite3` unless `database` names another (a path or URL).
    """

    def __init__(self, root: str | os.PathLike[str], *, now: Callable[[], float], database: str | None = None) -> None:
        self.now = now
        self.root = Path(root).absolute()
        self.root.mkdir(parents=True, exist_ok=True)
        self.registry = Database(database or self.root / "registry.sqlite3", SCHEMA)

    # --- products ---------------------------------------------------------------------------

    def built_from(self, type_: str, signature: dict[str, Any], filter_: str, inputs: list[str]) -> list[Product]:
        """Products of this type, signature and filter made from exactly these inputs (oldest first)."""
        sigkey = signature_key(signature)
        return [
            p
            for p in self.products(type_=type_)
            if p.sigkey == sigkey and p.filter == filter_ and sorted(p.inputs) == sorted(inputs)
        ]

    def add_product(
        self,
        *,
        type_: str,
        signature: dict[str, Any],
        filter_: str,
        inputs: list[str],
        mjds: list[float],
        config: dict[str, Any],
        software: str,
        stats: dict[str, Any],
        collection: str,
        suffix: str,
        write: Callable[[Path], None],
        force: bool = False,
        stem: str = "",
    ) -> Product:
        """Write a product's file (through `write(path)`) and register it, all or nothing.

        The file is `STEM_vN.SUFFIX` in the signature's folder (STEM: the type unless given).
        """
        if type_ not in PRODUCT_TYPES:
            raise RepositoryError(f"product type {type_!r} is not one of {', '.join(PRODUCT_TYPES)}")
        sigkey = signature_key(signature)
        same_inputs = [
            p
            for p in self.products(type_=type_)
            if p.sigkey == sigkey and p.filter == filter_ and sorted(p.inputs) == sorted(inputs) and p.config == config
        ]
        if same_inputs and not force:
            first = same_inputs[0]
            raise RepositoryError(
                f"{type_} from these {len(inputs)} inputs with this configuration exists already as product "
                f"{first.id} (version {first.version}); use --force to build a new version"
            )
        folder = self.root / "calib" / type_ / safe_name(sigkey) / safe_name(filter_)
        folder.mkdir(parents=True, exist_ok=True)
        last = self.registry.run(lambda db: db.execute(
            "SELECT MAX(version) FROM products WHERE type = ? AND sigkey = ? AND filter = ?", (type_, sigkey, filter_),
        ).scalar())  # fmt: skip
        stem = safe_name(stem or type_)
        path, claim = _claim_version(folder, stem, suffix, int(last or 0) + 1)
        version = int(path.stem.rsplit("_v", 1)[1])
        try:
            _write_atomically(path, write)
        finally:
            claim.unlink(missing_ok=True)
        relative = str(path.relative_to(self.root))
        row = (type_, sigkey, json.dumps(signature, sort_keys=True), filter_, version, relative, collection,
               min(mjds), max(mjds), sum(mjds) / len(mjds), json.dumps(inputs), json.dumps(config, sort_keys=True),
               software, iso_stamp(self.now()), json.dumps(stats))  # fmt: skip

        def insert(db: Transaction) -> int:
            added = db.execute(
                "INSERT INTO products (type, sigkey, signature, filter, version, path, collection, mjd_first, "
                "mjd_last, mjd_mean, inputs, config, software, created, stats) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id", row,
            )  # fmt: skip
            return int(added.scalar())

        def insert_unless_there(db: Transaction) -> int:  # the first try may have committed as the server went
            there = db.execute("SELECT id FROM products WHERE path = ?", (relative,)).scalar()
            return int(there) if there is not None else insert(db)

        try:
            product_id = self.registry.run(insert, again=insert_unless_there)
        except Exception:
            path.unlink(missing_ok=True)
            raise
        return self.product(product_id)

    def _product(self, db: Transaction, row: Row) -> Product:
        ranges = db.execute(
            "SELECT begin_mjd, end_mjd FROM certifications WHERE product_id = ? ORDER BY begin_mjd", (row["id"],)
        ).fetchall()
        return Product(
            id=row["id"], type=row["type"], sigkey=row["sigkey"], signature=json.loads(row["signature"]),
            filter=row["filter"], version=row["version"], path=row["path"], collection=row["collection"],
            mjd_first=row["mjd_first"], mjd_last=row["mjd_last"], mjd_mean=row["mjd_mean"],
            inputs=json.loads(row["inputs"]), config=json.loads(row["config"]), software=row["software"],
            created=row["created"], stats=json.loads(row["stats"]), verified=row["verified"],
            certified=[(r[0], r[1]) for r in ranges],
        )  # fmt: skip

    def product(self, product_id: int) -> Product:
        def read(db: Transaction) -> Product:
            row = db.execute("SELECT * FROM products WHERE id = ?", (product_id,)).fetchone()
            if row is None:
                raise RepositoryError(f"no product {product_id} in {self.root}")
            return self._product(db, row)

        return self.registry.run(read)

    def products(self, *, type_: str | None = None, where: str | None = None) -> list[Product]:
        """Products, oldest first; `where` is an expression over a product's fields (see `matches`)."""

        def read(db: Transaction) -> list[Product]:
            if type_ is None:
                rows = db.execute("SELECT * FROM products ORDER BY id").fetchall()
            else:
                rows = db.execute("SELECT * FROM products WHERE type = ? ORDER BY id", (type_,)).fetchall()
            return [self._product(db, r) for r in rows]

        found = self.registry.run(read)
        if where:
            test = compile_filter(where)
            found = [p for p in found if test(p.row() | {"certified": bool(p.certified)})]
        return found

    def path_of(self, product: Product) -> Path:
        return self.root / product.path

    def set_verified(self, product_id: int, verdict: str) -> None:
        self.registry.run(lambda db: db.execute("UPDATE products SET verified = ? WHERE id = ?", (verdict, product_id)))

    # --- certification ----------------------------------------------------------------------

    def certify(self, product_id: int, begin_mjd: float, end_mjd: float, *, force: bool = False) -> list[str]:
        """Certify into CALIBRATION for [begin, end); overlaps are refused, or superseded with force.

        Returns what was done, one line each (the superseded ranges included).
        """
        if not (math.isfinite(begin_mjd) and math.isfinite(end_mjd)):
            raise RepositoryError(f"validity range [{begin_mjd}, {end_mjd}): begin and end must be finite MJDs")
        if end_mjd <= begin_mjd:
            raise RepositoryError(f"validity range [{begin_mjd}, {end_mjd}) is empty: end must be after begin")
        product = self.product(product_id)
        if product.verified.startswith("failed") and not force:
            raise RepositoryError(f"product {product_id} failed verification ({product.verified}); --force to certify")

        def apply(db: Transaction) -> list[str]:
            actions: list[str] = []
            overlapping = db.execute(
                "SELECT c.product_id, c.begin_mjd, c.end_mjd FROM certifications c "
                "JOIN products p ON p.id = c.product_id "
                "WHERE p.type = ? AND p.sigkey = ? AND p.filter = ? AND c.begin_mjd < ? AND c.end_mjd > ?",
                (product.type, product.sigkey, product.filter, end_mjd, begin_mjd),
            ).fetchall()
            if overlapping and not force:
                names = ", ".join(f"product {r[0]} [{r[1]:.5f}, {r[2]:.5f})" for r in overlapping)
                raise RepositoryError(
                    f"product {product_id}'s range [{begin_mjd:.5f}, {end_mjd:.5f}) overlaps {names}; "
                    "--force supersedes them over that range"
                )
            stamp = iso_stamp(self.now())
            for other, begin, end in overlapping:
                db.execute(
                    "DELETE FROM certifications WHERE product_id = ? AND begin_mjd = ? AND end_mjd = ?",
                    (other, begin, end),
                )
                for piece in ((begin, begin_mjd), (end_mjd, end)):
                    if piece[1] > piece[0]:
                        db.execute("INSERT INTO certifications VALUES (?, ?, ?, ?)", (other, piece[0], piece[1], stamp))
                detail = f"superseded by product {product_id} over [{max(begin, begin_mjd)}, {min(end, end_mjd)})"
                db.execute(
                    "INSERT INTO certification_history VALUES (?, 'decertify', ?, ?, ?, ?)",
                    (other, max(begin, begin_mjd), min(end, end_mjd), stamp, detail),
                )
                actions.append(f"product {other}: {detail}")
            db.execute("INSERT INTO certifications VALUES (?, ?, ?, ?)", (product_id, begin_mjd, end_mjd, stamp))
            db.execute(
                "INSERT INTO certification_history VALUES (?, 'certify', ?, ?, ?, '')",
                (product_id, begin_mjd, end_mjd, stamp),
            )
            return actions

        def unless_done(db: Transaction) -> list[str]:  # the first try may have committed as the server went
            done = db.execute("SELECT 1 FROM certifications WHERE product_id = ? AND begin_mjd = ? AND end_mjd = ?",
                              (product_id, begin_mjd, end_mjd)).fetchone()  # fmt: skip
            return [] if done is not None else apply(db)

        actions = self.registry.run(apply, again=unless_done)
        actions.append(f"product {product_id}: certified in CALIBRATION for [{begin_mjd}, {end_mjd})")
        return actions

    def superseded(self) -> dict[int, str]:
        """Product id -> what superseded it last (`superseded by product 12 for 2026-12-07 13:00 – … UTC`)."""
        rows = self.registry.run(lambda db: db.execute(
            "SELECT product_id, begin_mjd, end_mjd, detail FROM certification_history"
            " WHERE action = 'decertify' ORDER BY at"
        ).fetchall())  # fmt: skip
        return {int(r[0]): f"{str(r[3]).split(' over ')[0]} for {mjd_date(r[1])} – {mjd_date(r[2])} UTC" for r in rows}

    def history(self, product_id: int) -> list[dict[str, Any]]:
        query = "SELECT * FROM certification_history WHERE product_id = ?"
        rows = self.registry.run(lambda db: db.execute(query, (product_id,)).fetchall())
        return [dict(r) for r in rows]

    # --- lookup -----------------------------------------------------------------------------

    def find(self, type_: str, signature: dict[str, Any], mjd: float, filter_: str = "") -> Lookup:
        """The master of `type_` for an exposure of this signature at `mjd` (certified and valid first)."""
        sigkey = signature_key(signature)
        candidates = [p for p in self.products(type_=type_) if p.sigkey == sigkey and p.filter == filter_]
        what = f"{type_}{f' ({filter_})' if filter_ else ''} for signature {sigkey}"
        if not candidates:
            raise RepositoryError(f"no {what} in {self.root}")
        valid = [p for p in candidates if any(b <= mjd < e for b, e in p.certified)]
        if valid:
            best = max(valid, key=lambda p: p.id)
            return Lookup(best, True, abs(best.mjd_mean - mjd), "certified and valid")
        usable = [p for p in candidates if not p.verified.startswith("failed")]
        if not usable:  # a master that failed its verification is never used for another product or a light
            raise RepositoryError(f"only failed {what} in {self.root} (products "
                                  f"{', '.join(str(p.id) for p in candidates)}): build a sound one")  # fmt: skip
        nearest = min(usable, key=lambda p: (abs(p.mjd_mean - mjd), -p.id))
        distance = abs(nearest.mjd_mean - mjd)
        return Lookup(
            nearest, False, distance, f"no certified {type_} valid then; nearest in time, {distance:.3f} d away"
        )

    # --- verification checks ----------------------------------------------------------------

    def record_checks(
        self, job: str, kind: str, product_id: int | None, checks: list[dict[str, Any]], *, rerun: bool = False
    ) -> None:
        """A job's checks of one kind; a `rerun` (its worker died) replaces what the earlier run recorded."""
        stamp = iso_stamp(self.now())
        rows = [(job, product_id, kind, c["name"], c["amp"], c.get("exposure", ""), int(c["passed"]),
                 float(c["value"]), float(c["limit"]), c.get("detail", ""), stamp) for c in checks]  # fmt: skip

        def record(db: Transaction, *, replace: bool) -> None:
            if replace:
                db.execute("DELETE FROM checks WHERE job = ? AND kind = ?", (job, kind))
            db.executemany(
                "INSERT INTO checks (job, product_id, kind, name, amp, exposure, passed, value, limit_value, detail, "
                "at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows,
            )  # fmt: skip

        # a second try (the server went in the middle) replaces what the first may have committed
        self.registry.run(lambda db: record(db, replace=rerun), again=lambda db: record(db, replace=True))

    def checks(self, *, since: str = "") -> list[dict[str, Any]]:
        rows = self.registry.run(lambda db: db.execute("SELECT * FROM checks WHERE at >= ? ORDER BY id",
                                                       (since,)).fetchall())  # fmt: skip
        return [dict(r) for r in rows]


# --- `--filter-expr`: a small, safe expression language over a product's fields --------------

_ALLOWED = (
    ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.Compare, ast.Name, ast.Load,
    ast.Constant, ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn, ast.List, ast.Tuple,
    ast.Subscript, ast.USub,
)  # fmt: skip


def compile_filter(text: str) -> Callable[[dict[str, Any]], bool]:
    """`type == "flat" and version > 1`, `filter in ["SDSSr_65mm"]`, `signature["detector"] == "small"`."""
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise RepositoryError(f"filter expression {text!r}: {exc.msg} at column {exc.offset}") from None
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            raise RepositoryError(f"filter expression {text!r}: {type(node).__name__} is not allowed")
    code = compile(tree, "<filter-expr>", "eval")

    def test(fields: dict[str, Any]) -> bool:
        try:
            return bool(eval(code, {"__builtins__": {}}, fields))  # noqa: S307 - the tree is checked above
        except (NameError, KeyError, TypeError) as exc:
            raise RepositoryError(f"filter expression {text!r}: {exc}") from None

    return test
