"""The bring-up: ready on what the bus shows; a member that dies or stays silent is named with its log."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from obsq.csc.bus.brokers import MosquittoProcess
from obsq.csc.bus.mqtt import MqttBus
from obsq.csc.bus.url import BrokerUrl
from obsq.csc.clock import LoopClock
from obsq.csc.core.states import State
from obsq.csc.core.topics import ComponentId
from obsq.csc.observatory import BringUpError, Observatory

from .test_components import until

pytestmark = [pytest.mark.system, pytest.mark.timeout(300)]

CLOCK = LoopClock()


async def bring_up(url: str, observatory: Observatory) -> None:
    bus = MqttBus(BrokerUrl.parse(url), clock=CLOCK)
    await bus.start()
    try:
        async with observatory.running(bus, CLOCK):
            pass
    finally:
        await bus.close()


async def test_ready_members_then_a_clean_stop(mosquitto: MosquittoProcess, root: str, tmp_path: Path) -> None:
    lines: list[str] = []
    members = [(ComponentId("ATDome"), State.ENABLED), (ComponentId("OCPS", 1), State.STANDBY)]
    observatory = Observatory(BrokerUrl.parse(mosquitto.url), root, tmp_path, 600, members, report=lines.append)
    await bring_up(mosquitto.url, observatory)
    assert all(
        child.process is not None and child.process.returncode is not None for child in observatory.children.values()
    )
    assert not [line for line in lines if "died" in line]


async def test_a_member_that_dies_while_starting_is_named_with_its_log(
    mosquitto: MosquittoProcess, root: str, tmp_path: Path
) -> None:
    (tmp_path / "registry.sqlite3").mkdir(parents=True)  # the camera cannot open its registry: ENABLE fails
    members = [(ComponentId("ATDome"), State.ENABLED), (ComponentId("ATCamera"), State.ENABLED)]
    observatory = Observatory(BrokerUrl.parse(mosquitto.url), root, tmp_path, 600, members, report=lambda _: None)
    with pytest.raises(BringUpError, match=r"ATCamera \(pid \d+\) exited with status 1 while starting") as info:
        await bring_up(mosquitto.url, observatory)
    assert "ATCamera.log" in str(info.value)
    assert "  | " in str(info.value)  # its last lines are quoted


async def test_a_member_that_stays_silent_is_named(mosquitto: MosquittoProcess, root: str, tmp_path: Path) -> None:
    members = [(ComponentId("ATMCS"), State.ENABLED)]
    observatory = Observatory(
        BrokerUrl.parse(mosquitto.url), root, tmp_path, 600, members, report=lambda _: None, silent_limit_s=2.0
    )

    async def freeze() -> None:  # stop the process before it can say anything: alive, silent, using no CPU
        await until(lambda: bool(observatory.children) and observatory.children[ComponentId("ATMCS")].pid is not None)
        os.kill(observatory.children[ComponentId("ATMCS")].pid or 0, signal.SIGSTOP)

    freezer = asyncio.create_task(freeze())
    try:
        with pytest.raises(BringUpError, match=r"ATMCS \(pid \d+\) is alive but silent: no heartbeat and no CPU"):
            await bring_up(mosquitto.url, observatory)
    finally:
        await freezer
        child = observatory.children[ComponentId("ATMCS")]
        if child.process is not None and child.process.returncode is None:
            os.kill(child.process.pid, signal.SIGCONT)
