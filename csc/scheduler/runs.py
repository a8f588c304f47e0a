"""A Scheduler run, pure: the blocks of one occurrence queued as one plan and followed to their end.

Invariants (the run's failure policy, stated once here):
- the blocks are added to the queue in the plan's order, each with its own execution id (the
  queue's `script` events carry it, so what was queued is found again after any timeout, error
  or restart);
- the safe blocks (the rule's `safe`, e.g. BLOCK-310, the shutdown) come last and run whatever
  happens to the others: every run ends with the site safe;
- the first script of a block that is not safe that ends other than DONE, a block the queue
  refuses, or a stop of the run fails it: the blocks that are not safe and have not ended are
  dropped (their scripts still queued are stopped) and the safe blocks are added if they are not
  yet, and run (the Scheduler resumes a queue that paused on the failure);
- a safe block that fails is not retried: the run ends ERROR saying the site may not be safe;
- the run is over when no block is left to add and every script of every block added has ended.

Only the Scheduler's service changes a Run, through the methods below; it carries out what
they return (scripts to stop, whether to resume the queue).
"""

from __future__ import annotations

import enum
import json
import zlib
from dataclasses import dataclass, field
from typing import Any

from obsq.csc.clock import day_obs
from obsq.scripts.states import ScriptState

#: The queue's process states that end a script (DONE, LOADFAILED, CONFIGURE_FAILED, TERMINATED, LOST).
ENDED_PROCESS = frozenset({4, 5, 6, 7, 8})


class BlockState(enum.Enum):
    """Where one block of a run stands."""

    PENDING = "pending"  # not yet added
    QUEUED = "queued"  # added: its scripts are queued or running
    ENDED = "ended"  # every script of it has ended
    NOT_QUEUED = "not queued"  # the queue refused it, or it could not be added
    DROPPED = "dropped"  # not run: the run failed before it


def execution_id(program: str, tai: float, key: str) -> str:
    """A block execution id in Rubin's form (BL295_O_20261207_123456), the same for the same `key`.

    The number is a checksum of `key` (the rule, the occurrence and the block's place), so a
    Scheduler restarted mid-run makes the same id again and finds what it had queued.
    """
    number = program.removeprefix("BLOCK-").split("_")[0]
    return f"BL{number}_O_{day_obs(tai)}_{zlib.crc32(key.encode()) % 1_000_000:06d}"


@dataclass
class PlannedBlock:
    """One block of a run: what is sent (`block`, `override`), how it is shown (`label`), its execution id."""

    block: str
    label: str
    execution: str
    safe: bool = False
    override: str = ""
    state: BlockState = BlockState.PENDING
    scripts: list[int] = field(default_factory=list)
    reason: str = ""
    #: the target the block is given (blocks.TARGET_SCHEMA as JSON; empty: addBlock's defaults)
    target: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"block": self.block, "label": self.label, "execution": self.execution, "safe": self.safe,
                "override": self.override, "state": self.state.value, "scripts": self.scripts,
                "reason": self.reason, "target": self.target}  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PlannedBlock:
        return cls(data["block"], data["label"], data["execution"], data["safe"], data.get("override", ""),
                   BlockState(data["state"]), list(data["scripts"]), data.get("reason", ""),
                   data.get("target", ""))  # fmt: skip


@dataclass
class SeenScript:
    """A script of a run, as the queue's `script` events show it."""

    index: int
    block: int  # the position of its block in the plan
    state: int = 0
    path: str = ""
    reason: str = ""
    ended: bool = False

    @property
    def done(self) -> bool:
        return self.ended and self.state == ScriptState.DONE


@dataclass(frozen=True)
class Effects:
    """What the service must do after a change: stop these queued scripts, resume a paused queue."""

    stop: tuple[int, ...] = ()
    resume: bool = False


@dataclass
class Run:
    """The blocks of one occurrence of a rule (or one addBlock), queued as one plan."""

    rule: str
    occurrence: float
    blocks: list[PlannedBlock]
    failure_strategy: int = 1
    #: the (session, parameters) flats history this run adds once it completes
    flats: tuple[tuple[Any, Any], ...] = ()
    scripts: dict[int, SeenScript] = field(default_factory=dict)
    #: the first failure, in words (None while the run goes well), and the position of its block
    failure: str | None = None
    failed_block: int | None = None
    executing: set[int] = field(default_factory=set)
    #: scripts the service was told to stop (each is asked once)
    stopping: set[int] = field(default_factory=set)
    #: read back from the store after a restart: a block not known to be queued may have been, just before it
    recovered: bool = False

    @property
    def key(self) -> tuple[str, float]:
        return (self.rule, self.occurrence)

    @property
    def labels(self) -> list[str]:
        return [b.label for b in self.blocks]

    def block_of(self, execution: str) -> int | None:
        """The position of the block with this execution id, or None."""
        return next((i for i, b in enumerate(self.blocks) if b.execution and b.execution == execution), None)

    # -- adding ------------------------------------------------------------------------------

    def next_to_add(self) -> int | None:
        """The position of the next block to add: in order, only the safe ones once the run has failed."""
        for i, block in enumerate(self.blocks):
            if block.state == BlockState.PENDING:
                if self.failure is not None and not block.safe:
                    block.state = BlockState.DROPPED
                    continue
                return i
        return None

    def queued(self, position: int, indices: list[int]) -> Effects:
        """The queue accepted block `position` with these scripts (to be stopped if the run failed meanwhile)."""
        block = self.blocks[position]
        block.state = BlockState.QUEUED
        block.scripts = list(indices)
        for index in indices:
            self.scripts.setdefault(index, SeenScript(index, position))
        self._update_block(position)
        if self.failure is not None and not block.safe:
            stop = tuple(i for i in indices if not self.scripts[i].ended and i not in self.stopping)
            self.stopping.update(stop)
            return Effects(stop=stop)
        return Effects()

    def not_queued(self, position: int, reason: str) -> Effects:
        """Block `position` could not be queued: the run fails (a safe block's failure is said as such)."""
        block = self.blocks[position]
        block.state, block.reason = BlockState.NOT_QUEUED, reason
        return self._fail(f"{block.label} not queued: {reason}", position)

    # -- following ---------------------------------------------------------------------------

    def script(self, data: dict[str, Any]) -> tuple[SeenScript | None, Effects]:
        """A `script` event of the queue: the script it concerns (None if not this run's) and what to do."""
        index = data["scriptSalIndex"]
        seen = self.scripts.get(index)
        if seen is None:
            position = self.block_of(data.get("executionId", ""))
            if position is None:
                return None, Effects()
            seen = self.scripts[index] = SeenScript(index, position)
            if index not in self.blocks[position].scripts:
                self.blocks[position].scripts.append(index)
        if seen.ended:
            return seen, Effects()
        seen.state, seen.path, seen.reason = data["scriptState"], data["path"], data["reason"]
        seen.ended = data["processState"] in ENDED_PROCESS or ScriptState(data["scriptState"]).is_final
        if seen.state == ScriptState.RUNNING:
            self.executing.add(seen.block)
        effects = Effects()
        if seen.ended and not seen.done:
            block = self.blocks[seen.block]
            state = ScriptState(seen.state).name if seen.state else "ended"
            text = f"script {index} ({seen.path or '?'}) of {block.label} {state}" + (
                f": {seen.reason}" if seen.reason else ""
            )
            effects = self._fail(text, seen.block)
        self._update_block(seen.block)
        return seen, effects

    def abandon(self, reason: str) -> Effects:
        """The run is stopped (the Scheduler's stop with abort): as a failure, the safe blocks still run."""
        return self._fail(reason, None)

    def _fail(self, text: str, position: int | None) -> Effects:
        """A failure in block `position` (None: the run as a whole); what to stop and whether to resume."""
        safe = position is not None and self.blocks[position].safe
        first = self.failure is None
        if safe:
            text = f"{text} — the shutdown failed: the site may not be safe"
            self.failure = text if first else f"{self.failure}; {text}"
        elif first:
            self.failure, self.failed_block = text, position
        stop = []
        for block in self.blocks:
            if block.safe:
                continue
            if block.state == BlockState.PENDING:
                block.state = BlockState.DROPPED
            elif block.state == BlockState.QUEUED:
                stop += [i for i in block.scripts if not self.scripts[i].ended and i not in self.stopping]
        self.stopping.update(stop)
        has_safe = any(b.safe and b.state in (BlockState.PENDING, BlockState.QUEUED) for b in self.blocks)
        return Effects(stop=tuple(stop), resume=first and has_safe and not safe)

    def _update_block(self, position: int) -> None:
        block = self.blocks[position]
        if block.state == BlockState.QUEUED and block.scripts and all(self.scripts[i].ended for i in block.scripts):
            block.state = BlockState.ENDED

    # -- the end -----------------------------------------------------------------------------

    def block_ok(self, position: int) -> bool:
        block = self.blocks[position]
        return block.state == BlockState.ENDED and all(self.scripts[i].done for i in block.scripts)

    @property
    def over(self) -> bool:
        """No block left to add, and every script of every block added has ended."""
        return all(b.state not in (BlockState.PENDING, BlockState.QUEUED) for b in self.blocks)

    def outcome(self) -> str:
        """COMPLETED, or ERROR with the first failure, what was dropped and how the safe blocks ended."""
        if self.failure is None and all(self.block_ok(i) for i in range(len(self.blocks))):
            return "COMPLETED"
        parts = [f"ERROR: {self.failure or 'not every script ended DONE'}"]
        dropped = [b.label for i, b in enumerate(self.blocks)
                   if not b.safe and i != self.failed_block and not self.block_ok(i)]  # fmt: skip
        if dropped:
            parts.append(f"not completed: {', '.join(dropped)}")
        for i, block in enumerate(self.blocks):
            if block.safe:
                ended = "COMPLETED" if self.block_ok(i) else block.state.value.upper()
                parts.append(f"safe block {block.label} {ended}" + (" (the site is safe)" if self.block_ok(i) else ""))
        return "; ".join(parts)

    def indices(self) -> list[int]:
        return sorted(self.scripts)

    def plan_json(self) -> str:
        """The run as the store keeps it: its blocks (with their execution ids and scripts)."""
        scripts = {str(s.index): [s.block, s.state, s.path, s.reason, s.ended] for s in self.scripts.values()}
        return json.dumps({"blocks": [b.to_json() for b in self.blocks], "failure": self.failure,
                           "failedBlock": self.failed_block, "failureStrategy": self.failure_strategy,
                           "scripts": scripts, "stopping": sorted(self.stopping)})  # fmt: skip

    def restore(self, plan: dict[str, Any]) -> None:
        """A run read back from the store after a restart: its plan and its scripts as last seen."""
        self.recovered = True
        self.blocks = [PlannedBlock.from_json(b) for b in plan["blocks"]]
        self.failure, self.failed_block = plan.get("failure"), plan.get("failedBlock")
        self.stopping = set(plan.get("stopping", []))
        self.failure_strategy = plan.get("failureStrategy", self.failure_strategy)
        for key, (position, state, path, reason, ended) in plan.get("scripts", {}).items():
            self.scripts[int(key)] = SeenScript(int(key), position, state, path, reason, ended)
        for position, block in enumerate(self.blocks):
            for index in block.scripts:
                self.scripts.setdefault(index, SeenScript(index, position))

    def running_text(self) -> str:
        going = [s for s in self.scripts.values() if not s.ended]
        if not going:
            return ""
        first = min(going, key=lambda s: s.index)
        state = ScriptState(first.state).name if first.state else "queued"
        return f"{self.blocks[first.block].label} script {first.index} {state}"
