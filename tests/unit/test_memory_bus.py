"""The bus conformance suite on MemoryBus."""

from __future__ import annotations

import asyncio

from obsq.csc.bus.base import Bus, Message
from obsq.csc.bus.memory import MemoryBroker, MemoryBus
from obsq.csc.testing import check_bus_conformance


async def test_memory_bus_conformance() -> None:
    broker = MemoryBroker()

    async def make_bus(client_id: str, will: Message | None) -> Bus:
        bus = broker.client(client_id)
        bus.set_will(will)
        await bus.start()
        return bus

    async def kill(bus: Bus) -> None:
        assert isinstance(bus, MemoryBus)
        bus.kill()

    passed = await check_bus_conformance(make_bus, kill)
    assert passed == [
        "routing",
        "ordering",
        "retained",
        "unsubscribe",
        "handler_errors",
        "will",
        "publish_disconnected",
    ]


async def test_reconnect_resubscribes_and_tells_listeners() -> None:
    broker = MemoryBroker()
    a, b = broker.client(), broker.client()
    await a.start()
    await b.start()
    seen: list[bytes] = []
    states: list[bool] = []
    b.add_connection_listener(states.append)
    await b.subscribe("t/x", lambda m: seen.append(m.payload))
    b.drop()
    await a.publish("t/x", b"lost")
    await b.reconnect()
    await a.publish("t/x", b"after")
    for _ in range(5):  # delivery is scheduled on the loop
        await asyncio.sleep(0)
    assert seen == [b"after"]
    assert states == [False, True]
