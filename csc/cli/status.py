"""`obsq status`: every component seen on the bus."""

from __future__ import annotations

import argparse

from obsq.csc.cli.common import Subparsers, add_connection_options, connection, positive_float, run_async


def add(sub: Subparsers) -> None:
    p = sub.add_parser(
        "status", help="table of every component on the bus", description="State, heartbeat, health, error code."
    )
    p.add_argument("--wait", type=positive_float, default=1.2, help="seconds to listen before printing (default 1.2)")
    p.add_argument("--watch", action="store_true", help="refresh every second until Ctrl-C")
    add_connection_options(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from obsq.csc.app.bus_tools import StatusOptions, run_status

    return run_async(run_status(StatusOptions(connection(args), args.wait, args.watch)))
