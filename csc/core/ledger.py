"""The command ledger: every command is executed at most once per (identity, origin, seqNum).

Invariants:
- per sender (identity, origin) the ledger keeps the highest seqNum admitted (`high`) and every
  admitted seqNum in the window (high - window, high] with its send time; a seqNum in the window
  is NEW unless it was admitted before with the same send time (then DUPLICATE: a redelivery
  or a repeat carries the original bytes), however many commands of other senders came between;
  the same seqNum with another send time is a new command of a process that reused the pid;
- a seqNum at or below high - window is TOO_OLD and refused by name, unless its send time is
  later than every command of that sender so far: then the sender is a new process that reused
  the identity and the pid and started its counter lower (a new epoch). A replay carries its
  original bytes, send time included, so it can never open a new epoch;
- the final ack of the last `results` commands is kept, so a duplicate (a redelivery, or a
  Remote sending again after a broker outage) is answered with the same ack, not run again;
  a duplicate of a command still running is answered with its last INPROGRESS ack;
- at most `max_senders` senders are tracked; the one heard from least recently is forgotten
  first (counted in `forgotten`), which bounds memory whatever a client sends.

Pure: no I/O, no clock. The component service admits and records; a `LedgerStore` (SQLite for
ScriptQueue:2 and OCPS:1) makes the record survive a restart.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from obsq.csc.core.codec import Sender

#: How many seqNums below a sender's highest are still told apart (NEW or DUPLICATE).
DEFAULT_WINDOW = 4096
DEFAULT_MAX_SENDERS = 65_536
DEFAULT_RESULTS = 4096


class Verdict(enum.Enum):
    """What the ledger says of a command: run it, answer it again, or refuse it."""

    NEW = "new"
    DUPLICATE = "duplicate"
    TOO_OLD = "too old"


@dataclass
class SenderRecord:
    """What the ledger knows of one (identity, origin)."""

    high: int
    stamp: float
    recent: dict[int, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Admitted:
    """One admitted command, as a store keeps it."""

    identity: str
    origin: int
    seq_num: int
    stamp: float


class LedgerStore(Protocol):
    """Where a ledger's admitted commands survive a restart of the service."""

    def load(self) -> Iterable[Admitted]: ...

    def add(self, admitted: Admitted) -> None: ...


class CommandLedger:
    """Admit each (identity, origin, seqNum) once; remember final acks for duplicates."""

    def __init__(
        self,
        *,
        window: int = DEFAULT_WINDOW,
        max_senders: int = DEFAULT_MAX_SENDERS,
        results: int = DEFAULT_RESULTS,
        store: LedgerStore | None = None,
    ) -> None:
        self.window = window
        self.max_senders = max_senders
        self._max_results = results
        self._senders: OrderedDict[tuple[str, int], SenderRecord] = OrderedDict()
        self._results: OrderedDict[Sender, dict[str, Any]] = OrderedDict()
        self._in_flight: dict[Sender, dict[str, Any] | None] = {}
        self.forgotten = 0
        self._store = store
        if store is not None:
            for admitted in store.load():
                self._admit(Sender(admitted.seq_num, admitted.identity, admitted.origin), admitted.stamp)

    def __len__(self) -> int:
        return len(self._senders)

    def admit(self, sender: Sender, stamp: float) -> Verdict:
        """Decide about a command; a NEW one is recorded (and stored) as admitted and in flight."""
        verdict = self._admit(sender, stamp)
        if verdict is Verdict.NEW:
            self._in_flight[sender] = None
            if self._store is not None:
                self._store.add(Admitted(sender.identity, sender.origin, sender.seq_num, stamp))
        return verdict

    def _admit(self, sender: Sender, stamp: float) -> Verdict:
        key = (sender.identity, sender.origin)
        seq = sender.seq_num
        record = self._senders.get(key)
        if record is None:
            self._senders[key] = SenderRecord(seq, stamp, {seq: stamp})
            if len(self._senders) > self.max_senders:
                self._senders.popitem(last=False)
                self.forgotten += 1
            return Verdict.NEW
        self._senders.move_to_end(key)
        if seq <= record.high - self.window:
            if stamp <= record.stamp:
                return Verdict.TOO_OLD
            record.high, record.recent = seq, {}  # a new process with this identity and pid
        elif record.recent.get(seq) == stamp:
            return Verdict.DUPLICATE
        record.recent[seq] = stamp
        record.stamp = max(record.stamp, stamp)
        if seq > record.high:
            record.high = seq
            if len(record.recent) > 2 * self.window:
                floor = record.high - self.window
                record.recent = {s: t for s, t in record.recent.items() if s > floor}
        return Verdict.NEW

    def progress(self, sender: Sender, ack: dict[str, Any]) -> None:
        """Remember the last INPROGRESS ack of a command in flight (to answer a duplicate with it)."""
        if sender in self._in_flight:
            self._in_flight[sender] = ack

    def finished(self, sender: Sender, ack: dict[str, Any]) -> None:
        """Remember the final ack of an admitted command (to answer its duplicates)."""
        self._in_flight.pop(sender, None)
        self._results[sender] = ack
        if len(self._results) > self._max_results:
            self._results.popitem(last=False)

    def in_flight(self, sender: Sender) -> bool:
        return sender in self._in_flight

    def result(self, sender: Sender) -> dict[str, Any] | None:
        """The final ack of an executed command, if still kept, else its last INPROGRESS ack if in flight."""
        return self._results.get(sender) or self._in_flight.get(sender)
