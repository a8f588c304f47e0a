"""What a Rubin client sends is understood: payloads with exactly ts_xml's fields, published with mosquitto_pub.

ScriptQueue:2, ATCamera and ATSpectrograph run as their own processes over Mosquitto. Each
command carries every field Rubin's interface defines for it (tests/data/rubin_fields.json),
with the values Rubin's clients give them — a 400-slot zero-terminated salIndices with its
length, takeImages' keyValueMap, a filter by slot — and each ends COMPLETE. A client that
subscribes only to ScriptQueue/2/evt/script sees every state of every script of a block, in
order, with its timestamps.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from obsq.csc.bus.brokers import MosquittoProcess
from obsq.csc.bus.mqtt import MqttBus
from obsq.csc.bus.url import BrokerUrl
from obsq.csc.clock import LoopClock
from obsq.csc.core.acks import AckCode
from obsq.scripts.library import SITE_ROOTS_ENV
from obsq.scripts.states import ScriptState

from .test_components import until
from .test_hostile import ME, SITE, WAIT, Target, Wire, start_target, wire_factory  # noqa: F401 - the fixture

pytestmark = [pytest.mark.system, pytest.mark.timeout(300)]

RUBIN = json.loads((Path(__file__).resolve().parents[1] / "data" / "rubin_fields.json").read_text())


def rubin_fields(component: str, command: str) -> list[str]:
    return list(RUBIN["components"][component]["commands"]["topics"][command])


def mosquitto_pub(mosquitto: MosquittoProcess, wire: Wire, name: str, fields: dict[str, Any]) -> int:
    """Publish one command as an outside client would; its seqNum."""
    seq = wire.next_seq()
    payload = json.dumps({"private_seqNum": seq, "private_identity": ME, **fields})
    subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(mosquitto.port), "-q", "1",
                    "-t", f"{wire.base}/cmd/{name}", "-m", payload], check=True)  # fmt: skip
    return seq


@pytest.fixture
def pub_or_skip() -> None:
    if not shutil.which("mosquitto_pub"):
        pytest.skip("mosquitto_pub not installed (apt-get install mosquitto-clients)")


@pytest.fixture
def targets() -> Iterator[list[Target]]:
    """The component processes a test starts, stopped at its end whatever happened."""
    started: list[Target] = []
    yield started
    for target in started:
        target.process.close()


async def start(name: str, mosquitto: MosquittoProcess, root: str, tmp_path: Path, make: Callable[[str], Any],
                started: list[Target]) -> Wire:  # fmt: skip
    target = await start_target(name, mosquitto, root, tmp_path, make)
    started.append(target)
    return target.wire


async def test_rubin_shaped_commands_complete(
    own_mosquitto: MosquittoProcess, root: str, tmp_path: Path, wire_factory: Callable[[str], Any],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch, pub_or_skip: None, targets: list[Target],
) -> None:  # fmt: skip
    monkeypatch.setenv(SITE_ROOTS_ENV, str(SITE))
    queue = await start("ScriptQueue:2", own_mosquitto, root, tmp_path, wire_factory, targets)
    camera = await start("ATCamera", own_mosquitto, root, tmp_path, wire_factory, targets)
    spectrograph = await start("ATSpectrograph", own_mosquitto, root, tmp_path, wire_factory, targets)
    dome = await start("ATDome", own_mosquitto, root, tmp_path, wire_factory, targets)

    add = {"isStandard": False, "path": WAIT, "config": "wait_time: 600", "descr": "from a Rubin client",
           "location": 2, "locationSalIndex": 0, "logLevel": 20, "pauseCheckpoint": "", "stopCheckpoint": "",
           "block": "BLOCK-T40_HD104304", "blockSize": 1, "startBlock": True, "executionId": "LVV-E1234"}  # fmt: skip
    assert sorted(add) == sorted(rubin_fields("ScriptQueue", "add"))
    ack = await queue.final_ack(mosquitto_pub(own_mosquitto, queue, "add", add))
    assert ack["ack"] == AckCode.COMPLETE, ack
    index = int(ack["result"])
    await until(lambda: any(e["scriptSalIndex"] == index and e["scriptState"] == ScriptState.RUNNING
                            for e in queue.events["script"]), 120)  # fmt: skip
    shown = [e for e in queue.events["script"] if e["scriptSalIndex"] == index][-1]
    assert (shown["blockId"], shown["executionId"], shown["cmdId"]) == ("BLOCK-T40_HD104304", "LVV-E1234", queue.seq)

    stop = {"length": 1, "salIndices": [index] + [0] * 399, "terminate": False}
    assert sorted(stop) == sorted(rubin_fields("ScriptQueue", "stopScripts"))
    ack = await queue.final_ack(mosquitto_pub(own_mosquitto, queue, "stopScripts", stop))
    assert ack["ack"] == AckCode.COMPLETE, ack

    take = {"numImages": 1, "expTime": 0.0, "shutter": False, "sensors": "",
            "keyValueMap": "imageType: BIAS, groupId: 2026-12-02T10:00:00.000, testType: BIAS, stutterRows: 0, "
                           "stutterNShifts: 0, stutterDelay: 0.0, reason: rubin_wire, program: BLOCK-T40",
            "obsNote": "from a Rubin client"}  # fmt: skip
    assert sorted(take) == sorted(rubin_fields("ATCamera", "takeImages"))
    ack = await camera.final_ack(mosquitto_pub(own_mosquitto, camera, "takeImages", take))
    assert ack["ack"] == AckCode.COMPLETE, ack
    started = camera.events["startIntegration"][-1]
    assert (started["imageType"], started["groupId"]) == ("BIAS", "2026-12-02T10:00:00.000")
    await until(lambda: bool(camera.events["endOfImageTelemetry"]), 30)
    keys = camera.events["endOfImageTelemetry"][-1]["additionalKeys"].split(":")
    assert {"testType", "stutterRows", "imageType", "groupId"} <= set(keys)  # Rubin's keyValueMap comes back

    assert rubin_fields("ATDome", "closeShutter") == []
    ack = await dome.final_ack(mosquitto_pub(own_mosquitto, dome, "closeShutter", {}))
    assert ack["ack"] == AckCode.COMPLETE, ack  # closed already: nothing moves
    ack = await dome.final_ack(mosquitto_pub(own_mosquitto, dome, "moveShutterDropoutDoor", {"open": True}))
    assert ack["ack"] == AckCode.FAILED
    assert "Cannot move the dropout door until the main door is fully open" in ack["result"]

    change = {"filter": 1, "name": ""}
    assert sorted(change) == sorted(rubin_fields("ATSpectrograph", "changeFilter"))
    ack = await spectrograph.final_ack(mosquitto_pub(own_mosquitto, spectrograph, "changeFilter", change))
    assert ack["ack"] == AckCode.COMPLETE, ack
    assert spectrograph.events["reportedFilterPosition"][-1]["slot"] == 1
    both = await spectrograph.final_ack(
        mosquitto_pub(own_mosquitto, spectrograph, "changeDisperser", {"disperser": 2, "name": "empty_1"})
    )
    assert both["ack"] == AckCode.FAILED
    assert "give a name or a slot (disperser), not both" in both["result"]


async def test_a_display_sees_every_state_of_every_script(
    own_mosquitto: MosquittoProcess, root: str, tmp_path: Path, wire_factory: Callable[[str], Any],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch, targets: list[Target],
) -> None:  # fmt: skip
    """Only ScriptQueue/2/evt/script is followed while a block of three scripts runs."""
    monkeypatch.setenv(SITE_ROOTS_ENV, str(SITE))
    queue = await start("ScriptQueue:2", own_mosquitto, root, tmp_path, wire_factory, targets)
    display = MqttBus(BrokerUrl.parse(own_mosquitto.url), clock=LoopClock())  # a display: this one topic only
    await display.start()
    seen: list[dict[str, Any]] = []
    try:
        await display.subscribe(f"{root}/ScriptQueue/2/evt/script", lambda m: seen.append(json.loads(m.payload)))
        block = {"name": "display", "program": "BLOCK-T2", "scripts": [
            {"name": WAIT, "standard": False, "parameters": {"wait_time": 0.5}} for _ in range(3)]}  # fmt: skip
        seq = queue.next_seq()
        await queue.send("addBlock", json.dumps({"private_seqNum": seq, "private_identity": ME,
                                                 "id": json.dumps(block)}).encode())  # fmt: skip
        ack = await queue.final_ack(seq)
        assert ack["ack"] == AckCode.COMPLETE, ack
        indices = json.loads(ack["result"])

        def done() -> bool:
            ends = {e["scriptSalIndex"] for e in seen if e["scriptState"] == ScriptState.DONE
                    and e["timestampProcessEnd"] > 0}  # fmt: skip
            return ends >= set(indices)

        await until(done, 120)
    finally:
        await display.close()
    for index in indices:
        events = [e for e in seen if e["scriptSalIndex"] == index]
        states = [ScriptState(e["scriptState"]) for e in events]
        firsts = list(dict.fromkeys(states))  # first appearance of each, in order
        wanted = [ScriptState.CONFIGURED, ScriptState.RUNNING, ScriptState.ENDING, ScriptState.DONE]
        assert [s for s in firsts if s in wanted] == wanted, states
        processes = [e["processState"] for e in events]
        assert processes == sorted(processes), processes  # LOADING, CONFIGURED, RUNNING, DONE: never back
        last = events[-1]
        assert 0 < last["timestampProcessStart"] <= last["timestampConfigureStart"] <= last["timestampConfigureEnd"]
        assert last["timestampConfigureEnd"] <= last["timestampRunStart"] <= last["timestampProcessEnd"]
        assert (last["blockId"], last["blockSize"]) == ("BLOCK-T2", 3)


async def test_rubins_add_block_to_the_scheduler_runs_the_block(
    own_mosquitto: MosquittoProcess, root: str, tmp_path: Path, wire_factory: Callable[[str], Any],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch, pub_or_skip: None, targets: list[Target],
) -> None:  # fmt: skip
    """Scheduler:2 addBlock with exactly Rubin's fields, by mosquitto_pub: validated, queued, followed to its end."""
    monkeypatch.setenv(SITE_ROOTS_ENV, str(SITE))
    await start("ScriptQueue:2", own_mosquitto, root, tmp_path, wire_factory, targets)
    scheduler = await start("Scheduler:2", own_mosquitto, root, tmp_path, wire_factory, targets)
    block = {"name": "rubin", "program": "BLOCK-T41", "scripts": [
        {"name": WAIT, "standard": False, "parameters": {"wait_time": 0.5}} for _ in range(2)]}  # fmt: skip
    add = {"id": json.dumps(block), "executionId": "BL41_O_20261207_000001", "override": "", "failureStrategy": 1}
    assert sorted(add) == sorted(rubin_fields("Scheduler", "addBlock"))
    ack = await scheduler.final_ack(mosquitto_pub(own_mosquitto, scheduler, "addBlock", add))
    assert ack["ack"] == AckCode.COMPLETE, ack
    assert len(json.loads(ack["result"])) == 2
    await until(lambda: any(s["status"] in ("COMPLETED", "ERROR") for s in scheduler.events["blockStatus"]), 120)
    statuses = [(s["id"], s["status"]) for s in scheduler.events["blockStatus"]]
    assert statuses[-1] == ("BLOCK-T41", "COMPLETED"), statuses
    assert ("BLOCK-T41", "STARTED") in statuses
    bad = dict(add, id=json.dumps({**block, "scripts": [{"name": WAIT, "standard": False,
                                                          "parameters": {"wait_time": -1}}]}))  # fmt: skip
    refused = await scheduler.final_ack(mosquitto_pub(own_mosquitto, scheduler, "addBlock", bad))
    assert refused["ack"] == AckCode.FAILED
    assert "wait_time" in refused["result"]


SALOBJ_PRIVATE = {"private_sndStamp": 1.7e9, "private_rcvStamp": 0.0, "private_efdStamp": 1.7e9,
                  "private_kafkaStamp": 1.7e9, "private_revCode": "c2b1a6e3", "private_origin": 4242}  # fmt: skip
INTERFACES = Path(__file__).resolve().parents[2] / "schemas" / "interfaces"


def example(schema: dict[str, Any]) -> Any:
    """A value the schema takes: its default, its first choice, its least, an empty or shortest one."""
    if "default" in schema:
        return schema["default"]
    if "enum" in schema:
        return schema["enum"][0]
    if "anyOf" in schema:
        return example(schema["anyOf"][0])
    kind = schema.get("type", "string")
    kind = kind[0] if isinstance(kind, list) else kind
    if kind in ("number", "integer"):
        least = schema.get("minimum", schema.get("exclusiveMinimum", 0) + (1 if "exclusiveMinimum" in schema else 0))
        return int(least) if kind == "integer" else float(least)
    if kind == "boolean":
        return False
    if kind == "array":
        return [example(schema.get("items", {}))] * schema.get("minItems", 0)
    if kind == "object":
        return least_payload(schema)
    return "x" * schema.get("minLength", 0)


def least_payload(schema: dict[str, Any]) -> dict[str, Any]:
    properties = schema.get("properties", {})
    return {name: example(properties.get(name, {})) for name in schema.get("required", [])}


@pytest.mark.timeout(600)
async def test_every_command_takes_rubins_salindex_and_salobjs_private_fields(
    own_mosquitto: MosquittoProcess, root: str, tmp_path: Path, wire_factory: Callable[[str], Any],  # noqa: F811
    pub_or_skip: None, targets: list[Target],
) -> None:  # fmt: skip
    """Every command of every component, as salobj 8 writes it (salIndex on an indexed one), from mosquitto_pub.

    The least payload its schema takes; whatever the command then does (refuse a state, fail on a value),
    its first answer never refuses the salIndex or a private field.
    """
    sent = 0
    for name in ("ScriptQueue:2", "ATDome", "ATMCS", "ATCamera", "ATSpectrograph", "ATWhiteLight"):
        folder = tmp_path / name.replace(":", "-")
        folder.mkdir()
        wire = await start(name, own_mosquitto, root, folder, wire_factory, targets)
        interface = json.loads((INTERFACES / f"{wire.target.name}.json").read_text())
        indexed = {"salIndex": wire.target.index} if interface.get("indexed") else {}
        generic = json.loads((INTERFACES / "generics.json").read_text())["common"]["commands"]["setLogLevel"]
        for command, spec in [*sorted(interface["commands"].items()), ("setLogLevel", generic)]:
            fields = least_payload(spec.get("schema", spec)) | indexed | SALOBJ_PRIVATE
            seq = mosquitto_pub(own_mosquitto, wire, command, fields)
            await until(lambda w=wire, s=seq: bool(w.acks.get((ME, s))), 60)
            first = wire.acks[(ME, seq)][0]
            refusal = str(first["result"])
            assert "salIndex" not in refusal, (name, command, first)
            assert "private_" not in refusal, (name, command, first)
            assert "is not allowed" not in refusal, (name, command, first)
            sent += 1
    assert sent > 40
