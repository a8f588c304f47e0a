"""The bus conformance suite over real brokers: Mosquitto and the embedded amqtt broker."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from obsq.csc.bus.base import Bus
from obsq.csc.bus.mqtt import MqttBus
from obsq.csc.testing import check_bus_conformance


async def test_mqtt_bus_conformance(bus_factory: Callable[..., Awaitable[Bus]]) -> None:
    async def kill(bus: Bus) -> None:
        assert isinstance(bus, MqttBus)
        await bus.abort()

    passed = await check_bus_conformance(bus_factory, kill)
    assert "will" in passed
    assert "retained" in passed
    assert len(passed) == 7
