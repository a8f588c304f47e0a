"""The `obsq` command: parsing only.

Each command group is one module here with an `add(subparsers)` that declares its options and
a handler that turns them into the command's typed options object and calls the command
(`obsq.csc.app`, `obsq.csc.weekly`, `obsq.csc.bench`). A handler imports its command only when
it runs, so `obsq --help` and `obsq csc list` load nothing but argparse and a few constants.
Connection options (`--broker`, credentials, `--root`) are accepted before and after an action.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from obsq.csc import __version__
from obsq.csc.cli import (
    alpaca,
    bench,
    broker,
    calib,
    cmd,
    csc,
    queue,
    reduce,
    scheduler,
    script,
    status,
    up,
    watch,
    web,
    weekly,
)
from obsq.csc.core.errors import ObsqError, UsageError

GROUPS = (weekly, queue, script, broker, csc, up, web, status, cmd, watch, bench, calib, reduce, scheduler, alpaca)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="obsq", description="Observatory control over MQTT.")
    parser.add_argument("--version", action="version", version=f"obsq {__version__}")
    sub = parser.add_subparsers(dest="subcommand", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except UsageError as exc:
        print(f"obsq: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (obsq ... | head): nothing more to say
        sys.stderr.close()
        return 0
    except (TimeoutError, ObsqError) as exc:
        print(f"obsq: {exc}", file=sys.stderr)
        return 1
