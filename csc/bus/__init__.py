"""The bus: a narrow publish/subscribe interface and its implementations.

`MemoryBus` (unit tests) and `MqttBus` (every real deployment; the only module that
imports aiomqtt) pass the same conformance suite, `obsq.csc.testing.bus_conformance`.
"""

from obsq.csc.bus.base import Bus, ConnectionListener, Handler, Message, Subscription
from obsq.csc.bus.memory import MemoryBroker, MemoryBus
from obsq.csc.bus.url import BrokerUrl

__all__ = [
    "BrokerUrl",
    "Bus",
    "ConnectionListener",
    "Handler",
    "MemoryBroker",
    "MemoryBus",
    "Message",
    "Subscription",
]
