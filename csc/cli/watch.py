"""`obsq watch`: follow events live."""

from __future__ import annotations

import argparse

from obsq.csc.cli.common import Subparsers, add_connection_options, connection, run_async


def add(sub: Subparsers) -> None:
    p = sub.add_parser("watch", help="follow events live", description="Print every message matching a filter.")
    p.add_argument("filter", nargs="?", help="MQTT topic filter (default ROOT/+/+/evt/+)")
    p.add_argument("--heartbeats", action="store_true", help="show heartbeat events too")
    p.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (default: Ctrl-C)")
    add_connection_options(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from obsq.csc.app.bus_tools import WatchOptions, run_watch

    return run_async(run_watch(WatchOptions(connection(args), args.filter, args.heartbeats, args.duration)))
