"""`obsq weekly`: the LATISS weekly calibration (the main job)."""

from __future__ import annotations

import argparse

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
        "weekly",
        help="the LATISS weekly calibration: BLOCK-309, BLOCK-295, BLOCK-310 (the main job)",
        description="Queue BLOCK-309 (setup), BLOCK-295 (BIAS/DARK/FLAT per filter and the PTC) and BLOCK-310 "
        "(shutdown) on ScriptQueue:2 and follow them to the end; print and write a summary. Without --broker, "
        "bring up a private broker and the simulated observatory first.",
    )
    p.add_argument("--speed", type=positive_float, default=600.0, help="clock speed of the simulation (default 600)")
    p.add_argument("--blocks", help="comma-separated blocks instead of BLOCK-309,BLOCK-295,BLOCK-310")
    p.add_argument("--skip-setup", action="store_true", help="leave out BLOCK-309")
    p.add_argument("--skip-shutdown", action="store_true", help="leave out BLOCK-310")
    p.add_argument(
        "--timeout", type=positive_float, default=1800.0,
        help="real seconds the queue may show no progress (beyond the running script's own estimate) "
        "before the run is given up (default %(default)g)",
    )  # fmt: skip
    p.add_argument(
        "--alpaca", action="store_true",
        help="run the hardware behind ASCOM Alpaca: obsq's own simulated devices served over the protocol"
        " (obsq alpaca serve), each component on its Alpaca driver; --inject faults go to the served devices",
    )  # fmt: skip
    add_simulation_options(p, data_help="parent of this run's data folder")
    add_connection_options(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from obsq.csc.weekly.printing import ConsoleView
    from obsq.csc.weekly.run import BLOCKS, WeeklyOptions, run_weekly

    options = WeeklyOptions(
        connection(args), speed=args.speed, data=args.data,
        blocks=args.blocks.split(",") if args.blocks else BLOCKS, skip_setup=args.skip_setup,
        skip_shutdown=args.skip_shutdown, inject=args.inject, timeout_s=args.timeout,
        database=args.database, alpaca=args.alpaca,
    )  # fmt: skip
    return run_async(run_weekly(options, ConsoleView()))
