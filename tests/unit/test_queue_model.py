"""The queue model, pure: locations, move, requeue, stop, failures, blocks, restart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from obsq.csc.core.errors import ExpectedError
from obsq.csc.database import Database
from obsq.csc.scriptqueue.model import (
    MAX_HISTORY,
    FailureStrategy,
    LastWord,
    Location,
    ProcessState,
    QueueItem,
    QueueModel,
)
from obsq.csc.scriptqueue.store import DatabaseQueueStore, MemoryQueueStore, QueueStore, changes_of
from obsq.scripts.states import ScriptState


def item(model: QueueModel, path: str = "sleep.py", **kwargs: object) -> QueueItem:
    return QueueItem(index=model.allocate(), path=path, standard=True, **kwargs)  # type: ignore[arg-type]


def indices(model: QueueModel) -> list[int]:
    return [i.index for i in model.queue]


def ready(model: QueueModel, *items: QueueItem) -> None:
    for i in items:
        model.update(i.index, script_state=ScriptState.CONFIGURED, group_id="g")


def test_locations() -> None:
    model = QueueModel()
    a, b, c, d = (item(model) for _ in range(4))
    model.add([a])
    model.add([b], Location.FIRST)
    model.add([c], Location.BEFORE, a.index)
    model.add([d], Location.AFTER, b.index)
    assert indices(model) == [b.index, d.index, c.index, a.index]
    with pytest.raises(ExpectedError, match="script 999 is not in the queue"):
        model.add([item(model)], Location.AFTER, 999)
    assert a.index == 200_001


def test_move_and_token() -> None:
    model = QueueModel()
    a, b, c = (item(model) for _ in range(3))
    model.add([a, b, c])
    token = model.token
    model.move(c.index, Location.FIRST)
    assert indices(model) == [c.index, a.index, b.index]
    model.move(a.index, Location.AFTER, b.index)
    assert indices(model) == [c.index, b.index, a.index]
    model.move(a.index, Location.BEFORE, a.index)  # next to itself: no-op
    assert model.token > token


def test_requeue_links_to_the_original() -> None:
    model = QueueModel()
    a = item(model, config="sleep_for: 1")
    model.add([a])
    copy = model.requeue_copy(a.index)
    assert (copy.requeued_from, copy.config, copy.index != a.index) == (a.index, "sleep_for: 1", True)


def test_runs_in_order_only_when_configured_with_group_id() -> None:
    model = QueueModel()
    a, b = item(model), item(model)
    model.add([a, b])
    assert model.next_to_run() is None
    ready(model, b)
    assert model.next_to_run() is None  # b is not at the top
    ready(model, a)
    assert model.next_to_run() is a
    model.pause()
    assert model.next_to_run() is None
    model.resume(0)
    model.start(a, 1.0)
    assert model.current is a
    assert model.next_to_run() is None
    model.finished(a.index, ScriptState.DONE, "", 2.0)
    assert model.current is None
    assert model.history[0] is a
    assert model.next_to_run() is b


def test_failure_pauses_and_stays_for_inspection() -> None:
    model = QueueModel()
    a, b = item(model), item(model)
    model.add([a, b])
    ready(model, a, b)
    model.start(a, 0)
    model.finished(a.index, ScriptState.FAILED, "boom", 1)
    assert (model.running, model.current, a.reason) == (False, a, "boom")
    assert model.next_to_run() is None
    model.resume(2)
    assert model.current is None
    assert model.history[0] is a
    assert model.next_to_run() is b


def test_configure_failure_and_stop_do_not_pause() -> None:
    model = QueueModel()
    a, b = item(model), item(model)
    model.add([a, b])
    model.finished(a.index, ScriptState.CONFIGURE_FAILED, "bad config", 0)
    model.remove_queued(b.index, ProcessState.TERMINATED, "stopped", 0)
    assert model.running
    assert [(i.index, i.process_state) for i in model.history] == [
        (b.index, ProcessState.TERMINATED),
        (a.index, ProcessState.CONFIGURE_FAILED),
    ]


@pytest.mark.parametrize(
    ("strategy", "paused", "rest_kept"),
    [
        (FailureStrategy.NONE, True, False),
        (FailureStrategy.ON_SCRIPT_FAILURE, True, True),
        (FailureStrategy.KEEP_GOING, False, True),
    ],
)
def test_block_failure_strategies(strategy: FailureStrategy, paused: bool, rest_kept: bool) -> None:
    model = QueueModel()
    block = [
        item(model, block_id="BLOCK-295", block_execution="x1", block_index=i, block_size=3, failure_strategy=strategy)
        for i in range(3)
    ]
    other = item(model)
    model.add([*block, other])
    ready(model, *block, other)
    model.start(block[0], 0)
    model.finished(block[0].index, ScriptState.FAILED, "boom", 1)
    assert model.running is not paused
    assert (block[1] in model.queue) is rest_kept
    assert other in model.queue


def test_block_scripts_stay_together() -> None:
    model = QueueModel()
    block = [item(model, block_id="BLOCK-1", block_execution="e") for _ in range(2)]
    model.add(block)
    with pytest.raises(ExpectedError, match="cannot insert inside block BLOCK-1"):
        model.add([item(model)], Location.AFTER, block[0].index)
    with pytest.raises(ExpectedError, match="belongs to block BLOCK-1"):
        model.move(block[1].index, Location.FIRST)
    with pytest.raises(ExpectedError, match="add the block again"):
        model.requeue_copy(block[0].index)


def test_process_death_of_the_current_script_is_a_failure() -> None:
    model = QueueModel()
    a = item(model)
    model.add([a])
    ready(model, a)
    model.start(a, 0)
    model.process_ended(a.index, -9, 1)
    assert model.current is a
    assert not model.running
    assert "status -9" in a.reason


@pytest.mark.parametrize("kind", ["sqlite", "memory"])
async def test_store_round_trip_and_lost_running_script(tmp_path: Path, kind: str) -> None:
    model = QueueModel()
    a, b = item(model), item(model)
    model.add([a, b])
    ready(model, a, b)
    model.start(a, 0)
    store: QueueStore = MemoryQueueStore()
    if kind == "sqlite":
        store = DatabaseQueueStore(tmp_path / "queue.sqlite3", "ScriptQueue:2")
    await store.save(model)
    again = store.load(first_index=200_000)
    assert (again.current.index if again.current else None, indices(again), again.next_index) == (
        a.index,
        [b.index],
        model.next_index,
    )
    lost = again.mark_lost(5)
    assert lost is not None
    assert again.history[0].process_state == ProcessState.LOST
    assert "not run again" in again.history[0].reason
    # ts_xml's ScriptProcessState ends at TERMINATED (7): a Rubin client reads LOST as that, the reason saying why
    assert ProcessState.LOST.on_the_wire == ProcessState.TERMINATED
    assert [s.on_the_wire for s in ProcessState if s is not ProcessState.LOST] == list(ProcessState)[:-1]


def test_a_script_cut_short_by_a_restart_says_where_it_had_got_to() -> None:
    model = QueueModel()
    a, b = item(model), item(model)
    model.add([a, b])
    ready(model, a, b)
    model.start(a, 0)
    model.update(a.index, last_checkpoint="Waiting for the reduction of the last image type.", done=41, total=41)
    lost = model.mark_lost(5)
    assert lost is a
    assert a.process_state == ProcessState.LOST
    assert "it had reached 'Waiting for the reduction of the last image type.' with 41 of 41 images" in a.reason
    said = LastWord(ScriptState.STOPPED, "Waiting for the reduction of the last image type.", "stopped", 41, 41)
    assert model.heard_last_word(a.index, said) is a
    assert (a.script_state, a.process_state) == (ScriptState.STOPPED, ProcessState.TERMINATED)
    assert a.reason.startswith("STOPPED as the queue service restarted (stopped); it had reached")
    assert a.reason.endswith("it was not run again")
    assert model.heard_last_word(b.index, said) is None  # only a script the restart cut short


def test_block_execution_ids_as_rubin_writes_them() -> None:
    from obsq.csc.scriptqueue.csc import block_execution_id
    from obsq.scripts.base import block_execution

    tai = 1_796_212_800.0 + 37  # 2026-12-02T12:00:00 UTC: dayObs 20261202
    assert block_execution_id("BLOCK-295", tai, 200_017) == "BL295_O_20261202_200017"
    assert block_execution_id("BLOCK-T40_HD104304", tai - 3600, 200_001) == "BLT40_O_20261201_200001"
    assert block_execution("BL123_O_20231205_000001") == {"dayObs": 20231205, "blockExecution": 1}
    assert block_execution("") == {"dayObs": 0, "blockExecution": 0}


def run_through(model: QueueModel, count: int) -> list[QueueItem]:
    """`count` scripts added, run and ended, one after the other."""
    done = []
    for _ in range(count):
        a = item(model)
        model.add([a])
        ready(model, a)
        model.start(a, 0)
        model.finished(a.index, ScriptState.DONE, "", 1)
        done.append(a)
    return done


def test_history_keeps_the_newest_and_nothing_of_the_rest() -> None:
    model = QueueModel()
    ran = run_through(model, MAX_HISTORY + 600)
    assert [i.index for i in model.history] == [i.index for i in reversed(ran[-MAX_HISTORY:])]
    assert model.find(ran[0].index) is None  # fell off: not found, not kept
    assert model.find(ran[-MAX_HISTORY].index) is ran[-MAX_HISTORY]
    assert [model.history_position(i) for i in (model.history[0], model.history[-1])] == [999, 600]
    assert model.history_total == 1000
    token = model.token
    model.update(ran[-1].index, reason="looked at")
    assert model.changed_since(token) == [ran[-1]]  # what a save writes: the change, not the history


def saved_rows(store: QueueStore, tmp_path: Path) -> list[tuple[str, int]]:
    if isinstance(store, MemoryQueueStore):
        return sorted(store.rows)
    with Database(tmp_path / "queue.sqlite3", "").transaction() as db:
        rows = db.execute("SELECT area, position FROM queue_items ORDER BY area, position").fetchall()
    return [(r[0], r[1]) for r in rows]


@pytest.mark.parametrize("kind", ["sqlite", "memory"])
async def test_saves_write_what_changed_and_drop_what_fell_off(tmp_path: Path, kind: str) -> None:
    store: QueueStore = MemoryQueueStore()
    if kind == "sqlite":
        store = DatabaseQueueStore(tmp_path / "queue.sqlite3", "ScriptQueue:2")
    model = QueueModel()
    await store.save(model)
    for _ in range(MAX_HISTORY + 100):
        run_through(model, 1)
        queued = item(model)
        model.add([queued])
        await store.save(model)
        model.remove_queued(queued.index, ProcessState.TERMINATED, "stopped", 2)
        await store.save(model)
    token = model.token
    model.update(model.history[5].index, reason="looked at")
    assert len(changes_of(model, token).rows) == 1  # one change, one row, whatever the length of history
    await store.save(model)
    rows = saved_rows(store, tmp_path)
    assert rows == [("history", p) for p in range(model.history_total - MAX_HISTORY, model.history_total)]
    again = store.load(first_index=200_000)
    assert [(i.index, i.reason) for i in again.history] == [(i.index, i.reason) for i in model.history]
    assert again.history_position(again.history[0]) == model.history_total - 1
    run_through(again, 1)  # the loaded model goes on where the saved one stopped
    await store.save(again)
    assert store.load(first_index=200_000).history[0].index == again.history[0].index


def test_rows_saved_before_history_positions_are_read_in_order(tmp_path: Path) -> None:
    path = tmp_path / "queue.sqlite3"
    model = QueueModel()
    run_through(model, 3)
    schema = ("CREATE TABLE queue_items (queue TEXT, area TEXT, position INTEGER, item TEXT);"
              "CREATE TABLE queue_meta (queue TEXT, key TEXT, value TEXT, PRIMARY KEY (queue, key))")  # fmt: skip
    old = Database(path, schema)
    with old.transaction() as db:  # as the store wrote them: history position 0 is the newest
        for position, saved in enumerate(model.history):
            db.execute("INSERT INTO queue_items VALUES ('ScriptQueue:2', 'history', ?, ?)",
                       (position, json.dumps(saved.to_json())))  # fmt: skip
        db.execute("INSERT INTO queue_meta VALUES ('ScriptQueue:2', 'next_index', ?)", (str(model.next_index),))
    store = DatabaseQueueStore(path, "ScriptQueue:2")
    again = store.load(first_index=200_000)
    assert [i.index for i in again.history] == [i.index for i in model.history]
    assert again.history_total == 3
