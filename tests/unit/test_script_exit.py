"""A closed script ends even when one of its tasks swallows its cancellation (issue 22: script 200044)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from obsq.csc.bus.memory import MemoryBroker, MemoryBus
from obsq.csc.clock import ManualClock
from obsq.csc.component.base import CANCEL_AGAIN_S
from obsq.scripts.base import BaseScript


class SwallowingBus(MemoryBus):
    """A memory bus whose next heartbeat publish swallows one cancellation once armed.

    As Python 3.11's `asyncio.wait_for` does in aiomqtt's publish when the cancellation lands
    just as the PUBACK has come: the publish returns, the cancellation is gone.
    """

    armed = False

    async def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        await super().publish(topic, payload, qos=qos, retain=retain)
        if self.armed and topic.endswith("/evt/heartbeat"):
            self.armed = False
            # the PUBACK, being waited for, comes with the cancellation: the result wins, the cancellation is lost
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.get_running_loop().create_future()


class Quiet(BaseScript):
    """A script that is never run: closed as it waits."""


async def test_a_task_that_swallows_its_cancellation_does_not_keep_a_closed_script(
    capsys: pytest.CaptureFixture[str],
) -> None:
    clock = ManualClock()
    bus = SwallowingBus(MemoryBroker(), "Script-1")
    script = Quiet(index=1, bus=bus, clock=clock, root="exit", heartbeat_s=5.0)
    await bus.start()
    runner = asyncio.create_task(script.run())
    await clock.advance(0)
    assert script.started.is_set()
    bus.armed = True
    await clock.advance(5.0)  # the next heartbeat is published and waits for its PUBACK
    script.close()
    await clock.advance(CANCEL_AGAIN_S / 2)
    assert not runner.done()  # the heartbeat loop swallowed the cancellation and beats on
    await clock.advance(CANCEL_AGAIN_S)
    await asyncio.wait_for(runner, 1)  # cancelled again: the script has ended
    await bus.close()
    said = [line for line in capsys.readouterr().err.splitlines() if "cancelled_again" in line]
    assert len(said) == 1
    assert "tasks=Script:1.heartbeat" in said[0]  # what hung is named
