"""`obsq up`: the whole simulated observatory, each component its own supervised process."""

from __future__ import annotations

import argparse
from pathlib import Path

from obsq.csc.cli.common import (
    Subparsers,
    add_connection_options,
    add_simulation_options,
    connection,
    positive_float,
    run_async,
)


def add(sub: Subparsers) -> None:
    p = sub.add_parser(
        "up",
        help="the simulated observatory, each component its own process",
        description="Embedded broker (unless --broker) and the observatory: ATWhiteLight, ATSpectrograph, ATDome, "
        "ATMCS, ATCamera, the reduction service OCPS:1, ScriptQueue:2 and the Scheduler:2 that runs the schedule "
        "(deploy/schedule.yaml), each a supervised process (restarted if it dies; logs in DATA/logs), ready once "
        "each shows its heartbeat and state. Ctrl-C stops everything.",
    )
    p.add_argument("--speed", type=positive_float, default=1.0, help="clock speed of every component (default 1)")
    p.add_argument(
        "--state", action="append", default=[], metavar="[NAME=]STATE",
        help="initial state of every member, standby, disabled or enabled; NAME=STATE for one component "
        "(repeatable). Default: as a site runs — the telescope and camera ENABLED, ATWhiteLight and OCPS:1 "
        "STANDBY (BLOCK-309 enables them), ScriptQueue:2 and Scheduler:2 ENABLED",
    )  # fmt: skip
    p.add_argument("--only", help="comma-separated subset, e.g. ATCamera,ATSpectrograph,ScriptQueue")
    p.add_argument(
        "--start", metavar="TIME",
        help="the simulated time to start at, ISO-8601 (UTC unless it has an offset), e.g. 2026-12-07T13:30-03:00; "
        "needs --speed other than 1",
    )  # fmt: skip
    p.add_argument(
        "--credentials-dir", type=Path, metavar="DIR",
        help="each member runs as its own principal, DIR/PRINCIPAL.env (make-secrets' credentials/ folder);"
        " the queue's scripts as DIR/Script.env",
    )  # fmt: skip
    p.add_argument(
        "--devices", type=Path, metavar="FILE",
        help="the site's devices file: which members drive real devices over Alpaca or INDI, and where"
        " (deploy/devices.example.yaml; schemas/devices.json); those members run in real time (--speed 1)",
    )  # fmt: skip
    p.add_argument(
        "--alpaca", action="store_true",
        help="the hardware members on obsq's own simulated devices behind ASCOM Alpaca (obsq alpaca serve, started"
        " here at --speed), each on its Alpaca driver; --inject faults go to the served devices",
    )  # fmt: skip
    add_simulation_options(p, data_help="raws, registries, repository and logs")
    add_connection_options(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from obsq.csc.app.components import UpOptions, run_up

    only = [name for name in (args.only or "").split(",") if name]
    options = UpOptions(
        connection(args),
        args.speed,
        args.state,
        only,
        args.data,
        args.inject,
        args.credentials_dir,
        args.database,
        args.start,
        args.devices,
        args.alpaca,
    )
    return run_async(run_up(options))
