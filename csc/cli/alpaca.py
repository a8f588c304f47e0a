"""`obsq alpaca serve`: obsq's simulated observatory as ASCOM Alpaca devices."""

from __future__ import annotations

import argparse
from pathlib import Path

from obsq.csc.cli.common import Subparsers, positive_float, run_async


def add(sub: Subparsers) -> None:
    from obsq.csc.served.faults import SERVED_INJECTIONS

    p = sub.add_parser("alpaca", help="obsq's simulated devices behind ASCOM Alpaca",
                       description="obsq's simulated observatory behind the ASCOM Alpaca protocol.")  # fmt: skip
    what = p.add_subparsers(dest="action", required=True, metavar="WHAT")
    s = what.add_parser(
        "serve",
        help="serve the simulated camera, lamp, chiller, wheels, dome and mount as Alpaca devices",
        description="An Alpaca server of obsq's own hardware models: camera/0 (the detector, its light from the "
        "served lamp, wheels, dome and mount), covercalibrator/0 (the lamp; its cover the shutter), switch/0 (the "
        "chiller), filterwheel/0 and /1 (filters, dispersers), dome/0 (one shutter), telescope/0. Injections: "
        + "; ".join(f"{name}: {text}" for name, text in SERVED_INJECTIONS.items())
        + ".",
    )
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    s.add_argument("--port", type=int, default=11111, help="port (default %(default)s, Alpaca's usual)")
    s.add_argument("--speed", type=positive_float, default=1.0,
                   help="clock speed of the simulated hardware (default %(default)s: real time)")  # fmt: skip
    s.add_argument("--epoch", type=float, default=None, help="the clock's epoch (TAI unix s), shared with a run")
    s.add_argument("--inject", action="append", default=[], metavar="NAME[=VALUE]",
                   help="a fault in the served hardware (repeatable)")  # fmt: skip
    s.add_argument("--devices-file", type=Path, default=None,
                   help="write the site's devices file for these devices here (for obsq up --devices)")  # fmt: skip
    s.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from obsq.csc.served.server import ServeOptions, serve

    options = ServeOptions(args.host, args.port, args.speed, args.epoch, args.inject, args.devices_file)
    return run_async(serve(options))
