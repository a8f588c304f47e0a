"""MqttBus: the Bus over a real MQTT 3.1.1 broker — the only module that imports aiomqtt.

What reference/mqtt-facts.md measured, applied here:
- TCP_NODELAY on the socket (without it a command round trip costs ~88 ms, not ~1 ms);
- clean sessions, no reliance on broker offline queues (amqtt drops anonymous sessions);
- exactly one task reads the client's messages and routes them by topic, dropping what we
  did not subscribe to (amqtt leaks other clients' retained messages);
- amqtt sends one copy per matching subscription of a client and may send a retained
  message twice; every obsq payload is unique (it carries identity, origin and seqNum), so
  a message identical in topic and bytes to one a handler recently got on the same connection
  is such a copy and that handler does not get it again (a new subscription still gets its
  retained copy; after a reconnect a repeat is a sender asking again, and is delivered);
- messages are routed the moment paho parses them: aiomqtt's public `queue_type` hook gets
  a queue whose `put_nowait` is our dispatcher, so no task and no `asyncio.wait` is spent
  per received message (measured: ~80 µs of a ~450 µs round trip on this machine);
- reconnect with back-off, re-subscribing every filter each time; while disconnected,
  `publish` fails at once instead of queueing, and a publish waiting for its PUBACK when the
  link drops fails then, not after aiomqtt's timeout (a stalled sender would outlast the outage).

`client_kwargs` is shared with the bare-aiomqtt floor that `obsq bench bus` measures the
framework against (`obsq.csc.bench.bare`), so both connect the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import secrets
import socket
import ssl
from collections import OrderedDict
from collections.abc import Callable

import aiomqtt
import structlog
from aiomqtt.exceptions import MqttConnectError

from obsq.csc.bus.base import ConnectionListener, Handler, Message, Subscription
from obsq.csc.bus.url import BrokerUrl
from obsq.csc.clock import Clock, LoopClock, wait_for
from obsq.csc.core.errors import BusDisconnectedError
from obsq.csc.core.topics import TopicRouter, check_filter

log = structlog.get_logger("obsq.bus.mqtt")

_NODELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
_RECONNECT_DELAYS_S = (0.05, 0.1, 0.2, 0.4, 0.5)
#: How many recent (handler, topic, payload) deliveries the dispatcher remembers to drop broker copies.
_RECENT_DELIVERIES = 1024
_ids = itertools.count(1)


def _dispatching_queue(dispatch: Callable[[aiomqtt.Message], None]) -> type[asyncio.Queue[aiomqtt.Message]]:
    """A queue class for aiomqtt's `queue_type` that hands every message straight to `dispatch`."""

    class DispatchingQueue(asyncio.Queue[aiomqtt.Message]):
        def put_nowait(self, item: aiomqtt.Message) -> None:
            dispatch(item)

    return DispatchingQueue


def _release_publishes(client: aiomqtt.Client) -> None:
    """End the waits of publishes whose link is gone (aiomqtt would wait its full timeout for their PUBACK).

    `MqttBus.publish` then sees the connection's generation changed and raises BusDisconnectedError.
    """
    # aiomqtt 2.x keeps {mid: asyncio.Event} here; were it renamed, publishes would only wait longer
    pending = getattr(client, "_pending_publishes", {})
    for confirmation in list(pending.values()):
        confirmation.set()


def client_kwargs(url: BrokerUrl) -> dict[str, object]:
    """The aiomqtt.Client arguments for `url`: TCP_NODELAY, clean sessions, TLS for mqtts."""
    kwargs: dict[str, object] = {
        "hostname": url.host,
        "port": url.port,
        "username": url.username,
        "password": url.password,
        "socket_options": _NODELAY,
        "clean_session": True,
    }
    if url.tls:
        kwargs["tls_context"] = ssl.create_default_context(cafile=url.ca_file)
    return kwargs


class MqttBus:
    """One MQTT connection per process, shared by every component and remote in it."""

    def __init__(
        self,
        url: BrokerUrl,
        *,
        client_id: str | None = None,
        keepalive_s: int = 5,
        timeout_s: float = 10.0,
        connect_timeout_s: float = 10.0,
        clock: Clock | None = None,
    ) -> None:
        self.url = url
        # an id begins with the user name and '-' (the site broker refuses any other: obsq_clientid.c), and a
        # shared user's (operator, Script) has an unguessable part, so no one takes another's id
        self._client_id = client_id or (
            f"{url.username}-{os.getpid()}-{next(_ids)}-{secrets.token_hex(4)}"
            if url.username
            else f"obsq-{os.getpid()}-{next(_ids)}"
        )
        self._keepalive_s = keepalive_s
        self._timeout_s = timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._clock = clock or LoopClock()
        self._router: TopicRouter[Handler] = TopicRouter()
        self._listeners: list[ConnectionListener] = []
        self._will: Message | None = None
        self._client: aiomqtt.Client | None = None
        self._connected = False
        self._connected_event = asyncio.Event()
        self._refused_event = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_error: str = ""
        self._recent: OrderedDict[tuple[int, str, bytes], None] = OrderedDict()
        #: bumped at every connection loss: a publish that straddles one was not confirmed
        self._link_generation = 0

    @property
    def client_id(self) -> str:
        return self._client_id

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def username(self) -> str | None:
        return self.url.username

    def set_will(self, message: Message | None) -> None:
        if self._task is not None:
            raise RuntimeError("set_will must be called before start")
        self._will = message

    def add_connection_listener(self, listener: ConnectionListener) -> None:
        self._listeners.append(listener)

    def remove_connection_listener(self, listener: ConnectionListener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"{self._client_id}.mqtt")
        try:
            await wait_for(self._clock, self._settled(), self._connect_timeout_s)
        except TimeoutError:
            await self.close()
            raise BusDisconnectedError(
                f"cannot reach the MQTT broker at {self.url} within {self._connect_timeout_s:g} s"
                f" ({self._last_error or 'no answer'})"
            ) from None

    async def _settled(self) -> None:
        """Until connected; BusDisconnectedError at once if the broker refused the credentials (no retry helps)."""
        connected = asyncio.ensure_future(self._connected_event.wait())
        refused = asyncio.ensure_future(self._refused_event.wait())
        try:
            await asyncio.wait({connected, refused}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            connected.cancel()
            refused.cancel()
        if not self._connected_event.is_set():
            await self.close()
            raise BusDisconnectedError(f"the MQTT broker at {self.url} refused the connection: {self._last_error}")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._set_connected(False)

    async def abort(self) -> None:
        """Drop the connection as a crash would (no DISCONNECT, so the broker sends the will) and stop."""
        client = self._client
        if client is not None:
            # aiomqtt 2.x has no public way to abort; paho's socket() is public on its client
            sock = client._client.socket()  # noqa: SLF001 — the one adapter module may reach into aiomqtt
            if isinstance(sock, socket.socket):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        await self.close()

    async def __aenter__(self) -> MqttBus:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        client = self._client
        if client is None or not self._connected:
            raise BusDisconnectedError(f"not connected to {self.url}; {topic} not sent")
        generation = self._link_generation
        try:
            await client.publish(topic, payload, qos=qos, retain=retain)
        except aiomqtt.MqttError as exc:
            raise BusDisconnectedError(f"publish to {topic} failed: {exc}") from exc
        if generation != self._link_generation:
            raise BusDisconnectedError(f"the link to {self.url} dropped before the broker confirmed {topic}")

    async def subscribe(self, topic_filter: str, handler: Handler) -> Subscription:
        check_filter(topic_filter)
        new = topic_filter not in self._router
        self._router.add(topic_filter, handler)
        client = self._client
        if new and client is not None and self._connected:
            # if the link drops now, the reconnect loop subscribes it again
            with contextlib.suppress(aiomqtt.MqttError):
                await client.subscribe(topic_filter, qos=1)
        return Subscription(topic_filter, handler)

    async def unsubscribe(self, subscription: Subscription) -> None:
        last = self._router.remove(subscription.topic_filter, subscription.handler)
        client = self._client
        if last and client is not None and self._connected:
            with contextlib.suppress(aiomqtt.MqttError):
                await client.unsubscribe(subscription.topic_filter)

    # -- the connection loop ------------------------------------------------------------

    def _set_connected(self, connected: bool) -> None:
        if connected == self._connected:
            return
        self._connected = connected
        if connected:
            self._connected_event.set()
        else:
            self._connected_event.clear()
        for listener in list(self._listeners):
            try:
                listener(connected)
            except Exception:
                log.exception("connection_listener_failed", client=self._client_id)

    async def _run(self) -> None:
        attempt = 0
        while True:
            will = self._will
            client = aiomqtt.Client(
                **client_kwargs(self.url),  # type: ignore[arg-type]
                identifier=self._client_id,
                keepalive=self._keepalive_s,
                timeout=self._timeout_s,
                will=aiomqtt.Will(will.topic, will.payload, will.qos, will.retain) if will else None,
                queue_type=_dispatching_queue(self._dispatch),
            )
            client.pending_calls_threshold = 10_000
            try:
                async with client:
                    self._client = client
                    # broker copies belong to one connection; a repeat on a new one is a sender asking again
                    self._recent.clear()
                    filters = self._router.filters()
                    if filters:
                        await client.subscribe([(f, 1) for f in filters])
                    attempt = 0
                    self._set_connected(True)
                    log.debug("connected", client=self._client_id, url=str(self.url))
                    # messages are dispatched as they arrive (see _dispatching_queue); this only
                    # waits for the disconnection, which the iterator raises as MqttError
                    async for message in client.messages:
                        self._dispatch(message)
            except aiomqtt.MqttError as exc:
                self._last_error = str(exc)
                if isinstance(exc, MqttConnectError) and _refused_credentials(exc.rc):
                    self._refused_event.set()  # a wrong user or password: start() says so now, not at its timeout
                log.debug("connection_lost", client=self._client_id, error=str(exc))
            finally:
                self._client = None
                self._link_generation += 1
                _release_publishes(client)
                self._set_connected(False)
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                # closed while the link failed, or a cancellation that aiomqtt's asyncio.wait_for swallowed
                # (Python 3.11): `close()` is waiting for this task to end, not to reconnect
                raise asyncio.CancelledError
            await self._clock.sleep(_RECONNECT_DELAYS_S[min(attempt, len(_RECONNECT_DELAYS_S) - 1)])
            attempt += 1

    def _dispatch(self, message: aiomqtt.Message) -> None:
        topic = message.topic.value
        msg = Message(topic, bytes(message.payload), message.qos, message.retain)
        for handler in list(self._router.match(topic)):
            key = (id(handler), topic, msg.payload)
            if key in self._recent:
                continue
            self._recent[key] = None
            if len(self._recent) > _RECENT_DELIVERIES:
                self._recent.popitem(last=False)
            try:
                handler(msg)
            except Exception:
                log.exception("handler_failed", client=self._client_id, topic=topic)


def _refused_credentials(rc: object) -> bool:
    """Whether a CONNACK's code refuses the user or password (MQTT 3.1.1: 4, 5; MQTT 5: 134, 135)."""
    value = getattr(rc, "value", rc)
    return value in (4, 5, 134, 135)


def client_id_for(username: str | None, name: str) -> str:
    """`name` as a client id the site broker accepts for `username`: it must begin with the user name and '-'."""
    return name if not username or name.startswith(f"{username}-") else f"{username}-{name}"
