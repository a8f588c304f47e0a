"""The command ledger: at most once per (identity, origin, seqNum), whatever comes between."""

from __future__ import annotations

from pathlib import Path

from obsq.csc.component.ledger import SqliteLedgerStore
from obsq.csc.core.codec import Sender
from obsq.csc.core.ledger import CommandLedger, Verdict


def test_a_command_is_new_once_however_many_come_between() -> None:
    ledger = CommandLedger(window=100)
    first = Sender(1, "me@host", 7)
    assert ledger.admit(first, 1.0) is Verdict.NEW
    for seq in range(2, 10_002):  # 10,000 other commands of other senders and of this one
        assert ledger.admit(Sender(seq, "other", 1), 2.0) is Verdict.NEW
    assert ledger.admit(first, 1.0) is Verdict.DUPLICATE
    for seq in range(2, 60):
        assert ledger.admit(Sender(seq, "me@host", 7), 3.0) is Verdict.NEW
    assert ledger.admit(first, 1.0) is Verdict.DUPLICATE


def test_a_replay_older_than_the_window_is_refused_but_a_new_process_may_start_lower() -> None:
    ledger = CommandLedger(window=10)
    for seq in range(1000, 1030):
        assert ledger.admit(Sender(seq, "ScriptQueue:2", 42), 100.0 + seq) is Verdict.NEW
    assert ledger.admit(Sender(1005, "ScriptQueue:2", 42), 1105.0) is Verdict.TOO_OLD  # its original bytes
    assert ledger.admit(Sender(1025, "ScriptQueue:2", 42), 1125.0) is Verdict.DUPLICATE
    assert ledger.admit(Sender(1026, "ScriptQueue:2", 1), 5000.0) is Verdict.NEW  # another origin
    # the same identity and pid, a later process whose counter started lower: a new epoch
    assert ledger.admit(Sender(7, "ScriptQueue:2", 42), 9000.0) is Verdict.NEW
    assert ledger.admit(Sender(7, "ScriptQueue:2", 42), 9000.0) is Verdict.DUPLICATE
    assert ledger.admit(Sender(1029, "ScriptQueue:2", 42), 1129.0) is Verdict.NEW  # out of the new epoch's past


def test_final_acks_are_kept_for_duplicates_and_in_flight_is_known() -> None:
    ledger = CommandLedger(results=2)
    a, b, c = (Sender(n, "x", 0) for n in (1, 2, 3))
    for sender in (a, b, c):
        ledger.admit(sender, 0.0)
    assert ledger.in_flight(a)
    for sender in (a, b, c):
        ledger.finished(sender, {"ack": 303, "seq": sender.seq_num})
    assert not ledger.in_flight(a)
    assert ledger.result(a) is None  # only the last 2 are kept
    assert ledger.result(c) == {"ack": 303, "seq": 3}


def test_senders_are_bounded() -> None:
    ledger = CommandLedger(max_senders=100)
    for origin in range(1000):
        ledger.admit(Sender(1, "flood", origin), 0.0)
    assert len(ledger) == 100
    assert ledger.forgotten == 900


def test_the_record_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "commands.sqlite3"
    store = SqliteLedgerStore(path, window=50)
    ledger = CommandLedger(window=50, store=store)
    for seq in range(1, 3001):
        ledger.admit(Sender(seq, "operator@site", 3), float(seq))
    store.close()
    again = CommandLedger(window=50, store=SqliteLedgerStore(path, window=50))
    assert again.admit(Sender(3000, "operator@site", 3), 3000.0) is Verdict.DUPLICATE
    assert again.admit(Sender(2960, "operator@site", 3), 2960.0) is Verdict.DUPLICATE
    assert again.admit(Sender(5, "operator@site", 3), 5.0) is Verdict.TOO_OLD
    assert again.admit(Sender(3001, "operator@site", 3), 3001.0) is Verdict.NEW


def test_the_same_seqnum_with_another_send_time_is_another_command() -> None:
    ledger = CommandLedger()
    assert ledger.admit(Sender(42, "me@host", 1), 100.0) is Verdict.NEW
    assert ledger.admit(Sender(42, "me@host", 1), 100.0) is Verdict.DUPLICATE  # the same bytes again
    assert ledger.admit(Sender(42, "me@host", 1), 250.0) is Verdict.NEW  # a later process with this pid
    assert ledger.admit(Sender(7, "hand@typed", 0), 0.0) is Verdict.NEW
    assert ledger.admit(Sender(7, "hand@typed", 0), 0.0) is Verdict.DUPLICATE  # mosquitto_pub, no send time
