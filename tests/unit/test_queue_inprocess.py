"""The ScriptQueue with real script classes run in this process, on the memory bus in virtual time.

The queue's rules without processes or a broker: add, run in order, a failure pausing the
queue, stop, terminate, requeue, a restart from the store, and Rubin's BLOCK-295 as a whole
block against the real ATSpectrograph and test doubles of the camera and the reduction
service (doubles only where files and worker processes would be: what is under test is the
queue and the scripts).
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest

from obsq.csc.atspectrograph.csc import ATSpectrographCsc
from obsq.csc.atspectrograph.sim import SimSpectrograph
from obsq.csc.bus.memory import MemoryBroker
from obsq.csc.clock import ManualClock
from obsq.csc.component import AckError, BaseCsc, Command
from obsq.csc.core.states import State
from obsq.csc.scriptqueue.csc import ScriptQueueCsc
from obsq.csc.scriptqueue.inprocess import InProcessRunner
from obsq.csc.scriptqueue.store import MemoryQueueStore
from obsq.csc.testing import Rig, component_rig, unique_root
from obsq.scripts.library import ScriptRoots

SITE = Path(__file__).resolve().parents[1] / "data" / "scripts"
WAIT = "testing/wait.py"
#: Hours of virtual time pass in a block: heartbeats once a minute keep the test in milliseconds.
HEARTBEAT_S = 60.0


def roots() -> ScriptRoots:
    default = ScriptRoots.default()
    return ScriptRoots(default.standard, default.external, (SITE,))


class RecordingRunner(InProcessRunner):
    """The in-process runner, keeping every script it started (to see which still run)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.started: dict[int, Any] = {}

    async def start(self, index: int, path: str, standard: bool) -> Any:
        handle = await super().start(index, path, standard)
        self.started[index] = handle
        return handle


def make_queue(broker: MemoryBroker, store: MemoryQueueStore, **kwargs: Any) -> ScriptQueueCsc:
    runner = RecordingRunner(broker, kwargs["clock"], kwargs["root"], roots(), heartbeat_s=HEARTBEAT_S)
    return ScriptQueueCsc(runner=runner, store=store, roots=roots(), heartbeat_s=HEARTBEAT_S, **kwargs)


@dataclass
class Queue:
    """The queue's rig and its view of the items, from the `queue` event."""

    rig: Rig
    store: MemoryQueueStore = field(default_factory=MemoryQueueStore)

    async def add(self, config: str = "", **data: Any) -> int:
        ack = await self.rig.command("add", {"path": WAIT, "isStandard": False, "config": config, **data})
        return int(ack.result)

    def items(self) -> dict[int, dict[str, Any]]:
        return {i["index"]: i for i in json.loads(self.rig.remote.event("queue").get().get("items") or "[]")}

    def order(self) -> list[int]:
        return list(self.rig.remote.event("queue").get().get("salIndices", []))

    async def until(self, predicate: Any, limit_s: float = 20_000.0) -> None:
        """Until `predicate()`, in virtual time; AssertionError after `limit_s` of it (say, a paused queue)."""

        async def poll() -> None:
            start = self.rig.clock.monotonic()
            while not predicate():
                if self.rig.clock.monotonic() - start > limit_s:
                    reasons = {i: (d["state"], d["reason"]) for i, d in self.items().items()}
                    raise AssertionError(f"not within {limit_s:g} s of virtual time; the queue: {reasons}")
                await self.rig.clock.sleep(1.0)

        await self.rig.run(poll())


@contextlib.asynccontextmanager
async def queue_rig(
    broker: MemoryBroker, clock: ManualClock, store: MemoryQueueStore, root: str | None = None
) -> AsyncIterator[Queue]:
    make = functools.partial(make_queue, broker, store)
    async with component_rig(make, "ScriptQueue:2", broker=broker, clock=clock, root=root) as rig:
        await rig.enable()
        yield Queue(rig, store)


@pytest.fixture
async def queue() -> AsyncIterator[Queue]:
    async with queue_rig(MemoryBroker(), ManualClock(), MemoryQueueStore()) as q:
        yield q


async def test_scripts_run_in_queue_order_with_locations_move_and_requeue(queue: Queue) -> None:
    await queue.rig.command("pause")
    a = await queue.add("wait_time: 10")
    b = await queue.add("wait_time: 10", location=1)  # FIRST
    c = await queue.add("wait_time: 10", location=3, locationSalIndex=a)  # BEFORE a
    d = await queue.add("wait_time: 10", location=4, locationSalIndex=b)  # AFTER b
    assert queue.order() == [b, d, c, a]
    await queue.rig.command("move", {"scriptSalIndex": a, "location": 1})
    assert queue.order() == [a, b, d, c]
    e = int((await queue.rig.command("requeue", {"scriptSalIndex": d})).result)
    t0 = queue.rig.clock.monotonic()
    await queue.rig.command("resume")
    await queue.until(lambda: all(queue.items()[i]["state"] == "DONE" for i in (a, b, c, d, e)))
    assert queue.rig.remote.event("queue").get()["pastSalIndices"][:5] == [e, c, d, b, a]
    assert queue.items()[e]["requeuedFrom"] == d
    assert queue.rig.clock.monotonic() - t0 >= 5 * 10  # each waited its 10 s of virtual time, one after another


async def test_a_failure_pauses_the_queue_and_stays_current_until_resume(queue: Queue) -> None:
    bad = await queue.add("fail_run: true")
    good = await queue.add("wait_time: 1")
    await queue.until(lambda: queue.items()[bad]["state"] == "FAILED")
    assert queue.items()[bad]["area"] == "current"
    assert queue.items()[bad]["reason"] == "failed on purpose (fail_run)"
    assert queue.rig.remote.event("queue").get()["running"] is False
    assert queue.items()[good]["area"] == "queue"
    await queue.rig.command("resume")
    await queue.until(lambda: queue.items()[good]["state"] == "DONE")
    assert queue.items()[bad]["area"] == "history"


async def test_stop_a_queued_and_the_running_script_then_terminate_one(queue: Queue) -> None:
    running = await queue.add("wait_time: 1000")
    queued = await queue.add("wait_time: 1")
    await queue.until(lambda: queue.items()[running]["area"] == "current")
    await queue.rig.command("stopScripts", {"salIndices": [queued]})
    assert queue.items()[queued]["area"] == "history"
    assert queue.items()[queued]["process"] == "TERMINATED"
    await queue.rig.command("stopScripts", {"salIndices": [running]})
    await queue.until(lambda: queue.items()[running]["state"] == "STOPPED")
    assert queue.rig.remote.event("queue").get()["running"] is True  # a stop does not pause
    hung = await queue.add("wait_time: 1000")
    await queue.until(lambda: queue.items()[hung]["area"] == "current")
    await queue.rig.command("stopScripts", {"salIndices": [hung], "terminate": True})
    await queue.until(lambda: queue.items()[hung]["process"] == "TERMINATED")
    assert queue.items()[hung]["area"] == "history"
    assert queue.items()[hung]["state"] == "STOPPED"


async def test_stopping_the_running_script_with_queued_ones_never_lets_a_queued_one_start(queue: Queue) -> None:
    running = await queue.add("wait_time: 1000")
    first, second = await queue.add("wait_time: 1"), await queue.add("wait_time: 1")
    await queue.until(lambda: queue.items()[running]["area"] == "current")
    became_current: set[int] = set()

    def watch(_: Any) -> None:
        became_current.update(i for i, d in queue.items().items() if d["area"] == "current" or d["state"] == "RUNNING")

    queue.rig.remote.event("queue").callback = watch
    await queue.rig.command("stopScripts", {"salIndices": [running, first, second]})
    await queue.until(lambda: queue.items()[running]["state"] == "STOPPED")
    await queue.rig.run(queue.rig.clock.advance(100))
    assert became_current <= {running}
    assert {queue.items()[i]["area"] for i in (running, first, second)} == {"history"}
    assert queue.items()[first]["reason"] == "stopped by the operator before it ran"


BLOCK_FAILING = json.dumps(
    {
        "name": "failing",
        "program": "BLOCK-T1",
        "constraints": [],
        "scripts": [
            {"name": WAIT, "standard": False, "parameters": {"wait_time": 5, "fail_run": True}},
            {"name": WAIT, "standard": False, "parameters": {"wait_time": 1}},
            {"name": WAIT, "standard": False, "parameters": {"wait_time": 1}},
        ],
    }
)


async def test_the_rest_of_a_failed_block_is_ended_and_history_says_why(queue: Queue) -> None:
    ack = await queue.rig.command("addBlock", {"id": BLOCK_FAILING})
    failed, *rest = json.loads(ack.result)
    await queue.until(lambda: queue.items()[failed]["state"] == "FAILED")
    runner = queue.rig.csc.runner
    await queue.until(lambda: all(runner.started[i].returncode is not None for i in rest))
    for index in rest:
        item = queue.items()[index]
        assert item["area"] == "history"
        assert item["process"] == "TERMINATED"
        assert item["reason"] == f"not run: BLOCK-T1 failed at {failed}"


async def test_a_script_of_a_failed_block_is_requeued_with_the_rest_of_its_block(queue: Queue) -> None:
    """Rubin's queue refuses to requeue a block's script alone; restOfBlock runs it and the rest again."""
    ack = await queue.rig.command("addBlock", {"id": BLOCK_FAILING})
    failed, *rest = json.loads(ack.result)
    await queue.until(lambda: queue.items()[failed]["state"] == "FAILED")
    with pytest.raises(AckError, match=f"script {failed} is part of block BLOCK-T1 and cannot be requeued alone"):
        await queue.rig.command("requeue", {"scriptSalIndex": failed})
    again = json.loads((await queue.rig.command("requeue", {"scriptSalIndex": failed, "restOfBlock": True})).result)
    items = queue.items()
    assert [items[i]["requeuedFrom"] for i in again] == [failed, *rest]
    assert {items[i]["block"] for i in again} == {"BLOCK-T1"}
    assert len({items[i]["execution"] for i in again}) == 1  # one new execution of the block
    assert items[again[0]]["execution"] != items[failed]["execution"]


async def test_a_restart_brings_the_queue_back_and_never_reruns_the_current_script() -> None:
    broker, clock, store = MemoryBroker(), ManualClock(), MemoryQueueStore()
    async with queue_rig(broker, clock, store) as first:
        done = await first.add("wait_time: 1")
        long = await first.add("wait_time: 1000")
        after = await first.add("wait_time: 1")
        await first.until(lambda: first.items()[long]["area"] == "current")
    async with queue_rig(broker, clock, store) as again:
        await again.until(lambda: again.items().get(after, {}).get("state") == "DONE")
        items = again.items()
        assert items[done]["state"] == "DONE"
        # cut short by the restart: as it said it ended (STOPPED, it ends with its queue), or LOST
        assert items[long]["process"] in ("LOST", "TERMINATED"), items[long]
        assert "the queue service restarted" in items[long]["reason"]
        assert "not run again" in items[long]["reason"]


# -- BLOCK-295 as a whole block ---------------------------------------------------------------------


class CameraDouble(BaseCsc):
    """ATCamera's interface: each image takes its exposure and readout in virtual time; no pixels, no file."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("ATCamera", **kwargs)
        self.images: list[dict[str, Any]] = []
        self.register_command("takeImages", self._do_take_images)

    async def _do_take_images(self, command: Command) -> str:
        d = command.data
        await command.in_progress(d["numImages"] * (d["expTime"] + 12), "taking")
        names = []
        for _ in range(d["numImages"]):
            await self.clock.sleep(d["expTime"] + 2.0)
            obsid = f"AT_O_20261202_{len(self.images) + 1:06d}"
            self.images.append({"obsid": obsid, "type": d["imageType"], "exptime": d["expTime"],
                                "group": d["groupId"], "reason": d["reason"]})  # fmt: skip
            await self.publish_event(
                "largeFileObjectAvailable",
                {"url": f"file:///raw/{obsid}.fits", "generator": "ATCamera", "version": 1, "byteSize": 1,
                 "checkSum": "", "mimeType": "image/fits", "id": obsid},
            )  # fmt: skip
            names.append(obsid)
        return f"took {len(names)} {d['imageType']}: {names[0]}"


class ReductionDouble(BaseCsc):
    """OCPS:1's interface: every job passes at once, with the result fields the scripts read."""

    RESULTS: ClassVar[dict[str, dict[str, Any]]] = {
        "cpFlatLevel": {"passed": True, "levels": [27000.0], "detail": "flat levels as expected"},
        "cpVerifyCounts": {"passed": True, "detail": ""},
        "certify": {"actions": []},
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("OCPS", index=1, **kwargs)
        self.jobs: Counter[str] = Counter()
        self.register_command("execute", self._do_execute, concurrent=True)

    async def _do_execute(self, command: Command) -> str:
        pipeline = command.data["pipeline"]
        self.jobs[pipeline] += 1
        job = f"job-{sum(self.jobs.values()):03d}"
        await command.in_progress(30, job)
        result = self.RESULTS.get(pipeline) or (
            {"verdict": "passed", "n_failed": 0, "n_checks": 8} if "Verify" in pipeline else {"product": len(self.jobs)}
        )
        self.create_task(self._finish(job, pipeline, result), f"job.{job}")
        return job

    async def _finish(self, job: str, pipeline: str, result: dict[str, Any]) -> None:
        await self.clock.sleep(5.0)  # the job takes a while, in virtual time
        await self.publish_event(
            "job_result", {"job_id": job, "exit_code": 0, "result": json.dumps(result), "pipeline": pipeline}
        )


@dataclass
class BlockRun:
    """A block run through the queue: the services it ran against, and the queue's items at the end."""

    camera: CameraDouble
    reduction: ReductionDouble
    spectrograph: ATSpectrographCsc
    indices: list[int]
    items: dict[int, dict[str, Any]]
    past: list[int]


async def run_block(block: str, broker: MemoryBroker, clock: ManualClock, root: str) -> BlockRun:
    """`block` through the queue against the real ATSpectrograph and doubles of the camera and OCPS."""
    common = {"clock": clock, "root": root, "initial_state": State.ENABLED, "heartbeat_s": HEARTBEAT_S}
    camera = CameraDouble(bus=broker.client("camera"), **common)
    reduction = ReductionDouble(bus=broker.client("ocps"), **common)
    spectrograph = ATSpectrographCsc(driver=SimSpectrograph(clock), bus=broker.client("spectrograph"), **common)
    async with contextlib.AsyncExitStack() as stack:
        for csc in (camera, reduction, spectrograph):
            await csc.bus.start()
            stack.push_async_callback(csc.bus.close)
            await stack.enter_async_context(csc)
        queue = await stack.enter_async_context(queue_rig(broker, clock, MemoryQueueStore(), root))
        indices = json.loads((await queue.rig.command("addBlock", {"id": block})).result)
        await queue.until(lambda: all(queue.items().get(i, {}).get("area") == "history" for i in indices))
        past = list(queue.rig.remote.event("queue").get()["pastSalIndices"])
        return BlockRun(camera, reduction, spectrograph, indices, queue.items(), past)


async def test_block_295_runs_through_the_queue_with_the_in_process_runner() -> None:
    run = await run_block("BLOCK-295", MemoryBroker(), ManualClock(), unique_root())
    camera, reduction, spectrograph, indices, items = (
        run.camera,
        run.reduction,
        run.spectrograph,
        run.indices,
        run.items,
    )
    assert len(indices) == 6
    assert [items[i]["state"] for i in indices] == ["DONE"] * 6, [items[i]["reason"] for i in indices]
    assert [items[i]["block"] for i in indices] == ["BLOCK-295"] * 6
    assert run.past[:6] == indices[::-1]  # in block order
    taken = Counter(image["type"] for image in camera.images)
    assert taken == {
        "BIAS": 20,
        "DARK": 20,
        "FLAT": 105 + 60,
    }  # 5 sets of 3 + 1 discard bias and dark, 20 + 1 flats; the PTC
    assert sum(1 for image in camera.images if image["reason"] == "weekly_PTC") == 60
    assert reduction.jobs == {
        "cpFlatLevel": 5, "cpBias": 5, "cpVerifyBias": 5, "cpDark": 5, "cpVerifyDark": 5, "cpFlat": 5,
        "cpVerifyFlat": 5, "certify": 15, "cpVerifyCounts": 5,
    }  # fmt: skip
    assert spectrograph.driver.filter_wheel.position()[1] == "SDSSr_65mm"  # the PTC's


async def test_a_script_that_leaves_the_top_loses_its_group_id(queue: Queue) -> None:
    """As Rubin's queue: nextVisit for the script at the top, nextVisitCanceled when another takes its place."""
    visits: list[tuple[str, dict[str, Any]]] = []
    for name in ("nextVisit", "nextVisitCanceled"):
        queue.rig.remote.event(name).callback = lambda envelope, name=name: visits.append((name, envelope.data))
    running = await queue.add("wait_time: 1000")
    await queue.until(lambda: queue.items()[running]["area"] == "current")
    first = await queue.add("wait_time: 1")
    await queue.until(lambda: any(name == "nextVisit" and d["scriptSalIndex"] == first for name, d in visits))
    (_, visit) = next(v for v in visits if v[1]["scriptSalIndex"] == first)
    assert visit["groupId"]
    assert visit["duration"] == 1.0  # the script's metadata travels with it
    jumped = await queue.add("wait_time: 1", location=1)  # FIRST: it is next now
    await queue.until(lambda: any(name == "nextVisit" and d["scriptSalIndex"] == jumped for name, d in visits))
    assert ("nextVisitCanceled", {"scriptSalIndex": first, "groupId": visit["groupId"]}) in [
        (n, {k: d[k] for k in ("scriptSalIndex", "groupId")}) for n, d in visits
    ]
    shown = await queue.rig.command("showScript", {"scriptSalIndex": first})
    assert shown is not None
    await queue.until(lambda: queue.rig.remote.event("script").get().get("scriptSalIndex") == first)
    assert queue.rig.remote.event("script").get()["groupId"] == ""
    assert queue.rig.remote.event("rootDirectories").get()["standard"].endswith("standard")


async def test_show_commands_publish_afresh_and_a_bad_stop_is_never_in_progress(queue: Queue) -> None:
    """As ts_scriptqueue's tests: showQueue/showAvailableScripts force their events; stopScripts checks first."""
    heard: Counter[str] = Counter()
    queue.rig.remote.event("queue").callback = lambda _envelope: heard.update(["queue"])
    queue.rig.remote.event("availableScripts").callback = lambda _envelope: heard.update(["available"])
    await queue.rig.clock.settle(5)
    before = heard.copy()
    await queue.rig.command("showQueue")
    await queue.rig.command("showAvailableScripts")
    await queue.rig.clock.settle(5)
    assert heard["queue"] == before["queue"] + 1  # nothing changed, and still a fresh event
    assert heard["available"] == before["available"] + 1
    acks: list[str] = []
    with pytest.raises(AckError, match="no script index among the salIndices given"):
        await queue.rig.remote.command("stopScripts", {"salIndices": [5, 6], "length": 0, "terminate": False},
                                       on_ack=lambda ack: acks.append(ack.ack.name))  # fmt: skip
    assert acks == ["FAILED"]  # no INPROGRESS before the refusal


async def test_add_with_block_fields_keeps_rubins_block_rules(queue: Queue) -> None:
    """ts_scriptqueue's BlockModel: a block's scripts follow its startBlock, and no more than its blockSize."""
    script = {"path": WAIT, "isStandard": False, "config": "wait_time: 1"}
    with pytest.raises(AckError, match="block 'BLOCK-T7' was never started"):
        await queue.rig.command("add", script | {"block": "BLOCK-T7", "location": 2})
    first = await queue.rig.command("add", script | {"block": "BLOCK-T7", "startBlock": True, "blockSize": 2,
                                                     "location": 2})  # fmt: skip
    second = await queue.rig.command("add", script | {"block": "BLOCK-T7", "location": 2})
    with pytest.raises(AckError, match="block 'BLOCK-T7' declared 2 scripts and has them all"):
        await queue.rig.command("add", script | {"block": "BLOCK-T7", "location": 2})
    items = queue.items()
    assert [items[int(a.result)]["block"] for a in (first, second)] == ["BLOCK-T7", "BLOCK-T7"]


async def test_an_added_script_is_seen_loading_and_a_failed_configure_goes_to_history(queue: Queue) -> None:
    """As ts_scriptqueue: `add` completes when the process has started (the script LOADING in the queue), and a
    script that refuses its configuration ends in history CONFIGURE_FAILED, with its reason (test_add_bad_config)."""
    queue.rig.csc.model.pause()  # type: ignore[attr-defined]
    loading = await queue.rig.command("add", {"path": "testing/slow_configure.py", "isStandard": False,
                                              "config": "configure_s: 0.5", "location": 2})  # fmt: skip
    index = int(loading.result)
    assert queue.items()[index]["area"] == "queue"
    assert queue.items()[index]["process"] == "LOADING"
    await queue.until(lambda: queue.items()[index]["process"] == "CONFIGURED")
    bad = await queue.add("fail_configure: true")  # the schema takes it; the script's configure refuses it
    await queue.until(lambda: queue.items()[bad]["area"] == "history")
    assert (queue.items()[bad]["process"], queue.items()[bad]["state"]) == ("CONFIGURE_FAILED", "CONFIGURE_FAILED")
    assert "configure failed on purpose (fail_configure)" in queue.items()[bad]["reason"]
    assert queue.order() == [index]
