"""`obsq scheduler`: the Scheduler's plan (without a bus) and schedule checks."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from obsq.csc.cli.common import Subparsers, add_connection_options, connection


def add(sub: Subparsers) -> None:
    p = sub.add_parser(
        "scheduler", help="what the Scheduler would do, and why",
        description="The Scheduler's rules (deploy/schedule.yaml, $OBSQ_SCHEDULE or --schedule): plan or check.",
    )  # fmt: skip
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    q = actions.add_parser(
        "plan", help="what the rules would do over some days, and why (no bus needed)",
        description="Each occurrence of each rule with its decision — queue or skip — and the guards behind it: "
        "the site's daylight and this week's certified masters in the calibration repository are checked; the "
        "components and the queue are assumed ready (a plan sees no bus).",
    )  # fmt: skip
    q.add_argument("--from", dest="start", required=True, metavar="DATE", help="first day, YYYY-MM-DD (site time)")
    q.add_argument("--days", type=int, default=7, help="how many days (default %(default)s)")
    q.add_argument("--json", action="store_true", help='a JSON list of {"time", "action", "blocks", "reason"}')
    q.add_argument(
        "--schedule", type=Path, help="the schedule file (default $OBSQ_SCHEDULE, else deploy/schedule.yaml)"
    )
    q.add_argument("--data", type=Path, default=Path("obsq-data"), help="data folder whose repository is read "
                   "(default %(default)s)")  # fmt: skip
    q.add_argument("--database", default=os.environ.get("OBSQ_DATABASE"),
                   help="the registries' database URL (default $OBSQ_DATABASE)")  # fmt: skip
    add_connection_options(q)  # with a broker named, the plan says whether its Scheduler:2 will queue anything
    q.set_defaults(handler=run_plan)
    q = actions.add_parser("check", help="validate a schedule file", description="Validate a schedule file, naming "
                           "the rule and the field of anything wrong.")  # fmt: skip
    q.add_argument(
        "schedule", type=Path, nargs="?", help="the file (default $OBSQ_SCHEDULE, else deploy/schedule.yaml)"
    )
    q.set_defaults(handler=run_check)


def run_plan(args: argparse.Namespace) -> int:
    from obsq.csc.app.scheduler import PlanOptions
    from obsq.csc.app.scheduler import run_plan as plan

    return plan(PlanOptions(args.start, args.days, args.json, args.schedule, args.data, args.database,
                            connection(args)))  # fmt: skip


def run_check(args: argparse.Namespace) -> int:
    from obsq.csc.app.scheduler import run_check as check

    return check(args.schedule)
