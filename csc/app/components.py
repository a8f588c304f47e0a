"""`obsq csc run`, `obsq csc list` and `obsq up`: one component as this process, or the whole observatory."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from obsq.csc.app.alpaca import serve_devices
from obsq.csc.app.bus_tools import component_id, wait_for_signal
from obsq.csc.app.connection import Connection, broker_for, connected_bus
from obsq.csc.bus.credentials import child_environment, script_credentials
from obsq.csc.bus.mqtt import MqttBus, client_id_for
from obsq.csc.clock import TAI_MINUS_UTC_S, LoopClock
from obsq.csc.compose import CompositionError, build_component, read_devices
from obsq.csc.core.errors import BusDisconnectedError, UsageError, ValidationError
from obsq.csc.core.states import State
from obsq.csc.core.topics import ComponentId
from obsq.csc.database import OUTAGE_WAIT_S, DatabaseError, DatabaseUnavailableError
from obsq.csc.injections import InjectionError, parse_injections
from obsq.csc.observatory import SITE, Observatory, member


@dataclass(frozen=True)
class RunOptions:
    """`obsq csc run NAME[:INDEX]`."""

    connection: Connection
    component: str
    simulate: bool
    speed: float
    state: State
    override: str
    config_dir: Path | None
    site: str | None
    log_level: str
    data: Path
    inject: Sequence[str]
    epoch: float | None
    max_payload_bytes: int | None = None
    database: str | None = None
    #: the credentials file the queue hands its scripts (else $OBSQ_SCRIPT_CREDENTIALS)
    script_credentials: Path | None = None
    #: its real devices, ROLE=URL (`filter=alpaca://host:port/filterwheel/0`); none: a simulated one
    devices: Sequence[str] = ()
    #: the devices' clock speed: 1 for real ones; obsq's served simulation's (`obsq alpaca serve --speed`)
    device_speed: float = 1.0
    #: the site's devices file: the component runs on the devices it names for it (--device wins)
    devices_file: Path | None = None


def device_roles(given: Sequence[str]) -> dict[str, str]:
    """`--device ROLE=URL` options as {role: url}; UsageError for one without `=` or a role given twice."""
    roles: dict[str, str] = {}
    for item in given:
        role, sep, url = item.partition("=")
        if not sep or not role.strip() or not url.strip():
            raise UsageError(f"--device {item!r}: give ROLE=URL, e.g. filter=alpaca://127.0.0.1:11111/filterwheel/0")
        if role.strip() in roles:
            raise UsageError(f"--device: the role {role.strip()!r} is given twice")
        roles[role.strip()] = url.strip()
    return roles


def site_devices(component: str, given: Sequence[str], file: Path | None, *, speed: float,
                 inject: Sequence[str]) -> dict[str, str]:  # fmt: skip
    """The devices `component` runs on: `--device ROLE=URL` if given, else the site file's entry for it (if any).

    UsageError naming the file and the rule for a file that is not a valid devices file.
    """
    if given or file is None:
        return device_roles(given)
    try:
        found = read_devices(file, speed=speed, inject=inject)
    except ValidationError as exc:
        raise UsageError(str(exc)) from None
    return dict(found.get(component_id(component).name, {}))


#: Real seconds between two tries to open the registries of a component whose database is away at start.
START_RETRY_S = 2.0


async def run_component(options: RunOptions) -> int:
    cid = component_id(options.component)
    clock = LoopClock(options.speed, epoch_tai=options.epoch)
    devices = site_devices(options.component, options.devices, options.devices_file, speed=options.speed,
                           inject=options.inject)  # fmt: skip
    # the site file's devices win over --simulate (a unit runs every component with it); --device beside it is refused
    simulate = options.simulate and not (devices and not options.devices)
    root = options.connection.checked_root()
    async with broker_for(options.connection) as url:
        bus = MqttBus(
            url,
            client_id=client_id_for(url.username, f"{cid.name}-{cid.index}-{os.getpid()}"),
            connect_timeout_s=options.connection.connect_timeout_s,
        )
        waited = 0.0
        while True:  # a database away at start is waited for, not a death (the supervisor's restarts are not spent)
            try:
                csc = build_component(
                    cid.name, index=cid.index, simulate=simulate, inject=list(options.inject),
                    data_dir=options.data, database=options.database, broker_url=str(url), epoch=options.epoch,
                    ca_file=url.ca_file, bus=bus,
                    child_env=child_environment(url, options.script_credentials or script_credentials()),
                    clock=clock, root=root,
                    initial_state=options.state, override=options.override, config_root=options.config_dir,
                    site=options.site, log_level=logging.getLevelNamesMapping()[options.log_level.upper()],
                    max_payload_bytes=options.max_payload_bytes, devices=devices,
                    device_speed=options.device_speed,
                )  # fmt: skip
                break
            except DatabaseUnavailableError as exc:
                if waited >= OUTAGE_WAIT_S:
                    raise UsageError(str(exc)) from None
                print(f"obsq: {cid}: waiting for its database ({exc})", file=sys.stderr, flush=True)
                await clock.unscaled().sleep(START_RETRY_S)
                waited += START_RETRY_S
            except (CompositionError, DatabaseError) as exc:
                raise UsageError(str(exc)) from None
        try:
            await bus.start()
        except BusDisconnectedError as exc:
            raise UsageError(str(exc)) from None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, csc.close)
        print(f"obsq: {cid} running on {url} (root {root}, speed {options.speed:g})", file=sys.stderr, flush=True)
        try:
            await csc.run()
        finally:
            await bus.close()
    return 0


@dataclass(frozen=True)
class UpOptions:
    """`obsq up`: which members, in which states, how fast, with what faults."""

    connection: Connection
    speed: float
    states: Sequence[str]
    only: Sequence[str]
    data: Path
    inject: Sequence[str]
    credentials_dir: Path | None = None
    database: str | None = None
    #: the simulated time to start at (ISO-8601; UTC unless it has an offset)
    start: str | None = None
    #: the site's devices file: which members drive real devices, and where (schemas/devices.json)
    devices: Path | None = None
    #: the hardware members on obsq's own served Alpaca devices (`obsq alpaca serve`, started here)
    alpaca: bool = False


def start_tai(text: str | None, speed: float) -> float | None:
    """`--start` as TAI unix seconds; UsageError naming the rule if it cannot be."""
    if text is None:
        return None
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--start: {text!r} is not an ISO-8601 time, e.g. 2026-12-07T13:30-03:00") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    if speed == 1.0:
        raise UsageError(
            "--start: a simulated start time needs --speed other than 1 (at speed 1 the clock is the wall's)"
        )
    return moment.timestamp() + TAI_MINUS_UTC_S


def plan_members(only: Sequence[str], states: Sequence[str]) -> list[tuple[ComponentId, State]]:
    """The members asked for (all by default) and their initial states (`STATE` or `NAME=STATE`).

    Without `--state` each member starts as a site runs it day to day (`SITE`): the telescope and
    camera ENABLED, the lamp and OCPS:1 STANDBY (BLOCK-309 enables them, BLOCK-310 puts the lamp
    back), ScriptQueue:2 and Scheduler:2 ENABLED — so blocks can be added at once and the schedule
    runs. Rubin's CSCs start STANDBY; `--state standby` starts every member so.
    """
    try:
        chosen = [member(text) for text in only] if only else [cid for cid, _ in SITE]
    except ValueError as exc:
        raise UsageError(f"--only: {exc}") from None
    default: State | None = None
    per_member: dict[ComponentId, State] = {}
    for text in states:
        name, sep, value = text.rpartition("=")
        try:
            state = State[value.upper()]
            if state not in (State.STANDBY, State.DISABLED, State.ENABLED):
                raise KeyError(value)
            if sep:
                per_member[member(name)] = state
            else:
                default = state
        except (KeyError, ValueError) as exc:
            detail = exc.args[0] if isinstance(exc, ValueError) else f"{value!r} is not standby, disabled or enabled"
            raise UsageError(f"--state {text!r}: {detail}") from None
    site = dict(SITE)
    return [(cid, per_member.get(cid, default or site.get(cid, State.STANDBY))) for cid in chosen]


async def run_up(options: UpOptions) -> int:
    """The observatory: broker (unless given) and every member, supervised, until Ctrl-C."""
    try:
        parse_injections(list(options.inject))
    except InjectionError as exc:
        raise UsageError(str(exc)) from None
    members = plan_members(options.only, options.states)
    start = start_tai(options.start, options.speed)
    devices: dict[str, dict[str, str]] = {}
    if options.devices is not None:
        try:
            devices = read_devices(options.devices, speed=options.speed, inject=options.inject)
        except ValidationError as exc:
            raise UsageError(str(exc)) from None
    if options.alpaca and devices:
        raise UsageError("--alpaca puts the hardware on obsq's served devices; --devices on a site's: give one")
    root = options.connection.checked_root()
    wall = LoopClock()
    async with (
        contextlib.AsyncExitStack() as stack,
        broker_for(options.connection) as url,
        connected_bus(options.connection, url, clock=wall) as bus,
    ):
        observatory = Observatory(
            url, root, options.data, options.speed, members, options.inject,
            report=lambda line: print(f"obsq up: {line}", flush=True), credentials_dir=options.credentials_dir,
            database=options.database, start_tai=start, devices=devices,
        )  # fmt: skip
        if options.alpaca:
            served = await serve_devices(stack, observatory, options.inject, wall)
            print(f"obsq up: the hardware behind ASCOM Alpaca at http://{served.host}:{served.port}", flush=True)
        names = ", ".join(f"{cid} ({state.name})" for cid, state in members)
        print(f"obsq up: {names} on {url} (root {root}, speed {options.speed:g}, data {options.data})", flush=True)
        async with observatory.running(bus, wall):  # Ctrl-C while starting stops what was started
            print(f"obsq up: ready; logs in {options.data / 'logs'}; Ctrl-C stops", flush=True)
            await wait_for_signal()
    print("obsq up: stopped", flush=True)
    return 0
