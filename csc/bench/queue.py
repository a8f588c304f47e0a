"""`obsq bench queue`: the queue's gap between scripts and its add time, against a bus round trip.

N `sleep.py` scripts, each its own process, are added while the queue is paused, then run;
DONE -> next RUNNING and add -> CONFIGURED are timed from the scripts' state events.
"""

from __future__ import annotations

import itertools
import os
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

from obsq.csc.bench.bus import percentile
from obsq.csc.bus.base import Message
from obsq.csc.bus.brokers import private_broker
from obsq.csc.bus.credentials import child_environment
from obsq.csc.bus.mqtt import MqttBus
from obsq.csc.clock import LoopClock, perf_counter
from obsq.csc.component import Remote
from obsq.csc.core.codec import decode
from obsq.csc.core.errors import DecodeError
from obsq.csc.core.states import State
from obsq.csc.interfaces import wire_limits
from obsq.csc.scriptqueue.csc import ScriptQueueCsc
from obsq.csc.scriptqueue.runner import ProcessRunner
from obsq.csc.scriptqueue.store import DatabaseQueueStore
from obsq.scripts.states import ScriptState


@dataclass(frozen=True)
class QueueBenchOptions:
    """`obsq bench queue`: how many scripts."""

    scripts: int = 50


async def _command_rtt(queue: Remote, n: int = 50) -> float:
    times = []
    for _ in range(n):
        t0 = perf_counter()
        await queue.command("showQueue", timeout_s=10)
        times.append(perf_counter() - t0)
    return statistics.median(times)


async def run_queue_benchmark(options: QueueBenchOptions) -> int:
    """The `obsq bench queue` command: the queue's script-to-script gap and its add-to-CONFIGURED time."""
    count = options.scripts
    clock = LoopClock()
    root = f"bench-queue-{os.getpid()}"
    states: dict[int, dict[ScriptState, float]] = {}

    def on_state(message: Message) -> None:
        try:
            envelope = decode(message.payload, wire_limits())
        except DecodeError:
            return  # a finished script's retained state being cleared
        index = int(message.topic.split("/")[-3])
        states.setdefault(index, {}).setdefault(ScriptState(envelope.data["state"]), perf_counter())

    with tempfile.TemporaryDirectory() as tmp:
        async with private_broker() as url:
            bus = MqttBus(url, clock=clock)
            runner = ProcessRunner(broker=str(url), root=root, env=child_environment(url))
            store = DatabaseQueueStore(Path(tmp) / "queue.sqlite3", "ScriptQueue:2")
            csc = ScriptQueueCsc(
                runner=runner, store=store, bus=bus, clock=clock, root=root, initial_state=State.ENABLED
            )
            await bus.start()
            try:
                await bus.subscribe(f"{root}/Script/+/evt/state", on_state)
                async with csc, Remote(bus, "ScriptQueue:2", clock=clock, root=root) as queue:
                    rtt = await _command_rtt(queue)
                    await queue.command("pause", timeout_s=10)
                    add_times = []
                    for _ in range(count):
                        t0 = perf_counter()
                        await queue.command("add", {"path": "sleep.py", "config": "sleep_for: 0"}, timeout_s=120)
                        add_times.append(perf_counter() - t0)
                    t_run = perf_counter()
                    await queue.command("resume", timeout_s=10)
                    last = max(states) if states else 0
                    while states.get(last, {}).get(ScriptState.DONE) is None:
                        await clock.sleep(0.01)
                    total_s = perf_counter() - t_run
            finally:
                await bus.close()
    order = sorted(states)
    done, running = ScriptState.DONE, ScriptState.RUNNING
    gaps = [states[b][running] - states[a][done] for a, b in itertools.pairwise(order)
            if done in states[a] and running in states[b]]  # fmt: skip
    print(f"{count} scripts (sleep.py, sleep_for 0), one process each")
    print(f"  add -> CONFIGURED (process start + configure): median {statistics.median(add_times) * 1e3:.0f} ms, "
          f"p95 {percentile(add_times, 0.95) * 1e3:.0f} ms")  # fmt: skip
    gap_median, gap_p95 = statistics.median(gaps) * 1e3, percentile(gaps, 0.95) * 1e3
    print(f"  DONE -> next RUNNING gap: median {gap_median:.1f} ms, p95 {gap_p95:.1f} ms ({len(gaps)} gaps); "
          "target median <= 50 ms")  # fmt: skip
    print(f"  baseline, a bus command round trip in the same run: {rtt * 1e3:.2f} ms "
          f"(gap median = {statistics.median(gaps) / rtt:.1f} round trips)")  # fmt: skip
    print(f"  all {count} scripts run in {total_s:.2f} s")
    return 0
