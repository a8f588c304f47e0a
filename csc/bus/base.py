"""The Bus protocol: publish bytes to a topic; deliver matching messages to handlers.

Rules every implementation keeps (and the conformance suite checks):
- one dispatcher per bus routes each incoming message by topic to the handlers whose
  filters match it, once per handler, and drops what nobody subscribed to;
- handlers are plain functions, called in arrival order; they must not block (they
  resolve futures or hand work to tasks); an exception in one is logged, not fatal;
- `publish` raises BusDisconnectedError at once when there is no connection — nothing
  is queued to be sent later;
- after a reconnect every filter is subscribed again and connection listeners are told;
- a retained message with an empty payload clears the topic.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Message:
    """One message as it travels on the bus. `retain` and `qos` are informational on receipt."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False


Handler = Callable[[Message], None]
ConnectionListener = Callable[[bool], None]


@dataclass(frozen=True, slots=True)
class Subscription:
    """A handle returned by `Bus.subscribe`, for `Bus.unsubscribe`."""

    topic_filter: str
    handler: Handler


class Bus(Protocol):
    """A connection to a publish/subscribe broker."""

    @property
    def client_id(self) -> str: ...

    @property
    def connected(self) -> bool: ...

    @property
    def username(self) -> str | None:
        """The principal this client is authenticated as on the broker, if any."""
        ...

    def set_will(self, message: Message | None) -> None:
        """The message the broker publishes if this client vanishes; only before `start`."""
        ...

    def add_connection_listener(self, listener: ConnectionListener) -> None:
        """Call `listener(True)` on every (re)connection and `listener(False)` on every loss."""
        ...

    def remove_connection_listener(self, listener: ConnectionListener) -> None:
        """No longer call `listener` (a no-op if it was not added): what a closed client leaves behind."""
        ...

    async def start(self) -> None:
        """Connect; raise BusDisconnectedError if the broker cannot be reached."""
        ...

    async def close(self) -> None:
        """Disconnect cleanly (the will is not published)."""
        ...

    async def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None: ...

    async def subscribe(self, topic_filter: str, handler: Handler) -> Subscription: ...

    async def unsubscribe(self, subscription: Subscription) -> None: ...
