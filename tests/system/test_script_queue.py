"""ScriptQueue semantics with real script processes over Mosquitto."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from obsq.csc.bus.brokers import MosquittoProcess
from obsq.csc.bus.mqtt import MqttBus
from obsq.csc.bus.url import BrokerUrl
from obsq.csc.clock import LoopClock
from obsq.csc.component import Remote
from obsq.csc.core.states import State
from obsq.csc.core.topics import ComponentId
from obsq.csc.observatory import component_argv
from obsq.csc.scriptqueue.csc import ScriptQueueCsc
from obsq.csc.scriptqueue.runner import ProcessRunner
from obsq.csc.scriptqueue.store import DatabaseQueueStore
from obsq.scripts.library import SITE_ROOTS_ENV, ScriptRoots

from .test_components import until

pytestmark = pytest.mark.system

CLOCK = LoopClock()
SITE = Path(__file__).resolve().parents[1] / "data" / "scripts"
WAIT = "testing/wait.py"


@dataclass
class QueueRig:
    csc: ScriptQueueCsc
    remote: Remote
    root: str
    store: Path

    async def add(self, config: str = "", **data: Any) -> int:
        ack = await self.remote.command(
            "add", {"path": WAIT, "isStandard": False, "config": config, **data}, timeout_s=60
        )
        return int(ack.result)

    def items(self) -> dict[int, dict[str, Any]]:
        queue = self.remote.event("queue").get()
        return {i["index"]: i for i in json.loads(queue.get("items") or "[]")}

    def order(self) -> list[int]:
        return list((self.remote.event("queue").get()).get("salIndices", []))

    async def until(self, predicate: Any, timeout_s: float = 30) -> None:
        await until(predicate, timeout_s)


@pytest.fixture(autouse=True)
def site_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SITE_ROOTS_ENV, str(SITE))  # the script processes inherit it


async def start_queue(url: str, root: str, store: Path) -> tuple[ScriptQueueCsc, MqttBus]:
    bus = MqttBus(BrokerUrl.parse(url), clock=CLOCK)
    roots = ScriptRoots(ScriptRoots.default().standard, ScriptRoots.default().external, (SITE,))
    csc = ScriptQueueCsc(
        runner=ProcessRunner(broker=url, root=root, log_dir=store.parent / "logs"),
        store=DatabaseQueueStore(store, "ScriptQueue:2"),
        roots=roots, bus=bus, clock=CLOCK, root=root, initial_state=State.ENABLED,
    )  # fmt: skip
    await bus.start()
    return csc, bus


@pytest.fixture
async def queue(mosquitto: MosquittoProcess, root: str, tmp_path: Path) -> AsyncIterator[QueueRig]:
    store = tmp_path / "queue.sqlite3"
    csc, bus = await start_queue(mosquitto.url, root, store)
    async with csc, Remote(bus, "ScriptQueue:2", clock=CLOCK, root=root) as remote:
        await remote.event("queue").aget(timeout_s=10)
        yield QueueRig(csc, remote, root, store)
    await bus.close()


async def test_runs_in_order_with_locations_move_and_requeue(queue: QueueRig) -> None:
    await queue.remote.command("pause")
    a = await queue.add("wait_time: 0.1")
    b = await queue.add("wait_time: 0.1", location=1)  # FIRST
    c = await queue.add("wait_time: 0.1", location=3, locationSalIndex=a)  # BEFORE a
    d = await queue.add("wait_time: 0.1", location=4, locationSalIndex=b)  # AFTER b
    await queue.until(lambda: queue.order() == [b, d, c, a])
    await queue.remote.command("move", {"scriptSalIndex": a, "location": 1})
    await queue.until(lambda: queue.order() == [a, b, d, c])
    ack = await queue.remote.command("requeue", {"scriptSalIndex": d})
    e = int(ack.result)
    await queue.remote.command("resume")
    await queue.until(lambda: all(queue.items().get(i, {}).get("state") == "DONE" for i in (a, b, c, d, e)))
    history = (queue.remote.event("queue").get())["pastSalIndices"]
    assert history[:5] == [e, c, d, b, a]  # newest first: they ran in queue order
    assert queue.items()[e]["requeuedFrom"] == d


async def test_failing_script_pauses_and_stays_for_inspection(queue: QueueRig) -> None:
    bad = await queue.add("fail_run: true")
    good = await queue.add("wait_time: 0.1")
    await queue.until(lambda: queue.items().get(bad, {}).get("state") == "FAILED")
    await queue.until(lambda: queue.items()[bad]["area"] == "current")
    queue_event = queue.remote.event("queue").get()
    assert queue_event["running"] is False
    assert queue.items()[bad]["reason"] == "failed on purpose (fail_run)"
    assert queue.items()[good]["area"] == "queue"
    await queue.remote.command("resume")
    await queue.until(lambda: queue.items().get(good, {}).get("state") == "DONE")
    assert queue.items()[bad]["area"] == "history"


async def test_a_bad_configuration_completes_the_add_and_goes_to_history_configure_failed(queue: QueueRig) -> None:
    """ts_scriptqueue's test_add_bad_config: the add completes, nothing is queued, history says why."""
    bad = await queue.add("wait_time: -1")
    await queue.until(lambda: queue.items().get(bad, {}).get("area") == "history")
    assert queue.items()[bad]["process"] == "CONFIGURE_FAILED"
    assert "field 'wait_time': -1 is less than the minimum of 0" in queue.items()[bad]["reason"]
    assert queue.order() == []
    # the schema takes it, the script's own configure refuses it: its process ends, and the reason is the refusal
    refused = await queue.add("fail_configure: true")
    await queue.until(lambda: queue.items().get(refused, {}).get("area") == "history")
    assert queue.items()[refused]["process"] == "CONFIGURE_FAILED"
    assert "configure failed on purpose (fail_configure)" in queue.items()[refused]["reason"]


async def test_stop_queued_stop_running_and_terminate_a_hung_script(queue: QueueRig) -> None:
    running = await queue.add("wait_time: 1000")
    queued = await queue.add("wait_time: 0.1")
    await queue.until(lambda: queue.items().get(running, {}).get("area") == "current")
    await queue.remote.command("stopScripts", {"salIndices": [queued]}, timeout_s=30)
    await queue.until(lambda: queue.items()[queued]["area"] == "history")
    assert queue.items()[queued]["process"] == "TERMINATED"
    await queue.remote.command("stopScripts", {"salIndices": [running]}, timeout_s=30)
    await queue.until(lambda: queue.items()[running]["state"] == "STOPPED")
    assert (queue.remote.event("queue").get())["running"] is True  # a stop does not pause
    hung = await queue.add("wait_time: 1000")
    await queue.until(lambda: queue.items().get(hung, {}).get("area") == "current")
    await queue.remote.command("stopScripts", {"salIndices": [hung], "terminate": True}, timeout_s=30)
    await queue.until(lambda: queue.items()[hung]["process"] == "TERMINATED")
    assert queue.items()[hung]["area"] == "history"


async def test_stopping_the_running_script_with_queued_ones_never_starts_a_queued_one(queue: QueueRig) -> None:
    running = await queue.add("wait_time: 1000")
    first, second = await queue.add("wait_time: 0.1"), await queue.add("wait_time: 0.1")
    await queue.until(lambda: queue.items().get(running, {}).get("area") == "current")
    started: set[int] = set()

    def watch(_: Any) -> None:
        started.update(i for i, d in queue.items().items() if d["area"] == "current" or d["state"] == "RUNNING")

    queue.remote.event("queue").callback = watch
    await queue.remote.command("stopScripts", {"salIndices": [running, first, second]}, timeout_s=30)
    await queue.until(lambda: queue.items()[running]["state"] == "STOPPED")
    await queue.until(lambda: all(queue.items()[i]["area"] == "history" for i in (first, second)))
    assert started <= {running}
    assert {queue.items()[i]["state"] for i in (first, second)} != {"DONE"}


async def test_restart_recovers_queue_and_history_and_never_reruns(
    mosquitto: MosquittoProcess, root: str, tmp_path: Path
) -> None:
    argv = component_argv(
        ComponentId("ScriptQueue", 2), broker=mosquitto.url, root=root, state=State.ENABLED, data=tmp_path,
        simulate=False,
    )  # fmt: skip
    bus = MqttBus(BrokerUrl.parse(mosquitto.url), clock=CLOCK)
    await bus.start()
    log = (tmp_path / "queue.log").open("ab")
    service = subprocess.Popen(argv, stdout=log, stderr=log)
    try:
        async with Remote(bus, "ScriptQueue:2", clock=CLOCK, root=root) as remote:
            rig = QueueRig(None, remote, root, tmp_path)  # type: ignore[arg-type]
            await until(lambda: (remote.event("summaryState").get()).get("summaryState") == 2)
            first = await rig.add("wait_time: 0.1")
            long = await rig.add("wait_time: 1000")
            after = await rig.add("wait_time: 0.1")
            await rig.until(lambda: rig.items().get(long, {}).get("area") == "current")
            service.send_signal(signal.SIGKILL)  # the queue service crashes mid-queue
            service.wait()
            service = subprocess.Popen(argv, stdout=log, stderr=log)
            await rig.until(lambda: rig.items().get(after, {}).get("state") == "DONE", 60)
            items = rig.items()
            assert items[first]["state"] == "DONE"
            # cut short by the restart: as it said it ended (STOPPED, it ends with its queue), or LOST
            assert items[long]["process"] in ("LOST", "TERMINATED"), items[long]
            assert "the queue service restarted" in items[long]["reason"]
            assert "not run again" in items[long]["reason"]
    finally:
        service.terminate()
        service.wait()
        log.close()
        await bus.close()
