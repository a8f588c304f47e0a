"""`obsq script`: the script library, and one script run by hand."""

from __future__ import annotations

import argparse
from pathlib import Path

from obsq.csc.cli.common import (
    DEFAULT_DATA_DIR,
    Subparsers,
    absolute,
    add_connection_options,
    connection,
    positive_float,
    run_async,
)


def add(sub: Subparsers) -> None:
    p = sub.add_parser("script", help="describe and run scripts", description="The script library.")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", help="list the scripts", description="Every standard and external script.")
    q = actions.add_parser("schema", help="a script's configuration schema", description="Print it as YAML.")
    q.add_argument("path", help="script path, e.g. auxtel/take_image_latiss.py")
    q.add_argument("--external", action="store_true", help="an external (not standard) script")
    q = actions.add_parser("run", help="run one script by hand", description="Run one script standalone.")
    q.add_argument("path", help="script path, e.g. auxtel/take_image_latiss.py")
    q.add_argument("--external", action="store_true", help="an external (not standard) script")
    q.add_argument("--config", type=Path, help="YAML configuration file")
    q.add_argument("--sim", action="store_true", help="bring up the simulated observatory first")
    q.add_argument("--speed", type=positive_float, default=1.0, help="clock speed (with --sim; default %(default)g)")
    q.add_argument(
        "--data", type=absolute, default=DEFAULT_DATA_DIR, help="data folder (with --sim; default %(default)s)"
    )
    add_connection_options(q)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from obsq.csc.app import scripts

    if args.action == "list":
        return scripts.list_scripts()
    if args.action == "schema":
        return scripts.print_schema(args.path, external=args.external)
    options = scripts.ScriptRunOptions(
        connection(args), args.path, args.external, args.config, args.sim, args.speed, args.data
    )
    return run_async(scripts.run_script(options))
