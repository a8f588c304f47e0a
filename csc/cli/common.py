"""What the command groups share: connection options (before or after the action), argument types, running."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from obsq.csc.bus.url import BROKER_ENV, DEFAULT_BROKER_URL
from obsq.csc.core.topics import DEFAULT_ROOT
from obsq.csc.database import DATABASE_ENV

if TYPE_CHECKING:
    from obsq.csc.app.connection import Connection

#: Where `obsq up` and `obsq weekly` keep raws, registries, repositories and logs.
DEFAULT_DATA_DIR = "obsq-data"
Subparsers = Any  # argparse's _SubParsersAction is private


def add_connection_options(parser: argparse.ArgumentParser, *, after_action: bool = False) -> None:
    """--broker, credentials and --root; `after_action` for an action's own parser (its group already has them).

    An action's copies default to SUPPRESS, so `obsq queue --broker URL show` and `obsq queue show
    --broker URL` both work and neither hides the other.
    """
    default: Callable[[Any], Any] = (lambda _: argparse.SUPPRESS) if after_action else (lambda value: value)
    group = parser.add_argument_group("broker")
    group.add_argument(
        "--broker", default=default(None),
        help=f"mqtt://[user@]host:port or mqtts://… (default ${BROKER_ENV} or {DEFAULT_BROKER_URL});"
        " no password here: it would be visible to every user of the host",
    )  # fmt: skip
    group.add_argument("--username", default=default(None), help="MQTT user name (overrides the URL's)")
    group.add_argument(
        "--credentials", type=Path, default=default(None), metavar="FILE",
        help="credentials file: OBSQ_USERNAME=…, OBSQ_PASSWORD=…, OBSQ_CA_FILE=… lines, chmod 600"
        " (default $OBSQ_CREDENTIALS, else $OBSQ_USERNAME/$OBSQ_PASSWORD/$OBSQ_CA_FILE)",
    )  # fmt: skip
    group.add_argument("--ca-file", default=default(None), help="CA certificate file for mqtts:// brokers")
    group.add_argument(
        "--connect-timeout", type=float, default=default(10.0), help="seconds to wait for the broker (default 10)"
    )
    group.add_argument("--root", default=default(DEFAULT_ROOT), help=f"topic root (default {DEFAULT_ROOT})")


def connection(args: argparse.Namespace) -> Connection:
    from obsq.csc.app.connection import Connection

    return Connection(
        broker=args.broker or os.environ.get(BROKER_ENV) or None, username=args.username, credentials=args.credentials,
        ca_file=args.ca_file, connect_timeout_s=args.connect_timeout, root=args.root,
        broker_from_command_line=bool(args.broker),
    )  # fmt: skip


def payload_bytes(text: str) -> int:
    """An argument type: a payload limit in bytes (1 KiB … 256 MiB, as Mosquitto's message_size_limit)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of bytes") from None
    if not 1024 <= value <= 256 * 1024 * 1024:
        raise argparse.ArgumentTypeError(f"must be 1024 … 268435456 bytes, got {text}")
    return value


def positive_float(text: str) -> float:
    """An argument type: a number > 0 (clock speeds, counts of seconds)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def database_url(text: str) -> str:
    """An argument type: an SQLite path or URL, or a PostgreSQL URL without a password."""
    from obsq.csc.database import DatabaseError, check_target

    try:
        return check_target(text)
    except DatabaseError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def absolute(text: str) -> Path:
    """A path argument made absolute, as child processes may run elsewhere."""
    return Path(text).absolute()


def add_simulation_options(parser: argparse.ArgumentParser, *, data_help: str, inject: bool = True) -> None:
    """--data (a folder, made absolute), --database and (unless not `inject`) --inject, fault injection by name."""
    from obsq.csc.injections import INJECTIONS

    parser.add_argument("--data", type=absolute, default=DEFAULT_DATA_DIR, help=f"{data_help} (default obsq-data)")
    parser.add_argument(
        "--database", type=database_url, default=os.environ.get(DATABASE_ENV) or None, metavar="URL",
        help="the registries' database, shared by the site's hosts: postgresql://USER@HOST:PORT/DBNAME, password in"
        f" PGPASSWORD or ~/.pgpass (default ${DATABASE_ENV}, else SQLite files in the data folder)",
    )  # fmt: skip
    if not inject:
        return
    faults = "; ".join(f"{n} ({i.component}: {i.help})" for n, i in INJECTIONS.items())
    parser.add_argument(
        "--inject", action="append", default=[], metavar="NAME[=VALUE]", help=f"fault injection, repeatable: {faults}"
    )


def run_async(coroutine: Coroutine[Any, Any, int]) -> int:
    """Run a command's coroutine with the library's logs on stderr."""
    import asyncio
    import logging
    import sys

    import structlog

    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )
    return asyncio.run(coroutine)
