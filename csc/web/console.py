"""The console's bridge to the bus: one reading connection for the page, one commanding connection per login.

The reading connection uses this process's credentials, as every client does, and feeds a
ConsoleState with every component's events. A login opens its own connection with the user's
name and password, so the broker (its passwords and ACL) decides what the user may do, and the
components see the user's identity (`user@host`) on each command. The `observer` principal
only reads: its session is refused every command before anything is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from obsq.csc.app.bus_tools import component_id
from obsq.csc.app.connection import FIRST_ACK_S, Connection, connected_bus
from obsq.csc.bus.base import Bus
from obsq.csc.bus.mqtt import MqttBus
from obsq.csc.bus.url import BrokerUrl
from obsq.csc.clock import Clock, LoopClock
from obsq.csc.component import Ack, AckError, Remote
from obsq.csc.core.codec import Envelope
from obsq.csc.core.errors import BusDisconnectedError, ObsqError
from obsq.csc.core.principals import PEOPLE
from obsq.csc.core.topics import ComponentId, Topic
from obsq.csc.status import decoded
from obsq.csc.web.devices import TRENDS
from obsq.csc.web.state import ConsoleState

#: The telemetry the page plots, by component.
TREND_TOPICS: dict[str, set[str]] = {}
for _name, _topic, _ in TRENDS:
    TREND_TOPICS.setdefault(_name, set()).add(_topic)

#: The principal that sees everything and commands nothing.
OBSERVER = PEOPLE[1]
#: How long the page waits for a command's last ack (s); adding a block starts its processes.
COMMAND_TIMEOUT_S = 180.0
#: The fewest seconds between two snapshots sent to a page.
MIN_INTERVAL_S = 0.2


class LoginError(ObsqError):
    """The broker refused the user, or the name cannot be used."""


class CommandRefusedError(ObsqError):
    """The session may not command (not logged in, or the observer)."""


@dataclass
class Session:
    """One logged-in user: its own broker connection and the remotes it has commanded through."""

    user: str
    bus: Bus
    clock: Clock
    root: str
    remotes: dict[ComponentId, Remote] = field(default_factory=dict)

    @property
    def role(self) -> str:
        return "observer" if self.user == OBSERVER else "operator"

    @property
    def identity(self) -> str:
        return f"{self.user}@{socket.gethostname()}"

    async def remote(self, cid: ComponentId) -> Remote:
        remote = self.remotes.get(cid)
        if remote is None:
            remote = Remote(self.bus, cid, clock=self.clock, root=self.root, identity=self.identity)
            await remote.start()
            self.remotes[cid] = remote
        return remote

    async def close(self) -> None:
        for remote in self.remotes.values():
            await remote.close()
        await self.bus.close()


@dataclass
class Console:
    """The state the pages read and the sessions that command."""

    connection: Connection
    url: BrokerUrl
    root: str
    clock: Clock = field(default_factory=LoopClock)
    state: ConsoleState = field(default_factory=ConsoleState)
    sessions: dict[str, Session] = field(default_factory=dict)
    #: whether the server is stopping (its pages' streams then end)
    stopping: Callable[[], bool] = lambda: False
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def watch(self, bus: Bus) -> None:
        """Feed the state from every component's events under the root."""

        def on_event(topic: Topic, envelope: Envelope) -> None:
            before = self.state.version
            with contextlib.suppress(KeyError, ValueError, TypeError):
                self.state.observe(topic.component, topic.name, envelope.data, envelope.snd_stamp, self.clock.tai())
            if self.state.version != before:
                self._changed.set()  # wakes every page waiting; the next waiters get a fresh event
                self._changed = asyncio.Event()

        await bus.subscribe(f"{self.root}/+/+/evt/+", decoded(on_event))

        def on_telemetry(topic: Topic, envelope: Envelope) -> None:
            before = self.state.version
            with contextlib.suppress(KeyError, ValueError, TypeError):
                self.state.observe_telemetry(topic.component, topic.name, envelope.data, envelope.snd_stamp)
            if self.state.version != before:
                self._changed.set()
                self._changed = asyncio.Event()

        for name, topics in TREND_TOPICS.items():  # only the telemetry the page plots
            for topic in topics:
                await bus.subscribe(f"{self.root}/{name}/0/tel/{topic}", decoded(on_telemetry))

    async def wait_change(self, timeout_s: float) -> None:
        """Until the state changes or `timeout_s` real seconds pass."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout_s)

    # -- sessions ---------------------------------------------------------------------------------

    async def login(self, user: str, password: str) -> str:
        """A session token for `user`, once the broker has accepted the user's connection."""
        user = user.strip()
        if not user or len(user) > 64 or not all(c.isalnum() or c in "-_." for c in user):
            raise LoginError("user name: 1 to 64 letters, digits, '-', '_' or '.'")
        url = replace(self.url, username=user, password=password or None)
        connection = replace(self.connection, connect_timeout_s=min(self.connection.connect_timeout_s, 5.0))
        bus = MqttBus(url, client_id=f"{user}-web-{secrets.token_hex(4)}",  # the id begins with the user's name
                      connect_timeout_s=connection.connect_timeout_s)  # fmt: skip
        try:
            await bus.start()
        except BusDisconnectedError as exc:
            raise LoginError(f"the broker at {self.url.host}:{self.url.port} refused user {user!r}: {exc}") from None
        token = secrets.token_urlsafe(24)
        self.sessions[token] = Session(user, bus, LoopClock(), self.root)
        return token

    async def logout(self, token: str) -> None:
        session = self.sessions.pop(token, None)
        if session is not None:
            await session.close()

    async def close(self) -> None:
        for token in list(self.sessions):
            await self.logout(token)

    async def command(
        self, session: Session | None, component: str, command: str, data: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """Send one command as the session's user; every ack, the last one final (ValidationError if refused)."""
        if session is None:
            raise CommandRefusedError("log in to send commands")
        if session.role == "observer":
            raise CommandRefusedError(f"{session.user} observes: its session sends no commands")
        remote = await session.remote(component_id(component))  # as `obsq cmd` names an unknown one
        acks: list[dict[str, Any]] = []

        def record(ack: Ack) -> None:
            acks.append(_ack_row(ack))

        try:
            await remote.command(command, data, timeout_s=COMMAND_TIMEOUT_S, first_ack_s=FIRST_ACK_S, on_ack=record)
        except AckError as exc:
            if not acks or acks[-1]["ack"] != exc.ack.ack.name:
                acks.append(_ack_row(exc.ack))
        return acks


def _ack_row(ack: Ack) -> dict[str, Any]:
    return {"ack": ack.ack.name, "result": ack.result, "command": ack.command, "timeout": ack.timeout_s}


@contextlib.asynccontextmanager
async def reading_bus(console: Console) -> Any:
    """The console's own reading connection, watched, for the server's lifetime."""
    async with connected_bus(console.connection, console.url) as bus:
        await console.watch(bus)
        yield bus
