"""`obsq broker`: a broker on loopback until Ctrl-C."""

from __future__ import annotations

import argparse

from obsq.csc.bus.url import DEFAULT_BROKER_URL, BrokerUrl
from obsq.csc.cli.common import Subparsers, run_async


def add(sub: Subparsers) -> None:
    p = sub.add_parser("broker", help="run a broker on loopback", description="Run a broker until Ctrl-C.")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    p.add_argument("--port", type=int, default=BrokerUrl.parse(DEFAULT_BROKER_URL).port, help="default %(default)s")
    p.add_argument(
        "--engine",
        choices=("amqtt", "mosquitto"),
        default="amqtt",
        help="amqtt in this process, or mosquitto (default %(default)s)",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from obsq.csc.app.bus_tools import BrokerOptions, run_broker

    return run_async(run_broker(BrokerOptions(args.host, args.port, args.engine)))
