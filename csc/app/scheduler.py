"""`obsq scheduler`: what the Scheduler would do and why, without a bus; and checking a schedule file."""

from __future__ import annotations

import asyncio
import datetime
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from obsq.csc.app.connection import LIVE_WITHIN_S, Connection, broker_for, connected_bus
from obsq.csc.clock import utc_now_unix
from obsq.csc.core.errors import ObsqError, UsageError, ValidationError
from obsq.csc.core.status import SCHEDULER_RUNNING
from obsq.csc.database import Registries, exists
from obsq.csc.scheduler.model import certified_this_week, plan
from obsq.csc.scheduler.schedule import Schedule, default_schedule_path, read_schedule
from obsq.csc.scheduler.sun import Sun
from obsq.csc.scriptqueue.blocks import available_blocks, block_folders


@dataclass(frozen=True)
class PlanOptions:
    """`obsq scheduler plan`: from which day (site time), for how many, how shown, from which files.

    With a broker named (`connection.given`), the plan first says whether the Scheduler:2 on it
    will queue anything at all (a STANDBY or stopped Scheduler queues nothing).
    """

    start: str
    days: int
    json: bool
    schedule: Path | None
    data: Path
    database: str | None
    connection: Connection | None = None


async def scheduler_note(connection: Connection) -> str:
    """What the Scheduler:2 on the named broker means for the plan, in a line."""
    from obsq.csc.clock import LoopClock
    from obsq.csc.component import Remote
    from obsq.csc.core.states import State, what_to_send

    try:
        async with (
            broker_for(connection, start_if_missing=False) as url,
            connected_bus(connection, url) as bus,
            Remote(bus, "Scheduler:2", clock=LoopClock(), root=connection.checked_root()) as remote,
        ):
            if not await remote.wait_live(LIVE_WITHIN_S):
                return f"no Scheduler:2 is running on {url}: nothing will be queued until one is (obsq up)"
            state = State(remote.event("summaryState").get().get("summaryState", State.STANDBY))
            running = remote.event("detailedState").get().get("substate") == SCHEDULER_RUNNING
    except ObsqError as exc:
        return f"the Scheduler could not be asked ({exc}): the plan assumes it ENABLED and running"
    if state != State.ENABLED:
        how = what_to_send(state, State.ENABLED)
        return f"Scheduler:2 is {state.name}: nothing will be queued until it is ENABLED ({how})"
    if not running:
        return "Scheduler:2 is ENABLED but stopped: nothing will be queued until it is sent resume"
    return "Scheduler:2 is ENABLED and running its rules"


def load(path: Path | None) -> Schedule:
    path = path or default_schedule_path()
    if path is None:
        raise UsageError("no schedule file: give --schedule FILE (or set $OBSQ_SCHEDULE)")
    return read_schedule(path, list(available_blocks(block_folders())))


def run_check(path: Path | None) -> int:
    schedule = load(path)
    print(f"{schedule.source}: valid; site {schedule.site.name} ({schedule.site.timezone}); "
          f"{len(schedule.rules)} rule(s): {', '.join(r.name for r in schedule.rules)}")  # fmt: skip
    return 0


def _products(options: PlanOptions) -> list[Any]:
    from obsq.csc.ocps.repository import Repository

    registries = Registries.at(options.data, options.database)
    if not exists(registries.calibration):
        return []
    return Repository(options.data / "repo", now=utc_now_unix, database=registries.calibration).products()


def _library_due(options: PlanOptions, products: list[Any]) -> dict[str, list[str]]:
    """What the calibration policy makes due now, by type (for rules queued only when due)."""
    from obsq.csc.scheduler.library import default_policy_path, due_now, read_policy
    from obsq.csc.scheduler.model import due_by_type

    policy_file = default_policy_path()
    if policy_file is None:
        return {}
    return due_by_type(due_now(read_policy(policy_file), products, options.data / "raw", now_unix=utc_now_unix()).items)


def run_plan(options: PlanOptions) -> int:
    schedule = load(options.schedule)
    site = schedule.site
    try:
        day = datetime.date.fromisoformat(options.start)
    except ValueError:
        raise ValidationError(f"--from: {options.start!r} is not a date (YYYY-MM-DD, site time)") from None
    if not 1 <= options.days <= 366:
        raise ValidationError(f"--days: {options.days} is not between 1 and 366")
    start = datetime.datetime.combine(day, datetime.time(), tzinfo=site.zone).timestamp()
    end = datetime.datetime.combine(day + datetime.timedelta(days=options.days), datetime.time(),
                                    tzinfo=site.zone).timestamp()  # fmt: skip
    products = _products(options)
    due: dict[str, list[str]] = {}
    if any(rule.only_when_due for rule in schedule.rules):
        due = _library_due(options, products)
    decisions = plan(
        schedule.rules, site, Sun(site), start=start, end=end,
        certified=lambda t, types: certified_this_week(products, site, t, types), due=due,
    )  # fmt: skip
    rows = [{key: d.row()[key] for key in ("time", "action", "blocks", "reason")} for d in decisions]
    note = (
        asyncio.run(scheduler_note(options.connection))
        if options.connection is not None and options.connection.given
        else "the plan assumes Scheduler:2 ENABLED and running (a STANDBY or stopped one queues nothing: obsq status)"
    )
    if options.json:
        print(json.dumps(rows, indent=2))
        print(note, file=sys.stderr)
        return 0
    print(f"{schedule.source}: {site.name}, {options.days} day(s) from {day} ({site.timezone}); "
          f"{len(rows)} occurrence(s); {note}")  # fmt: skip
    for decision, row in zip(decisions, rows, strict=True):
        local = site.local(decision.time).strftime("%a %Y-%m-%d %H:%M %Z")
        print(f"{local}  {row['action']:<8} {decision.rule}: {', '.join(row['blocks'])}")
        for reason in row["reason"].split("; "):
            print(f"    {reason}")
    return 0
