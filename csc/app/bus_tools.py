"""`obsq broker`, `obsq status`, `obsq cmd` and `obsq watch`: a broker, and a plain client's view of the bus."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from obsq.csc.app.connection import FIRST_ACK_S, Connection, broker_for, connected_bus, require_live
from obsq.csc.bus.base import Message
from obsq.csc.bus.brokers import EmbeddedBroker, MosquittoProcess
from obsq.csc.clock import LoopClock, tai_iso
from obsq.csc.component import Ack, AckError, Remote
from obsq.csc.core.codec import decode
from obsq.csc.core.errors import DecodeError, ObsqError, TopicError, UsageError
from obsq.csc.core.status import StatusBoard, format_table, status_json
from obsq.csc.core.topics import ComponentId, Topic, TopicKind
from obsq.csc.interfaces import interface_names, load_interface, wire_limits
from obsq.csc.status import collect_status


async def wait_for_signal() -> None:
    """Until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def component_id(text: str) -> ComponentId:
    """`NAME[:INDEX]` of a component with an interface; UsageError naming the known ones otherwise."""
    try:
        cid = ComponentId.parse(text)
    except TopicError as exc:
        raise UsageError(str(exc)) from None
    if cid.name not in interface_names():
        raise UsageError(f"unknown component {cid.name!r}; known: {', '.join(interface_names())}")
    if load_interface(cid.name).indexed and cid.index == 0:
        raise UsageError(f"{cid.name} is indexed: write {cid.name}:INDEX (for example {cid.name}:1)")
    return cid


# -- obsq broker ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BrokerOptions:
    """`obsq broker`: where it listens, and which broker."""

    host: str
    port: int
    engine: str  # amqtt | mosquitto


async def run_broker(options: BrokerOptions) -> int:
    if options.engine == "mosquitto":
        mosquitto = MosquittoProcess(port=options.port)
        mosquitto.start()
        print(f"obsq broker: mosquitto listening on {mosquitto.url}", flush=True)
        try:
            await wait_for_signal()
        finally:
            mosquitto.close()
        return 0
    try:
        broker = EmbeddedBroker(options.host, options.port)
        await broker.start()
    except OSError as exc:
        raise UsageError(str(exc)) from None
    print(f"obsq broker: embedded broker (amqtt) listening on {broker.url}", flush=True)
    try:
        await wait_for_signal()
    finally:
        await broker.stop()
    return 0


# -- obsq status ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StatusOptions:
    """`obsq status`: how long to listen first, and whether to keep refreshing."""

    connection: Connection
    wait_s: float
    watch: bool
    json: bool = False


async def run_status(options: StatusOptions) -> int:
    clock = LoopClock()
    board = StatusBoard()
    root = options.connection.checked_root()
    async with (
        broker_for(options.connection, start_if_missing=False) as url,
        connected_bus(options.connection, url) as bus,
    ):
        await collect_status(bus, root, board, clock)
        await clock.sleep(options.wait_s)
        if options.json:
            print(status_json(board.rows(clock.tai())))
            return 0
        while True:
            table = format_table(board.rows(clock.tai()))
            if not options.watch:
                print(table)
                return 0
            print("\033[2J\033[H" + f"obsq status — {url} root {root}\n" + table, flush=True)
            await clock.sleep(1.0)


# -- obsq cmd ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CmdOptions:
    """`obsq cmd NAME COMMAND key=value...`."""

    connection: Connection
    component: str
    command: str
    fields: Sequence[str]
    timeout_s: float
    speed: float


def _coerce(value: str, prop: dict[str, Any], key: str) -> Any:
    kind = prop.get("type")
    try:
        if kind == "integer":
            return int(value)
        if kind == "number":
            return float(value)
        if kind == "boolean":
            if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(value)
            return value.lower() in ("true", "1", "yes")
        if kind in ("array", "object"):
            return json.loads(value)
    except (ValueError, json.JSONDecodeError):
        raise UsageError(f"field {key!r}: {value!r} is not a valid {kind}") from None
    return value


def parse_fields(cid: ComponentId, command: str, pairs: Sequence[str]) -> dict[str, Any]:
    """`key=value` pairs typed by the command's schema."""
    try:
        schema = load_interface(cid.name).get(TopicKind.COMMAND, command).schema
    except ObsqError as exc:
        raise UsageError(str(exc)) from None
    data: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise UsageError(f"{pair!r}: write fields as key=value")
        prop = schema.get("properties", {}).get(key)
        if prop is None:
            allowed = ", ".join(schema.get("properties", {})) or "none"
            raise UsageError(f"{cid} command {command} has no field {key!r} (fields: {allowed})")
        data[key] = _coerce(value, prop, key)
    return data


async def run_cmd(options: CmdOptions) -> int:
    cid = component_id(options.component)
    data = parse_fields(cid, options.command, options.fields)
    clock = LoopClock(options.speed)
    root = options.connection.checked_root()
    async with (
        broker_for(options.connection, start_if_missing=False) as url,
        connected_bus(options.connection, url) as bus,
        Remote(bus, cid, clock=clock, root=root) as remote,
    ):

        def show(ack: Ack) -> None:
            extra = f" timeout={ack.timeout_s:g}s" if ack.timeout_s else ""
            print(f"{cid} {options.command}: {ack.ack.name} {ack.result}{extra}".rstrip(), flush=True)

        try:
            await require_live(remote, url)
            await remote.command(
                options.command, data, timeout_s=options.timeout_s, first_ack_s=FIRST_ACK_S, on_ack=show
            )
        except AckError as exc:
            if exc.ack.ack.name == "NOACK":
                print(f"{cid} {options.command}: {exc}", flush=True)
            return 1
        except ObsqError as exc:
            raise UsageError(str(exc)) from None
    return 0


# -- obsq watch --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WatchOptions:
    """`obsq watch [FILTER]`."""

    connection: Connection
    topic_filter: str | None
    heartbeats: bool
    duration_s: float


async def run_watch(options: WatchOptions) -> int:
    clock = LoopClock()
    root = options.connection.checked_root()
    topic_filter = options.topic_filter or f"{root}/+/+/evt/+"
    async with (
        broker_for(options.connection, start_if_missing=False) as url,
        connected_bus(options.connection, url) as bus,
    ):

        def show(message: Message) -> None:
            try:
                topic = Topic.parse(message.topic)
                envelope = decode(message.payload, wire_limits())
            except (TopicError, DecodeError) as exc:
                print(f"{message.topic}: undecodable ({exc})", flush=True)
                return
            if topic.name == "heartbeat" and not options.heartbeats:
                return
            fields = json.dumps(envelope.data, separators=(",", ":"))
            label = topic.kind.value if topic.kind is TopicKind.ACK else f"{topic.kind.value}/{topic.name}"
            print(f"{tai_iso(clock.tai())} {topic.component} {label} {fields}", flush=True)

        await bus.subscribe(topic_filter, show)
        print(f"obsq watch: {topic_filter} on {url} (Ctrl-C to stop)", file=sys.stderr, flush=True)
        if options.duration_s:
            await clock.sleep(options.duration_s)
        else:
            await wait_for_signal()
    return 0
