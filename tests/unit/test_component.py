"""BaseCsc and Remote on the memory bus with virtual time."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from obsq.csc.bus.memory import MemoryBroker, MemoryBus
from obsq.csc.clock import ManualClock
from obsq.csc.component import AckError, AckTimeoutError, CommandLinkLostError, Remote
from obsq.csc.component.reader import LIFE_GRACE_S, UNSEEN_S
from obsq.csc.component.remote import LINK_GRACE_S
from obsq.csc.core.acks import AckCode
from obsq.csc.core.errors import ExpectedError, ValidationError
from obsq.csc.core.states import State
from obsq.csc.testcsc import TestCsc
from obsq.csc.testing import check_state_conformance, wait_state


@dataclass
class Rig:
    broker: MemoryBroker
    clock: ManualClock
    csc: TestCsc
    csc_bus: MemoryBus
    remote: Remote
    remote_bus: MemoryBus
    root: str


@pytest.fixture
async def rig(root: str, tmp_path: Path) -> AsyncIterator[Rig]:
    broker = MemoryBroker()
    clock = ManualClock()
    csc_bus, remote_bus = broker.client("csc"), broker.client("remote")
    (tmp_path / "Test").mkdir()
    (tmp_path / "Test" / "_init.yaml").write_text("string0: from-init\n")
    (tmp_path / "Test" / "fast.yaml").write_text("telemetry_interval_s: 0.5\nint0: 7\n")
    (tmp_path / "Test" / "broken.yaml").write_text("int0: not-a-number\n")
    (tmp_path / "Test" / "unknown.yaml").write_text("colour: red\n")
    (tmp_path / "Test" / "bad.yaml").write_text("int0: [\n")
    csc = TestCsc(index=1, bus=csc_bus, clock=clock, root=root, config_root=tmp_path)
    await csc_bus.start()
    await remote_bus.start()
    async with csc:
        remote = Remote(remote_bus, "Test:1", clock=clock, root=root, telemetry=True)
        async with remote:
            yield Rig(broker, clock, csc, csc_bus, remote, remote_bus, root)
    await csc_bus.close()
    await remote_bus.close()


async def test_state_conformance(rig: Rig) -> None:
    checked = await check_state_conformance(rig.csc, rig.remote)
    # 4 states x 5 transition commands (less exitControl from STANDBY, done last) + own commands
    assert len([c for c in checked if c[1] in ("start", "enable", "disable", "standby", "exitControl")]) == 20
    assert rig.csc.summary_state == State.OFFLINE
    assert rig.remote.event("liveness").get() == {"alive": False, "reason": "exited"}


async def test_late_joiner_reads_current_state_and_versions(rig: Rig) -> None:
    late = Remote(rig.broker.client("late"), "Test:1", clock=rig.clock, root=rig.root)
    await late.bus.start()
    async with late:
        assert await late.event("summaryState").aget(timeout_s=1) == {"summaryState": int(State.STANDBY)}
        assert (await late.event("softwareVersions").aget(timeout_s=1))["cscVersion"]
        mode = await late.event("simulationMode").aget(timeout_s=1)
        assert mode == {"mode": 0, "clockSpeed": 1.0, "clockEpoch": 0.0}  # obsq: the clock's speed and epoch too
    await late.bus.close()


async def test_start_applies_site_files_and_override(rig: Rig) -> None:
    await rig.remote.command("start", {"configurationOverride": "fast.yaml"})
    applied = await rig.remote.event("configurationApplied").aget(timeout_s=1)
    assert applied["configurations"] == "_init.yaml,fast.yaml"
    assert applied["schemaVersion"] == "v1"
    assert rig.csc.scalars["string0"] == "from-init"
    assert rig.csc.scalars["int0"] == 7
    assert rig.csc.telemetry_interval_s == 0.5


async def test_configurations_available_lists_the_overrides_start_may_name(rig: Rig, tmp_path: Path) -> None:
    available = await rig.remote.event("configurationsAvailable").aget(timeout_s=1)
    assert available["overrides"] == "bad.yaml,broken.yaml,fast.yaml,unknown.yaml"  # not _init.yaml
    assert available["url"] == (tmp_path / "Test").resolve().as_uri()
    assert available["schemaVersion"] == "v1"
    (tmp_path / "Test" / "slow.yaml").write_text("telemetry_interval_s: 5\n")
    await rig.remote.command("start", {"configurationOverride": "slow.yaml"})
    await rig.remote.command("standby")  # back in STANDBY: the folder is read again
    assert "slow.yaml" in rig.remote.event("configurationsAvailable").get()["overrides"]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("broken.yaml", "field 'int0': 'not-a-number' is not of type 'integer'"),
        ("unknown.yaml", "field 'colour' is not allowed"),
        ("bad.yaml", "bad.yaml is not valid YAML: line 2"),
        ("missing.yaml", "'missing.yaml' not found"),
    ],
)
async def test_bad_configuration_fails_start_and_stays_standby(rig: Rig, override: str, message: str) -> None:
    with pytest.raises(AckError, match=message) as info:
        await rig.remote.command("start", {"configurationOverride": override})
    assert info.value.ack.ack == AckCode.FAILED
    assert rig.csc.summary_state == State.STANDBY


async def test_command_in_wrong_state_names_the_state(rig: Rig) -> None:
    with pytest.raises(AckError, match="setScalars not allowed in state STANDBY"):
        await rig.remote.command("setScalars", {"int0": 1})


async def test_set_scalars_publishes_event_and_telemetry(rig: Rig) -> None:
    await rig.remote.command("start")
    await rig.remote.command("enable")
    await rig.remote.command("setScalars", {"int0": 5, "string0": "hi"})
    assert (await rig.remote.event("scalars").aget(timeout_s=1))["int0"] == 5
    telemetry = rig.remote.telemetry("scalars")
    await rig.clock.advance(1.0)
    assert (await telemetry.next(flush=False, timeout_s=1))["string0"] in ("hi", "from-init")


async def test_in_progress_extends_the_deadline(rig: Rig) -> None:
    await rig.remote.command("start")
    await rig.remote.command("enable")
    task = asyncio.create_task(rig.remote.command("wait", {"duration": 100}, timeout_s=5))
    await rig.clock.advance(50)
    assert not task.done()  # past the caller's 5 s, but INPROGRESS said 100 s
    await rig.clock.advance(50)
    ack = await task
    assert (ack.ack, ack.result) == (AckCode.COMPLETE, "waited 100 s")


async def test_wait_done_false_returns_in_progress(rig: Rig) -> None:
    await rig.remote.command("start")
    await rig.remote.command("enable")
    ack = await rig.remote.command("wait", {"duration": 10}, wait_done=False)
    assert ack.ack == AckCode.INPROGRESS
    assert ack.timeout_s == 10
    await rig.clock.advance(10)


async def test_no_ack_times_out_with_noack(rig: Rig) -> None:
    nobody = Remote(rig.remote_bus, "Test:2", clock=rig.clock, root=rig.root)
    async with nobody:
        task = asyncio.create_task(nobody.command("enable", timeout_s=2))
        await rig.clock.advance(2 + LIFE_GRACE_S)
        assert not task.done()  # a component never heard from (no heartbeat at all) is given UNSEEN_S
        await rig.clock.advance(UNSEEN_S)
        with pytest.raises(AckTimeoutError, match="no heartbeat of Test:2 was seen") as info:
            await task
    assert info.value.ack.ack == AckCode.NOACK


async def test_command_in_flight_when_the_link_drops_is_answered_after_the_reconnect(rig: Rig) -> None:
    await rig.remote.command("start")
    await rig.remote.command("enable")
    in_flight = asyncio.create_task(rig.remote.command("wait", {"duration": 30}))
    await rig.clock.settle()
    rig.remote_bus.drop()
    await rig.clock.advance(31)  # the component finished it; the COMPLETE ack was lost with the link
    sent_while_down = asyncio.create_task(rig.remote.command("setScalars", {"int0": 7}))
    await rig.clock.settle()
    assert not in_flight.done()
    assert not sent_while_down.done()
    await rig.remote_bus.reconnect()
    await rig.clock.settle()
    # sent again with the same bytes, answered with the ack it had: not run again (that would take 30 s more)
    assert in_flight.done()
    assert (await in_flight).result == "waited 30 s"
    assert (await sent_while_down).ack == AckCode.COMPLETE
    assert rig.remote.event("scalars").get()["int0"] == 7


async def test_link_down_past_the_grace_fails_the_command_by_name(rig: Rig) -> None:
    await rig.remote.command("start")
    rig.remote_bus.drop()
    task = asyncio.create_task(rig.remote.command("enable"))
    await rig.clock.advance(LINK_GRACE_S + 1)
    with pytest.raises(CommandLinkLostError, match="has been down for 60 s; it may or may not have run"):
        await task
    await rig.remote_bus.reconnect()


async def test_fault_then_standby_recovers(rig: Rig) -> None:
    await rig.remote.command("start")
    await rig.remote.command("enable")
    await rig.remote.command("fault", {"code": 42, "report": "lamp exploded"})
    await wait_state(rig.remote, State.FAULT)
    assert (await rig.remote.event("errorCode").aget(timeout_s=1))["errorCode"] == 42
    with pytest.raises(AckError, match=r"FAULT \(errorCode=42: lamp exploded\)"):
        await rig.remote.command("setScalars", {})
    await rig.remote.command("standby")
    await rig.clock.settle()
    assert rig.remote.event("errorCode").get() == {"errorCode": 0, "errorReport": "", "traceback": ""}


async def test_a_device_that_faults_during_start_leaves_the_component_in_fault_naming_why(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def connect_fails() -> None:
        if rig.csc.summary_state == State.DISABLED:
            await rig.csc.fault(11, "indi://127.0.0.1:7624: the server closed the connection")
            raise ExpectedError("connecting failed")

    monkeypatch.setattr(rig.csc, "handle_summary_state", connect_fails)
    with pytest.raises(AckError, match="start failed and the component went to FAULT: connecting failed"):
        await rig.remote.command("start")
    await wait_state(rig.remote, State.FAULT)
    assert rig.remote.event("errorCode").get()["errorReport"].endswith("the server closed the connection")
    monkeypatch.undo()
    await rig.remote.command("standby")
    await rig.remote.command("start")
    assert rig.csc.summary_state == State.DISABLED


async def test_invalid_commands_fail_and_component_keeps_serving(rig: Rig) -> None:
    topic = f"{rig.root}/Test/1/cmd"
    acks: list[dict[str, object]] = []
    await rig.remote_bus.subscribe(f"{rig.root}/Test/1/ackcmd", lambda m: acks.append(json.loads(m.payload)))

    def command(seq: int, **fields: object) -> bytes:
        return json.dumps({"private_seqNum": seq, "private_identity": "fuzzer", **fields}).encode()

    await rig.remote_bus.publish(f"{topic}/start", b"{not json", qos=1)
    await rig.remote_bus.publish(f"{topic}/start", b"x" * 2_000_000, qos=1)
    await rig.remote_bus.publish(f"{topic}/nosuch", command(1), qos=1)
    await rig.remote_bus.publish(f"{topic}/wait", command(2, duration=-1), qos=1)
    await rig.remote_bus.publish(f"{topic}/wait", command(3, duration="long"), qos=1)
    await rig.remote_bus.publish(f"{topic}/setScalars", command(4, colour=1), qos=1)
    await rig.remote_bus.publish(f"{topic}/start", command(5, configurationOverride=3), qos=1)
    await rig.clock.settle(50)
    results = {a["private_seqNum"]: (a["ack"], a["result"]) for a in acks}
    assert set(results) == {1, 2, 3, 4, 5}  # malformed and oversize ones are dropped (and logged)
    assert all(code == AckCode.FAILED for code, _ in results.values())
    assert "Test has no command 'nosuch'" in str(results[1][1])
    assert "field 'duration': -1 is less than the minimum of 0 (rule: minimum)" in str(results[2][1])
    assert "field 'duration': 'long' is not of type 'number' (rule: type)" in str(results[3][1])
    assert "field 'colour' is not allowed (rule: additionalProperties)" in str(results[4][1])
    assert "field 'configurationOverride'" in str(results[5][1])
    logs = [rig.remote.event("logMessage").get()]
    assert logs[0] is not None
    # still serving
    assert (await rig.remote.command("start")).ack == AckCode.COMPLETE


async def test_rubins_salobj_payloads_are_taken_as_they_are(rig: Rig) -> None:
    """salIndex (on every topic of an indexed component) and salobj 8's private fields: read, checked, not refused."""
    topic = f"{rig.root}/Test/1/cmd"
    acks: list[dict[str, object]] = []
    await rig.remote_bus.subscribe(f"{rig.root}/Test/1/ackcmd", lambda m: acks.append(json.loads(m.payload)))
    salobj = {"private_sndStamp": 1.7e9, "private_rcvStamp": 0.0, "private_efdStamp": 1.7e9,
              "private_kafkaStamp": 1.7e9, "private_revCode": "c2b1a6e3", "private_origin": 4242}  # fmt: skip

    def command(seq: int, **fields: object) -> bytes:
        return json.dumps({"private_seqNum": seq, "private_identity": "user@rubin", **salobj, **fields}).encode()

    await rig.remote_bus.publish(f"{topic}/start", command(1, salIndex=1, configurationOverride=""), qos=1)
    await rig.remote_bus.publish(f"{topic}/wait", command(2, salIndex=2, duration=0.0), qos=1)
    await rig.remote_bus.publish(f"{topic}/wait", command(3, salIndex="1", duration=0.0), qos=1)
    await rig.remote_bus.publish(f"{topic}/wait", command(4, salIndex=1, private_revCode=7, duration=0.0), qos=1)
    await rig.clock.settle(50)
    results = {a["private_seqNum"]: (a["ack"], a["result"]) for a in acks}
    assert results[1][0] == AckCode.COMPLETE
    assert rig.csc.summary_state == State.DISABLED
    assert results[2][0] == AckCode.FAILED
    assert str(results[2][1]).endswith("salIndex 2 is not this component's index 1 (Test:1) (rule: salIndex is the "
                                       "topic's index)")  # fmt: skip
    assert "field 'salIndex' must be an integer" in str(results[3][1])
    assert "field 'private_revCode' must be a string" in str(results[4][1])


async def test_duplicate_delivery_is_executed_once(rig: Rig) -> None:
    acks: list[dict[str, object]] = []
    await rig.remote_bus.subscribe(f"{rig.root}/Test/1/ackcmd", lambda m: acks.append(json.loads(m.payload)))
    payload = json.dumps({"private_seqNum": 11, "private_identity": "dup", "private_origin": 5}).encode()
    await rig.remote_bus.publish(f"{rig.root}/Test/1/cmd/start", payload, qos=1)
    await rig.remote_bus.publish(f"{rig.root}/Test/1/cmd/start", payload, qos=1)  # in flight: one answer
    await rig.clock.settle(50)
    await rig.remote_bus.publish(f"{rig.root}/Test/1/cmd/start", payload, qos=1)  # done: the same answer
    await rig.clock.settle(50)
    # run once; the repeat is answered with the same ack (a second start would have FAILED)
    assert [a["ack"] for a in acks] == [AckCode.COMPLETE, AckCode.COMPLETE]
    assert acks[0]["result"] == acks[1]["result"]
    assert rig.csc.summary_state == State.DISABLED


async def test_remote_validates_before_sending(rig: Rig) -> None:
    with pytest.raises(ValidationError, match="Test command wait: field 'duration' is required"):
        await rig.remote.command("wait", {})
    with pytest.raises(ValidationError, match="Test has no command 'fly'"):
        await rig.remote.command("fly")


async def test_set_log_level_filters_log_messages(rig: Rig) -> None:
    await rig.remote.command("setLogLevel", {"level": 99})  # any integer, as salobj takes it
    assert rig.remote.event("logLevel").get()["level"] == 99
    await rig.remote.command("setLogLevel", {"level": 40})
    assert (await rig.remote.event("logLevel").aget(timeout_s=1))["level"] == 40
    reader = rig.remote.event("logMessage")
    reader.flush()
    await rig.remote.command("start")  # logs state_changed at INFO: filtered out now
    await rig.clock.settle(50)
    assert "state_changed" not in reader.get().get("message", "")
    await rig.remote.command("setLogLevel", {"level": 20})
    await rig.remote.command("enable")
    message = await reader.next(flush=False, timeout_s=1)
    assert "state_changed" in message["message"]
    assert "new=ENABLED" in message["message"]


async def test_event_callback_sees_each_new_sample_once(rig: Rig) -> None:
    seen: list[int] = []
    rig.remote.event("scalars").callback = lambda envelope: seen.append(envelope.data["int0"])
    await rig.remote.command("start")
    await rig.remote.command("enable")
    for value in (1, 2, 3):
        await rig.remote.command("setScalars", {"int0": value})
    await rig.clock.settle()
    assert seen == [1, 2, 3]


async def test_heartbeat_every_second_and_will_on_kill(rig: Rig) -> None:
    heartbeats = rig.remote.event("heartbeat")
    heartbeats.flush()
    await rig.clock.advance(3)
    count = 0
    while True:
        try:
            await heartbeats.next(flush=False, timeout_s=0)
        except TimeoutError:
            break
        count += 1
    assert count == 3
    rig.csc_bus.kill()
    await rig.clock.settle()
    assert rig.remote.event("liveness").get() == {"alive": False, "reason": "connection lost"}
    await rig.csc_bus.reconnect()


async def test_reconnect_republishes_retained_state(rig: Rig) -> None:
    await rig.remote.command("start")
    rig.csc_bus.drop()
    rig.broker.retained.clear()  # a broker restart without persistence loses retained messages
    await rig.csc_bus.reconnect()
    await rig.clock.settle(50)
    assert rig.broker.retained  # republished
    late = Remote(rig.broker.client("late"), "Test:1", clock=rig.clock, root=rig.root)
    await late.bus.start()
    async with late:
        assert await late.event("summaryState").aget(timeout_s=1) == {"summaryState": int(State.DISABLED)}
        assert (await late.event("liveness").aget(timeout_s=1))["alive"] is True
    await late.bus.close()


async def test_an_unanswered_command_says_whether_the_target_is_live(rig: Rig) -> None:
    await rig.clock.advance(1)  # a heartbeat
    rig.broker.deny(f"{rig.root}/Test/1/cmd/#")  # as a broker's ACL drops what this user may not send
    task = asyncio.create_task(rig.remote.command("start", timeout_s=3600, first_ack_s=2))
    await rig.clock.advance(3)
    with pytest.raises(AckTimeoutError, match="no ack from Test:1 although its heartbeats go on") as refused:
        await task
    assert "is this user allowed to command it" in str(refused.value)
    assert "check max_queued_messages" in str(refused.value)  # the broker setting a silent drop points at
    nobody = Remote(rig.remote_bus, "Test:7", clock=rig.clock, root=rig.root)
    async with nobody:
        live = asyncio.create_task(nobody.wait_live(2))
        await rig.clock.advance(3)
        assert not await live
        task = asyncio.create_task(nobody.command("start", first_ack_s=2))
        await rig.clock.advance(3)
        with pytest.raises(AckTimeoutError, match="no heartbeat of Test:7 was seen: is it running"):
            await task


async def test_a_cmd_ack_of_sals_is_good_and_ends_nothing(rig: Rig) -> None:
    """SAL's CMD_ACK (300): a Rubin component may send it first; the command goes on to its real answer."""
    from obsq.csc.core.acks import AckCode as Code
    from obsq.csc.core.topics import TopicKind

    assert Code(300) is Code.ACK
    assert Code.ACK.is_good
    assert not Code.ACK.is_final
    rig.remote.interface.validate(TopicKind.ACK, "", {"ack": 300, "identity": "x", "command": "start"})
