"""Remote: talk to one component — send commands and await their acks, read its events and telemetry."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from obsq.csc.bus.base import Bus, Message
from obsq.csc.clock import Clock, wait_for
from obsq.csc.component.reader import Deadline, Life, TopicReader, overdue_text
from obsq.csc.component.stamp import Stamper, command_seq, user_identity
from obsq.csc.core.acks import AckCode
from obsq.csc.core.codec import Envelope, decode
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
#: How long (real seconds) a command in flight waits for a lost broker link to come back.
LINK_GRACE_S = 60.0
#: After a reconnect a command is sent again at these intervals (real s) until the component answers
#: (it may reconnect after us, and a clean session drops what comes before it subscribes).
RESEND_INTERVALS_S = (0.0, 0.5, 1.0, 2.0, 4.0)
#: A heartbeat (sent each second) older than this many real seconds does not show a live component.
HEARTBEAT_FRESH_S = 3.0


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
    """The link to the broker stayed down past LINK_GRACE_S while the command was in flight; outcome unknown."""


@dataclass(frozen=True)
class _Abandoned:
    """Put in a pending command's queue when its ack can no longer arrive."""

    reason: str


@dataclass(frozen=True)
class _Link:
    """Put in every pending command's queue when the broker link drops (up=False) or is back."""

    up: bool


_REMOTE_CLOSED = _Abandoned("the Remote was closed while the command was in flight")


@dataclass
class _Pending:
    """A command in flight: its bytes (sent again, unchanged, after a reconnect) and its acks."""

    topic: str
    raw: bytes
    queue: asyncio.Queue[Ack | _Abandoned | _Link] = field(default_factory=asyncio.Queue)
    #: an ack has come since the last reconnect (so the component has it again)
    answered: bool = True


def _link_changed(link: _Link, down_since: float | None, deadline: Deadline, now: float) -> float | None:
    """When the link went down (None: it is up); an outage is left out of the command's deadline."""
    if not link.up:
        return now if down_since is None else down_since
    if down_since is not None:
        deadline.shift(now - down_since)
    return None


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
    ) -> None:
        self.id = component if isinstance(component, ComponentId) else ComponentId.parse(component)
        self.interface = interface or load_interface(self.id.name)
        self.bus = bus
        self.clock = clock
        self.root = root
        self._stamper = Stamper(clock, identity or user_identity(), self.interface.limits)
        self._want_telemetry = telemetry
        self._pending: dict[int, _Pending] = {}
        self._resends: set[asyncio.Task[None]] = set()
        self._readers: dict[tuple[TopicKind, str], TopicReader] = {}
        self._command_topics: dict[str, str] = {}
        self._subscriptions: list[Any] = []
        #: the component's life as its heartbeats show it: what waits on it are measured against
        self.life = Life(clock)
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
        self.bus.remove_connection_listener(self._on_connection)  # a closed Remote is nothing the bus still holds
        for subscription in self._subscriptions:
            await self.bus.unsubscribe(subscription)
        self._subscriptions.clear()
        for task in list(self._resends):
            task.cancel()
        self._abandon_pending(_REMOTE_CLOSED)

    async def __aenter__(self) -> Remote:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _command_topic(self, name: str) -> str:
        """`…/cmd/{name}`, or `…/cmd/{name}/{user}` when the bus is authenticated (the site ACL requires it)."""
        topic = self._command_topics.get(name)
        if topic is None:
            topic = str(Topic(self.root, self.id, TopicKind.COMMAND, name))
            if self.bus.username:
                topic = f"{topic}/{self.bus.username}"
            self._command_topics[name] = topic
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
            self._readers[key] = TopicReader(name, self.clock, life=self.life, owner=str(self.id))
        return self._readers[key]

    def heartbeat_age_s(self) -> float | None:
        """Real seconds since the component's last heartbeat was sent, or None if none was seen."""
        return self.life.age_s()

    def is_live(self) -> bool:
        """Whether the component's heartbeat is fresh (it sends one each second)."""
        age = self.heartbeat_age_s()
        return age is not None and age <= HEARTBEAT_FRESH_S

    async def wait_live(self, within_s: float) -> bool:
        """Whether a fresh heartbeat is seen within `within_s` real seconds."""
        wall = self.clock.unscaled()
        reader = self._reader(TopicKind.EVENT, "heartbeat")
        deadline = wall.monotonic() + within_s
        while not self.is_live():
            remaining = deadline - wall.monotonic()
            if remaining <= 0:
                return False
            with contextlib.suppress(TimeoutError):  # the wall clock decides here, not the component's life
                await wait_for(wall, reader.next(flush=False, timeout_s=1e9), remaining)
        return True

    async def command(
        self,
        name: str,
        data: Mapping[str, Any] | None = None,
        *,
        timeout_s: float = DEFAULT_COMMAND_TIMEOUT_S,
        first_ack_s: float | None = None,
        wait_done: bool = True,
        on_ack: Callable[[Ack], None] | None = None,
    ) -> Ack:
        """Send a command and wait for its final ack (or the first, if not `wait_done`).

        `on_ack` sees every ack as it arrives (INPROGRESS ones included). With `first_ack_s`,
        no ack at all within that many real seconds ends the wait early (AckTimeoutError
        saying whether the component is live: a live one that does not answer has most
        likely had the command dropped by the broker's ACL).

        If the broker link drops while the command is in flight, the command waits for the link
        (up to LINK_GRACE_S) and is sent again with the same bytes once it is back: the
        component executes a (identity, origin, seqNum) at most once and answers a repeat with
        the ack it already gave, so nothing runs twice and no answer is lost.

        Raises AckError on FAILED/ABORTED/NOPERM/STALLED/TIMEOUT, AckTimeoutError (NOACK
        if nothing came back), CommandLinkLostError if the link stayed down past LINK_GRACE_S,
        ValidationError before sending if `data` breaks the command's schema.
        """
        payload = dict(data or {})
        self.interface.validate(TopicKind.COMMAND, name, payload)
        seq = next(command_seq)
        pending = _Pending(self._command_topic(name), self._stamper.encode(payload, seq))
        self._pending[seq] = pending
        try:
            try:
                await self.bus.publish(pending.topic, pending.raw, qos=1)
            except BusDisconnectedError:
                if self.bus.connected:  # the link came back already, or the publish failed on a live link
                    pending.answered = False
                    self._start_resending()
                else:  # sent again when the link is back (`_on_connection`); `_wait_ack` waits for that
                    pending.queue.put_nowait(_Link(up=False))
            return await self._wait_ack(
                name,
                seq,
                pending.queue,
                timeout_s=timeout_s,
                first_ack_s=first_ack_s,
                wait_done=wait_done,
                on_ack=on_ack,
            )
        finally:
            self._pending.pop(seq, None)

    async def _wait_ack(
        self,
        name: str,
        seq: int,
        queue: asyncio.Queue[Ack | _Abandoned | _Link],
        *,
        timeout_s: float,
        first_ack_s: float | None,
        wait_done: bool,
        on_ack: Callable[[Ack], None] | None,
    ) -> Ack:
        wall = self.clock.unscaled()
        deadline = Deadline(self.life, self.clock, timeout_s)
        first_by = None if first_ack_s is None else wall.monotonic() + first_ack_s
        down_since: float | None = None
        last: Ack | None = None
        while True:
            now = wall.monotonic()
            if down_since is not None:
                wait_s = down_since + LINK_GRACE_S - now
            else:
                wait_s = deadline.wait_s() if first_by is None or last else min(deadline.wait_s(), first_by - now)
            try:
                item = await wait_for(wall, queue.get(), max(0.0, wait_s))
            except TimeoutError:
                error = self._overdue(name, seq, deadline, last, link_down=down_since is not None, first_by=first_by)
                if error is None:
                    continue  # the budget is spent for us, not yet for the component (a busy machine): wait on
                raise error from None
            if isinstance(item, _Link):
                down_since = _link_changed(item, down_since, deadline, wall.monotonic())
                continue
            if isinstance(item, _Abandoned):
                ack = Ack.synthesized(name, seq, AckCode.NOACK, item.reason)
                raise CommandLinkLostError(f"{self.id} {name}: {item.reason}; it may or may not have run", ack)
            if last is None and first_by is not None:
                deadline.extend(timeout_s)  # answered: the full timeout from now
            last = item
            if on_ack is not None:
                on_ack(item)
            if not item.ack.is_final:  # INPROGRESS, or SAL's CMD_ACK (received; its timeout 0 extends nothing)
                deadline.extend(item.timeout_s)
                if not wait_done and item.ack == AckCode.INPROGRESS:
                    return item
                continue
            if item.ack == AckCode.COMPLETE:
                return item
            raise AckError(f"{self.id} {name} {item.ack.name}: {item.result}", item)

    def _overdue(
        self, name: str, seq: int, deadline: Deadline, last: Ack | None, *, link_down: bool, first_by: float | None
    ) -> AckError | None:
        """The error that ends a wait that timed out, or None if the wait goes on.

        The link down too long, no first ack in time, or the budget lived by the component (or the
        component silent).
        """
        if link_down:
            ack = Ack.synthesized(name, seq, AckCode.NOACK, "link to the broker lost")
            return CommandLinkLostError(
                f"{self.id} {name}: the link to the broker has been down for {LINK_GRACE_S:g} s;"
                " it may or may not have run",
                ack,
            )
        if first_by is not None and last is None and self.clock.unscaled().monotonic() >= first_by:
            return self._timed_out(name, seq, deadline.budget_s, None, "")
        why = deadline.overdue()
        return None if why is None else self._timed_out(name, seq, deadline.budget_s, last, why)

    def _timed_out(self, name: str, seq: int, timeout_s: float, last: Ack | None, why: str) -> AckError:
        """The error for a wait that ran out: no ack at all, or no final ack (`why`: see Deadline.overdue)."""
        if last is None:
            text = self._why_no_ack()
            return AckTimeoutError(f"{self.id} {name}: {text}", Ack.synthesized(name, seq, AckCode.NOACK, text))
        detail = overdue_text(why, str(self.id), self.life)
        return AckTimeoutError(
            f"{self.id} {name} timed out after {timeout_s:g} s (last ack {last.ack.name})"
            + (f": {detail}" if detail else ""),
            last,
        )

    def _why_no_ack(self) -> str:
        age = self.heartbeat_age_s()
        if age is None:
            return f"no ack, and no heartbeat of {self.id} was seen: is it running?"
        if age <= HEARTBEAT_FRESH_S:
            return (f"no ack from {self.id} although its heartbeats go on: is this user allowed to command it "
                    "(the broker's ACL)? Or the broker dropped the command or its answer: a burst over the "
                    "broker's queue per client is dropped silently (Mosquitto: check max_queued_messages, "
                    "10000 in obsq's configurations)")  # fmt: skip
        return f"no ack; {self.id}'s last heartbeat is {age:.0f} s old: it is not running or not responding"

    def _on_connection(self, connected: bool) -> None:
        for pending in self._pending.values():
            pending.answered = False
            pending.queue.put_nowait(_Link(up=connected))
        for task in list(self._resends):
            task.cancel()
        self._resends.clear()  # a new link: resending starts over
        if connected and self._pending:
            self._start_resending()

    def _start_resending(self) -> None:
        if self._resends:
            return
        task = asyncio.get_running_loop().create_task(self._send_again(), name=f"{self.id}.resend")
        self._resends.add(task)
        task.add_done_callback(self._resends.discard)

    async def _send_again(self) -> None:
        """After a reconnect: every command in flight is sent again, with the same bytes, until answered.

        The component executes it at most once and answers a repeat with the ack it gave (or its
        last INPROGRESS), so this only finds out what became of it.
        """
        wall = self.clock.unscaled()
        start = wall.monotonic()
        intervals = iter(RESEND_INTERVALS_S)
        while wall.monotonic() - start < LINK_GRACE_S:
            await wall.sleep(next(intervals, RESEND_INTERVALS_S[-1]))
            unanswered = [p for p in self._pending.values() if not p.answered]
            if not unanswered:
                return
            for pending in unanswered:
                try:
                    await self.bus.publish(pending.topic, pending.raw, qos=1)
                except BusDisconnectedError:
                    return  # down again: the next reconnect starts over

    def _abandon_pending(self, why: _Abandoned) -> None:
        for pending in self._pending.values():
            pending.queue.put_nowait(why)

    def _decode(self, message: Message, kind: TopicKind, name: str) -> Envelope | None:
        try:
            envelope = decode(message.payload, self._stamper.limits)
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
        pending = self._pending.get(envelope.seq_num)
        if pending is None or data["identity"] != self.identity or data.get("origin", 0) != self._stamper.origin:
            return
        ack = Ack(
            data.get("command", ""),
            envelope.seq_num,
            AckCode(data["ack"]),
            data.get("result", ""),
            data.get("timeout", 0.0),
        )
        pending.answered = True
        pending.queue.put_nowait(ack)

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
            if name == "heartbeat" and kind is TopicKind.EVENT:
                self.life.beat(envelope.snd_stamp)
            reader.receive(envelope)
