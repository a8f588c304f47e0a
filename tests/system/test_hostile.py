"""Hostile input over a real Mosquitto, sent as raw bytes the way mosquitto_pub would send them.

For Test:1, ScriptQueue:2 and OCPS:1, each its own `obsq csc run` process, input class by class:
malformed JSON, non-objects, missing private fields, wrong types, oversize, deep nesting,
NaN/Infinity, seqNum extremes, unknown commands, replays after 10,000 other commands (and, for
ScriptQueue:2, after its restart), and a 5,000-command burst. Every input is refused by name (a
FAILED ack naming the field and the rule) or, when the sender cannot be read, dropped with a
log record naming the topic and the reason; a normal command is answered after each class; the
process never dies or restarts; nothing runs twice. The README's table is this file's summary.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from obsq.csc.bus.brokers import MosquittoProcess
from obsq.csc.bus.mqtt import MqttBus
from obsq.csc.bus.url import BrokerUrl
from obsq.csc.clock import LoopClock
from obsq.csc.core.acks import AckCode
from obsq.csc.core.states import State
from obsq.csc.core.topics import ComponentId
from obsq.csc.ocps.jobs import JobStore
from obsq.scripts.library import SITE_ROOTS_ENV

from .conftest import ComponentProcess
from .test_components import until

pytestmark = [pytest.mark.system, pytest.mark.timeout(600)]  # 10,000-command replays and a burst, per target

CLOCK = LoopClock()
SITE = Path(__file__).resolve().parents[1] / "data" / "scripts"
WAIT = "testing/wait.py"
#: Bounds only a test that would hang; nothing here asserts how long anything took.
ANSWER_LIMIT_S = 60.0
ME = "hostile@test"


def command(seq: object, identity: object = ME, **fields: Any) -> bytes:
    return json.dumps({"private_seqNum": seq, "private_identity": identity, **fields}).encode()


def with_raw(payload: bytes, raw: str) -> bytes:
    """`payload` (a JSON object) with `raw` text added as its last member: NaN, duplicate keys..."""
    return payload[:-1] + b", " + raw.encode() + b"}"


@dataclass
class Wire:
    """A raw MQTT client on the target's topics: what it published, and the acks and logs it saw."""

    bus: MqttBus
    root: str
    target: ComponentId
    acks: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    logs: list[str] = field(default_factory=list)
    events: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    seq: int = 1000

    @property
    def base(self) -> str:
        return f"{self.root}/{self.target.name}/{self.target.index}"

    async def start(self) -> None:
        await self.bus.subscribe(f"{self.base}/ackcmd", self._on_ack)
        await self.bus.subscribe(f"{self.base}/evt/+", self._on_event)

    def _on_ack(self, message: Any) -> None:
        data = json.loads(message.payload)
        self.acks[(data["identity"], data["private_seqNum"])].append(data)

    def _on_event(self, message: Any) -> None:
        if not message.payload:
            return
        data = json.loads(message.payload)
        name = message.topic.rpartition("/")[2]
        self.events[name].append(data)
        if name == "logMessage":
            self.logs.append(data["message"])

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    async def send(self, name: str, payload: bytes) -> None:
        await self.bus.publish(f"{self.base}/cmd/{name}", payload, qos=1)

    async def final_ack(self, seq: int, identity: str = ME) -> dict[str, Any]:
        """The final ack of (identity, seq); the limit only bounds a hang."""

        def final() -> bool:
            return any(a["ack"] != AckCode.INPROGRESS for a in self.acks.get((identity, seq), []))

        await until(final, ANSWER_LIMIT_S)
        return next(a for a in self.acks[(identity, seq)] if a["ack"] != AckCode.INPROGRESS)

    async def refused(self, name: str, payload: bytes, seq: int, rule: str) -> None:
        await self.send(name, payload)
        ack = await self.final_ack(seq)
        assert ack["ack"] == AckCode.FAILED, ack
        assert rule in ack["result"], ack["result"]

    async def dropped(self, name: str, payload: bytes, reason: str) -> None:
        """No ack can be addressed: a log record names the topic and the reason (one per second at most)."""
        before = len(self.logs)
        await CLOCK.sleep(1.05)  # past the previous drop's rate limit
        await self.send(name, payload)
        await until(lambda: any("command_dropped" in m and reason in m for m in self.logs[before:]), ANSWER_LIMIT_S)
        topic = f"{self.base}/cmd/{name}"[:200]
        assert any(topic in m for m in self.logs[before:])

    async def normal(self) -> None:
        """A well-formed command is answered."""
        seq = self.next_seq()
        await self.send("setLogLevel", command(seq, level=20))
        assert (await self.final_ack(seq))["ack"] == AckCode.COMPLETE


@dataclass
class Target:
    wire: Wire
    process: ComponentProcess
    data: Path

    def alive(self) -> bool:
        return self.process.process.poll() is None


@pytest.fixture
async def wire_factory(own_mosquitto: MosquittoProcess, root: str) -> AsyncIterator[Callable[[str], Any]]:
    buses: list[MqttBus] = []

    async def make(target: str) -> Wire:
        bus = MqttBus(BrokerUrl.parse(own_mosquitto.url), clock=CLOCK)
        await bus.start()
        buses.append(bus)
        wire = Wire(bus, root, ComponentId.parse(target))
        await wire.start()
        return wire

    yield make
    for bus in buses:
        await bus.close()


async def start_target(
    name: str, mosquitto: MosquittoProcess, root: str, tmp_path: Path, make: Callable[[str], Any]
) -> Target:
    data = tmp_path / "data"
    cid = ComponentId.parse(name)
    process = ComponentProcess(
        name, mosquitto.url, root, "--data", str(data), "--state", "enabled", log=tmp_path / f"{cid.name}.log"
    )
    wire: Wire = await make(name)
    await until(lambda: any(e.get("summaryState") == State.ENABLED for e in wire.events["summaryState"]), 120)
    return Target(wire, process, data)


async def door_classes(wire: Wire, *, every_drop: bool) -> None:
    """Every class of bad input at the door; a normal command answered after each."""
    n = wire.next_seq

    # malformed JSON and non-objects: nobody to answer
    await wire.dropped("setLogLevel", b"{not json", "payload is not JSON")
    if every_drop:
        await wire.dropped("setLogLevel", b"\xff\xfe\x00", "payload is not JSON")
        await wire.dropped("setLogLevel", b"[1, 2]", "must be a JSON object, not list")
        await wire.dropped("setLogLevel", b'"text"', "must be a JSON object, not str")
    await wire.normal()

    # missing or broken private fields
    await wire.dropped("setLogLevel", json.dumps({"level": 20}).encode(), "private_seqNum")
    if every_drop:
        await wire.dropped("setLogLevel", json.dumps({"private_seqNum": 5}).encode(), "private_identity")
        await wire.dropped("setLogLevel", command(n(), identity=7), "private_identity")
    await wire.normal()

    # wrong types and unknown fields: the sender is known, the ack names the field and the rule
    s = n()
    await wire.refused("setLogLevel", command(s, level="high"), s, "field 'level': 'high' is not of type 'integer'")
    s = n()
    await wire.refused("setLogLevel", command(s, level=20.0), s, "field 'level': 20.0 is not of type 'integer'")
    s = n()
    await wire.refused("setLogLevel", command(s, level=20, colour=1), s, "field 'colour' is not allowed")
    s = n()
    await wire.refused("setLogLevel", with_raw(command(s), '"level": 10, "level": 20'), s, "(rule: unique keys)")
    await wire.normal()

    # oversize: beyond the payload limit, or an identity no ack could carry
    await wire.dropped("setLogLevel", command(n(), level=20, pad="x" * 1_000_100), "exceeds the 1000000-byte limit")
    await wire.dropped("setLogLevel", command(n(), identity="x" * 999_850), "(rule: maxIdentityLength)")
    s = n()
    await wire.refused("setLogLevel", command(s, level=20, subsystem="s" * 70_000), s, "(rule: maxLength)")
    await wire.normal()

    # deep nesting
    s = n()
    deep = '{"a": ' * 40 + "1" + "}" * 40
    await wire.refused("setLogLevel", with_raw(command(s, level=20), f'"subsystem": {deep}'), s, "(rule: maxDepth)")
    if every_drop:
        await wire.dropped("setLogLevel", b"[" * 100_000 + b"]" * 100_000, "(rule: maxDepth)")
    await wire.normal()

    # NaN and Infinity (JSON has neither)
    for raw in ('"level": NaN', '"level": -Infinity', '"level": 1e999'):
        s = n()
        await wire.refused("setLogLevel", with_raw(command(s), raw), s, "field 'level'")
    await wire.normal()

    # seqNum extremes
    extremes: list[tuple[bytes, str]] = [(command(s), "private_seqNum") for s in (0, -1, 2**31, 10**30)]
    if every_drop:
        extremes += [(command(2**63), "private_seqNum"), (command(1.5), "private_seqNum")]
        extremes += [(b'{"private_seqNum": ' + b"9" * 4001 + b', "private_identity": "x"}', "private_seqNum")]
        extremes += [(b'{"private_seqNum": ' + b"9" * 5001 + b', "private_identity": "x"}', "(rule: 64-bit integers)")]
    for raw, reason in extremes:
        await wire.dropped("setLogLevel", raw, reason)
    await wire.normal()

    # unknown commands
    s = n()
    await wire.refused("noSuchCommand", command(s), s, "has no command 'noSuchCommand'")
    s = n()
    long_name = "x" * 60_000
    await wire.refused(long_name, command(s), s, "has no command 'xxxx")
    await wire.normal()


async def replay_after(wire: Wire, name: str, payload: bytes, seq: int, others: int = 10_000) -> dict[str, Any]:
    """Send `payload`, then `others` commands of the same sender, then `payload` again: the replay's answer."""
    await wire.send(name, payload)
    first = await wire.final_ack(seq)
    chunk = 500
    for start in range(0, others, chunk):
        seqs = [wire.next_seq() for _ in range(min(chunk, others - start))]
        await asyncio.gather(*(wire.send("setLogLevel", command(s, level=20)) for s in seqs))
        await wire.final_ack(seqs[-1])
    await wire.send(name, payload)
    await until(lambda: len(finals(wire, seq)) >= 2, ANSWER_LIMIT_S)
    again = finals(wire, seq)[-1]
    assert first["ack"] == AckCode.COMPLETE, first
    return again


def finals(wire: Wire, seq: int) -> list[dict[str, Any]]:
    return [a for a in wire.acks[(ME, seq)] if a["ack"] != AckCode.INPROGRESS]


async def burst(wire: Wire, port: int, count: int = 5000) -> list[int]:
    """`count` setScalars at once with mosquitto_pub (as a careless client would); their seqNums."""
    seqs = [wire.next_seq() for _ in range(count)]
    lines = "\n".join(command(s, int0=s).decode() for s in seqs) + "\n"
    topic = f"{wire.base}/cmd/setScalars"
    if shutil.which("mosquitto_pub"):
        argv = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-t", topic, "-l"]
        done = await asyncio.to_thread(subprocess.run, argv, input=lines.encode(), capture_output=True, check=False)
        assert done.returncode == 0, done.stderr
    else:
        await asyncio.gather(*(wire.send("setScalars", command(s, int0=s)) for s in seqs))
    return seqs


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def test_hostile_input_to_test_component(
    own_mosquitto: MosquittoProcess, root: str, tmp_path: Path, wire_factory: Callable[[str], Any]
) -> None:
    target = await start_target("Test:1", own_mosquitto, root, tmp_path, wire_factory)
    wire = target.wire
    pid = target.process.pid
    await door_classes(wire, every_drop=True)

    # a replay after 10,000 commands of the same sender: refused as older than the window
    s = wire.next_seq()
    again = await replay_after(wire, "setScalars", command(s, int0=777_777), s)
    assert again["ack"] == AckCode.FAILED
    assert "a replay, not run (rule: exactly once)" in again["result"]
    # a replay after 10,000 commands of other senders: recognised, not run again
    s = wire.next_seq()
    await wire.send("setScalars", command(s, int0=888_888))
    await wire.final_ack(s)
    others = [(f"other-{i % 50}@test", 5_000_000 + i) for i in range(10_000)]
    for start in range(0, len(others), 500):
        part = others[start : start + 500]
        await asyncio.gather(*(wire.send("setLogLevel", command(q, identity=who, level=20)) for who, q in part))
        await wire.final_ack(part[-1][1], part[-1][0])
    await wire.send("setScalars", command(s, int0=888_888))
    await until(lambda: len(wire.acks[(ME, s)]) >= 2, ANSWER_LIMIT_S)
    assert "already executed" in wire.acks[(ME, s)][-1]["result"]
    barrier = wire.next_seq()  # setScalars run one at a time: once this one's event is in, any earlier one is
    await wire.send("setScalars", command(barrier, int0=999_999))
    await until(lambda: any(e["int0"] == 999_999 for e in wire.events["scalars"]), ANSWER_LIMIT_S)
    for marker in (777_777, 888_888):
        assert [e["int0"] for e in wire.events["scalars"]].count(marker) == 1

    # a 5,000-command burst: every one acked COMPLETE, the link never dropped, memory bounded
    before_mb = rss_mb(pid)
    seqs = await burst(wire, own_mosquitto.port)
    await until(lambda: all((ME, s) in wire.acks for s in seqs), ANSWER_LIMIT_S * 3)
    assert all(wire.acks[(ME, s)][-1]["ack"] == AckCode.COMPLETE for s in seqs)
    assert rss_mb(pid) - before_mb < 200
    await wire.normal()
    log = (tmp_path / "Test.log").read_text()
    assert "reconnected" not in log
    assert all(e["alive"] for e in wire.events["liveness"])
    assert target.alive()
    assert target.process.pid == pid
    target.process.close()


async def test_hostile_input_to_script_queue_survives_its_restart(
    own_mosquitto: MosquittoProcess,
    root: str,
    tmp_path: Path,
    wire_factory: Callable[[str], Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(SITE_ROOTS_ENV, str(SITE))  # testing/wait.py, for the queue's process and its scripts
    target = await start_target("ScriptQueue:2", own_mosquitto, root, tmp_path, wire_factory)
    wire = target.wire
    await door_classes(wire, every_drop=False)
    s = wire.next_seq()
    await wire.refused("add", command(s, path="set_summary_state.py", location="x"), s, "field 'location'")
    s = wire.next_seq()
    await wire.refused("add", command(s, path="set_summary_state.py", location=2.0), s, "field 'location': 2.0")

    # a script added once, then replayed after 10,000 commands: no second script
    add = wire.next_seq()
    again = await replay_after(wire, "add", command(add, path=WAIT, isStandard=False, config="wait_time: 0.1"), add)
    assert again["ack"] == AckCode.FAILED
    assert "(rule: exactly once)" in again["result"]
    queued = wire.events["queue"][-1]
    assert queued["length"] + queued["pastLength"] + (1 if queued["currentSalIndex"] else 0) == 1

    # the record survives a restart of the queue: the same add, replayed to the new process, is refused
    target.process.close()
    restarted = ComponentProcess(
        "ScriptQueue:2", own_mosquitto.url, root, "--data", str(target.data), "--state", "enabled",
        log=tmp_path / "ScriptQueue-again.log",
    )  # fmt: skip
    acks_before = len(wire.acks[(ME, add)])
    new_pid = restarted.pid
    await until(
        lambda: any(
            e["private_origin"] == new_pid and e["summaryState"] == State.ENABLED for e in wire.events["summaryState"]
        ),
        120,
    )
    await wire.normal()
    await wire.send("add", command(add, path=WAIT, isStandard=False, config="wait_time: 0.1"))
    await until(lambda: len(wire.acks[(ME, add)]) > acks_before, ANSWER_LIMIT_S)
    assert wire.acks[(ME, add)][-1]["ack"] == AckCode.FAILED
    assert "(rule: exactly once)" in wire.acks[(ME, add)][-1]["result"]
    queued = wire.events["queue"][-1]
    assert queued["length"] + queued["pastLength"] + (1 if queued["currentSalIndex"] else 0) == 1
    assert restarted.process.poll() is None
    restarted.close()


async def test_hostile_input_to_the_reduction_service(
    own_mosquitto: MosquittoProcess, root: str, tmp_path: Path, wire_factory: Callable[[str], Any]
) -> None:
    target = await start_target("OCPS:1", own_mosquitto, root, tmp_path, wire_factory)
    wire = target.wire
    await door_classes(wire, every_drop=False)
    s = wire.next_seq()
    config = json.dumps({"product": "x", "begin_mjd": 1, "end_mjd": 2})
    await wire.refused("execute", command(s, pipeline="certify", config=config), s, "field 'product': 'x'")
    s = wire.next_seq()
    await wire.refused("execute", command(s, pipeline="cpVerifyCounts", config='{"planned": ["r"], "groupid": "g"}'),
                       s, "field 'planned/0'")  # fmt: skip

    # a job started once, then its execute replayed after 10,000 commands: no second job
    s = wire.next_seq()
    execute = command(s, pipeline="certify", config=json.dumps({"product": 1, "begin_mjd": 1, "end_mjd": 2}))
    again = await replay_after(wire, "execute", execute, s)
    assert again["ack"] == AckCode.FAILED
    assert "(rule: exactly once)" in again["result"]
    await until(lambda: bool(wire.events["job_result"]), ANSWER_LIMIT_S)
    assert len(JobStore(target.data / "repo" / "jobs.sqlite3").jobs()) == 1
    assert target.alive()
    target.process.close()
