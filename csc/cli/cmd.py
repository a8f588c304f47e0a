"""`obsq cmd`: send one command, print every ack."""

from __future__ import annotations

import argparse

from obsq.csc.cli.common import Subparsers, add_connection_options, connection, positive_float, run_async


def add(sub: Subparsers) -> None:
    p = sub.add_parser("cmd", help="send a command, print its acks", description="Exit 0 on COMPLETE, 1 otherwise.")
    p.add_argument("component", metavar="NAME[:INDEX]", help="component, e.g. ATCamera or OCPS:1")
    p.add_argument("command", help="command name, e.g. start, enable, takeImages")
    p.add_argument("fields", nargs="*", metavar="key=value", help="command fields, typed by the interface schema")
    p.add_argument(
        "--timeout",
        type=positive_float,
        default=60.0,
        help="seconds to the final ack; INPROGRESS extends it (default %(default)g)",
    )
    p.add_argument(
        "--speed",
        type=positive_float,
        default=1.0,
        help="clock speed of the component (scales the timeout; default %(default)g)",
    )
    add_connection_options(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from obsq.csc.app.bus_tools import CmdOptions, run_cmd

    options = CmdOptions(connection(args), args.component, args.command, args.fields, args.timeout, args.speed)
    return run_async(run_cmd(options))
