"""The Scheduler on the memory bus, over a simulated month with the site's Sun, and Rubin's add_block path.

The Scheduler, a real ScriptQueue running the test scripts in this process, and a simulated
ATDome share a manual clock that starts on Tuesday 1 December 2026: the weekly rule queues
its blocks on the Mondays at 14:00 site time, postpones while ATDome is in FAULT and queues
once it is back, skips a week the operator kept the queue paused, skips a week whose masters
are certified, and a Scheduler restarted mid-week queues nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

import pytest

from obsq.csc.bus.memory import MemoryBroker
from obsq.csc.clock import TAI_MINUS_UTC_S, ManualClock
from obsq.csc.component import AckError, Remote
from obsq.csc.compose import build_component
from obsq.csc.core.states import State
from obsq.csc.scheduler.csc import SchedulerCsc
from obsq.csc.scheduler.schedule import SCHEDULE_ENV
from obsq.csc.scheduler.store import SchedulerStore
from obsq.csc.scriptqueue.csc import ScriptQueueCsc
from obsq.csc.scriptqueue.inprocess import InProcessRunner
from obsq.csc.scriptqueue.store import MemoryQueueStore
from obsq.csc.testing import unique_root

from .test_queue_inprocess import roots

T = TypeVar("T")
ZONE = datetime.timezone(datetime.timedelta(hours=-3))  # Chile's summer time, all December
HEARTBEAT_S = 3600.0  # a month of virtual time: heartbeats hourly keep the test fast

SCHEDULE = """
site: {name: Cerro Pachón, latitude: -30.2446, longitude: -70.7494, elevation: 2663, timezone: America/Santiago}
check_interval: 300
rules:
  - name: weekly
    cron: "0 14 * * MON"
    blocks: [BLOCK-T901, BLOCK-T902]
    estimated_duration: 1
    window: 3
    retry: 15
    needs_enabled: [ATDome, "ScriptQueue:2"]
    no_fault: []
    skip_if_certified: [bias]
"""


def block(program: str, wait_s: float, *, fail: bool = False) -> str:
    script = {"name": "testing/wait.py", "standard": False, "parameters": {"wait_time": wait_s, "fail_run": fail}}
    return json.dumps({"name": program.lower(), "program": program, "scripts": [script, dict(script)]})


def unix(text: str) -> float:
    """A site time in December 2026, 'MM-DD HH:MM'."""
    return datetime.datetime.fromisoformat(f"2026-{text}").replace(tzinfo=ZONE).timestamp()


@dataclass
class Site:
    """The rig: the bus, the clock, the three components and what the Scheduler says."""

    broker: MemoryBroker
    clock: ManualClock
    root: str
    blocks: Path
    store: SchedulerStore
    stack: contextlib.AsyncExitStack
    products: list[Any] = field(default_factory=list)
    images: list[Any] = field(default_factory=list)
    trained: dict[Any, float] = field(default_factory=dict)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    scheduler: SchedulerCsc | None = None
    remotes: dict[str, Remote] = field(default_factory=dict)

    async def start(self, csc: Any) -> Any:
        await csc.bus.start()
        self.stack.push_async_callback(csc.bus.close)
        await self.stack.enter_async_context(csc)
        return csc

    async def start_scheduler(self) -> SchedulerCsc:
        scheduler = SchedulerCsc(
            store=self.store, calibrations=lambda: list(self.products), roots=roots(), block_dirs=[self.blocks],
            flats_source=lambda: (list(self.images), dict(self.trained)),
            bus=self.broker.client(f"scheduler-{len(self.decisions)}"), clock=self.clock, root=self.root,
            heartbeat_s=HEARTBEAT_S, initial_state=State.ENABLED,
        )  # fmt: skip
        self.scheduler = await self.start(scheduler)
        return scheduler

    async def remote(self, name: str) -> Remote:
        if name not in self.remotes:
            bus = self.broker.client(f"remote-{name}")
            await bus.start()
            self.stack.push_async_callback(bus.close)
            remote = Remote(bus, name, clock=self.clock, root=self.root)
            await self.stack.enter_async_context(remote)
            self.remotes[name] = remote
        return self.remotes[name]

    async def run(self, awaitable: Awaitable[T]) -> T:
        """Await `awaitable` while virtual time moves a second at a time (scripts start on the clock)."""
        task = asyncio.ensure_future(awaitable)
        while not task.done():
            await self.clock.advance(1.0)
        return task.result()

    async def until(self, when: str) -> None:
        await self.clock.advance(unix(when) - (self.clock.tai() - TAI_MINUS_UTC_S))

    def said(self, action: str, since: str = "01-01 00:00") -> list[dict[str, Any]]:
        start = datetime.datetime.fromtimestamp(unix(since), tz=datetime.UTC).isoformat()
        return [d for d in self.decisions if d["action"] == action and d["time"] >= start[:19]]


FLATS_SCHEDULE = """
site: {name: Cerro Pachón, latitude: -30.2446, longitude: -70.7494, elevation: 2663, timezone: America/Santiago}
check_interval: 300
rules:
  - name: flats
    cron: "0 9 * * *"
    blocks: [BLOCK-T912]
    estimated_duration: 0.5
    needs_enabled: []
    no_fault: []
    skip_if_certified: []
    cadence_flats: {programs: {survey: 1}, count: 3}
"""
#: A flats block as BLOCK-9001 is, with the wait script in place of the camera: its exposure is the wait.
FLATS_BLOCK = json.dumps({
    "name": "flats", "program": "BLOCK-T912",
    "configuration_schema": "type: object\nadditionalProperties: false\nproperties:\n  filter: {type: string}\n"
                            "  grating: {type: string}\n  exposure: {type: number}\n  count: {type: integer}\n",
    "scripts": [{"name": "testing/wait.py", "standard": False, "parameters": {"wait_time": "$exposure"}}],
})  # fmt: skip


@pytest.fixture
async def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> AsyncIterator[Site]:
    blocks = tmp_path / "blocks"
    blocks.mkdir()
    (blocks / "BLOCK-T901.json").write_text(block("BLOCK-T901", 1200))
    (blocks / "BLOCK-T902.json").write_text(block("BLOCK-T902", 600))
    (blocks / "BLOCK-T903.json").write_text(block("BLOCK-T903", 5))
    (blocks / "BLOCK-T904.json").write_text(block("BLOCK-T904", 60, fail=True))
    (blocks / "BLOCK-T912.json").write_text(FLATS_BLOCK)
    (tmp_path / "schedule.yaml").write_text(getattr(request, "param", SCHEDULE))
    monkeypatch.setenv(SCHEDULE_ENV, str(tmp_path / "schedule.yaml"))
    broker, root = MemoryBroker(), unique_root()
    clock = ManualClock(tai=unix("12-01 08:00") + TAI_MINUS_UTC_S)
    async with contextlib.AsyncExitStack() as stack:
        rig = Site(broker, clock, root, blocks, SchedulerStore(tmp_path / "scheduler.sqlite3"), stack)
        common = {"clock": clock, "root": root, "heartbeat_s": HEARTBEAT_S, "initial_state": State.ENABLED}
        await rig.start(build_component("ATDome", bus=broker.client("ATDome"), simulate=True, inject=[],
                                        data_dir=tmp_path, index=0, **common))  # fmt: skip
        runner = InProcessRunner(broker, clock, root, roots(), heartbeat_s=HEARTBEAT_S)
        queue = ScriptQueueCsc(runner=runner, store=MemoryQueueStore(), roots=roots(), block_folders=[blocks],
                               bus=broker.client("queue"), index=2, **common)  # fmt: skip
        await rig.start(queue)
        await rig.start_scheduler()
        remote = await rig.remote("Scheduler:2")
        remote.event("decision").callback = lambda envelope: rig.decisions.append(envelope.data)
        remote.event("run").callback = lambda envelope: rig.runs.append(envelope.data)
        yield rig


async def test_a_month_of_mondays_with_the_sites_sun_and_every_guard(site: Site) -> None:
    dome, queue = await site.remote("ATDome"), await site.remote("ScriptQueue:2")

    # Monday 7: queued at 14:00, both blocks run to the end
    await site.until("12-07 13:59")
    assert site.decisions == []
    await site.until("12-07 15:30")
    (queued,) = site.said("queue")
    assert queued["occurrence"] == "2026-12-07T17:00:00Z"
    assert queued["time"] == "2026-12-07T17:00:00Z"  # looked at every 5 min: on the dot
    assert "h of daylight left (sunset 20:" in queued["reason"]
    assert [r["outcome"] for r in site.runs] == ["running", "COMPLETED"]  # 2 x 20 min + 2 x 10 min of scripts
    assert len(site.runs[-1]["salIndices"].split(",")) == 4

    # restarted on Wednesday: Monday's occurrence is not decided again
    assert site.scheduler is not None
    site.scheduler.close()
    await site.until("12-09 10:00")
    await site.start_scheduler()
    await site.until("12-10 10:00")
    assert len(site.said("queue")) == 1
    assert site.said("skip") == []

    # Monday 14: ATDome sent to STANDBY at 13:00: postponed every 15 min, queued once it is back at 15:10
    await site.until("12-14 13:00")
    await dome.command("disable")
    await dome.command("standby")
    await site.until("12-14 15:10")
    postponed = site.said("postpone", "12-14 00:00")
    assert len(postponed) == 5  # 14:00, 14:15, 14:30, 14:45, 15:00
    assert postponed[0]["reason"].startswith("ATDome is STANDBY: the dome and telescope may not move; looking again")
    await dome.command("start")
    await dome.command("enable")
    await site.until("12-14 16:30")
    assert [d["time"][11:16] for d in site.said("queue", "12-14 00:00")] == ["18:15"]  # 15:15 site time
    assert site.runs[-1]["outcome"] == "COMPLETED"

    # Monday 21: the operator paused the queue; still paused when the window closes at 17:00: skipped
    await site.until("12-21 12:00")
    await queue.command("pause")
    await site.until("12-21 18:00")
    (skipped,) = site.said("skip", "12-21 00:00")
    assert skipped["reason"].startswith("ScriptQueue:2 is paused by an operator; its window closed at 17:00")
    assert len(site.said("postpone", "12-21 00:00")) == 11  # 14:00 .. 16:30
    await queue.command("resume")

    # Monday 28: this week's bias master is certified already
    monday_mjd = unix("12-28 09:00") / 86400 + 40587.0
    site.products.append(SimpleNamespace(type="bias", mjd_mean=monday_mjd, certified=[(0, 1)], id=7, version=2))
    await site.until("12-28 15:00")
    (certified,) = site.said("skip", "12-28 00:00")
    assert certified["reason"] == "this week's masters are already certified (bias: #7 v2)"
    assert len(site.said("queue")) == 2  # Dec 7 and Dec 14, nothing twice
    assert [d.action for d in site.store.decisions() if d.action != "postpone"] == ["queue", "queue", "skip", "skip"]


@pytest.mark.parametrize("site", [SCHEDULE.replace("BLOCK-T901, BLOCK-T902", "BLOCK-T903, BLOCK-T902")],
                         indirect=True)  # fmt: skip
async def test_a_run_goes_on_when_its_first_block_ends_before_the_next_is_added(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    launch = ScriptQueueCsc._launch

    async def slow_for_the_second_block(self: ScriptQueueCsc, item: Any, **kwargs: Any) -> None:
        if item.block_id == "BLOCK-T902":
            await self.clock.sleep(60)  # the first block's two 5 s scripts end meanwhile
        await launch(self, item, **kwargs)

    monkeypatch.setattr(ScriptQueueCsc, "_launch", slow_for_the_second_block)
    await site.until("12-07 14:30")
    assert [r["outcome"] for r in site.runs] == ["running", "COMPLETED"]  # not ERROR with T902's first script going
    assert len(site.runs[-1]["salIndices"].split(",")) == 4


async def test_rubins_add_block_script_queues_the_block_through_the_scheduler(site: Site) -> None:
    queue = await site.remote("ScriptQueue:2")
    scheduler = await site.remote("Scheduler:2")
    statuses: list[tuple[str, str]] = []
    scheduler.event("blockStatus").callback = lambda e: statuses.append((e.data["id"], e.data["status"]))
    ack = await site.run(queue.command("add", {"path": "auxtel/scheduler/add_block.py", "isStandard": True,
                                               "config": "id: BLOCK-T901", "location": 2}))  # fmt: skip
    index = int(ack.result)
    await site.clock.advance(3600)
    items = {i["index"]: i for i in json.loads(queue.event("queue").get()["items"])}
    assert items[index]["state"] == "DONE"
    block_scripts = [i for i in items.values() if i["block"] == "BLOCK-T901"]
    assert [i["state"] for i in block_scripts] == ["DONE", "DONE"]
    assert statuses == [("BLOCK-T901", "STARTED"), ("BLOCK-T901", "EXECUTING"), ("BLOCK-T901", "COMPLETED")]


async def test_add_block_is_validated_at_the_door(site: Site, tmp_path: Path) -> None:
    scheduler = await site.remote("Scheduler:2")
    with pytest.raises(AckError, match="unknown block 'BLOCK-T999'"):
        await scheduler.command("addBlock", {"id": "BLOCK-T999"})
    (site.blocks / "BLOCK-T903.json").write_text(block("BLOCK-T903", -5))
    with pytest.raises(AckError, match=r"block BLOCK-T903 script 1 \(testing/wait.py\).*wait_time.*minimum"):
        await scheduler.command("addBlock", {"id": "BLOCK-T903"})
    queue = await site.remote("ScriptQueue:2")
    assert json.loads(queue.event("queue").get().get("items") or "[]") == []  # nothing queued


@pytest.mark.parametrize("site", [FLATS_SCHEDULE], indirect=True)
async def test_flats_by_cadence_are_queued_the_morning_after_and_not_again(site: Site) -> None:
    from obsq.csc.scheduler.flats import key_of

    r = {"filter": "SDSSr_65mm", "grating": "empty_1", "binning": "1x1"}
    site.trained[key_of(r)] = 6.0
    for when, filter_ in (("12-01 23:00", "SDSSr_65mm"), ("12-02 02:00", "SDSSr_65mm"), ("12-02 03:00", "SDSSg_65mm")):
        mjd = unix(when) / 86400 + 40587.0
        site.images.append(SimpleNamespace(imgtype="OBJECT", mjd_obs=mjd, program="survey", groupid="M42",
                                           filter=filter_, grating="empty_1"))  # fmt: skip
    await site.until("12-01 09:30")
    (first,) = site.said("skip")
    assert first["reason"] == "no flats are due by cadence"  # the lights are not taken yet
    await site.until("12-02 10:00")
    (queued,) = site.said("queue")
    assert "survey's 1-day cadence has elapsed since the night of 2026-12-01" in queued["reason"]
    assert "6 s trained exposure" in queued["reason"]
    assert "skipped: no trained flat exposure for filter=SDSSg_65mm" in queued["reason"]  # said, not taken
    assert site.runs[-1]["outcome"] == "COMPLETED"
    assert site.runs[-1]["blocks"] == "BLOCK-T912"
    assert [s.isoformat() for s, _ in site.store.flats()] == ["2026-12-01"]
    await site.until("12-03 10:00")
    assert len(site.said("queue")) == 1  # the night is covered: not again
    assert site.said("skip")[-1]["reason"].startswith("no flats are due by cadence (skipped: no trained flat")


async def test_a_scheduler_restarted_mid_run_follows_the_run_to_its_end(site: Site) -> None:
    statuses: list[tuple[str, str]] = []
    (await site.remote("Scheduler:2")).event("blockStatus").callback = lambda e: statuses.append(
        (e.data["id"], e.data["status"])
    )
    await site.until("12-07 14:10")  # the first script of BLOCK-T901 is running
    assert [r["outcome"] for r in site.runs] == ["running"]
    assert site.scheduler is not None
    site.scheduler.close()
    await site.until("12-07 14:20")
    await site.start_scheduler()
    await site.until("12-07 15:30")
    (run,) = site.store.runs()
    assert run.outcome == "COMPLETED"  # seen through the queue by the Scheduler that came back
    assert site.runs[-1]["outcome"] == "COMPLETED"
    assert len(site.said("queue")) == 1
    assert statuses[-2:] == [("BLOCK-T901", "COMPLETED"), ("BLOCK-T902", "COMPLETED")]


SAFE_SCHEDULE = SCHEDULE.replace("blocks: [BLOCK-T901, BLOCK-T902]", "blocks: [BLOCK-T904, BLOCK-T902, BLOCK-T903]\n"
                                 "    safe: [BLOCK-T903]")  # fmt: skip


@pytest.mark.parametrize("site", [SAFE_SCHEDULE], indirect=True)
async def test_a_failed_block_drops_the_rest_and_the_safe_block_still_runs(site: Site) -> None:
    queue = await site.remote("ScriptQueue:2")
    await site.until("12-07 15:00")
    outcome = site.runs[-1]["outcome"]
    assert outcome.startswith("ERROR: script "), outcome
    assert "of BLOCK-T904 FAILED" in outcome
    assert "not completed: BLOCK-T902" in outcome
    assert outcome.endswith("safe block BLOCK-T903 COMPLETED (the site is safe)")
    assert any(r["outcome"].startswith("failing: ") and "running the safe blocks BLOCK-T903" in r["outcome"]
               for r in site.runs)  # said while it happened  # fmt: skip
    items = json.loads(queue.event("queue").get()["items"])
    states = {(i["block"], i["state"]) for i in items}
    assert ("BLOCK-T903", "DONE") in states
    assert not any(b == "BLOCK-T902" and s == "DONE" for b, s in states)  # dropped: stopped before it ran
    assert queue.event("queue").get()["running"]  # the Scheduler resumed the queue the failure paused
    (run,) = site.store.runs()
    assert run.outcome == outcome


@pytest.mark.parametrize("site", [SAFE_SCHEDULE], indirect=True)
async def test_a_run_stopped_by_the_operator_still_runs_its_safe_block(site: Site) -> None:
    (site.blocks / "BLOCK-T904.json").write_text(block("BLOCK-T904", 1200))
    scheduler = await site.remote("Scheduler:2")
    await site.until("12-07 14:05")  # BLOCK-T904's first script is running
    ack = await site.run(scheduler.command("stop", {"abort": True}))
    assert "the safe blocks still run: BLOCK-T903" in ack.result
    await site.until("12-07 15:00")
    outcome = site.runs[-1]["outcome"]
    assert "stopped by" in outcome
    assert outcome.endswith("safe block BLOCK-T903 COMPLETED (the site is safe)")


async def test_an_add_block_whose_ack_is_lost_is_found_by_its_execution_id(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_block = ScriptQueueCsc._do_add_block

    async def never_answered(self: ScriptQueueCsc, command: Any) -> str:
        await add_block(self, command)  # the block is queued ...
        await asyncio.Event().wait()  # ... and its final ack never comes
        return ""

    monkeypatch.setattr(ScriptQueueCsc, "_do_add_block", never_answered)
    await site.until("12-07 15:30")
    assert [r["outcome"] for r in site.runs] == ["running", "COMPLETED"]
    assert len(site.runs[-1]["salIndices"].split(",")) == 4
