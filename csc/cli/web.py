"""`obsq web`: the operator's live page."""

from __future__ import annotations

import argparse

from obsq.csc.cli.common import Subparsers, add_connection_options, add_simulation_options, connection, run_async


def add(sub: Subparsers) -> None:
    p = sub.add_parser(
        "web",
        help="the operator's live page: components, the queue, forms, images, masters, the Scheduler",
        description="Serve the console page over HTTP: every component's state and health, the ScriptQueue (pause, "
        "resume, stop, terminate, move, requeue), forms made from the blocks' and scripts' schemas, the latest "
        "images, the masters and the weekly report, the Scheduler's plan and decisions. Log in with a broker user "
        "name (and password on a secured broker): commands go as that user; the observer user only reads.",
    )
    p.add_argument("--port", type=int, default=8080, help="HTTP port (default 8080)")
    p.add_argument(
        "--host", default="127.0.0.1",
        help="address to listen on (default 127.0.0.1, this host only; anything else exposes the page to the network)",
    )  # fmt: skip
    p.add_argument("--queue", type=int, default=2, help="the ScriptQueue's index (default 2)")
    add_simulation_options(p, data_help="the data folder whose raws, masters and reports the page shows", inject=False)
    add_connection_options(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from obsq.csc.web.server import WebOptions, run_web

    return run_async(run_web(WebOptions(connection(args), args.host, args.port, args.data, args.database, args.queue)))
