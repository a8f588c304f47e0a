"""The script queue as a pure model: queue, current slot, history, and every rule about them.

Invariants:
- every item has a SAL index for life (queue -> current -> history); indices are never reused;
- at most one item is current; it came from the top of the queue;
- the next item starts only when the queue is running, nothing is current, and the top item
  is CONFIGURED with a group id;
- a script that FAILED while current pauses the queue and stays current until `resume`;
  one that fails configuration or is stopped goes to history without pausing;
- a block's items are contiguous; a failure in a block applies its failure strategy;
- every change bumps `token`, so clients can poll for "anything new?"; the items a change
  touched are recorded with it (`changed_since`), so the store saves only those;
- history keeps the newest MAX_HISTORY items; each has a history position (its rank among all
  that ever entered history, the newest highest) that never changes, so a store can keep it as a
  key; an item that falls off leaves nothing behind: the model keeps no per-script data beyond
  the queue, the current slot and the history.

Only the ScriptQueue service changes this model; it has no I/O and no clock (times are passed in).
"""

from __future__ import annotations

import enum
from collections import OrderedDict, deque
from dataclasses import InitVar, dataclass, field, fields
from typing import Any

from obsq.csc.core.errors import ExpectedError
from obsq.scripts.states import ScriptState

MAX_HISTORY = 400


class Location(enum.IntEnum):
    """Where an added or moved script goes (SAL ScriptQueue Location)."""

    FIRST = 1
    LAST = 2
    BEFORE = 3
    AFTER = 4


class ProcessState(enum.IntEnum):
    """The queue's view of a script's process (SAL ScriptProcessState)."""

    UNKNOWN = 0
    LOADING = 1
    CONFIGURED = 2
    RUNNING = 3
    DONE = 4
    LOADFAILED = 5
    CONFIGURE_FAILED = 6
    TERMINATED = 7
    LOST = 8  # obsq: the queue service restarted while the script ran; it was not re-run

    @property
    def on_the_wire(self) -> ProcessState:
        """The state as the `script` event sends it: ts_xml's ScriptProcessState has no LOST, so TERMINATED."""
        return ProcessState.TERMINATED if self is ProcessState.LOST else self


@dataclass(frozen=True)
class LastWord:
    """What a script said last on the bus (its retained state and progress events)."""

    state: ScriptState
    checkpoint: str = ""
    reason: str = ""
    done: int = 0
    total: int = 0


class FailureStrategy(enum.IntEnum):
    """What a failed script does to the rest of its block (as Rubin's Scheduler)."""

    NONE = 1  # stop the rest of the block
    ON_SCRIPT_FAILURE = 2  # keep the rest; they run once the queue is resumed
    KEEP_GOING = 3  # ignore the failure: do not even pause


@dataclass(eq=False)  # an item is one script: compared by identity (a field-by-field == made `in` cost O(fields))
class QueueItem:
    """One script, from its addition to its place in history."""

    index: int
    path: str
    standard: bool
    config: str = ""
    descr: str = ""
    block_id: str = ""
    block_index: int = 0
    block_size: int = 0
    block_execution: str = ""
    failure_strategy: FailureStrategy = FailureStrategy.NONE
    requeued_from: int = 0
    script_state: ScriptState = ScriptState.UNKNOWN
    process_state: ProcessState = ProcessState.LOADING
    group_id: str = ""
    last_checkpoint: str = ""
    done: int = 0
    total: int = 0
    duration_s: float = 0.0
    reason: str = ""
    added_tai: float = 0.0
    run_start_tai: float = 0.0
    end_tai: float = 0.0
    #: Rubin's script event: the queueing command's seqNum, the test execution id, and when configuring began/ended
    cmd_id: int = 0
    execution_id: str = ""
    configure_start_tai: float = 0.0
    configure_end_tai: float = 0.0

    @property
    def runnable(self) -> bool:
        return self.script_state == ScriptState.CONFIGURED and bool(self.group_id)

    def to_json(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in _ITEM_FIELDS}  # every field is a scalar: no deep copy
        data["failure_strategy"] = int(self.failure_strategy)
        data["script_state"] = self.script_state.name
        data["process_state"] = self.process_state.name
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> QueueItem:
        data = dict(data)
        data["failure_strategy"] = FailureStrategy(data["failure_strategy"])
        data["script_state"] = ScriptState[data["script_state"]]
        data["process_state"] = ProcessState[data["process_state"]]
        return cls(**data)


_ITEM_FIELDS = tuple(f.name for f in fields(QueueItem))


@dataclass
class QueueModel:
    """Queue, current slot and history (newest first).

    `history_total` counts every item that ever entered history; `history_positions` gives the
    history position of each item given in `history` (newest first; by default the positions
    a history of that length has at `history_total`).
    """

    first_index: int = 200_000
    queue: list[QueueItem] = field(default_factory=list)
    current: QueueItem | None = None
    history: deque[QueueItem] = field(default_factory=deque)
    running: bool = True
    token: int = 0
    next_index: int = 0
    history_total: int = 0
    history_positions: InitVar[list[int] | None] = None

    def __post_init__(self, history_positions: list[int] | None) -> None:
        self.next_index = self.next_index or self.first_index + 1
        self.history = deque(list(self.history)[:MAX_HISTORY])
        self.history_total = max(self.history_total, len(self.history))
        positions = history_positions or [self.history_total - 1 - i for i in range(len(self.history))]
        self.history_total = max(self.history_total, positions[0] + 1 if positions else 0)
        #: every item by SAL index (queue, current slot, history): `find` without a scan
        self._by_index: dict[int, QueueItem] = {i.index: i for i in self.items()}
        #: the history position of each item in history (see the class docstring)
        self._history_position: dict[int, int] = {
            item.index: position for item, position in zip(self.history, positions, strict=False)
        }
        #: SAL index -> token of the last change that touched the item, oldest change first
        self._journal: OrderedDict[int, int] = OrderedDict()

    # -- look-ups ---------------------------------------------------------------------------

    def find(self, index: int) -> QueueItem | None:
        return self._by_index.get(index)

    def items(self) -> list[QueueItem]:
        return [*self.queue, *([self.current] if self.current else []), *self.history]

    def in_history(self, item: QueueItem) -> bool:
        return self._history_position.get(item.index) is not None and self._by_index.get(item.index) is item

    def history_position(self, item: QueueItem) -> int | None:
        """The item's history position (stable while it stays in history), or None if it is not in history."""
        return self._history_position.get(item.index) if self.in_history(item) else None

    def changed_since(self, token: int) -> list[QueueItem]:
        """The items that a change after `token` touched and that are still in the model (newest change first).

        The cost is that of the changes since `token`, whatever the length of history.
        """
        changed = []
        for index, at in reversed(self._journal.items()):
            if at <= token:
                break
            item = self._by_index.get(index)
            if item is not None:
                changed.append(item)
        return changed

    def _queued_position(self, index: int, what: str) -> int:
        for position, item in enumerate(self.queue):
            if item.index == index:
                return position
        raise ExpectedError(f"{what}: script {index} is not in the queue")

    def _insert_position(self, location: Location, location_index: int, moving: QueueItem | None = None) -> int:
        if location == Location.FIRST:
            return 0
        if location == Location.LAST:
            return len(self.queue)
        position = self._queued_position(location_index, f"{location.name} {location_index}")
        if moving is not None and location_index == moving.index:
            raise ExpectedError(f"cannot place script {moving.index} {location.name.lower()} itself")
        position = position if location == Location.BEFORE else position + 1
        if 0 < position < len(self.queue):
            above, below = self.queue[position - 1], self.queue[position]
            if above.block_id and above.block_id == below.block_id and above.block_execution == below.block_execution:
                raise ExpectedError(f"cannot insert inside block {above.block_id}: its scripts stay together")
        return position

    def check_location(self, location: Location, location_index: int) -> None:
        """Raise ExpectedError now if adding at `location` would fail (before starting anything)."""
        self._insert_position(location, location_index)

    def _changed(self, *touched: QueueItem) -> None:
        self.token += 1
        for item in touched:
            self._journal[item.index] = self.token
            self._journal.move_to_end(item.index)

    # -- changes ----------------------------------------------------------------------------

    def allocate(self) -> int:
        index = self.next_index
        self.next_index += 1
        return index

    def add(self, items: list[QueueItem], location: Location = Location.LAST, location_index: int = 0) -> None:
        """Insert `items` (one script, or a whole block) together at `location`."""
        position = self._insert_position(location, location_index)
        self.queue[position:position] = items
        self._by_index.update((item.index, item) for item in items)
        self._changed(*items)

    def move(self, index: int, location: Location, location_index: int = 0) -> None:
        item = self.queue[self._queued_position(index, "move")]
        if item.block_id:
            raise ExpectedError(f"script {index} belongs to block {item.block_id}: move the block's scripts together")
        if location in (Location.BEFORE, Location.AFTER) and location_index == index:
            return  # moving next to itself is a no-op
        self.queue.remove(item)
        try:
            position = self._insert_position(location, location_index, item)
        except ExpectedError:
            self.queue.insert(0, item)
            raise
        self.queue.insert(position, item)
        self._changed(item)

    def requeue_copy(self, index: int) -> QueueItem:
        """A new item with the same script and configuration, linked to the original."""
        original = self.find(index)
        if original is None:
            raise ExpectedError(f"requeue: no script {index} in queue, current slot or history")
        if original.block_id:  # as Rubin's queue: "part of a block and cannot be requeued"
            raise ExpectedError(
                f"requeue: script {index} is part of block {original.block_id} and cannot be requeued alone; "
                "requeue it with restOfBlock (obsq queue requeue --rest-of-block) to run it and the rest of its "
                "block again, or add the block again"
            )
        return QueueItem(
            index=self.allocate(), path=original.path, standard=original.standard, config=original.config,
            descr=original.descr, requeued_from=original.index,
        )  # fmt: skip

    def requeue_block_rest(self, index: int, execution: str) -> list[QueueItem]:
        """New items for script `index` of a block and the later scripts of its block that are not queued.

        They keep their places in the block and their configurations, each linked to its original, as
        a new execution of the block (`execution`): a failed script and the rest of its block run again.
        """
        original = self.find(index)
        if original is None:
            raise ExpectedError(f"requeue: no script {index} in queue, current slot or history")
        if not original.block_id:
            raise ExpectedError(f"requeue: script {index} is not part of a block; requeue it without restOfBlock")
        queued = {i.index for i in self.queue}
        rest: dict[int, QueueItem] = {}
        for item in self.items():
            same = item.block_id == original.block_id and item.block_execution == original.block_execution
            if same and item.block_index >= original.block_index and item.index not in queued:
                rest.setdefault(item.block_index, item)  # one per place (an earlier requeue's copy is not twice)
        return [
            QueueItem(
                index=self.allocate(), path=item.path, standard=item.standard, config=item.config, descr=item.descr,
                block_id=item.block_id, block_index=item.block_index, block_size=item.block_size,
                block_execution=execution, execution_id=execution, failure_strategy=item.failure_strategy,
                requeued_from=item.index,
            )
            for _, item in sorted(rest.items())
        ]  # fmt: skip

    def configure_failed(self, item: QueueItem, reason: str, now: float) -> None:
        """A script added whose configuration its schema refuses: straight to history, CONFIGURE_FAILED (as Rubin's)."""
        item.script_state = ScriptState.CONFIGURE_FAILED
        self._to_history(item, ProcessState.CONFIGURE_FAILED, reason, now)

    def remove_queued(self, index: int, state: ProcessState, reason: str, now: float) -> QueueItem:
        item = self.queue.pop(self._queued_position(index, "stop"))
        self._to_history(item, state, reason, now)
        return item

    def _to_history(self, item: QueueItem, state: ProcessState, reason: str, now: float) -> None:
        item.process_state = state
        item.reason = item.reason or reason
        item.end_tai = now
        if len(self.history) >= MAX_HISTORY:
            self._forget(self.history.pop())
        self.history.appendleft(item)
        self._by_index[item.index] = item
        self._history_position[item.index] = self.history_total
        self.history_total += 1
        self._changed(item)

    def _forget(self, item: QueueItem) -> None:
        """The oldest item fell off history: nothing of it stays in the model."""
        self._by_index.pop(item.index, None)
        self._history_position.pop(item.index, None)
        self._journal.pop(item.index, None)

    def update(self, index: int, **fields: Any) -> QueueItem | None:
        """Record news about a script (state, checkpoint, progress...)."""
        item = self.find(index)
        if item is None:
            return None
        changed = False
        for name, value in fields.items():
            if getattr(item, name) != value:
                setattr(item, name, value)
                changed = True
        if changed:
            self._changed(item)
        return item

    def pause(self) -> None:
        if self.running:
            self.running = False
            self._changed()

    def resume(self, now: float) -> None:
        """Run again; a failed script kept for inspection goes to history."""
        if self.current is not None and self.current.script_state == ScriptState.FAILED:
            self._to_history(self.current, ProcessState.DONE, "", now)
            self.current = None
        self.running = True
        self._changed()

    def next_to_run(self) -> QueueItem | None:
        if not self.running or self.current is not None or not self.queue:
            return None
        top = self.queue[0]
        return top if top.runnable else None

    def start(self, item: QueueItem, now: float) -> None:
        if self.next_to_run() is not item:
            raise ExpectedError(f"script {item.index} is not next to run")
        self.queue.pop(0)
        self.current = item
        item.process_state = ProcessState.RUNNING
        item.run_start_tai = now
        self._changed(item)

    def finished(self, index: int, final: ScriptState, reason: str, now: float) -> list[QueueItem]:
        """A script reached a final state or its process ended; return block items removed as a result."""
        removed: list[QueueItem] = []
        item = self.find(index)
        if item is None:
            return removed
        if final.is_final and item.script_state != final:
            item.script_state = final
            self._changed(item)
        if self.current is item:
            failed = final == ScriptState.FAILED
            strategy = item.failure_strategy if item.block_id else FailureStrategy.NONE
            if failed and item.block_id and strategy == FailureStrategy.NONE:
                removed = self._drop_block_rest(item, now)
            if failed and strategy != FailureStrategy.KEEP_GOING:
                item.reason = reason
                self.running = False  # pause; the failed script stays current for inspection
                self._changed(item)
                return removed
            self.current = None
            self._to_history(item, ProcessState.DONE, reason, now)
            return removed
        if item in self.queue:
            self.queue.remove(item)
            state = ProcessState.CONFIGURE_FAILED if final == ScriptState.CONFIGURE_FAILED else ProcessState.TERMINATED
            self._to_history(item, state, reason, now)
        return removed

    def process_ended(self, index: int, code: int, now: float) -> list[QueueItem]:
        """The process of `index` ended; a script that never reported a final state is FAILED or terminated."""
        item = self.find(index)
        if item is None or self.in_history(item) or item.script_state.is_final:
            if item is not None and item is self.current and item.script_state.is_final:
                return self.finished(index, item.script_state, item.reason, now)
            return []
        reason = f"process ended with status {code} before the script finished"
        if item is self.current:
            return self.finished(index, ScriptState.FAILED, reason, now)
        self.queue.remove(item)
        state = ProcessState.LOADFAILED if item.script_state == ScriptState.UNKNOWN else ProcessState.TERMINATED
        self._to_history(item, state, reason, now)
        return []

    def _drop_block_rest(self, failed: QueueItem, now: float) -> list[QueueItem]:
        rest = [
            i for i in self.queue if i.block_id == failed.block_id and i.block_execution == failed.block_execution
        ]  # fmt: skip
        for item in rest:
            self.queue.remove(item)
            self._to_history(item, ProcessState.TERMINATED, f"not run: {failed.block_id} failed at {failed.index}", now)
        return rest

    def mark_lost(self, now: float) -> QueueItem | None:
        """After a restart of the service: the script that was running is LOST, never run again.

        What it said last on the bus may come later and amend this (`heard_last_word`).
        """
        item = self.current
        if item is None:
            return None
        self.current = None
        item.reason = _cut_short(item)
        self._to_history(item, ProcessState.LOST, item.reason, now)
        return item

    def heard_last_word(self, index: int, said: LastWord) -> QueueItem | None:
        """A script marked LOST in a restart, as its last word on the bus says it ended.

        A script ends with the queue that started it. What it said last (its retained state) is
        where it got to: a final state is recorded as such ("STOPPED as the queue service
        restarted"); otherwise it stays LOST, with the checkpoint and the images it had reached.
        """
        item = self._by_index.get(index)
        if item is None or item.process_state != ProcessState.LOST:
            return None
        item.last_checkpoint = said.checkpoint or item.last_checkpoint
        item.done, item.total = max(item.done, said.done), max(item.total, said.total)
        if said.state.is_final:
            item.script_state = said.state
            item.process_state = ProcessState.DONE if said.state == ScriptState.DONE else ProcessState.TERMINATED
            item.reason = _cut_short(item, said)
        else:
            item.reason = _cut_short(item)
        self._changed(item)
        return item


def _cut_short(item: QueueItem, said: LastWord | None = None) -> str:
    """The reason of a script the queue service's restart cut short: where it had got to."""
    reached = (f"; it had reached {item.last_checkpoint!r}" if item.last_checkpoint else "") + (
        f" with {item.done} of {item.total} images" if item.total else ""
    )
    if said is None:
        return f"lost: the queue service restarted while it ran{reached}; it was not run again"
    why = f" ({said.reason})" if said.reason else ""
    rerun = "" if said.state == ScriptState.DONE else "; it was not run again"
    return f"{said.state.name} as the queue service restarted{why}{reached}{rerun}"
