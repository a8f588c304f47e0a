"""Running the weekly calibration: bring-up (unless a broker is given), the blocks, the PTC, the summary.

The scripts have the reduction service (OCPS:1) build, verify and certify the masters as they
go; at the end the PTC flats go to OCPS for the photon transfer curve, and OCPS reports on the
run (the images of its scripts' group ids, verification per check, masters, PTC per amplifier)
and writes the report page. The same code path serves a private observatory and a running site
(`--broker`): the client asks the services, never reads their files. The summary is shown and
written as JSON beside the data. The exit status is 0 only if every script is DONE, every check
passed, and OCPS:1 accounted for the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from obsq.csc.acquired import AcquiredImages
from obsq.csc.app.alpaca import serve_devices
from obsq.csc.app.connection import Connection, connected_bus
from obsq.csc.bus.base import Bus
from obsq.csc.bus.brokers import private_broker
from obsq.csc.clock import TAI_MINUS_UTC_S, Clock, LoopClock, day_obs, perf_counter, tai_iso, utc_now_unix, wall_tai
from obsq.csc.component import AckError, Remote
from obsq.csc.core.errors import ExpectedError, UsageError, ValidationError
from obsq.csc.database import DatabaseError, describe
from obsq.csc.injections import InjectionError, parse_injections
from obsq.csc.observatory import Observatory
from obsq.csc.scriptqueue.blocks import block_folders, read_block
from obsq.csc.weekly.follow import Progress, QueueFollower, add_blocks, follow, start_following
from obsq.csc.weekly.summary import (
    lamp_state,
    masters_asked,
    processing_notes,
    ptc_requests,
    ptc_select,
    run_ptc,
    run_report,
    unbuilt_masters,
)

QUEUE = "ScriptQueue:2"
BLOCKS = ("BLOCK-309", "BLOCK-295", "BLOCK-310")
#: Blocks of a run that still run after it fails part way: they leave the site safe (the lamp off).
SAFE_BLOCKS = ("BLOCK-310",)


class WeeklyView(Protocol):
    """What the run tells its user (printing.ConsoleView prints it)."""

    def line(self, text: str) -> None: ...

    def queued(self, block: str, indices: list[int]) -> None: ...

    def progress(self, progress: Progress) -> None: ...

    def summary(self, summary: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class WeeklyOptions:
    """`obsq weekly`: where (a given broker, or a private simulated observatory), which blocks, how fast."""

    connection: Connection
    speed: float = 600.0
    data: Path = Path("obsq-data")
    blocks: Sequence[str] = BLOCKS
    skip_setup: bool = False
    skip_shutdown: bool = False
    inject: Sequence[str] = ()
    timeout_s: float = 1800.0
    #: the simulated observatory's registries in this database (one of its own) instead of SQLite files
    database: str | None = None
    #: the hardware behind ASCOM Alpaca: obsq's own served devices (`obsq alpaca serve`), driven by the Alpaca drivers
    alpaca: bool = False

    def chosen_blocks(self) -> list[str]:
        blocks = list(self.blocks)
        if self.skip_setup:
            blocks = [b for b in blocks if b != "BLOCK-309"]
        if self.skip_shutdown:
            blocks = [b for b in blocks if b != "BLOCK-310"]
        return blocks


def check_empty(database: str) -> None:
    """A simulated run's database must be its own: its summary counts every image the registry holds."""
    try:
        taken = len(AcquiredImages(database).images())
    except DatabaseError as exc:
        raise UsageError(f"--database: {exc}") from None
    if taken:
        raise UsageError(
            f"--database {describe(database)} holds {taken} acquired images already; a simulated weekly needs an "
            "empty database of its own (its summary and report count everything in the registries)"
        )


def read_blocks(blocks: list[str]) -> list[dict[str, Any]]:
    """The blocks' contents (shipped ids, or files), for what they ask of the reduction.

    A block this process cannot read (a site block only the queue knows) is left out here; the
    queue itself judges every block when it is added.
    """
    contents = []
    for block in blocks:
        with contextlib.suppress(ValidationError):
            contents.append(read_block(block, block_folders())[0])
    return contents


async def _ptcs(bus: Bus, root: str, clock: Clock, contents: list[dict[str, Any]], groupids: list[str]) -> list[str]:
    """Each PTC the blocks ask for, through OCPS:1, from the run's flats taken for it; a line each."""
    requests = ptc_requests(contents)
    if not requests:
        return ["PTC: no block asks for one (no take_image_latiss of flats in pairs)"]
    return [await run_ptc(bus, root, clock, ptc_select(request, groupids)) for request in requests]


def run_start_tai(now_tai: float) -> float:
    """Where a simulated run's clock starts: 13:00 UTC of the current observing day (DAYOBS, UTC-12 h).

    The observing day turns at 12:00 UTC; starting an hour after it leaves 23 simulated hours before
    the next turn, so all of one run's images share one DAYOBS whatever the wall clock says.
    """
    utc = datetime.datetime.fromtimestamp(now_tai - TAI_MINUS_UTC_S, tz=datetime.UTC)
    day = (utc - datetime.timedelta(hours=12)).date()
    start = datetime.datetime.combine(day, datetime.time(13), tzinfo=datetime.UTC)
    return start.timestamp() + TAI_MINUS_UTC_S


async def _run_blocks(
    remote: Remote, blocks: list[str], follower: QueueFollower, clock: Clock, *, timeout_s: float, view: WeeklyView
) -> None:
    """Queue the blocks and follow them, BLOCK-309's first scripts included, until they end or fail.

    A run that fails part way still ends with the site safe: its safe blocks (BLOCK-310, which turns
    the lamp off) run after the failure, as the Scheduler's runs do.
    """
    added: dict[str, list[int]] = {}

    def queued(block: str, indices: list[int]) -> None:
        added[block] = indices
        follower.indices.update(indices)
        view.queued(block, indices)

    try:
        await start_following(remote, follower)  # before adding, so no script goes unseen
        adding = asyncio.get_running_loop().create_task(add_blocks(remote, blocks, queued))
        try:
            await follow(remote, follower, clock, timeout_s, view.progress, adding=adding)
        finally:
            adding.cancel()
            with contextlib.suppress(asyncio.CancelledError, AckError, TimeoutError):
                await adding
    except (AckError, TimeoutError) as exc:
        view.line(f"obsq weekly: {exc}")
    safe = [b for b in blocks if b in SAFE_BLOCKS]
    if safe and not _safe_blocks_done(follower, added, safe):
        await _make_safe(remote, follower, clock, added, safe, timeout_s=timeout_s, view=view, queued=queued)


def _safe_blocks_done(follower: QueueFollower, added: dict[str, list[int]], safe: list[str]) -> bool:
    return all(
        block in added and all(follower.items.get(i, {}).get("state") == "DONE" for i in added[block]) for block in safe
    )


async def _make_safe(
    remote: Remote,
    follower: QueueFollower,
    clock: Clock,
    added: dict[str, list[int]],
    safe: list[str],
    *,
    timeout_s: float,
    view: WeeklyView,
    queued: Callable[[str, list[int]], None],
) -> None:
    """After a failure: stop what is left of the other blocks, then run the safe ones to their end."""
    safe_indices = {i for block in safe for i in added.get(block, [])}
    left = [i["index"] for i in follower.ours() if i["area"] != "history" and i["index"] not in safe_indices]
    view.line(f"obsq weekly: the run failed; stopping {len(left)} scripts left and running {', '.join(safe)} "
              "so the site ends safe")  # fmt: skip
    try:
        if left:
            await remote.command("stopScripts", {"salIndices": (left + [0] * 400)[:400], "length": len(left),
                                                 "terminate": False}, timeout_s=120)  # fmt: skip
        for block in safe:
            if block not in added:
                queued(block, json.loads((await remote.command("addBlock", {"id": block}, timeout_s=180)).result))
        state = remote.event("queue").get()
        if state and not state["running"]:
            await remote.command("resume", timeout_s=60)
        await follow(remote, follower, clock, timeout_s, view.progress)
    except (AckError, TimeoutError) as exc:
        view.line(f"obsq weekly: the site may not be safe: {', '.join(safe)} did not run to its end: {exc}")


async def _summarise(
    bus: Bus,
    root: str,
    clock: Clock,
    follower: QueueFollower,
    *,
    contents: list[dict[str, Any]],
    header: dict[str, Any],
    since: float,
    t0: float,
    view: WeeklyView,
) -> tuple[dict[str, Any], bool]:
    """The run's summary as the services give it (the lamp, the PTC, OCPS:1's report), and whether it passed."""
    lamp = await lamp_state(bus, root, clock)
    groupids = sorted({i["group"] for i in follower.ours() if i.get("group")})
    for line in await _ptcs(bus, root, clock, contents, groupids):
        view.line(line)
    scripts = [
        {"index": i["index"], "block": i["block"], "path": i["path"], "state": i["state"], "reason": i["reason"]}
        for i in follower.ours()
    ]  # fmt: skip
    ok = bool(scripts) and all(s["state"] == "DONE" for s in scripts) and len(scripts) == len(follower.indices)
    summary: dict[str, Any] = {
        **header,
        "outcome": "all scripts DONE" if ok else "FAILED: not every script is DONE",
        "scripts": scripts,
        "images": [],
        "lamp": lamp,
        "processing": processing_notes(contents),
        "wall_time_s": perf_counter() - t0,
    }
    try:
        report = await run_report(bus, root, clock, since_unix=since, groupids=groupids, summary=summary)
    except ExpectedError as exc:  # what ran cannot be accounted for: not a success
        summary["outcome"] = f"FAILED: {exc}"
        return summary, False
    summary["images"] = report["images"]
    results = report["calibration"]
    if results["masters"] or results["verification"] or results["ptc"] or results["jobs"]["total"]:
        summary["calibration"] = results
        summary["report"] = report["report"]
        ok = ok and results["passed"]
    missing = unbuilt_masters(masters_asked(contents), results["masters"])
    if missing:  # counted against the blocks, whatever the scripts said
        summary["missing_masters"] = missing
        summary["outcome"] = f"FAILED: masters the blocks asked for were not built ({'; '.join(missing)})"
        ok = False
    return summary, ok


async def run_weekly(options: WeeklyOptions, view: WeeklyView) -> int:
    """The `obsq weekly` command; 0 if every script is DONE and every check passed."""
    try:
        parse_injections(list(options.inject))
    except InjectionError as exc:
        raise UsageError(str(exc)) from None
    blocks = options.chosen_blocks()
    contents = read_blocks(blocks)
    stamp = datetime.datetime.fromtimestamp(utc_now_unix(), tz=datetime.UTC).strftime("%Y%m%dT%H%M%S")
    data = options.data / f"weekly-{stamp}"
    simulate = not options.connection.given
    if simulate and options.database:
        check_empty(options.database)
    root = f"weekly-{os.getpid()}" if simulate else options.connection.checked_root()
    clock = LoopClock()  # the run works in wall time: processes and files do not speed up with the simulation
    t0 = perf_counter()
    async with contextlib.AsyncExitStack() as stack:
        if simulate:
            url = await stack.enter_async_context(private_broker())
            view.line(f"obsq weekly: simulated observatory on {url}, speed {options.speed:g}, data {data}")
        else:
            url = options.connection.url()
            view.line(f"obsq weekly: driving {QUEUE} on {url} (root {root})")
        bus = await stack.enter_async_context(connected_bus(options.connection, url, clock=clock))
        if simulate:
            start = run_start_tai(wall_tai())
            view.line(f"obsq weekly: simulated clock from {tai_iso(start, places=0)} (DAYOBS {day_obs(start)})")
            observatory = Observatory(
                url,
                root,
                data,
                options.speed,
                inject=options.inject,
                report=view.line,
                database=options.database,
                start_tai=start if options.speed != 1.0 else None,
            )
            if options.alpaca:
                served = await serve_devices(stack, observatory, options.inject, clock)
                view.line(f"obsq weekly: the hardware behind ASCOM Alpaca at http://{served.host}:{served.port}"
                          " (obsq's served devices)")  # fmt: skip
            await stack.enter_async_context(observatory.running(bus, clock))
            view.line(f"obsq weekly: observatory ready after {perf_counter() - t0:.1f} s")
        remote = await stack.enter_async_context(Remote(bus, QUEUE, clock=clock, root=root))
        follower = QueueFollower(options.speed)
        since = utc_now_unix()
        await _run_blocks(remote, blocks, follower, clock, timeout_s=options.timeout_s, view=view)
        header = {"blocks": blocks, "speed": options.speed, "file": str(data / "weekly-summary.json")}
        summary, ok = await _summarise(
            bus, root, clock, follower, contents=contents, header=header, since=since, t0=t0, view=view
        )
        data.mkdir(parents=True, exist_ok=True)
        (data / "weekly-summary.json").write_text(json.dumps(summary, indent=2))
        view.summary(summary)
    return 0 if ok else 1
