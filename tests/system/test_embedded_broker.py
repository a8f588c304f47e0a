"""The embedded broker (`obsq broker`, amqtt) prints nothing while clients come and go, nor at Ctrl-C.

amqtt 0.12.1 printed "dictionary changed size during iteration" tracebacks whenever a client
connected while others subscribed or left (issue 22 item 7); csc/bus/brokers.py works around it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path

import pytest

from obsq.csc.bus.base import Message
from obsq.csc.bus.mqtt import MqttBus
from obsq.csc.bus.url import BrokerUrl
from obsq.csc.clock import LoopClock
from obsq.csc.core.errors import BusDisconnectedError

from .conftest import EmbeddedBrokerProcess

pytestmark = pytest.mark.system

VISITORS = 150
AT_ONCE = 30
STAYERS = 20


def ignore(_message: Message) -> None:
    pass


async def visit(url: BrokerUrl, root: str, index: int) -> None:
    """One short-lived client, as a script process or a CLI command is: subscribe, publish retained, go.

    A third leave with DISCONNECT; the others drop the connection, half of those with a will.
    """
    bus = MqttBus(url, client_id=f"visitor-{root}-{index}", clock=LoopClock())
    if index % 3 == 2:
        bus.set_will(Message(f"{root}/will/{index}", b"gone", qos=1, retain=True))
    await bus.start()
    try:
        await bus.subscribe(f"{root}/#", ignore)
        await bus.subscribe(f"{root}/visitor{index}/+", ignore)
        await bus.publish(f"{root}/visitor{index}/state", b"here", qos=1, retain=True)
    finally:
        if index % 3 == 0:
            await bus.close()
        else:
            await bus.abort()


async def chatter(bus: MqttBus, topic: str) -> None:
    """Publish until cancelled, through the broker's shutdown and the reconnections after it."""
    while True:
        with contextlib.suppress(BusDisconnectedError):
            await bus.publish(topic, b"chatter", qos=1)
        await asyncio.sleep(0.2)


async def test_clients_coming_and_going_and_ctrl_c_print_nothing(tmp_path: Path) -> None:
    broker = EmbeddedBrokerProcess(tmp_path)
    url = BrokerUrl.parse(broker.url)
    root = f"churn{os.getpid()}"
    received: list[Message] = []
    # connected through the churn and at Ctrl-C, publishing and reconnecting as components do
    stayers = [MqttBus(url, client_id=f"stayer-{root}-{i}", clock=LoopClock()) for i in range(STAYERS)]
    chatters: list[asyncio.Task[None]] = []
    try:
        for i, stayer in enumerate(stayers):
            await stayer.start()
            await stayer.subscribe(f"{root}/stayer/#", received.append if i == 0 else ignore)
        gate = asyncio.Semaphore(AT_ONCE)

        async def one(index: int) -> None:
            async with gate:
                await visit(url, root, index)

        failures = [r for r in await asyncio.gather(*map(one, range(VISITORS)), return_exceptions=True) if r]
        await stayers[0].publish(f"{root}/stayer/0/after", b"still served", qos=1)
        for _ in range(100):
            if received:
                break
            await asyncio.sleep(0.05)
        chatters = [asyncio.create_task(chatter(s, f"{root}/stayer/{i}/chatter")) for i, s in enumerate(stayers)]
        await asyncio.sleep(1)
        broker.process.send_signal(signal.SIGINT)
        returncode = await asyncio.to_thread(broker.process.wait, 30)
    finally:
        for task in chatters:
            task.cancel()
        await asyncio.gather(*chatters, return_exceptions=True)
        for stayer in stayers:
            await stayer.close()
        broker.close()
    output = broker.log_path.read_text(errors="replace")
    assert output.splitlines() == [f"obsq broker: embedded broker (amqtt) listening on {broker.url}"], output[:3000]
    assert returncode == 0
    assert failures == []
    assert received[0].payload == b"still served"
