"""Remote: talk to one component — send commands and await their acks, read its events and telemetry."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from obsq.csc.bus.base import Bus, Message
from obsq.csc.clock import Clock, wait_for
from obsq.csc.component.reader import TopicReader, real_seconds
from obsq.csc.component.stamp import Stamper, command_seq, user_identity
from obsq.csc.core.acks import AckCode
from obsq.csc.core.codec import MAX_PAYLOAD_BYTES, Envelope, decode
from obsq.csc.core.errors import (
    BusDisconnectedError,
    DecodeError,
    ObsqError,
    ValidationError,
)
from obsq.csc.core.interface import ComponentInterface
from obsq.csc.core.topics import DEFAULT_ROOT, ComponentId, Topic, TopicKind, component_filter
from obsq.csc.interfaces import load_interface

#: Remote command timeout when the caller gives none (SAL's default, 1 h); INPROGRESS extends it.
DEFAULT_COMMAND_TIMEOUT_S = 3600.0


@dataclass(frozen=True)
class Ack:
    """One acknowledgement of a command this Remote sent."""

    command: str
    seq_num: int
    ack: AckCode
    result: str
    timeout_s: float

    @classmethod
    def synthesized(cls, command: str, seq_num: int, ack: AckCode, result: str) -> Ack:
        return cls(command, seq_num, ack, result, 0.0)


class AckError(ObsqError):
    """A command ended badly (FAILED, ABORTED, NOPERM, STALLED, TIMEOUT on the component)."""

    def __init__(self, message: str, ack: Ack) -> None:
        super().__init__(message)
        self.ack = ack


class AckTimeoutError(AckError):
    """No final ack before the deadline; `ack` is the last one seen, or a synthesized NOACK."""


class CommandLinkLostError(AckError):
    """The connection to the broker dropped while the command was in flight; outcome unknown."""


@dataclass(frozen=True)
class _Abandoned:
    """Put in a pending command's queue when its ack can no longer arrive."""

    reason: str


_LINK_LOST = _Abandoned("connection to the broker lost while the command was in flight")
_REMOTE_CLOSED = _Abandoned("the Remote was closed while the command was in flight")


class Remote:
    """Talk to one component: send commands and await their acks; read its events and telemetry."""

    def __init__(
        self,
        bus: Bus,
        component: ComponentId | str,
        *,
        clock: Clock,
        root: str = DEFAULT_ROOT,
        identity: str | None = None,
        interface: ComponentInterface | None = None,
        telemetry: bool = False,
        max_payload_bytes: int = MAX_PAYLOAD_BYTES,
    ) -> None:
        self.id = component if isinstance(component, ComponentId) else ComponentId.parse(component)
        self.interface = interface or load_interface(self.id.name)
        self.bus = bus
        self.clock = clock
        self.root = root
        self._stamper = Stamper(clock, identity or user_identity(), max_payload_bytes)
        self._want_telemetry = telemetry
        self._pending: dict[int, asyncio.Queue[Ack | _Abandoned]] = {}
        self._readers: dict[tuple[TopicKind, str], TopicReader] = {}
        self._command_topics: dict[str, str] = {}
        self._subscriptions: list[Any] = []
        self.log = structlog.get_logger("obsq.remote").bind(component=str(self.id))

    @property
    def identity(self) -> str:
        return self._stamper.identity

    async def start(self) -> None:
        self.bus.add_connection_listener(self._on_connection)
        subscriptions = [(TopicKind.ACK, self._on_ack), (TopicKind.EVENT, self._on_event)]
        if self._want_telemetry:
            subscriptions.append((TopicKind.TELEMETRY, self._on_telemetry))
        for kind, handler in subscriptions:
            self._subscriptions.append(await self.bus.subscribe(component_filter(self.root, self.id, kind), handler))

    async def close(self) -> None:
        for subscription in self._subscriptions:
            await self.bus.unsubscribe(subscription)
        self._subscriptions.clear()
        self._abandon_pending(_REMOTE_CLOSED)

    async def __aenter__(self) -> Remote:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _command_topic(self, name: str) -> str:
        topic = self._command_topics.get(name)
        if topic is None:
            topic = self._command_topics[name] = str(Topic(self.root, self.id, TopicKind.COMMAND, name))
        return topic

    def event(self, name: str) -> TopicReader:
        return self._reader(TopicKind.EVENT, name)

    def telemetry(self, name: str) -> TopicReader:
        if not self._want_telemetry:
            raise ValueError(f"Remote for {self.id} was created without telemetry=True")
        return self._reader(TopicKind.TELEMETRY, name)

    def _reader(self, kind: TopicKind, name: str) -> TopicReader:
        self.interface.get(kind, name)
        key = (kind, name)
        if key not in self._readers:
            self._readers[key] = TopicReader(name, self.clock)
        return self._readers[key]

    async def command(
        self,
        name: str,
        data: Mapping[str, Any] | None = None,
        *,
        timeout_s: float = DEFAULT_COMMAND_TIMEOUT_S,
        wait_done: bool = True,
        on_ack: Callable[[Ack], None] | None = None,
    ) -> Ack:
        """Send a command and wait for its final ack (or the first, if not `wait_done`).

        `on_ack` sees every ack as it arrives (INPROGRESS ones included).

        Raises AckError on FAILED/ABORTED/NOPERM/STALLED/TIMEOUT, AckTimeoutError (NOACK
        if nothing came back), CommandLinkLostError if the link dropped while waiting,
        ValidationError before sending if `data` breaks the command's schema.
        """
        payload = dict(data or {})
        self.interface.validate(TopicKind.COMMAND, name, payload)
        seq = next(command_seq)
        queue: asyncio.Queue[Ack | _Abandoned] = asyncio.Queue()
        self._pending[seq] = queue
        try:
            try:
                await self.bus.publish(
                    self._command_topic(name),
                    self._stamper.encode(payload, seq),
                    qos=1,
                )
            except BusDisconnectedError as exc:
                ack = Ack.synthesized(name, seq, AckCode.NOACK, str(exc))
                raise CommandLinkLostError(f"{self.id} {name} may not have been sent: {exc}", ack) from exc
            return await self._wait_ack(name, seq, queue, timeout_s=timeout_s, wait_done=wait_done, on_ack=on_ack)
        finally:
            self._pending.pop(seq, None)

    async def _wait_ack(
        self,
        name: str,
        seq: int,
        queue: asyncio.Queue[Ack | _Abandoned],
        *,
        timeout_s: float,
        wait_done: bool,
        on_ack: Callable[[Ack], None] | None,
    ) -> Ack:
        wall = self.clock.unscaled()
        deadline = wall.monotonic() + real_seconds(self.clock, timeout_s)
        last: Ack | None = None
        while True:
            remaining = deadline - wall.monotonic()
            try:
                item = await wait_for(wall, queue.get(), max(0.0, remaining))
            except TimeoutError:
                ack = last or Ack.synthesized(name, seq, AckCode.NOACK, "no acknowledgement")
                code = "no ack" if last is None else f"last ack {last.ack.name}"
                raise AckTimeoutError(f"{self.id} {name} timed out after {timeout_s:g} s ({code})", ack) from None
            if isinstance(item, _Abandoned):
                ack = Ack.synthesized(name, seq, AckCode.NOACK, item.reason)
                raise CommandLinkLostError(f"{self.id} {name}: {item.reason}; it may or may not have run", ack)
            last = item
            if on_ack is not None:
                on_ack(item)
            if item.ack == AckCode.INPROGRESS:
                deadline = max(deadline, wall.monotonic() + real_seconds(self.clock, item.timeout_s))
                if not wait_done:
                    return item
                continue
            if item.ack == AckCode.COMPLETE:
                return item
            raise AckError(f"{self.id} {name} {item.ack.name}: {item.result}", item)

    def _on_connection(self, connected: bool) -> None:
        if not connected:
            self._abandon_pending(_LINK_LOST)

    def _abandon_pending(self, why: _Abandoned) -> None:
        for queue in self._pending.values():
            queue.put_nowait(why)

    def _decode(self, message: Message, kind: TopicKind, name: str) -> Envelope | None:
        try:
            envelope = decode(message.payload, self._stamper.max_bytes)
            self.interface.validate(kind, name, envelope.data)
        except (DecodeError, ValidationError) as exc:
            self.log.warning("message_dropped", topic=message.topic, reason=str(exc))
            return None
        return envelope

    def _on_ack(self, message: Message) -> None:
        if not self._pending:
            return  # acks of other commanders' commands: not even decoded
        envelope = self._decode(message, TopicKind.ACK, "")
        if envelope is None:
            return
        data = envelope.data
        queue = self._pending.get(envelope.seq_num)
        if queue is None or data["identity"] != self.identity or data.get("origin", 0) != self._stamper.origin:
            return
        ack = Ack(
            data.get("command", ""),
            envelope.seq_num,
            AckCode(data["ack"]),
            data.get("result", ""),
            data.get("timeout", 0.0),
        )
        queue.put_nowait(ack)

    def _on_event(self, message: Message) -> None:
        self._on_sample(message, TopicKind.EVENT)

    def _on_telemetry(self, message: Message) -> None:
        self._on_sample(message, TopicKind.TELEMETRY)

    def _on_sample(self, message: Message, kind: TopicKind) -> None:
        name = message.topic.rpartition("/")[2]  # the filter is {root}/{C}/{i}/{evt|tel}/+
        try:
            reader = self._reader(kind, name)
        except ValidationError as exc:
            self.log.warning("message_dropped", topic=message.topic, reason=str(exc))
            return
        envelope = self._decode(message, kind, name)
        if envelope is not None:
            reader.receive(envelope)
