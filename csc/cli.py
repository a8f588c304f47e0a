"""The `obsq` command — the composition root.

Here, and only here, concrete buses, clocks, brokers and components are chosen and wired
together. Every subcommand has `--help`. Commands that need a broker take `--broker URL`
(or $OBSQ_BROKER); without one they reach the embedded broker at the default address, or
start it in this process if nothing listens there.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

import structlog
import yaml

from obsq.csc import __version__
from obsq.csc.bus.brokers import EmbeddedBroker, MosquittoProcess, free_port, port_open
from obsq.csc.bus.mqtt import MqttBus
from obsq.csc.bus.url import DEFAULT_BROKER_URL, BrokerUrl
from obsq.csc.calibcli import add_commands as add_calibration_commands
from obsq.csc.clock import LoopClock, wait_for, wall_tai
from obsq.csc.component import Ack, AckError, Remote
from obsq.csc.compose import TELESCOPE, CompositionError, build_component, injections_for, parse_injections
from obsq.csc.core.codec import decode
from obsq.csc.core.errors import BusDisconnectedError, DecodeError, ObsqError, TopicError
from obsq.csc.core.states import State
from obsq.csc.core.status import StatusBoard, format_table
from obsq.csc.core.topics import DEFAULT_ROOT, ComponentId, Topic, TopicKind, check_root
from obsq.csc.interfaces import interface_names, load_interface
from obsq.csc.status import collect_status
from obsq.csc.supervisor import Child, Supervisor, component_argv

DEFAULT_DATA_DIR = "obsq-data"


class CliError(Exception):
    """A problem the user can fix; printed without a traceback, exit status 2."""


# -- broker selection ----------------------------------------------------------------------


def _broker_url(args: argparse.Namespace) -> tuple[BrokerUrl, bool]:
    """The broker to use and whether it is the default (embedded) address."""
    text = args.broker or os.environ.get("OBSQ_BROKER") or DEFAULT_BROKER_URL
    try:
        url = BrokerUrl.parse(text, ca_file=args.ca_file)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if args.username:
        url = BrokerUrl(url.host, url.port, url.tls, args.username, args.password, url.ca_file)
    return url, not (args.broker or os.environ.get("OBSQ_BROKER"))


@contextlib.asynccontextmanager
async def broker_for(args: argparse.Namespace, *, start_if_missing: bool = True) -> Any:
    """Yield a broker URL; start the embedded broker here if the default address is free."""
    url, default = _broker_url(args)
    if default and not port_open(url.host, url.port):
        if not start_if_missing:
            raise CliError(f"no broker at {url}: start one with `obsq broker`, or give --broker URL")
        print(f"obsq: no broker at {url}; starting the embedded broker in this process", file=sys.stderr)
        async with EmbeddedBroker(url.host, url.port):
            yield url
    else:
        yield url


@contextlib.asynccontextmanager
async def connected_bus(args: argparse.Namespace, url: BrokerUrl, client_id: str | None = None) -> Any:
    bus = MqttBus(url, client_id=client_id, connect_timeout_s=args.connect_timeout)
    try:
        await bus.start()
    except BusDisconnectedError as exc:
        raise CliError(str(exc)) from None
    try:
        yield bus
    finally:
        await bus.close()


def _root(args: argparse.Namespace) -> str:
    try:
        return check_root(args.root)
    except TopicError as exc:
        raise CliError(str(exc)) from None


def _component(text: str) -> ComponentId:
    try:
        cid = ComponentId.parse(text)
    except TopicError as exc:
        raise CliError(str(exc)) from None
    if cid.name not in interface_names():
        raise CliError(f"unknown component {cid.name!r}; known: {', '.join(interface_names())}")
    if load_interface(cid.name).indexed and cid.index == 0:
        raise CliError(f"{cid.name} is indexed: write {cid.name}:INDEX (for example {cid.name}:1)")
    return cid


# -- subcommands ---------------------------------------------------------------------------


async def cmd_broker(args: argparse.Namespace) -> int:
    if args.engine == "mosquitto":
        mosquitto = MosquittoProcess(port=args.port)
        mosquitto.start()
        print(f"obsq broker: mosquitto listening on {mosquitto.url}", flush=True)
        try:
            await _wait_for_signal()
        finally:
            mosquitto.close()
        return 0
    try:
        broker = EmbeddedBroker(args.host, args.port)
        await broker.start()
    except OSError as exc:
        raise CliError(str(exc)) from None
    print(f"obsq broker: embedded broker (amqtt) listening on {broker.url}", flush=True)
    try:
        await _wait_for_signal()
    finally:
        await broker.stop()
    return 0


async def _wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def _epoch(args: argparse.Namespace) -> float | None:
    epoch = args.epoch if args.epoch is not None else os.environ.get("OBSQ_EPOCH")
    return float(epoch) if epoch is not None else None


def _clock(args: argparse.Namespace) -> LoopClock:
    if args.speed <= 0:
        raise CliError(f"--speed must be > 0, got {args.speed}")
    return LoopClock(args.speed, epoch_tai=_epoch(args))


async def cmd_csc_run(args: argparse.Namespace) -> int:
    cid = _component(args.component)
    clock = _clock(args)
    root = _root(args)
    async with broker_for(args) as url:
        bus = MqttBus(url, client_id=f"{cid.name}-{cid.index}-{os.getpid()}", connect_timeout_s=args.connect_timeout)
        try:
            csc = build_component(
                cid.name,
                index=cid.index,
                simulate=args.simulate,
                inject=args.inject,
                data_dir=Path(args.data),
                broker_url=str(url),
                epoch=_epoch(args),
                bus=bus,
                clock=clock,
                root=root,
                initial_state=State[args.state.upper()],
                override=args.override,
                config_root=Path(args.config_dir) if args.config_dir else None,
                site=args.site,
                log_level=logging.getLevelNamesMapping()[args.log_level.upper()],
            )
        except CompositionError as exc:
            raise CliError(str(exc)) from None
        try:
            await bus.start()
        except BusDisconnectedError as exc:
            raise CliError(str(exc)) from None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, csc.close)
        print(f"obsq: {cid} running on {url} (root {args.root}, speed {args.speed:g})", file=sys.stderr, flush=True)
        try:
            await csc.run()
        finally:
            await bus.close()
    return 0


async def cmd_status(args: argparse.Namespace) -> int:
    clock = LoopClock()
    board = StatusBoard()
    root = _root(args)
    async with broker_for(args, start_if_missing=False) as url, connected_bus(args, url) as bus:
        await collect_status(bus, root, board, clock)
        await clock.sleep(args.wait)
        while True:
            table = format_table(board.rows(clock.tai()))
            if not args.watch:
                print(table)
                return 0
            print("\033[2J\033[H" + f"obsq status — {url} root {args.root}\n" + table, flush=True)
            await clock.sleep(1.0)


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
        raise CliError(f"field {key!r}: {value!r} is not a valid {kind}") from None
    return value


def parse_fields(cid: ComponentId, command: str, pairs: Sequence[str]) -> dict[str, Any]:
    """`key=value` pairs typed by the command's schema."""
    try:
        schema = load_interface(cid.name).get(TopicKind.COMMAND, command).schema
    except ObsqError as exc:
        raise CliError(str(exc)) from None
    data: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise CliError(f"{pair!r}: write fields as key=value")
        prop = schema.get("properties", {}).get(key)
        if prop is None:
            allowed = ", ".join(schema.get("properties", {})) or "none"
            raise CliError(f"{cid} command {command} has no field {key!r} (fields: {allowed})")
        data[key] = _coerce(value, prop, key)
    return data


async def cmd_cmd(args: argparse.Namespace) -> int:
    cid = _component(args.component)
    data = parse_fields(cid, args.command, args.fields)
    clock = LoopClock(args.speed)
    root = _root(args)
    async with broker_for(args, start_if_missing=False) as url, connected_bus(args, url) as bus:
        remote = Remote(bus, cid, clock=clock, root=root)
        async with remote:

            def show(ack: Ack) -> None:
                extra = f" timeout={ack.timeout_s:g}s" if ack.timeout_s else ""
                print(f"{cid} {args.command}: {ack.ack.name} {ack.result}{extra}".rstrip(), flush=True)

            try:
                await remote.command(args.command, data, timeout_s=args.timeout, on_ack=show)
            except AckError as exc:
                if exc.ack.ack.name in ("NOACK",):
                    print(f"{cid} {args.command}: {exc}", flush=True)
                return 1
            except ObsqError as exc:
                raise CliError(str(exc)) from None
    return 0


async def cmd_watch(args: argparse.Namespace) -> int:
    clock = LoopClock()
    root = _root(args)
    topic_filter = args.filter or f"{root}/+/+/evt/+"
    async with broker_for(args, start_if_missing=False) as url, connected_bus(args, url) as bus:

        def show(message: Any) -> None:
            try:
                topic = Topic.parse(message.topic)
                envelope = decode(message.payload)
            except (TopicError, DecodeError) as exc:
                print(f"{message.topic}: undecodable ({exc})", flush=True)
                return
            if topic.name == "heartbeat" and not args.heartbeats:
                return
            fields = json.dumps(envelope.data, separators=(",", ":"))
            label = topic.kind.value if topic.kind is TopicKind.ACK else f"{topic.kind.value}/{topic.name}"
            print(f"{clock.tai():.3f} {topic.component} {label} {fields}", flush=True)

        await bus.subscribe(topic_filter, show)
        print(f"obsq watch: {topic_filter} on {url} (Ctrl-C to stop)", file=sys.stderr, flush=True)
        if args.duration:
            await clock.sleep(args.duration)
        else:
            await _wait_for_signal()
    return 0


async def cmd_demo(args: argparse.Namespace) -> int:
    """Embedded broker + the Test component as its own process, driven and shown in status."""
    clock = LoopClock()
    root = f"demo-{os.getpid()}"
    async with EmbeddedBroker("127.0.0.1", free_port()) as broker:
        url = BrokerUrl.parse(broker.url)
        print(f"embedded broker on {url}; starting the Test:1 component process", flush=True)
        child = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "obsq.csc.cli", "csc", "run", "Test:1", "--broker", str(url), "--root", root),
            stdin=subprocess.DEVNULL,
        )
        try:
            async with connected_bus(args, url) as bus, Remote(bus, "Test:1", clock=clock, root=root) as remote:
                state = await remote.event("summaryState").aget(timeout_s=30)
                print(f"Test:1 is {State(state['summaryState']).name}", flush=True)
                for command, data in (
                    ("start", {}),
                    ("enable", {}),
                    ("setScalars", {"int0": 42, "string0": "hello"}),
                    ("wait", {"duration": 1.0}),
                ):
                    ack = await remote.command(command, data, timeout_s=30)
                    print(f"  {command:<11} -> {ack.ack.name} {ack.result}", flush=True)
                board = StatusBoard()
                await collect_status(bus, root, board, clock)
                await clock.sleep(1.2)
                print("\nobsq status:\n" + format_table(board.rows(clock.tai())) + "\n", flush=True)
                for command in ("disable", "standby", "exitControl"):
                    await remote.command(command, timeout_s=30)
                print("Test:1 sent to OFFLINE; its process exits", flush=True)
            returncode = await wait_for(clock, child.wait(), 30)
        finally:
            if child.returncode is None:
                child.kill()
                await child.wait()
    return 0 if returncode == 0 else 1


async def cmd_up(args: argparse.Namespace) -> int:
    """The simulated auxiliary telescope: broker (unless given) and every component, supervised."""
    try:
        parse_injections(args.inject)
    except CompositionError as exc:
        raise CliError(str(exc)) from None
    names = args.only.split(",") if args.only else list(TELESCOPE)
    unknown = [n for n in names if n not in TELESCOPE]
    if unknown:
        raise CliError(f"--only: unknown component {unknown[0]!r}; the telescope has {', '.join(TELESCOPE)}")
    if args.speed <= 0:
        raise CliError(f"--speed must be > 0, got {args.speed}")
    root = _root(args)
    data: Path = args.data
    epoch = wall_tai()
    wall = LoopClock()
    supervisor = Supervisor(wall, lambda line: print(f"obsq up: {line}", flush=True))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, supervisor.stop)
    async with broker_for(args) as url:
        common = ["--broker", str(url), "--root", root, "--speed", f"{args.speed:g}", "--epoch", repr(epoch),
                  "--data", str(data), "--state", args.state]  # fmt: skip
        if args.ca_file:
            common += ["--ca-file", args.ca_file]
        children = [
            Child(name, component_argv(name, *common, *(f"--inject={i}" for i in injections_for(name, args.inject))),
                  data / "logs" / f"{name}.log")
            for name in names
        ]  # fmt: skip
        print(
            f"obsq up: {', '.join(names)} on {url} (root {root}, speed {args.speed:g}, data {data}); Ctrl-C stops",
            flush=True,
        )
        await supervisor.run(children)
    print("obsq up: stopped", flush=True)
    return 0


async def cmd_weekly(args: argparse.Namespace) -> int:
    from obsq.csc.weekly import run_weekly

    if args.speed <= 0:
        raise CliError(f"--speed must be > 0, got {args.speed}")
    try:
        parse_injections(args.inject)
    except CompositionError as exc:
        raise CliError(str(exc)) from None
    return await run_weekly(args)


_LOCATIONS = {"first": 1, "last": 2, "before": 3, "after": 4}


def _location(text: str) -> tuple[int, int]:
    """First | last | before:INDEX | after:INDEX."""
    name, _, index = text.partition(":")
    if name not in _LOCATIONS or (name in ("before", "after")) != bool(index) or (index and not index.isdigit()):
        raise CliError(f"--location {text!r}: use first, last, before:INDEX or after:INDEX")
    return _LOCATIONS[name], int(index or 0)


async def cmd_queue(args: argparse.Namespace) -> int:
    """Operators' view of ScriptQueue:INDEX."""
    clock = LoopClock()
    root = _root(args)
    async with broker_for(args, start_if_missing=False) as url, connected_bus(args, url) as bus:
        remote = Remote(bus, ComponentId("ScriptQueue", args.queue), clock=clock, root=root)
        async with remote:
            action = args.queue_command
            try:
                if action in ("show", "watch"):
                    return await _queue_show(remote, watch=action == "watch")
                data: dict[str, Any] = {}
                command = {"add-block": "addBlock", "stop": "stopScripts"}.get(action, action)
                if action == "add-block":
                    override = {}
                    for pair in args.override:
                        key, sep, value = pair.partition("=")
                        if not sep:
                            raise CliError(f"--override {pair!r}: write key=value")
                        override[key] = yaml.safe_load(value)
                    strategy = {"none": 1, "on-failure": 2, "keep-going": 3}[args.failure_strategy]
                    overrides = yaml.safe_dump(override) if override else ""
                    data = {"id": args.block, "override": overrides, "failureStrategy": strategy}
                elif action == "add":
                    location, index = _location(args.location)
                    config = await asyncio.to_thread(Path(args.config).read_text) if args.config else ""
                    data = {"path": args.path, "isStandard": not args.external, "config": config,
                            "location": location, "locationSalIndex": index}  # fmt: skip
                elif action in ("move", "requeue"):
                    location, index = _location(args.location)
                    data = {"scriptSalIndex": args.index, "location": location, "locationSalIndex": index}
                elif action == "stop":
                    data = {"salIndices": args.indices, "terminate": args.terminate}
                ack = await remote.command(command, data, timeout_s=180)
            except AckError as exc:
                print(f"{exc.ack.command}: {exc.ack.ack.name} {exc.ack.result}", flush=True)
                return 1
            except ObsqError as exc:
                raise CliError(str(exc)) from None
            print(f"{command}: {ack.ack.name} {ack.result}", flush=True)
    return 0


async def _queue_show(remote: Remote, *, watch: bool) -> int:
    reader = remote.event("queue")
    await remote.command("showQueue", timeout_s=30)
    last = None
    while True:
        data = await reader.aget(timeout_s=10) if last is None else await reader.next(flush=False, timeout_s=3600)
        if data.get("token") != last:
            last = data.get("token")
            state = "running" if data["running"] else "PAUSED"
            print(f"queue {state}; current {data['currentSalIndex'] or '-'}; {data['length']} queued, "
                  f"{data['pastLength']} in history", flush=True)  # fmt: skip
            for item in json.loads(data.get("items") or "[]"):
                progress = f" {item['done']}/{item['total']} images" if item["total"] else ""
                extra = f" — {item['reason']}" if item["reason"] and item["state"] != "DONE" else ""
                print(f"  {item['area']:<8} {item['index']} {item['block']:<9} {item['path']:<45} {item['state']:<12}"
                      f" {item['checkpoint'][:40]}{progress}{extra}", flush=True)  # fmt: skip
        if not watch:
            return 0


async def cmd_script(args: argparse.Namespace) -> int:
    from obsq.scripts.library import ScriptRoots, load_script_class

    roots = ScriptRoots.default()
    if args.script_command == "list":
        for standard in (True, False):
            for path in roots.available(standard):
                cls = load_script_class(roots.resolve(path, standard))
                print(f"{'standard' if standard else 'external':<9} {path:<48} {cls.description}")
        return 0
    try:
        cls = load_script_class(roots.resolve(args.path, not args.external))
    except ObsqError as exc:
        raise CliError(str(exc)) from None
    if args.script_command == "schema":
        schema = cls.get_schema()
        print(yaml.safe_dump(schema, sort_keys=False) if schema else "# no configuration", end="")
        return 0
    from obsq.csc.weekly import run_script_standalone

    return await run_script_standalone(args, cls)


async def cmd_bench_queue(args: argparse.Namespace) -> int:
    from obsq.csc.bench import run_queue_benchmark

    return await run_queue_benchmark(args)


async def cmd_bench_fits(args: argparse.Namespace) -> int:
    from obsq.csc.bench import run_fits_benchmark

    return await run_fits_benchmark(args)


async def cmd_bench_bus(args: argparse.Namespace) -> int:
    from obsq.csc.bench import run_bus_benchmark

    return await run_bus_benchmark(args)


def cmd_bench_combine(args: argparse.Namespace) -> int:
    from obsq.csc.benchcombine import bench_combine

    results = bench_combine(args.frames, args.size, args.dir, not args.no_ccdproc)
    print(f"\n{args.frames} frames of {args.size}x{args.size}: seconds, peak GB, x floor, speed-up vs ccdproc")
    for case, f in results["cases"].items():
        if "seconds" in f:
            speedup = f"{f['speedup_vs_ccdproc']:.1f}x" if "speedup_vs_ccdproc" in f else "-"
            print(f"  {case:<8} {f['seconds']:8.2f} s {f['peak_gb']:6.2f} GB {f['x_floor']:6.2f} {speedup:>7}")
        else:
            print(f"  {case:<8} {f['error']}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2))
    return 0


def cmd_csc_list(args: argparse.Namespace) -> int:
    for name in interface_names():
        interface = load_interface(name)
        runnable = "simulated" if name in TELESCOPE else "runnable" if name == "Test" else "interface only"
        print(f"{name:<14} {'indexed' if interface.indexed else '':<8} {runnable:<15} {interface.description}")
    return 0


# -- argument parsing ----------------------------------------------------------------------


def _broker_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("broker")
    group.add_argument(
        "--broker", help=f"mqtt://[user[:pass]@]host:port or mqtts://… (default $OBSQ_BROKER or {DEFAULT_BROKER_URL})"
    )
    group.add_argument("--username", help="MQTT user name (overrides the URL's)")
    group.add_argument("--password", help="MQTT password")
    group.add_argument("--ca-file", help="CA certificate file for mqtts:// brokers")
    group.add_argument("--connect-timeout", type=float, default=10.0, help="seconds to wait for the broker")
    group.add_argument("--root", default=DEFAULT_ROOT, help="topic root (default %(default)s)")


Subparsers = Any  # argparse's _SubParsersAction is private


def _absolute(text: str) -> Path:
    """A path argument made absolute, as child processes may run elsewhere."""
    return Path(text).absolute()


def _simulation_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("simulation")
    group.add_argument("--data", default=DEFAULT_DATA_DIR, help="where the camera writes raws and its registry")
    group.add_argument(
        "--inject", action="append", default=[], metavar="NAME[=VALUE]",
        help="fault injection: lamp-no-strike, chiller-alarm, lamp-stuck-on, dome-drift, filter-stuck, readout-failure",
    )  # fmt: skip
    group.add_argument("--epoch", type=float, help="TAI at which the scaled clock starts (shared by `obsq up`)")


def _add_broker(sub: Subparsers) -> None:
    p = sub.add_parser("broker", help="run a broker on loopback", description="Run a broker until Ctrl-C.")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    p.add_argument("--port", type=int, default=BrokerUrl.parse(DEFAULT_BROKER_URL).port, help="default %(default)s")
    p.add_argument(
        "--engine", choices=("amqtt", "mosquitto"), default="amqtt", help="amqtt in this process, or mosquitto"
    )
    p.set_defaults(func=cmd_broker)


def _add_csc(sub: Subparsers) -> None:
    p = sub.add_parser("csc", help="run or list component services", description="Component services.")
    actions = p.add_subparsers(dest="csc_command", required=True, metavar="ACTION")
    q = actions.add_parser("run", help="run one component", description="Run one component until Ctrl-C/exitControl.")
    q.add_argument("component", metavar="NAME[:INDEX]", help="component, e.g. Test:1")
    q.add_argument("--simulate", action="store_true", help="use simulated hardware")
    q.add_argument("--speed", type=float, default=1.0, help="clock speed (600 runs a 900 s warm-up in 1.5 s)")
    q.add_argument("--state", choices=("standby", "disabled", "enabled"), default="standby", help="initial state")
    q.add_argument("--override", default="", help="configuration override file for an initial start")
    q.add_argument("--config-dir", help="configuration root (default $OBSQ_CONFIG_DIR or deploy/config)")
    q.add_argument("--site", help="site name: reads _SITE.yaml (default $OBSQ_SITE)")
    q.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    _simulation_options(q)
    _broker_options(q)
    q.set_defaults(func=cmd_csc_run)
    q = actions.add_parser("list", help="list known components", description="Components with an interface.")
    q.set_defaults(func=cmd_csc_list, sync=True)


def _add_status(sub: Subparsers) -> None:
    p = sub.add_parser(
        "status", help="table of every component on the bus", description="State, heartbeat, health, error code."
    )
    p.add_argument("--wait", type=float, default=1.2, help="seconds to listen before printing (default %(default)s)")
    p.add_argument("--watch", action="store_true", help="refresh every second until Ctrl-C")
    _broker_options(p)
    p.set_defaults(func=cmd_status)


def _add_cmd(sub: Subparsers) -> None:
    p = sub.add_parser("cmd", help="send a command, print its acks", description="Exit 0 on COMPLETE, 1 otherwise.")
    p.add_argument("component", metavar="NAME[:INDEX]")
    p.add_argument("command", help="command name, e.g. start, enable, takeImages")
    p.add_argument("fields", nargs="*", metavar="key=value", help="command fields, typed by the interface schema")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to the final ack; INPROGRESS extends it")
    p.add_argument("--speed", type=float, default=1.0, help="clock speed of the component (scales the timeout)")
    _broker_options(p)
    p.set_defaults(func=cmd_cmd)


def _add_watch(sub: Subparsers) -> None:
    p = sub.add_parser("watch", help="follow events live", description="Print every message matching a filter.")
    p.add_argument("filter", nargs="?", help="MQTT topic filter (default ROOT/+/+/evt/+)")
    p.add_argument("--heartbeats", action="store_true", help="show heartbeat events too")
    p.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (default: Ctrl-C)")
    _broker_options(p)
    p.set_defaults(func=cmd_watch)


def _add_bench(sub: Subparsers) -> None:
    p = sub.add_parser("bench", help="benchmarks", description="Benchmarks a site can run against its own broker.")
    what = p.add_subparsers(dest="bench_command", required=True, metavar="WHAT")
    q = what.add_parser(
        "bus",
        help="command round trip and event rate vs bare aiomqtt",
        description="Framework round trip and event rate against bare aiomqtt, on Mosquitto and the embedded "
        "broker in one run (or only on --broker).",
    )
    q.add_argument("--count", type=int, default=2000, help="round trips per measurement (default %(default)s)")
    q.add_argument("--events", type=int, default=5000, help="events per throughput run (default %(default)s)")
    q.add_argument("--json", dest="json_out", help="also write the results as JSON to this file")
    _broker_options(q)
    q.set_defaults(func=cmd_bench_bus)
    q = what.add_parser(
        "fits",
        help="time to write one raw file, small and full-size detector, vs plain astropy",
        description="Median time per image of the camera's atomic FITS write (fsync, checksum, rename) against a "
        "plain astropy.io.fits write of the same arrays, interleaved, for the small and the LATISS-size detector.",
    )
    q.add_argument("--repeats", type=int, default=5, help="full-size images per measurement (small: 4x)")
    r = what.add_parser(
        "queue",
        help="the queue's gap between scripts and its add time",
        description="Queue N trivial scripts (each its own process), then measure DONE -> next RUNNING and "
        "add -> CONFIGURED, against a bus command round trip measured in the same run.",
    )
    r.add_argument("--scripts", type=int, default=50, help="how many scripts (default %(default)s)")
    r.set_defaults(func=cmd_bench_queue)
    c = what.add_parser(
        "combine",
        help="clipped-mean master of N frames from disk, vs ccdproc and the read-and-average floor",
        description="Time and peak memory of the banded clipped mean (1 and 3 iterations) on N float32 frames, "
        "against ccdproc.combine and a plain read-and-average of the same files, each in its own process.",
    )
    c.add_argument("--frames", type=int, default=20, help="how many frames (default %(default)s)")
    c.add_argument("--size", type=int, default=4096, help="frame side in pixels (default %(default)s)")
    c.add_argument("--dir", default=None, help="where the frames are written and kept (default: temporary folder)")
    c.add_argument("--no-ccdproc", action="store_true", help="skip ccdproc (it needs ~8 GB at 4096x4096)")
    c.add_argument("--json", dest="json_out", help="also write the results as JSON to this file")
    c.set_defaults(func=cmd_bench_combine, sync=True)
    q.add_argument("--dir", default=None, help="where to write (default: the system temporary folder)")
    q.set_defaults(func=cmd_bench_fits)


def _add_up(sub: Subparsers) -> None:
    p = sub.add_parser(
        "up",
        help="the simulated auxiliary telescope, each component its own process",
        description="Embedded broker (unless --broker) and ATWhiteLight, ATSpectrograph, ATDome, ATMCS and ATCamera, "
        "each a supervised process (restarted if it dies; logs in DATA/logs). Ctrl-C stops everything.",
    )
    p.add_argument("--speed", type=float, default=1.0, help="clock speed of every component (default real time)")
    p.add_argument("--state", choices=("standby", "disabled", "enabled"), default="standby", help="initial state")
    p.add_argument("--only", help="comma-separated subset of the components")
    p.add_argument(
        "--data", type=_absolute, default=DEFAULT_DATA_DIR, help="camera raws, registry and logs (default %(default)s)"
    )
    p.add_argument(
        "--inject", action="append", default=[], metavar="NAME[=VALUE]", help="fault injection (obsq csc run --help)"
    )
    _broker_options(p)
    p.set_defaults(func=cmd_up)


def _add_weekly(sub: Subparsers) -> None:
    p = sub.add_parser(
        "weekly",
        help="the LATISS weekly calibration: BLOCK-309, BLOCK-295, BLOCK-310 (the main job)",
        description="Queue BLOCK-309 (setup), BLOCK-295 (BIAS/DARK/FLAT per filter and the PTC) and BLOCK-310 "
        "(shutdown) on ScriptQueue:2 and follow them to the end; print and write a summary. Without --broker, "
        "bring up a private broker and the simulated observatory first.",
    )
    p.add_argument("--speed", type=float, default=600.0, help="clock speed of the simulation (default %(default)g)")
    p.add_argument("--data", type=_absolute, default=DEFAULT_DATA_DIR, help="parent of this run's data folder")
    p.add_argument("--blocks", help="comma-separated blocks instead of BLOCK-309,BLOCK-295,BLOCK-310")
    p.add_argument("--skip-setup", action="store_true", help="leave out BLOCK-309")
    p.add_argument("--skip-shutdown", action="store_true", help="leave out BLOCK-310")
    p.add_argument("--inject", action="append", default=[], metavar="NAME[=VALUE]", help="fault injection")
    p.add_argument("--timeout", type=float, default=1800.0, help="real seconds to wait for the blocks")
    _broker_options(p)
    p.set_defaults(func=cmd_weekly)


def _add_queue(sub: Subparsers) -> None:
    p = sub.add_parser("queue", help="operate the script queue", description="Operate ScriptQueue:INDEX.")
    p.add_argument("--queue", type=int, default=2, help="queue index (default 2, the auxiliary telescope's)")
    _broker_options(p)
    actions = p.add_subparsers(dest="queue_command", required=True, metavar="ACTION")
    q = actions.add_parser("add-block", help="queue a block", description="Validate and queue a whole block.")
    q.add_argument("block", help="block id (BLOCK-295), block file, or block JSON")
    q.add_argument("--override", action="append", default=[], metavar="KEY=VALUE", help="block configuration")
    q.add_argument("--failure-strategy", choices=("none", "on-failure", "keep-going"), default="none")
    q = actions.add_parser("add", help="queue one script", description="Validate and queue one script.")
    q.add_argument("path", help="script path, e.g. auxtel/take_image_latiss.py")
    q.add_argument("--external", action="store_true", help="an external (not standard) script")
    q.add_argument("--config", help="YAML configuration file")
    q.add_argument("--location", default="last", help="first, last, before:INDEX or after:INDEX")
    for name, text in (("show", "print the queue"), ("watch", "print the queue on every change"),
                       ("pause", "start no new script"), ("resume", "run scripts again")):  # fmt: skip
        actions.add_parser(name, help=text, description=text)
    q = actions.add_parser("stop", help="stop scripts", description="Remove queued scripts, stop the running one.")
    q.add_argument("indices", type=int, nargs="+")
    q.add_argument("--terminate", action="store_true", help="terminate the running script's process at once")
    for name, text in (("move", "move a queued script"), ("requeue", "queue a copy of a script")):
        q = actions.add_parser(name, help=text, description=text)
        q.add_argument("index", type=int)
        q.add_argument("--location", default="first" if name == "move" else "last")
    p.set_defaults(func=cmd_queue)


def _add_script(sub: Subparsers) -> None:
    p = sub.add_parser("script", help="describe and run scripts", description="The script library.")
    actions = p.add_subparsers(dest="script_command", required=True, metavar="ACTION")
    actions.add_parser("list", help="list the scripts", description="Every standard and external script.")
    q = actions.add_parser("schema", help="a script's configuration schema", description="Print it as YAML.")
    q.add_argument("path")
    q.add_argument("--external", action="store_true")
    q = actions.add_parser("run", help="run one script by hand", description="Run one script standalone.")
    q.add_argument("path")
    q.add_argument("--external", action="store_true")
    q.add_argument("--config", help="YAML configuration file")
    q.add_argument("--sim", action="store_true", help="bring up the simulated observatory first")
    q.add_argument("--speed", type=float, default=1.0, help="clock speed (with --sim)")
    q.add_argument("--data", type=_absolute, default=DEFAULT_DATA_DIR)
    _broker_options(q)
    p.set_defaults(func=cmd_script)


def _add_demo(sub: Subparsers) -> None:
    p = sub.add_parser(
        "demo",
        help="single-machine demonstration (the README's main job)",
        description="Embedded broker and the Test component process, driven through its states; obsq status.",
    )
    _broker_options(p)
    p.set_defaults(func=cmd_demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="obsq", description="Observatory control over MQTT.")
    parser.add_argument("--version", action="version", version=f"obsq {__version__}")
    sub = parser.add_subparsers(dest="subcommand", required=True, metavar="COMMAND")
    for add in (
        _add_weekly, _add_queue, _add_script, _add_broker, _add_csc, _add_up, _add_status, _add_cmd, _add_watch,
        _add_bench, _add_demo, add_calibration_commands,
    ):  # fmt: skip
        add(sub)
    return parser


def configure_logging(level: int = logging.INFO) -> None:
    """Library loggers (bus, remotes) render to stderr at `level` and above."""
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging()
    try:
        if getattr(args, "sync", False):
            return int(args.func(args))
        func: Callable[[argparse.Namespace], Coroutine[Any, Any, int]] = args.func
        return asyncio.run(func(args))
    except CliError as exc:
        print(f"obsq: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (obsq ... | head): nothing more to say
        sys.stderr.close()
        return 0
    except (TimeoutError, ObsqError) as exc:
        print(f"obsq: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
