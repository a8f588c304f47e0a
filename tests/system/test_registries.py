"""The registry suite, on SQLite and on a real PostgreSQL server: one schema, one code path.

Acquired images, the calibration registry, the job table and the queue store, each through its
own class, against an SQLite file and against a fresh database on the tests' own server.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import psycopg
import pytest

from obsq.csc.acquired import AcquiredImage, AcquiredImages
from obsq.csc.database import Database, DatabaseError, Registries, check_target
from obsq.csc.ocps.jobs import JobStore
from obsq.csc.ocps.repository import Repository, RepositoryError
from obsq.csc.scriptqueue.model import QueueItem, QueueModel
from obsq.csc.scriptqueue.store import DatabaseQueueStore

from .postgres import PostgresServer

pytestmark = pytest.mark.system


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where the registries live: an SQLite file, or an empty database on the tests' PostgreSQL server."""
    if request.param == "sqlite":
        return str(tmp_path / "registry.sqlite3")
    url: str = request.getfixturevalue("postgres_url")
    return url


def image(seqnum: int, **changes: object) -> AcquiredImage:
    fields: dict[str, object] = {
        "obsid": f"AT_O_20261202_{seqnum:06d}", "dayobs": 20261202, "seqnum": seqnum, "path": f"/raw/{seqnum}.fits",
        "imgtype": "FLAT", "exptime": 0.123456789012, "darktime": 0.2, "filter": "SDSSr_65mm",
        "grating": "empty_1", "groupid": "g1", "program": "BLOCK-295", "reason": "weekly_PTC", "note": "",
        "date_obs": "2026-12-02T12:00:00.000", "mjd_obs": 61376.500000123456, "byte_size": 5_000_000_000,
        "md5": "0" * 32,
    }  # fmt: skip
    return AcquiredImage(**(fields | changes))  # type: ignore[arg-type]


def test_acquired_images(target: str) -> None:
    registry = AcquiredImages(target)
    assert registry.next_seqnum(20261202) == 1
    registry.record(image(1))
    registry.record(image(2, imgtype="BIAS", exptime=0.0, groupid="g2"))
    assert registry.next_seqnum(20261202) == 3
    assert registry.next_seqnum(20261203) == 1
    again = AcquiredImages(target)  # opened again: the schema is there, the rows too
    assert again.images() == [image(1), image(2, imgtype="BIAS", exptime=0.0, groupid="g2")]  # doubles, 64-bit ints
    assert [i.seqnum for i in again.images(groupid="g2")] == [2]
    assert [i.seqnum for i in again.images(imgtype="FLAT", exptime=0.123456789012)] == [1]
    with pytest.raises(ValueError, match="unknown registry columns: colour"):
        again.images(colour="red")
    with pytest.raises(Exception, match=r"(?i)unique"):
        again.record(image(2, obsid="other"))  # a sequence number is unique per day
    assert len(again.images()) == 2  # the refused row left nothing behind


def test_job_table(target: str) -> None:
    store = JobStore(target)
    first = store.add("cpBias", {"inputs": ["a.fits"]}, 100.5)
    second = store.add("cpDark", {"inputs": ["b.fits"]}, 101.5)
    assert (first.id, second.id, first.state, first.config) == (
        "ocps-000001",
        "ocps-000002",
        "QUEUED",
        {"inputs": ["a.fits"]},
    )
    store.start(first.id, 102.0)
    store.finish(first.id, ok=True, result={"product": 7}, now=103.25)
    store.start(second.id, 104.0)
    done = store.get(first.id)
    assert (done.state, done.finished, done.exit_code, done.attempts, done.result) == (
        "DONE",
        103.25,
        0,
        1,
        '{"product": 7}',
    )
    store.finish(first.id, ok=False, result={}, now=200.0)  # a finished job is never finished again
    assert store.get(first.id).state == "DONE"
    assert JobStore(target).requeue_unfinished() == [second.id]  # a service starting again
    assert [j.state for j in store.jobs()] == ["DONE", "QUEUED"]
    assert [j.id for j in store.jobs("QUEUED")] == [second.id]
    with pytest.raises(KeyError, match="no job 'ocps-000099'"):
        store.get("ocps-000099")


def _queue(first_index: int, running: bool) -> QueueModel:
    model = QueueModel(first_index=first_index)
    items = [QueueItem(index=model.allocate(), path=f"s{i}.py", standard=True, config="") for i in range(3)]
    model.add(items)
    model.running = running
    return model


async def test_queue_store_keeps_each_queue_apart(target: str) -> None:
    one, two = DatabaseQueueStore(target, "ScriptQueue:1"), DatabaseQueueStore(target, "ScriptQueue:2")
    await one.save(_queue(100_000, running=True))
    await two.save(_queue(200_000, running=False))
    await two.save(_queue(200_000, running=False))  # a save replaces, it does not append
    back_one = DatabaseQueueStore(target, "ScriptQueue:1").load(100_000)
    back_two = DatabaseQueueStore(target, "ScriptQueue:2").load(200_000)
    assert [i.index for i in back_one.queue] == [100_001, 100_002, 100_003]
    assert [i.index for i in back_two.queue] == [200_001, 200_002, 200_003]
    assert (back_one.running, back_two.running, back_two.next_index) == (True, False, 200_004)


def test_queue_store_adopts_a_file_of_the_old_layout(tmp_path: Path) -> None:
    path = tmp_path / "ScriptQueue-2.sqlite3"
    old = Database(path, "CREATE TABLE items (area TEXT, position INTEGER, item TEXT);"
                         "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")  # fmt: skip
    item = QueueItem(index=200_000, path="s.py", standard=True, config="")

    with old.transaction() as db:
        db.execute("INSERT INTO items VALUES ('queue', 0, ?)", (json.dumps(item.to_json()),))
        db.execute("INSERT INTO meta VALUES ('next_index', '200001')")
    model = DatabaseQueueStore(path, "ScriptQueue:2").load(200_000)
    assert ([i.index for i in model.queue], model.next_index) == ([200_000], 200_001)
    with old.transaction() as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()}
    assert tables == {"queue_items", "queue_meta"}  # the old tables are gone, read once


def _product(repo: Repository, n_inputs: int, *, force: bool = False) -> int:
    product = repo.add_product(
        type_="flat", signature={"detector": "small"}, filter_="SDSSr_65mm",
        inputs=[f"f{i}.fits" for i in range(n_inputs)], mjds=[61000.0, 61001.0], config={"clip": 3},
        software="obsq test", stats={"amps": {}}, collection="u/test", suffix="fits",
        write=lambda path: path.write_bytes(b"SIMPLE"), force=force,
    )  # fmt: skip
    return product.id


def test_calibration_registry(target: str, tmp_path: Path) -> None:
    repo = Repository(tmp_path / "repo", now=lambda: 1_796_000_000.0, database=target)
    first = _product(repo, 4)
    with pytest.raises(RepositoryError, match="exists already as product"):
        _product(repo, 4)
    second = _product(repo, 4, force=True)
    assert [p.version for p in repo.products()] == [1, 2]
    assert repo.path_of(repo.product(second)).read_bytes() == b"SIMPLE"
    repo.certify(first, 61000.0, 61010.0)
    with pytest.raises(RepositoryError, match=f"overlaps product {first}"):
        repo.certify(second, 61005.0, 61020.0)
    actions = repo.certify(second, 61005.0, 61020.0, force=True)
    assert any("superseded" in a for a in actions)
    assert repo.product(first).certified == [(61000.0, 61005.0)]
    assert repo.product(second).certified == [(61005.0, 61020.0)]
    assert [h["action"] for h in repo.history(first)] == ["certify", "decertify"]
    assert repo.find("flat", {"detector": "small"}, 61007.0, "SDSSr_65mm").product.id == second
    assert repo.find("flat", {"detector": "small"}, 61001.0, "SDSSr_65mm").product.id == first
    repo.set_verified(second, "passed")
    assert [p.id for p in repo.products(where='verified == "passed"')] == [second]
    repo.record_checks("job-1", "flat", second, [
        {"name": "mean", "amp": "C00", "passed": True, "value": 1.0000000001, "limit": 0.02},
        {"name": "noise", "amp": "C01", "passed": False, "value": 3.5, "limit": 2.0, "detail": "high"},
    ])  # fmt: skip
    checks = repo.checks()
    assert [(c["name"], c["passed"], c["value"]) for c in checks] == [("mean", 1, 1.0000000001), ("noise", 0, 3.5)]
    assert repo.products(type_="bias") == []


def test_two_writers_at_once_take_turns(target: str) -> None:
    registry = AcquiredImages(target)

    def write(start: int) -> None:
        for seqnum in range(start, start + 20):
            AcquiredImages(target).record(image(seqnum))

    threads = [threading.Thread(target=write, args=(start,)) for start in (1, 21)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [i.seqnum for i in registry.images()] == list(range(1, 41))


def test_a_database_url_is_checked_at_the_door(postgres_server: PostgresServer) -> None:
    with pytest.raises(DatabaseError, match="no password in the URL"):
        check_target("postgresql://obsq:secret@db.example:5432/obsq")
    with pytest.raises(DatabaseError, match="scheme must be sqlite:// or postgresql://"):
        check_target("mysql://db.example/obsq")
    with pytest.raises(DatabaseError, match="names no database"):
        check_target("postgresql://obsq@db.example:5432/")
    unreachable = postgres_server.url("no_such_database")
    with pytest.raises(DatabaseError, match='database "no_such_database" does not exist'):
        AcquiredImages(unreachable)
    registries = Registries.at(Path("/data"), postgres_server.url("obsq"))
    assert {registries.acquired, registries.calibration, registries.jobs, registries.queue(2)} == {
        postgres_server.url("obsq")
    }
    local = Registries.at(Path("/data"))
    assert (local.acquired, local.jobs, local.queue(2)) == (
        "/data/registry.sqlite3", "/data/repo/jobs.sqlite3", "/data/scriptqueue/ScriptQueue-2.sqlite3"
    )  # fmt: skip


def test_a_dropped_connection_is_opened_again(postgres_url: str, postgres_server: PostgresServer) -> None:
    """A connection the server dropped (a restart, an administrator) is found dropped and opened again."""
    store = JobStore(postgres_url)
    store.add("cpBias", {}, 1.0)

    with psycopg.connect(postgres_server.url(), autocommit=True) as admin:  # cut every other session
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid()")
    store.add("cpDark", {}, 3.0)  # the transaction checks its connection first: nothing fails
    assert [j.pipeline for j in store.jobs()] == ["cpBias", "cpDark"]


@pytest.mark.parametrize("after_commit", [False, True])
def test_an_image_recorded_as_the_server_cuts_the_connection_is_kept_once(
    postgres_url: str, postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch, after_commit: bool
) -> None:
    """The camera's record when its transaction is cut off (a restart mid-BLOCK-295): tried again, one row.

    The cut comes before the insert (the transaction rolled back) or after it (its row there, as
    when a commit went through just before the connection did): either way the image is recorded once.
    """
    from obsq.csc import database

    registry = AcquiredImages(postgres_url)
    registry.record(image(1))
    real = database.Transaction.execute
    cuts: list[str] = []

    def cut_once(self: database.Transaction, sql: str, params: tuple[object, ...] = ()) -> object:
        if sql.startswith("INSERT") and not cuts:
            cuts.append(sql)
            if after_commit:
                with psycopg.connect(postgres_url, autocommit=True) as other:  # the row, as if committed
                    other.execute(database.Transaction(other, "postgresql")._sql(sql), params)
            pid = self._connection.info.backend_pid
            with psycopg.connect(postgres_server.url(), autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        return real(self, sql, params)

    monkeypatch.setattr(database.Transaction, "execute", cut_once)
    registry.record(image(2))
    assert len(cuts) == 1
    assert [i.seqnum for i in registry.images()] == [1, 2]
