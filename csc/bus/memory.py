"""MemoryBus: an in-process broker and its clients, for unit tests.

A `MemoryBroker` is an ordinary instance (never a global); each `MemoryBus` is one client
connection to it. Delivery is asynchronous (scheduled on the loop) and ordered, retained
messages and wildcards behave as in MQTT 3.1.1, and `kill()` / `drop()` simulate a crash
and a lost link, so last wills and reconnects are testable without a broker process.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools

import structlog

from obsq.csc.bus.base import ConnectionListener, Handler, Message, Subscription
from obsq.csc.core.errors import BusDisconnectedError
from obsq.csc.core.topics import TopicRouter, check_filter, filter_matches

log = structlog.get_logger("obsq.bus.memory")

_ids = itertools.count(1)


class MemoryBroker:
    """Routes messages between the MemoryBus clients connected to it."""

    def __init__(self) -> None:
        self.retained: dict[str, Message] = {}
        self._clients: list[MemoryBus] = []
        self._denied: list[str] = []
        #: (client id, "read" or "write", filter or topic) of every subscription and publication, once `record()`ed
        self.accesses: list[tuple[str, str, str]] | None = None

    def record(self) -> None:
        """Keep every client's subscriptions and publications in `accesses` (to check them against an ACL)."""
        self.accesses = []

    def deny(self, topic_filter: str) -> None:
        """Drop what is published to `topic_filter` without a word, as a broker's ACL does."""
        check_filter(topic_filter)
        self._denied.append(topic_filter)

    def client(self, client_id: str | None = None, *, username: str | None = None) -> MemoryBus:
        """A client; `username` plays an authenticated principal (the memory broker checks no password)."""
        return MemoryBus(self, client_id or f"memory-{next(_ids)}", username)

    def attach(self, client: MemoryBus) -> None:
        self._clients.append(client)

    def detach(self, client: MemoryBus) -> None:
        if client in self._clients:
            self._clients.remove(client)

    def route(self, message: Message) -> None:
        if self._denied and any(filter_matches(f, message.topic) for f in self._denied):
            return
        if message.retain:
            if message.payload:
                self.retained[message.topic] = message
            else:
                self.retained.pop(message.topic, None)
        for client in list(self._clients):
            client.deliver(Message(message.topic, message.payload, message.qos, retain=False))


class MemoryBus:
    """One client of a MemoryBroker; implements the Bus protocol."""

    def __init__(self, broker: MemoryBroker, client_id: str, username: str | None = None) -> None:
        self._broker = broker
        self._client_id = client_id
        self._username = username
        self._router: TopicRouter[Handler] = TopicRouter()
        self._listeners: list[ConnectionListener] = []
        self._will: Message | None = None
        self._connected = False
        self._started = False

    @property
    def client_id(self) -> str:
        return self._client_id

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def username(self) -> str | None:
        return self._username

    def set_will(self, message: Message | None) -> None:
        if self._started:
            raise RuntimeError("set_will must be called before start")
        self._will = message

    def add_connection_listener(self, listener: ConnectionListener) -> None:
        self._listeners.append(listener)

    def remove_connection_listener(self, listener: ConnectionListener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    async def start(self) -> None:
        self._started = True
        self._connect()

    async def close(self) -> None:
        self._disconnect(publish_will=False)

    async def __aenter__(self) -> MemoryBus:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- fault simulation ---------------------------------------------------------------

    def kill(self) -> None:
        """The process died: the broker publishes the will; the client stays down."""
        self._disconnect(publish_will=True)

    def drop(self) -> None:
        """The link dropped (broker restart, network): will published, `reconnect()` restores."""
        self._disconnect(publish_will=True)

    async def reconnect(self) -> None:
        self._connect()

    # -- Bus ----------------------------------------------------------------------------

    async def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        if not self._connected:
            raise BusDisconnectedError(f"{self._client_id}: not connected; {topic} not sent")
        if self._broker.accesses is not None:
            self._broker.accesses.append((self._client_id, "write", topic))
        self._broker.route(Message(topic, bytes(payload), qos, retain))

    async def subscribe(self, topic_filter: str, handler: Handler) -> Subscription:
        check_filter(topic_filter)
        if self._broker.accesses is not None:
            self._broker.accesses.append((self._client_id, "read", topic_filter))
        self._router.add(topic_filter, handler)
        if self._connected:
            self._send_retained(topic_filter, handler)
        return Subscription(topic_filter, handler)

    async def unsubscribe(self, subscription: Subscription) -> None:
        self._router.remove(subscription.topic_filter, subscription.handler)

    # -- internals ----------------------------------------------------------------------

    def _connect(self) -> None:
        if self._connected:
            return
        self._connected = True
        self._broker.attach(self)
        for topic_filter, handler in list(self._router.items()):
            self._send_retained(topic_filter, handler)
        for listener in list(self._listeners):
            listener(True)

    def _disconnect(self, *, publish_will: bool) -> None:
        if not self._connected:
            return
        self._connected = False
        self._broker.detach(self)
        if publish_will and self._will is not None:
            self._broker.route(self._will)
        for listener in list(self._listeners):
            listener(False)

    def _send_retained(self, topic_filter: str, handler: Handler) -> None:
        loop = asyncio.get_running_loop()
        for message in list(self._broker.retained.values()):
            if filter_matches(topic_filter, message.topic):
                retained = Message(message.topic, message.payload, message.qos, retain=True)
                loop.call_soon(self._call, handler, retained)

    def deliver(self, message: Message) -> None:
        """Called by the broker: schedule `message` for every matching handler."""
        handlers = list(self._router.match(message.topic))
        if handlers:
            loop = asyncio.get_running_loop()
            for handler in handlers:
                loop.call_soon(self._call, handler, message)

    def _call(self, handler: Handler, message: Message) -> None:
        if not self._connected:
            return
        try:
            handler(message)
        except Exception:
            log.exception("handler_failed", client=self._client_id, topic=message.topic)
