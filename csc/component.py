"""BaseCsc — the async pump around the summary-state machine — and Remote, its client side.

A component service receives a command, decodes and validates it, asks its state machine
(or its command handler), and carries out the effects through the injected bus and clock.
The interesting rules live in `obsq.csc.core`; this module only moves messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import itertools
import logging
import os
import random
import socket
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import structlog

from obsq.csc import __version__
from obsq.csc.bus.base import Bus, Message
from obsq.csc.clock import Clock, wait_for
from obsq.csc.config import AppliedConfiguration, default_config_root, load_configuration
from obsq.csc.core.acks import AckCode
from obsq.csc.core.codec import MAX_PAYLOAD_BYTES, Envelope, decode, encode
from obsq.csc.core.errors import (
    BusDisconnectedError,
    DecodeError,
    ExpectedError,
    ObsqError,
    ValidationError,
)
from obsq.csc.core.interface import ComponentInterface, with_defaults
from obsq.csc.core.states import State, SummaryStateMachine, Transition
from obsq.csc.core.topics import DEFAULT_ROOT, ComponentId, Topic, TopicKind, component_filter
from obsq.csc.interfaces import load_interface
from obsq.csc.logs import format_message, make_component_logger

HEARTBEAT_INTERVAL_S = 1.0
#: Remote command timeout when the caller gives none (SAL's default, 1 h); INPROGRESS extends it.
DEFAULT_COMMAND_TIMEOUT_S = 3600.0
#: Shortest real time a command is waited for when the clock runs faster than real time.
MIN_SCALED_TIMEOUT_S = 10.0
#: How many recent commands a component remembers to recognise a duplicate delivery.
_SEEN_COMMANDS = 4096
_LOG_BUFFER = 100

# One sequence counter per process, from a random start, so that every command this
# process sends has a distinct (identity, origin, seqNum) whichever Remote sent it.
_command_seq = itertools.count(random.randint(1, 1 << 30))


def user_identity() -> str:
    """SAL's identity for a person: `user@host`."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


class _Stamper:
    """Adds the private fields (seqNum, identity, origin, send time) to one sender's messages."""

    def __init__(self, clock: Clock, identity: str, max_bytes: int) -> None:
        self.identity = identity
        self.origin = os.getpid()
        self._liveness_clock = clock.unscaled()
        self._seq = itertools.count(1)
        self.max_bytes = max_bytes

    def envelope(self, data: dict[str, Any], seq_num: int | None = None) -> Envelope:
        seq = next(self._seq) if seq_num is None else seq_num
        return Envelope(seq, self.identity, self.origin, self._liveness_clock.tai(), data)

    def encode(self, data: dict[str, Any], seq_num: int | None = None) -> bytes:
        return encode(self.envelope(data, seq_num), self.max_bytes)


# -- the component side --------------------------------------------------------------------


@dataclass
class Command:
    """One command being executed by a component."""

    name: str
    data: dict[str, Any]
    seq_num: int
    identity: str
    origin: int
    _send_ack: Callable[[Command, AckCode, str, float], Awaitable[None]] = field(repr=False)

    async def in_progress(self, timeout_s: float, result: str = "") -> None:
        """Send INPROGRESS: the caller extends its deadline to `timeout_s` from now."""
        await self._send_ack(self, AckCode.INPROGRESS, result, timeout_s)


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
        max_payload_bytes: int = MAX_PAYLOAD_BYTES,
    ) -> None:
        self.interface = interface or load_interface(name)
        if self.interface.indexed and index == 0:
            raise ValueError(f"{name} is indexed: give an index > 0")
        self.id = ComponentId(name, index)
        self.root = root
        self.bus = bus
        self.clock = clock
        self._stamper = _Stamper(clock, str(self.id), max_payload_bytes)
        self._log_level = log_level
        self.log = make_component_logger(str(self.id), level=lambda: self._log_level, sink=self._log_sink)
        self._commands: dict[str, CommandSpec] = {}
        self._command_locks: dict[str, asyncio.Lock] = {}
        self._seen: OrderedDict[tuple[str, int, int], None] = OrderedDict()
        self._events: dict[str, dict[str, Any]] = {}
        self._topic_cache: dict[tuple[TopicKind, str], str] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._tg: asyncio.TaskGroup | None = None
        self._log_queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=_LOG_BUFFER)
        self._closing = asyncio.Event()
        self._close_after_ack = False
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

    # -- running ------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve until `close()`; the bus must already be started."""
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                self.bus.add_connection_listener(self._on_connection)
                await self.bus.subscribe(component_filter(self.root, self.id, TopicKind.COMMAND), self._on_command)
                await self._publish_initial_events()
                self.create_task(self._heartbeat_loop(), "heartbeat")
                self.create_task(self._log_pump(), "logMessage")
                await self._on_started()
                self.started.set()
                await self._closing.wait()
                await self._publish_goodbye()
                for task in list(self._tasks):
                    task.cancel()
        finally:
            self._tg = None
            self.done.set()

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
            await clock.sleep(HEARTBEAT_INTERVAL_S)

    def _log_sink(self, level: int, event: dict[str, Any]) -> None:
        record = {
            "name": str(self.id),
            "level": level,
            "message": format_message(event),
            "traceback": str(event.get("exception", "")),
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

    def _on_command(self, message: Message) -> None:
        name = message.topic.rpartition("/")[2]  # the filter is {root}/{C}/{i}/cmd/+
        try:
            envelope = decode(message.payload, self._stamper.max_bytes)
        except DecodeError as exc:
            self.log.warning("command_dropped", topic=message.topic, reason=str(exc))
            return
        key = (envelope.identity, envelope.origin, envelope.seq_num)
        if key in self._seen:
            self.log.warning(
                "duplicate_command_ignored", command=name, identity=envelope.identity, seq=envelope.seq_num
            )
            return
        self._seen[key] = None
        if len(self._seen) > _SEEN_COMMANDS:
            self._seen.popitem(last=False)
        command = Command(name, envelope.data, envelope.seq_num, envelope.identity, envelope.origin, self._send_ack)
        self.create_task(self._execute(command), f"cmd.{name}.{envelope.seq_num}")

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
        data = {
            "ack": int(ack),
            "error": 0 if ack.is_good else 1,
            "result": result[:2000],
            "identity": command.identity,
            "origin": command.origin,
            "command": command.name,
            "timeout": max(0.0, timeout_s),
        }
        self.interface.validate(TopicKind.ACK, "", data)
        with contextlib.suppress(BusDisconnectedError):
            await self.bus.publish(self._topic(TopicKind.ACK), self._stamper.encode(data, command.seq_num), qos=1)

    async def _do_set_log_level(self, command: Command) -> None:
        self._log_level = int(command.data["level"])
        await self.publish_event("logLevel", {"level": self._log_level, "subsystem": command.data.get("subsystem", "")})


class BaseCsc(BaseComponent):
    """A component service: the summary-state machine and its generic commands and events.

    Subclasses register their own commands with `register_command` and override the hooks
    `configure`, `before_transition` and `handle_summary_state`.
    """

    valid_simulation_modes: tuple[int, ...] = (0, 1)

    def __init__(
        self,
        name: str,
        *,
        initial_state: State = State.STANDBY,
        override: str = "",
        simulation_mode: int = 0,
        config_root: Path | None = None,
        site: str | None = None,
        **kwargs: Any,
    ) -> None:
        if simulation_mode not in self.valid_simulation_modes:
            raise ValueError(f"simulation mode {simulation_mode} not in {self.valid_simulation_modes}")
        super().__init__(name, **kwargs)
        self.simulation_mode = simulation_mode
        self.config_root = config_root if config_root is not None else default_config_root()
        self.site = site or os.environ.get("OBSQ_SITE")
        self.config: AppliedConfiguration | None = None
        self._initial_state = initial_state
        self._initial_override = override
        self._machine = SummaryStateMachine()
        self._state_lock = asyncio.Lock()
        self._faulting = False
        for command in ("start", "enable", "disable", "standby", "exitControl"):
            self.register_command(command, self._do_transition, require_enabled=False)

    @property
    def summary_state(self) -> State:
        return self._machine.state

    def command_allowed(self, name: str) -> None:
        self.assert_enabled(name)

    def assert_enabled(self, action: str = "") -> None:
        """Raise ExpectedError unless ENABLED (in FAULT, with the error code and report)."""
        state = self.summary_state
        if state == State.ENABLED:
            return
        what = f"{action} not allowed" if action else "not allowed"
        if state == State.FAULT:
            error = self._events.get("errorCode", {})
            raise ExpectedError(
                f"{what} in state FAULT (errorCode={error.get('errorCode')}: {error.get('errorReport', '')})"
            )
        raise ExpectedError(f"{what} in state {state.name}; the component must be ENABLED")

    async def fault(self, code: int, report: str, traceback: str = "") -> None:
        """Go to FAULT: errorCode, summaryState, then `handle_summary_state` to make hardware safe."""
        if self._faulting:
            return
        self._faulting = True
        try:
            if self._machine.fault() is None:
                return
            self.log.critical("fault", error_code=code, report=report)
            await self.publish_event(
                "errorCode", {"errorCode": code, "errorReport": report, "traceback": traceback}, force=True
            )
            await self.publish_event("summaryState", {"summaryState": int(State.FAULT)})
            try:
                await self.handle_summary_state()
            except Exception:
                self.log.exception("handle_summary_state_failed_in_fault")
        finally:
            self._faulting = False

    # -- hooks for subclasses -----------------------------------------------------------

    async def configure(self, config: dict[str, Any]) -> None:
        """Apply a validated configuration (called by `start`, before the state changes)."""

    async def before_transition(self, transition: Transition) -> None:
        """Veto a state change by raising ExpectedError (e.g. refuse STANDBY while cooling down)."""

    async def handle_summary_state(self) -> None:
        """React to the new summary state (connect hardware, start or stop loops, make safe)."""

    # -- internals ----------------------------------------------------------------------

    async def _publish_initial_events(self) -> None:
        await super()._publish_initial_events()
        await self.publish_event("simulationMode", {"mode": self.simulation_mode})
        await self.publish_event("errorCode", {"errorCode": 0, "errorReport": "", "traceback": ""})
        await self.publish_event("summaryState", {"summaryState": int(self.summary_state)})

    async def _on_started(self) -> None:
        path = {
            State.STANDBY: [],
            State.DISABLED: ["start"],
            State.ENABLED: ["start", "enable"],
        }.get(self._initial_state)
        if path is None:
            raise ValueError(f"initial state must be STANDBY, DISABLED or ENABLED, not {self._initial_state.name}")
        for name in path:
            async with self._state_lock:
                await self._transition(name, self._initial_override if name == "start" else "")

    async def _do_transition(self, command: Command) -> None:
        async with self._state_lock:
            await self._transition(command.name, command.data.get("configurationOverride", ""))
        if self.summary_state == State.OFFLINE:
            self._close_after_ack = True

    async def _transition(self, name: str, override: str = "") -> None:
        self._machine.check(name)
        if name == "start":
            config = load_configuration(self.interface, config_root=self.config_root, site=self.site, override=override)
            await self.configure(config.values)
            self.config = config
        transition = Transition(name, self._machine.state, self._machine.check(name))
        await self.before_transition(transition)
        self._machine.handle(name)
        try:
            await self.handle_summary_state()
        except Exception as exc:
            self._machine.revert(transition)
            self.log.exception("transition_reverted", command=name)
            raise ExpectedError(f"{name} failed and the state was reverted to {transition.old.name}: {exc}") from exc
        if name == "start" and self.config is not None:
            await self.publish_event(
                "configurationApplied",
                {
                    "configurations": ",".join(self.config.files),
                    "version": self.version,
                    "url": self.config.url,
                    "schemaVersion": self.config.schema_version,
                    "otherInfo": "",
                },
                force=True,
            )
        self.log.info("state_changed", command=name, old=transition.old.name, new=transition.new.name)
        if transition.new != State.FAULT:
            await self.publish_event("errorCode", {"errorCode": 0, "errorReport": "", "traceback": ""})
        await self.publish_event("summaryState", {"summaryState": int(transition.new)})


# -- the client side ----------------------------------------------------------------------


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


class TopicReader:
    """The received samples of one event or telemetry topic of a Remote.

    Pull (`get`, `aget`, `next`) or push (`callback`), as salobj's read topics.
    """

    def __init__(self, name: str, clock: Clock, queue_len: int = 100) -> None:
        self.name = name
        self._clock = clock
        self._latest: Envelope | None = None
        self._queue: asyncio.Queue[Envelope] = asyncio.Queue()
        self._queue_len = queue_len
        self._new = asyncio.Event()
        self.callback: Callable[[Envelope], None] | None = None

    def get(self) -> dict[str, Any] | None:
        """The latest sample's data, or None if none has been seen."""
        return self._latest.data if self._latest else None

    def get_envelope(self) -> Envelope | None:
        return self._latest

    async def aget(self, timeout_s: float) -> dict[str, Any]:
        """The latest sample (a late joiner gets the retained one), waiting for a first if needed."""
        if self._latest is None:
            await self._wait_new(timeout_s)
        assert self._latest is not None
        return self._latest.data

    async def next(self, *, flush: bool, timeout_s: float) -> dict[str, Any]:
        """The oldest unread sample; with `flush`, drop unread ones and wait for a new one."""
        if flush:
            self.flush()
        if self._queue.empty():
            await self._wait_new(timeout_s)
        return self._queue.get_nowait().data

    def flush(self) -> None:
        while not self._queue.empty():
            self._queue.get_nowait()

    async def _wait_new(self, timeout_s: float) -> None:
        self._new.clear()
        clock, wait_s = self._clock, timeout_s
        if clock.speed > 1:  # samples arrive in real time: as for commands, never below MIN_SCALED_TIMEOUT_S
            clock, wait_s = clock.unscaled(), max(timeout_s / clock.speed, MIN_SCALED_TIMEOUT_S)
        try:
            await wait_for(clock, self._new.wait(), wait_s)
        except TimeoutError:
            raise TimeoutError(f"no {self.name} sample within {timeout_s:g} s") from None

    def receive(self, envelope: Envelope) -> None:
        """Called by the Remote for each decoded, validated sample."""
        latest = self._latest
        if latest is not None and (latest.identity, latest.origin, latest.seq_num) == (
            envelope.identity,
            envelope.origin,
            envelope.seq_num,
        ):
            return  # a retained copy delivered again (amqtt does this); state is idempotent
        self._latest = envelope
        if self.callback is not None:
            self.callback(envelope)
            return
        if self._queue.qsize() >= self._queue_len:
            self._queue.get_nowait()
        self._queue.put_nowait(envelope)
        self._new.set()


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
        self._stamper = _Stamper(clock, identity or user_identity(), max_payload_bytes)
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
        seq = next(_command_seq)
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
        # deadlines run on real time: a scaled clock shortens them by its speed, but never below
        # MIN_SCALED_TIMEOUT_S, because the work behind a command (files, processes) does not speed up
        wall = self.clock.unscaled()
        speed = self.clock.speed

        def real(seconds: float) -> float:
            return max(seconds / speed, MIN_SCALED_TIMEOUT_S) if speed > 1 else seconds

        deadline = wall.monotonic() + real(timeout_s)
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
                deadline = max(deadline, wall.monotonic() + real(item.timeout_s))
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
