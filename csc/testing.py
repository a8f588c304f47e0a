"""Checks shipped with the package so every component's and every bus's tests reuse them.

- `check_state_conformance`: every (summary state, command) pair against the table in
  `obsq.csc.core.states`, over the bus, ending with exitControl.
- `check_bus_conformance`: the Bus contract (routing, wildcards, retained messages,
  empty-payload clearing, ordering, will, unsubscribe) for any pair of bus clients.

These are test helpers: runtime code must not import this module (import-linter checks it).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from obsq.csc.bus.base import Bus, Message
from obsq.csc.bus.memory import MemoryBroker, MemoryBus
from obsq.csc.clock import LoopClock, ManualClock, wait_for
from obsq.csc.component import AckError, BaseCsc, Remote
from obsq.csc.core.acks import AckCode
from obsq.csc.core.errors import BusDisconnectedError
from obsq.csc.core.states import TRANSITION_COMMANDS, TRANSITIONS, State, command_path
from obsq.csc.core.topics import TopicKind

T = TypeVar("T")


def unique_root(prefix: str = "test") -> str:
    """A topic root no other test run uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


async def wait_state(remote: Remote, state: State, timeout_s: float = 5.0) -> None:
    """Wait until the remote has seen summaryState == state."""
    reader = remote.event("summaryState")
    loop_clock = LoopClock()

    async def poll() -> None:
        while reader.get().get("summaryState") != int(state):
            await reader.next(flush=False, timeout_s=timeout_s)

    await wait_for(loop_clock, poll(), timeout_s)


async def _go_to(csc: BaseCsc, remote: Remote, state: State) -> None:
    if state == State.FAULT:
        if csc.summary_state != State.FAULT:
            await csc.fault(99, "state conformance check")
        return
    for command in command_path(csc.summary_state, state):
        await remote.command(command, timeout_s=10)


async def check_state_conformance(csc: BaseCsc, remote: Remote) -> list[tuple[State, str, str]]:
    """Check every (summary state, command) pair of a running component over the bus.

    Allowed transitions complete and move the state as the table says; refused ones FAIL
    and leave the state unchanged; the component's own commands FAIL outside ENABLED.
    Ends by sending exitControl from STANDBY, which stops the component.

    Returns the (state, command, outcome) triples checked, for the test's own assertions.
    """
    checked: list[tuple[State, str, str]] = []
    own_commands = [
        name for name in remote.interface.topics(TopicKind.COMMAND) if name not in (*TRANSITION_COMMANDS, "setLogLevel")
    ]
    for state in (State.STANDBY, State.DISABLED, State.ENABLED, State.FAULT):
        for command in TRANSITION_COMMANDS:
            if command == "exitControl" and state == State.STANDBY:
                continue  # the last check: it ends the component
            await _go_to(csc, remote, state)
            expected = TRANSITIONS.get((state, command))
            if expected is None:
                try:
                    await remote.command(command, timeout_s=10)
                except AckError as exc:
                    if exc.ack.ack != AckCode.FAILED or "not allowed" not in exc.ack.result:
                        raise AssertionError(
                            f"{command} in {state.name}: expected a FAILED 'not allowed', got {exc}"
                        ) from exc
                else:
                    raise AssertionError(f"{command} in {state.name} should have failed")
                if csc.summary_state != state:
                    raise AssertionError(f"refused {command} changed the state from {state.name}")
                checked.append((state, command, "refused"))
            else:
                ack = await remote.command(command, timeout_s=10)
                if ack.ack != AckCode.COMPLETE or csc.summary_state != expected:
                    raise AssertionError(f"{command} in {state.name} should reach {expected.name}")
                await wait_state(remote, expected)
                checked.append((state, command, expected.name))
        if state != State.ENABLED:
            for command in own_commands:
                try:
                    await remote.command(command, _minimal_payload(remote, command), timeout_s=10)
                except AckError as exc:
                    if exc.ack.ack != AckCode.FAILED:
                        raise AssertionError(f"{command} in {state.name}: expected FAILED, got {exc}") from exc
                else:
                    raise AssertionError(f"{command} in {state.name} should need ENABLED")
                checked.append((state, command, "refused"))
    await _go_to(csc, remote, State.STANDBY)
    await remote.command("exitControl", timeout_s=10)
    await wait_for(LoopClock(), csc.done.wait(), 10)
    checked.append((State.STANDBY, "exitControl", "OFFLINE"))
    return checked


def _minimal_payload(remote: Remote, command: str) -> dict[str, Any]:
    """The smallest payload that satisfies the command's schema (required fields at their minimum)."""
    schema = remote.interface.get(TopicKind.COMMAND, command).schema
    payload: dict[str, Any] = {}
    for name in schema.get("required", []):
        prop = schema["properties"][name]
        if "default" in prop:
            payload[name] = prop["default"]
        elif "enum" in prop:
            payload[name] = prop["enum"][0]
        else:
            payload[name] = {
                "integer": prop.get("minimum", 0),
                "number": prop.get("minimum", 0.0),
                "string": "x" * prop.get("minLength", 0),
                "boolean": False,
                "array": [],
                "object": {},
            }[prop["type"]]
    return payload


# -- bus conformance ------------------------------------------------------------------------

#: make_bus(client_id, will) -> a started bus client
BusFactory = Callable[[str, Message | None], Awaitable[Bus]]


class _Collector:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self._event = asyncio.Event()

    def __call__(self, message: Message) -> None:
        self.messages.append(message)
        self._event.set()

    async def wait_count(self, n: int, timeout_s: float = 5.0) -> list[Message]:
        async def poll() -> None:
            while len(self.messages) < n:
                self._event.clear()
                await self._event.wait()

        await wait_for(LoopClock(), poll(), timeout_s)
        return self.messages

    async def quiet(self, seconds: float = 0.2) -> None:
        await LoopClock().sleep(seconds)


async def check_bus_conformance(make_bus: BusFactory, kill: Callable[[Bus], Awaitable[None]]) -> list[str]:
    """Run the Bus contract against fresh clients from `make_bus(client_id)`.

    `make_bus(client_id, will)` returns a started client; `kill(bus)` must end a client
    abruptly, so that the broker publishes its will.
    Returns the names of the checks that passed.
    """
    root = unique_root("busconf")
    passed: list[str] = []
    a = await make_bus("conf-a", None)
    b = await make_bus("conf-b", None)
    try:
        # routing: exact and wildcard filters; nothing unsubscribed arrives
        exact, wild, deep = _Collector(), _Collector(), _Collector()
        await b.subscribe(f"{root}/X/0/evt/one", exact)
        await b.subscribe(f"{root}/+/0/evt/+", wild)
        await b.subscribe(f"{root}/X/#", deep)
        await a.publish(f"{root}/X/0/evt/one", b"1", qos=1)
        await a.publish(f"{root}/X/0/tel/two", b"2", qos=0)
        await a.publish(f"{root}/Y/0/evt/three", b"3", qos=1)
        await a.publish(f"{root}/other", b"4", qos=1)
        await deep.wait_count(2)
        await wild.wait_count(2)
        await exact.wait_count(1)
        await exact.quiet()
        assert [m.payload for m in exact.messages] == [b"1"], exact.messages
        assert sorted(m.payload for m in wild.messages) == [b"1", b"3"], wild.messages
        assert sorted(m.payload for m in deep.messages) == [b"1", b"2"], deep.messages
        passed.append("routing")

        # ordering of many QoS 1 messages from one client
        ordered = _Collector()
        await b.subscribe(f"{root}/order", ordered)
        for i in range(200):
            await a.publish(f"{root}/order", str(i).encode(), qos=1)
        await ordered.wait_count(200)
        assert [int(m.payload) for m in ordered.messages] == list(range(200))
        passed.append("ordering")

        # retained: a late subscriber gets the last value; an empty payload clears it
        await a.publish(f"{root}/R/0/evt/state", b"old", qos=1, retain=True)
        await a.publish(f"{root}/R/0/evt/state", b"new", qos=1, retain=True)
        await a.publish(f"{root}/R/0/evt/gone", b"x", qos=1, retain=True)
        await a.publish(f"{root}/R/0/evt/gone", b"", qos=1, retain=True)
        await _Collector().quiet(0.2)
        late = _Collector()
        await b.subscribe(f"{root}/R/0/evt/+", late)
        await late.wait_count(1)
        await late.quiet()
        payloads = {m.payload for m in late.messages}  # amqtt may deliver a retained copy twice
        assert payloads == {b"new"}, late.messages
        assert late.messages[0].retain
        passed.append("retained")

        # unsubscribe: nothing more arrives on that handler
        unsub = _Collector()
        subscription = await b.subscribe(f"{root}/U", unsub)
        await a.publish(f"{root}/U", b"1", qos=1)
        await unsub.wait_count(1)
        await b.unsubscribe(subscription)
        await a.publish(f"{root}/U", b"2", qos=1)
        await unsub.quiet()
        assert [m.payload for m in unsub.messages] == [b"1"]
        passed.append("unsubscribe")

        # a handler that raises does not stop delivery to the others
        def broken(message: Message) -> None:
            raise RuntimeError("handler bug")

        survivor = _Collector()
        await b.subscribe(f"{root}/H", broken)
        await b.subscribe(f"{root}/H", survivor)
        await a.publish(f"{root}/H", b"1", qos=1)
        await a.publish(f"{root}/H", b"2", qos=1)
        await survivor.wait_count(2)
        passed.append("handler_errors")

        # will: published by the broker when a client dies
        wills = _Collector()
        await b.subscribe(f"{root}/W/0/evt/liveness", wills)
        c = await make_bus("conf-c", Message(f"{root}/W/0/evt/liveness", b"dead", 1, True))
        await c.publish(f"{root}/W/0/evt/liveness", b"alive", qos=1, retain=True)
        await wills.wait_count(1)
        await kill(c)
        await wills.wait_count(2)
        assert [m.payload for m in wills.messages] == [b"alive", b"dead"]
        passed.append("will")

        # publishing while disconnected fails at once
        d = await make_bus("conf-d", None)
        await d.close()
        try:
            await d.publish(f"{root}/Z", b"1")
        except BusDisconnectedError:
            passed.append("publish_disconnected")
        else:
            raise AssertionError("publish on a closed bus must raise BusDisconnectedError")
    finally:
        await a.close()
        await b.close()
    return passed


# -- a component on the memory bus, for unit tests -----------------------------------------


@dataclass(kw_only=True)
class Rig:
    """A running component, a Remote to it, their memory buses and the shared manual clock."""

    broker: MemoryBroker
    clock: ManualClock
    csc: BaseCsc
    csc_bus: MemoryBus
    remote: Remote
    remote_bus: MemoryBus
    root: str

    async def command(self, name: str, data: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        """Send a command and advance virtual time until it ends (for commands that take time)."""
        return await self.run(self.remote.command(name, data, **kwargs))

    async def run(self, awaitable: Awaitable[T], limit_s: float = 100_000.0) -> T:
        """Await `awaitable`, jumping virtual time to the next sleeper whenever the loop is idle.

        TimeoutError after `limit_s` of virtual time (heartbeats always give a next sleeper, so
        something that never ends would otherwise run for ever).
        """
        task = asyncio.ensure_future(awaitable)
        start = self.clock.monotonic()
        while True:
            await self.clock.settle()
            deadline = self.clock.next_deadline
            if task.done() or deadline is None:
                break
            if deadline - start > limit_s:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                raise TimeoutError(f"not done within {limit_s:g} s of virtual time")
            await self.clock.advance(max(0.0, deadline - self.clock.monotonic()))
        return await task

    async def enable(self) -> None:
        await self.remote.command("start")
        await self.remote.command("enable")


@contextlib.asynccontextmanager
async def component_rig(
    make_csc: Callable[..., BaseCsc],
    component: str,
    *,
    broker: MemoryBroker | None = None,
    clock: ManualClock | None = None,
    root: str | None = None,
    **csc_kwargs: Any,
) -> AsyncIterator[Rig]:
    """Run `make_csc(bus=, clock=, root=, **csc_kwargs)` on a MemoryBus with a ManualClock.

    Give `broker`, `clock` and `root` when something else must share them (an in-process script
    runner starts its scripts on the same broker and clock; other components share the root).
    """
    broker = broker or MemoryBroker()
    clock = clock or ManualClock()
    root = root or unique_root()
    csc_bus, remote_bus = broker.client("csc"), broker.client("remote")
    csc = make_csc(bus=csc_bus, clock=clock, root=root, **csc_kwargs)
    await csc_bus.start()
    await remote_bus.start()
    try:
        async with csc, Remote(remote_bus, component, clock=clock, root=root, telemetry=True) as remote:
            yield Rig(
                broker=broker, clock=clock, csc=csc, csc_bus=csc_bus, remote=remote, remote_bus=remote_bus, root=root
            )
    finally:
        await csc_bus.close()
        await remote_bus.close()
