"""BaseComponent: anything on the bus that takes commands — commands and acks, events, heartbeat, logs.

A component receives a command, decodes and validates it, runs its registered handler, and
acknowledges it; it publishes retained events, a heartbeat each second and its log. The
summary-state machine (BaseCsc, `csc.py`) and scripts (BaseScript) build on it; the client
side is `remote.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Self

from obsq.csc import __version__
from obsq.csc.bus.base import Bus, Message
from obsq.csc.clock import Clock
from obsq.csc.component.stamp import Stamper
from obsq.csc.core.acks import AckCode
from obsq.csc.core.codec import Envelope, RefusedError, Sender, WireLimits, decode
from obsq.csc.core.errors import (
    BusDisconnectedError,
    DecodeError,
    ExpectedError,
    ObsqError,
)
from obsq.csc.core.interface import ComponentInterface, with_defaults
from obsq.csc.core.ledger import CommandLedger, LedgerStore, Verdict
from obsq.csc.core.principals import identity_allowed, is_principal
from obsq.csc.core.topics import DEFAULT_ROOT, ComponentId, Topic, TopicKind, component_filter
from obsq.csc.interfaces import interface_names, load_interface
from obsq.csc.logs import format_message, make_component_logger

HEARTBEAT_INTERVAL_S = 1.0
#: Work done in real time (processes, files) that is still going sends INPROGRESS this often (real s) ...
KEEPALIVE_S = 5.0
#: ... each allowing the caller this many real seconds more.
PROGRESS_S = 30.0
_LOG_BUFFER = 100
#: A log record's text fields are cut to this many characters (within the wire's string limit).
_LOG_FIELD_CHARS = 8000
#: At most one log record per this many (real) seconds about payloads dropped at the door.
DROP_LOG_INTERVAL_S = 1.0
#: Commands waiting or running at once; beyond it a command is refused by name (memory stays bounded).
MAX_COMMAND_BACKLOG = 10_000
#: Once closed, a component's tasks still running after this many real seconds are cancelled again (and
#: again, as long as one runs): see `BaseComponent.run`.
CANCEL_AGAIN_S = 1.0
#: Retained commands ignored are logged once per topic, for this many topics at most.
_RETAINED_LOGGED_TOPICS = 1000


@dataclass
class Command:
    """One command being executed by a component."""

    name: str
    data: dict[str, Any]
    seq_num: int
    identity: str
    origin: int
    _send_ack: Callable[[Command, AckCode, str, float], Awaitable[None]] = field(repr=False)
    #: the component's clock speed (clock seconds per real second)
    speed: float = 1.0

    @property
    def sender(self) -> Sender:
        return Sender(self.seq_num, self.identity, self.origin)

    async def in_progress(self, timeout_s: float, result: str = "") -> None:
        """Send INPROGRESS: the caller extends its deadline to `timeout_s` from now."""
        await self._send_ack(self, AckCode.INPROGRESS, result, timeout_s)

    async def working(self, real_s: float, result: str = "") -> None:
        """INPROGRESS for work done in real time (processes, files): `real_s` real seconds from now.

        SAL's ack timeout is in the component's clock seconds; at a clock speed above 1 the
        caller divides it by the speed, so real work states its allowance times the speed.
        """
        await self.in_progress(real_s * self.speed, result)


CommandHandler = Callable[[Command], Awaitable[str | None]]


@dataclass(frozen=True)
class CommandSpec:
    """How a component runs one command: its handler, and whether it needs ENABLED or may overlap."""

    handler: CommandHandler
    require_enabled: bool
    concurrent: bool


class BaseComponent:
    """Anything on the bus that takes commands: commands and acks, events, heartbeat, logs.

    Components (BaseCsc) and scripts (BaseScript) build on it. Subclasses register their
    commands with `register_command`; `command_allowed` lets them refuse commands by state.
    `origin`, the `private_origin` of what it sends, is this process id unless given (an
    in-process script runner gives each script its own). `heartbeat_s` is SAL's 1 s; tests
    that run hours of virtual time may space heartbeats out.

    At the door every command is decoded under the wire limits (`interface.limits`, the
    payload size overridable by `max_payload_bytes`): a refused one whose sender can be read
    gets a FAILED ack naming the field and the rule, any other is dropped with one
    rate-limited log record naming the topic and the reason. Then the command ledger admits
    it at most once per (identity, origin, seqNum): a duplicate is answered with the final ack
    it already had, a replay older than the ledger's window is refused by name. `ledger_store`
    makes that record survive a restart.
    """

    version: str = __version__

    def __init__(
        self,
        name: str,
        *,
        bus: Bus,
        clock: Clock,
        index: int = 0,
        root: str = DEFAULT_ROOT,
        log_level: int = logging.INFO,
        interface: ComponentInterface | None = None,
        max_payload_bytes: int | None = None,
        origin: int | None = None,
        heartbeat_s: float = HEARTBEAT_INTERVAL_S,
        ledger_store: LedgerStore | None = None,
    ) -> None:
        self.interface = interface or load_interface(name)
        if self.interface.indexed and index == 0:
            raise ValueError(f"{name} is indexed: give an index > 0")
        self.id = ComponentId(name, index)
        self.root = root
        self.bus = bus
        self.clock = clock
        limits = self.interface.limits
        if max_payload_bytes is not None:
            limits = dataclasses.replace(limits, max_payload_bytes=max_payload_bytes)
        self.limits: WireLimits = limits
        self._stamper = Stamper(clock, str(self.id), limits, origin)
        self._log_level = log_level
        self.heartbeat_s = heartbeat_s
        self.log = make_component_logger(str(self.id), level=lambda: self._log_level, sink=self._log_sink)
        self._commands: dict[str, CommandSpec] = {}
        self._command_locks: dict[str, asyncio.Lock] = {}
        self.ledger = CommandLedger(store=ledger_store)
        self._backlog = 0
        self._drops = 0
        self._last_drop_log = -math.inf
        self._events: dict[str, dict[str, Any]] = {}
        self._topic_cache: dict[tuple[TopicKind, str], str] = {}
        self._command_prefix = component_filter(root, self.id, TopicKind.COMMAND).removesuffix("+")
        self._tasks: set[asyncio.Task[Any]] = set()
        self._tg: asyncio.TaskGroup | None = None
        self._log_queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=_LOG_BUFFER)
        self._closing = asyncio.Event()
        self._close_after_ack = False
        self._retained_topics: set[str] = set()
        self._runner: asyncio.Task[None] | None = None
        self.started = asyncio.Event()
        self.done = asyncio.Event()
        self.register_command("setLogLevel", self._do_set_log_level, require_enabled=False, concurrent=True)
        bus.set_will(
            Message(
                self._topic(TopicKind.EVENT, "liveness"),
                self._liveness_payload(False, "connection lost"),
                1,
                True,
            )
        )

    # -- public API ---------------------------------------------------------------------

    @property
    def identity(self) -> str:
        return str(self.id)

    @property
    def origin(self) -> int:
        return self._stamper.origin

    def register_command(
        self, name: str, handler: CommandHandler, *, require_enabled: bool = True, concurrent: bool = False
    ) -> None:
        """Bind a handler to a command of the interface (every command needs exactly one).

        `require_enabled` commands pass `command_allowed` first; `concurrent` ones may overlap.
        """
        self.interface.get(TopicKind.COMMAND, name)
        self._commands[name] = CommandSpec(handler, require_enabled, concurrent)
        self._command_locks[name] = asyncio.Lock()

    def command_allowed(self, name: str) -> None:
        """Raise ExpectedError if command `name` may not run now (CSCs: unless ENABLED)."""

    async def publish_event(self, name: str, data: Mapping[str, Any], *, force: bool = False) -> None:
        """Publish a retained event; unchanged data is not re-sent unless `force`."""
        payload = dict(data)
        if not force and self._events.get(name) == payload:
            return
        self.interface.validate(TopicKind.EVENT, name, payload)
        self._events[name] = payload
        with contextlib.suppress(BusDisconnectedError):
            await self.bus.publish(
                self._topic(TopicKind.EVENT, name), self._stamper.encode(payload), qos=1, retain=True
            )

    async def publish_telemetry(self, name: str, data: Mapping[str, Any]) -> None:
        """Publish a telemetry sample (QoS 0, not retained)."""
        payload = dict(data)
        self.interface.validate(TopicKind.TELEMETRY, name, payload)
        with contextlib.suppress(BusDisconnectedError):
            await self.bus.publish(self._topic(TopicKind.TELEMETRY, name), self._stamper.encode(payload), qos=0)

    def create_task(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run `coro` in this component's task group, named `{identity}.{name}`."""
        if self._tg is None:
            raise RuntimeError(f"{self.id} is not running")
        task: asyncio.Task[Any] = self._tg.create_task(coro, name=f"{self.id}.{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @contextlib.asynccontextmanager
    async def keep_alive(self, command: Command, describe: Callable[[], str]) -> AsyncIterator[None]:
        """While the body runs, INPROGRESS every KEEPALIVE_S real seconds (`describe()` its text).

        For work whose time is real and cannot be predicted (starting processes, writing files):
        the caller's deadline moves on while this component says it is still at it, so a busy
        machine makes the work slower, not failed. The work itself judges its own progress (a
        child process that uses no CPU, a write that raises) and fails by name.
        """
        wall = self.clock.unscaled()
        done = asyncio.Event()

        async def beat() -> None:
            # ends at `done` even if a cancellation is lost (Python 3.11's asyncio.wait_for in aiomqtt's publish)
            while not done.is_set():
                await command.working(PROGRESS_S, describe())
                with contextlib.suppress(TimeoutError):
                    await wall.wait_for(done.wait(), KEEPALIVE_S)

        task = self.create_task(beat(), f"{command.name}.keepalive")
        try:
            yield
        finally:
            done.set()
            task.cancel()
            await asyncio.wait({task})  # never raises: a cancellation of the command itself still propagates

    # -- running ------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve until `close()`, then end, even if one of its tasks ignores a cancellation; the bus must be started.

        Once closed the component cancels its tasks and waits for them. A task can swallow that
        cancellation: Python 3.11's `asyncio.wait_for`, with which aiomqtt waits for a publish's
        PUBACK, returns instead of raising when the cancellation lands just as the PUBACK has come.
        A heartbeat loop caught so beats on: a script's process lived on after DONE until the queue
        stopped (issue 22: 17 minutes), a component closed by exitControl just after it started
        stayed OFFLINE with its process alive and deaf to SIGTERM (issue 23). So every task still
        running CANCEL_AGAIN_S after the close is cancelled again, as long as one runs, and named in
        the log (except those `_may_cancel_again` keeps: a script's run while it cleans up).
        """
        again = asyncio.get_running_loop().create_task(self._cancel_stragglers(), name=f"{self.id}.cancel_again")
        try:
            await self._serve()
        finally:
            again.cancel()

    def _may_cancel_again(self, task: asyncio.Task[Any]) -> bool:
        """Whether a task still running after the close is cancelled again (all of them, unless overridden)."""
        return True

    async def _cancel_stragglers(self) -> None:
        await self._closing.wait()
        wall = self.clock.unscaled()
        while True:
            await wall.sleep(CANCEL_AGAIN_S)
            stragglers = [t for t in self._tasks if not t.done() and self._may_cancel_again(t)]
            if stragglers:
                self.log.warning("cancelled_again", tasks=",".join(sorted(t.get_name() for t in stragglers)))
            for task in stragglers:
                task.cancel()

    async def _serve(self) -> None:
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                try:
                    await self._serve_in()
                except BaseException:
                    # a start that failed (the camera's registry unreadable): the task group cancels the
                    # rest, and a cancellation the heartbeat's publish swallowed would hold the process
                    # for ever (1 start in 3 here): closing lets `_cancel_stragglers` cancel it again
                    self._closing.set()
                    raise
        finally:
            self._tg = None
            self.done.set()

    async def _serve_in(self) -> None:
        self.bus.add_connection_listener(self._on_connection)
        commands = component_filter(self.root, self.id, TopicKind.COMMAND)
        await self.bus.subscribe(commands, self._on_message)
        await self.bus.subscribe(f"{commands}/+", self._on_message)  # …/cmd/{command}/{user}: authenticated
        await self._publish_initial_events()
        self.create_task(self._heartbeat_loop(), "heartbeat")
        self.create_task(self._log_pump(), "logMessage")
        await self._on_started()
        self.started.set()
        await self._closing.wait()
        await self._on_closing()
        await self._publish_goodbye()
        for task in list(self._tasks):
            task.cancel()

    def close(self) -> None:
        """Ask `run()` to finish (safe to call from a signal handler or a command)."""
        self._closing.set()

    async def __aenter__(self) -> Self:
        self._runner = asyncio.create_task(self.run(), name=f"{self.id}.run")
        started = asyncio.create_task(self.started.wait())
        await asyncio.wait({self._runner, started}, return_when=asyncio.FIRST_COMPLETED)
        if self._runner.done():
            started.cancel()
            self._runner.result()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()
        if self._runner is not None:
            await self._runner

    async def _on_started(self) -> None:
        """Runs once the component serves commands, before `started` is set."""

    async def _on_closing(self) -> None:
        """Runs once `close()` is asked, before the goodbye: let go of what the component holds (its remotes)."""

    # -- internals: events --------------------------------------------------------------

    def _topic(self, kind: TopicKind, name: str = "") -> str:
        key = (kind, name)
        topic = self._topic_cache.get(key)
        if topic is None:
            topic = self._topic_cache[key] = str(Topic(self.root, self.id, kind, name))
        return topic

    def _liveness_payload(self, alive: bool, reason: str) -> bytes:
        return self._stamper.encode({"alive": alive, "reason": reason})

    async def _publish_initial_events(self) -> None:
        await self.publish_event("liveness", {"alive": True, "reason": "running"}, force=True)
        await self.publish_event(
            "softwareVersions",
            {
                "salVersion": "",
                "xmlVersion": "",
                "cscVersion": self.version,
                "subsystemVersions": f"obsq={__version__}",
            },
        )
        await self.publish_event("logLevel", {"level": self._log_level, "subsystem": ""})

    async def _publish_goodbye(self) -> None:
        with contextlib.suppress(BusDisconnectedError):
            await self.publish_event("liveness", {"alive": False, "reason": "exited"}, force=True)

    def _on_connection(self, connected: bool) -> None:
        if connected and self.started.is_set() and self._tg is not None:
            self.create_task(self._republish(), "republish")

    async def _republish(self) -> None:
        """After a reconnect the broker may have lost our retained state: send it again."""
        self._events["liveness"] = {"alive": True, "reason": "running"}
        for name, data in list(self._events.items()):
            await self.publish_event(name, data, force=True)
        self.log.info("reconnected", republished=len(self._events))

    async def _heartbeat_loop(self) -> None:
        clock = self.clock.unscaled()
        while True:
            await self.publish_event("heartbeat", {"heartbeat": True}, force=True)
            await clock.sleep(self.heartbeat_s)

    def _log_sink(self, level: int, event: dict[str, Any]) -> None:
        record = {
            "name": str(self.id),
            "level": level,
            "message": format_message(event)[:_LOG_FIELD_CHARS],
            "traceback": str(event.get("exception", ""))[-_LOG_FIELD_CHARS:],
            "process": os.getpid(),
            "timestamp": self.clock.unscaled().tai(),
        }
        if self._log_queue.full():
            self._log_queue.get_nowait()
        self._log_queue.put_nowait(record)

    async def _log_pump(self) -> None:
        while True:
            record = await self._log_queue.get()
            await self.publish_event("logMessage", record, force=True)

    # -- internals: commands ------------------------------------------------------------

    def _on_message(self, message: Message) -> None:
        # the filters are {root}/{C}/{i}/cmd/+ and …/cmd/+/+ (the user the broker authenticated)
        if message.retain:
            self._ignore_retained(message.topic)
        else:
            self._on_command(message)

    def _on_command(self, message: Message) -> None:
        name, _, user = message.topic[len(self._command_prefix) :].partition("/")
        try:
            envelope = decode(message.payload, self.limits)
        except RefusedError as exc:
            if exc.sender is None:
                self._dropped(message.topic, str(exc))
            else:
                self._refuse(exc.sender, name, str(exc))
            return
        except DecodeError as exc:
            self._dropped(message.topic, str(exc))
            return
        sender = envelope.sender
        refusal = self._refusal_at_the_door(envelope, user)
        if refusal:
            self._refuse(sender, name, refusal)
            return
        verdict = self.ledger.admit(sender, envelope.snd_stamp)
        if verdict is Verdict.DUPLICATE:
            self._answer_duplicate(sender, name)
            return
        if verdict is Verdict.TOO_OLD:
            self._refuse(
                sender,
                name,
                f"private_seqNum {sender.seq_num} of {sender.identity} (origin {sender.origin}) is older than its"
                f" last {self.ledger.window} commands: a replay, not run (rule: exactly once)",
            )
            return
        command = Command(
            name, envelope.data, envelope.seq_num, envelope.identity, envelope.origin, self._send_ack, self.clock.speed
        )
        self._backlog += 1
        task = self.create_task(self._execute(command), f"cmd.{name[:64]}.{envelope.seq_num}")
        task.add_done_callback(self._command_done)

    def _refusal_at_the_door(self, envelope: Envelope, user: str) -> str:
        """Why a decoded command is not admitted ("" if it is): its identity, its salIndex, the backlog."""
        identity = envelope.identity
        if user and is_principal(user, interface_names()) and not identity_allowed(user, identity):
            return (f"private_identity {identity!r} is not an identity of the authenticated user {user!r}"
                    " (rule: authenticated identity)")  # fmt: skip
        if envelope.sal_index is not None and envelope.sal_index != self.id.index:
            return (f"salIndex {envelope.sal_index} is not this component's index {self.id.index} ({self.id})"
                    " (rule: salIndex is the topic's index)")  # fmt: skip
        if self._backlog >= MAX_COMMAND_BACKLOG:
            # MQTT 3.1.1 has no flow control from subscriber to publisher: refuse, never drop silently
            return f"{self._backlog} commands are waiting; try again later (rule: backlog)"
        return ""

    def _ignore_retained(self, topic: str) -> None:
        """A retained message on a command topic is not a command: it would run again at every start.

        A command is sent once, to the components listening then (a careless `mosquitto_pub -r` is
        delivered live like any other, and runs); what the broker keeps and hands to a component
        when it subscribes is ignored, and logged once per topic with how to clear it.
        """
        if topic in self._retained_topics or len(self._retained_topics) >= _RETAINED_LOGGED_TOPICS:
            return
        self._retained_topics.add(topic)
        self.log.warning(
            "retained_command_ignored",
            topic=topic[:200],
            rule="commands are never retained: a retained one would run again at every start",
            clear_it_with=f"mosquitto_pub -r -n -t '{topic[:200]}'",
        )

    def _command_done(self, _: asyncio.Task[Any]) -> None:
        self._backlog -= 1

    def _refuse(self, sender: Sender, name: str, reason: str) -> None:
        """A FAILED ack for a command refused at the door (not admitted: it was never run)."""
        if self._backlog >= 2 * MAX_COMMAND_BACKLOG:  # even refusals would pile up: drop, and say so
            self._dropped(f"{self.root}/{self.id.name}/{self.id.index}/cmd/{name[:64]}", f"not answered: {reason}")
            return
        command = Command(name, {}, sender.seq_num, sender.identity, sender.origin, self._send_ack, self.clock.speed)
        text = f"Failed: {self.id.name} command {name[:64]}: {reason}"
        self._backlog += 1
        task = self.create_task(self._publish_ack(command, AckCode.FAILED, text), "refuse")
        task.add_done_callback(self._command_done)

    def _answer_duplicate(self, sender: Sender, name: str) -> None:
        kept = self.ledger.result(sender)
        if kept is not None:  # a redelivery, or a Remote asking again after an outage: the same answer
            self.create_task(self._publish_ack_data(kept, sender.seq_num), "reack")
        elif not self.ledger.in_flight(sender):
            self._refuse(sender, name, "already executed; its result is no longer kept (rule: exactly once)")
        self.log.debug("duplicate_command", command=name[:64], identity=sender.identity, seq=sender.seq_num)

    def _dropped(self, topic: str, reason: str) -> None:
        """Log what was dropped at the door, at most once per DROP_LOG_INTERVAL_S (real time)."""
        self._drops += 1
        now = self.clock.unscaled().monotonic()
        if now - self._last_drop_log < DROP_LOG_INTERVAL_S:
            return
        self._last_drop_log = now
        self.log.warning(
            "command_dropped", topic=topic[:200], reason=reason[:500], dropped_since_last_report=self._drops
        )
        self._drops = 0

    async def _execute(self, command: Command) -> None:
        try:
            spec = self._commands.get(command.name)
            if spec is None:
                self.interface.get(TopicKind.COMMAND, command.name)  # names the unknown command
                raise ExpectedError(f"{self.id} has no handler for command {command.name!r}")
            self.interface.validate(TopicKind.COMMAND, command.name, command.data)
            command.data = with_defaults(self.interface.get(TopicKind.COMMAND, command.name).schema, command.data)
            lock = contextlib.nullcontext() if spec.concurrent else self._command_locks[command.name]
            async with lock:
                if spec.require_enabled:
                    self.command_allowed(command.name)
                result = await spec.handler(command)
            await self._send_ack(command, AckCode.COMPLETE, result or "Done")
            if self._close_after_ack:
                self.close()  # exitControl: only once its ack is out
        except asyncio.CancelledError:
            with contextlib.suppress(ObsqError):
                await self._send_ack(command, AckCode.ABORTED, "Aborted")
            raise
        except ExpectedError as exc:
            self.log.info("command_failed", command=command.name, reason=str(exc))
            await self._send_ack(command, AckCode.FAILED, f"Failed: {exc}")
        except TimeoutError as exc:
            await self._send_ack(command, AckCode.TIMEOUT, f"Timed out: {exc}")
        except Exception as exc:
            self.log.exception("command_error", command=command.name)
            await self._send_ack(command, AckCode.FAILED, f"Failed: {type(exc).__name__}: {exc}")

    async def _send_ack(self, command: Command, ack: AckCode, result: str, timeout_s: float = 0.0) -> None:
        data = await self._publish_ack(command, ack, result, timeout_s)
        if ack is AckCode.INPROGRESS:
            self.ledger.progress(command.sender, data)
        else:
            self.ledger.finished(command.sender, data)

    async def _publish_ack(self, command: Command, ack: AckCode, result: str, timeout_s: float = 0.0) -> dict[str, Any]:
        data = {
            "ack": int(ack),
            "error": 0 if ack.is_good else 1,
            "result": result[:2000],
            "identity": command.identity,
            "origin": command.origin,
            "command": command.name[:128],
            "timeout": max(0.0, timeout_s) if math.isfinite(timeout_s) else 0.0,
        }
        self.interface.validate(TopicKind.ACK, "", data)
        await self._publish_ack_data(data, command.seq_num)
        return data

    async def _publish_ack_data(self, data: dict[str, Any], seq_num: int) -> None:
        with contextlib.suppress(BusDisconnectedError):
            await self.bus.publish(self._topic(TopicKind.ACK), self._stamper.encode(data, seq_num), qos=1)

    async def _do_set_log_level(self, command: Command) -> None:
        self._log_level = int(command.data["level"])
        await self.publish_event("logLevel", {"level": self._log_level, "subsystem": command.data.get("subsystem", "")})
