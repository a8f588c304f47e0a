"""Retained commands are not commands, and a closed component always ends (issue 23)."""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest

from obsq.csc.bus.memory import MemoryBroker, MemoryBus
from obsq.csc.clock import ManualClock
from obsq.csc.component import Remote
from obsq.csc.component.base import CANCEL_AGAIN_S
from obsq.csc.core.states import State
from obsq.csc.testcsc import TestCsc


def command(seq_num: int, **data: object) -> bytes:
    """A command as a plain MQTT client sends it (the README's mosquitto_pub payload)."""
    return json.dumps({"private_seqNum": seq_num, "private_identity": "careless@laptop", **data}).encode()


async def test_a_retained_command_is_ignored_at_start_and_logged_once(
    root: str, capsys: pytest.CaptureFixture[str]
) -> None:
    broker, clock = MemoryBroker(), ManualClock()
    careless = broker.client("careless")
    await careless.start()
    topic = f"{root}/Test/4/cmd/exitControl"
    await careless.publish(topic, command(1), retain=True)
    await careless.publish(f"{root}/Test/4/cmd/setLogLevel", command(2, level=10), retain=True)
    for _ in range(2):  # two starts of the component: neither runs what the broker kept
        bus = broker.client("csc")
        csc = TestCsc(index=4, bus=bus, clock=clock, root=root)
        await bus.start()
        async with csc:
            await clock.advance(1.0)
            assert csc.summary_state == State.STANDBY
            assert csc._log_level == 20  # setLogLevel(10) was not run
        await bus.close()
    said = [line for line in capsys.readouterr().err.splitlines() if "retained_command_ignored" in line]
    assert len(said) == 4  # once per topic and start
    assert any(f"mosquitto_pub -r -n -t '{topic}'" in line for line in said)  # how to clear it
    await careless.close()


async def test_a_command_published_live_with_the_retain_flag_still_runs(root: str) -> None:
    """A subscriber is handed a live message without the retain flag: a careless `-r` runs once, as sent."""
    broker, clock = MemoryBroker(), ManualClock()
    bus, careless = broker.client("csc"), broker.client("careless")
    csc = TestCsc(index=4, bus=bus, clock=clock, root=root)
    await bus.start()
    await careless.start()
    async with csc:
        await careless.publish(f"{root}/Test/4/cmd/start", command(1), retain=True)
        await clock.advance(1.0)
        assert csc.summary_state == State.DISABLED
    await bus.close()
    await careless.close()


class SwallowingBus(MemoryBus):
    """A memory bus whose publishes, once armed, swallow one cancellation each (Python 3.11's wait_for in aiomqtt)."""

    armed = False

    async def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        await super().publish(topic, payload, qos=qos, retain=retain)
        if self.armed and "/evt/" in topic and not topic.endswith("/evt/liveness"):
            self.armed = False
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.get_running_loop().create_future()


async def test_exit_control_ends_the_component_even_when_a_task_swallows_its_cancellation(
    root: str, capsys: pytest.CaptureFixture[str]
) -> None:
    broker, clock = MemoryBroker(), ManualClock()
    bus = SwallowingBus(broker, "csc")
    remote_bus = broker.client("remote")
    csc = TestCsc(index=4, bus=bus, clock=clock, root=root, heartbeat_s=5.0)
    await bus.start()
    await remote_bus.start()
    runner = asyncio.create_task(csc.run())
    await clock.advance(0)
    async with Remote(remote_bus, "Test:4", clock=clock, root=root) as remote:
        bus.armed = True
        await clock.advance(5.0)  # the heartbeat is published and waits for its PUBACK
        await remote.command("exitControl", timeout_s=10)
        await clock.advance(CANCEL_AGAIN_S / 2)
        assert not runner.done()  # the heartbeat loop swallowed its cancellation
        await clock.advance(CANCEL_AGAIN_S)
        await asyncio.wait_for(runner, 1)
    assert csc.summary_state == State.OFFLINE
    assert any("cancelled_again" in line for line in capsys.readouterr().err.splitlines())
    await bus.close()
    await remote_bus.close()
