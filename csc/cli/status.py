"""`obsq status`: every component seen on the bus."""

from __future__ import annotations

import argparse

from obsq.csc.cli.common import Subparsers, add_connection_options, connection, positive_float, run_async
from obsq.csc.core.errors import UsageError


def add(sub: Subparsers) -> None:
    p = sub.add_parser(
        "status", help="table of every component on the bus", description="State, heartbeat, health, error code."
    )
    p.add_argument("--wait", type=positive_float, default=1.2, help="seconds to listen before printing (default 1.2)")
    p.add_argument("--watch", action="store_true", help="refresh every second until Ctrl-C")
    p.add_argument("--json", action="store_true", help="a JSON list of the components: component, state, "
                   "heartbeat_age_s, health, error, note, devices, connection (once; not with --watch)")  # fmt: skip
    add_connection_options(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from obsq.csc.app.bus_tools import StatusOptions, run_status

    if args.json and args.watch:
        raise UsageError("--json prints once: leave out --watch")
    return run_async(run_status(StatusOptions(connection(args), args.wait, args.watch, args.json)))
