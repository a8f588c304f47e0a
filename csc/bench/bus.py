"""`obsq bench bus`: the framework's command round trip and event rate against bare aiomqtt.

Each broker (Mosquitto started here if installed, and the embedded amqtt broker in its own
process; or only the `--broker` given) is measured in one run, so the ratios compare
numbers taken on the same machine at the same time:

- round trip (bare and obsq batches interleaved, so both see the same machine noise):
  bare = a request published at QoS 1 to a responder process that publishes it back;
  obsq = `Remote.command("setLogLevel")` to a Test component process until COMPLETE
  (encode, schema validation on both sides, ack routing — a command whose handler does
  nothing, so what is measured is the framework);
- sequential commands per second: the obsq commands back to back (1 / mean round trip);
- event rate: one client publishing 200-byte QoS 1 retained messages awaiting each,
  counted at a subscriber; obsq = `BaseCsc.publish_event` (validated, stamped).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from pathlib import Path

from obsq.csc.bench.bare import BareRequester, bare_publish_rate
from obsq.csc.bus.brokers import MosquittoProcess, free_port, mosquitto_path, wait_port
from obsq.csc.bus.mqtt import MqttBus
from obsq.csc.bus.url import BrokerUrl
from obsq.csc.clock import LoopClock, perf_counter, wait_for
from obsq.csc.component import Remote
from obsq.csc.core.states import State
from obsq.csc.core.topics import ComponentId
from obsq.csc.observatory import component_argv
from obsq.csc.testcsc import TestCsc

CLOCK = LoopClock()


@dataclass
class BusFigures:
    """One broker's results; times in milliseconds, rates per second."""

    broker: str
    bare_p50_ms: float
    bare_p99_ms: float
    obsq_p50_ms: float
    obsq_p99_ms: float
    obsq_commands_per_s: float
    bare_events_per_s: float
    obsq_events_per_s: float

    @property
    def p50_ratio(self) -> float:
        return self.obsq_p50_ms / self.bare_p50_ms

    @property
    def event_ratio(self) -> float:
        return self.obsq_events_per_s / self.bare_events_per_s


async def _child(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", *args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )


@contextlib.asynccontextmanager
async def _running(process: asyncio.subprocess.Process, ready_line: bytes | None) -> AsyncIterator[None]:
    try:
        if ready_line is not None and process.stdout is not None:
            line = await wait_for(CLOCK, process.stdout.readline(), 30)
            if ready_line not in line:
                raise RuntimeError(f"benchmark peer did not start: {line!r}")
        yield
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()


async def _wait_enabled(remote: Remote) -> None:
    state = remote.event("summaryState")
    while (await state.aget(timeout_s=30)).get("summaryState") != int(State.ENABLED):
        await state.next(flush=True, timeout_s=30)


async def _round_trips(
    url: BrokerUrl, root: str, count: int, rounds: int = 10
) -> tuple[list[float], list[float], float]:
    """Bare and obsq round trips, interleaved in `rounds` batches so both see the same noise.

    Returns (bare times, obsq times, obsq sequential commands per second).
    """
    request, reply = f"{root}/bare/request", f"{root}/bare/reply"
    responder = await _child("obsq.csc.bench.bare", "responder", str(url), request, reply)
    argv = component_argv(ComponentId("Test", 1), broker=str(url), root=root, state=State.ENABLED, simulate=False)
    component = await asyncio.create_subprocess_exec(
        *argv, "--log-level", "warning", stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    bare: list[float] = []
    obsq: list[float] = []
    async with _running(responder, b"ready"), _running(component, None), BareRequester(url, request, reply) as bare_rt:
        bus = MqttBus(url, clock=CLOCK)
        await bus.start()
        try:
            async with Remote(bus, "Test:1", clock=CLOCK, root=root) as remote:
                await _wait_enabled(remote)
                data = {"level": 30}

                async def commands(n: int) -> list[float]:
                    times = []
                    for _ in range(n):
                        t0 = perf_counter()
                        await remote.command("setLogLevel", data, timeout_s=10)
                        times.append(perf_counter() - t0)
                    return times

                warmup = max(20, count // 10)
                await bare_rt.round_trips(warmup)
                await commands(warmup)
                batch = max(1, count // rounds)
                for _ in range(rounds):
                    bare += await bare_rt.round_trips(batch)
                    obsq += await commands(batch)
        finally:
            await bus.close()
    return bare, obsq, len(obsq) / sum(obsq)


async def _obsq_event_rate(url: BrokerUrl, root: str, count: int) -> float:
    publisher = MqttBus(url, clock=CLOCK)
    subscriber = MqttBus(url, clock=CLOCK)
    csc = TestCsc(index=1, bus=publisher, clock=CLOCK, root=root)
    received = 0
    done = asyncio.Event()

    def on_event(_: object) -> None:
        nonlocal received
        received += 1
        if received >= count:
            done.set()

    await publisher.start()
    await subscriber.start()
    try:
        await subscriber.subscribe(f"{root}/Test/1/evt/scalars", on_event)
        data = {"int0": 0, "double0": 1.5, "string0": "x" * 100, "boolean0": True}
        t0 = perf_counter()
        for i in range(count):
            data["int0"] = i
            await csc.publish_event("scalars", data, force=True)
        with contextlib.suppress(TimeoutError):
            await wait_for(CLOCK, done.wait(), 30)
        return received / (perf_counter() - t0)
    finally:
        await publisher.close()
        await subscriber.close()


async def measure_broker(name: str, url: BrokerUrl, count: int, events: int) -> BusFigures:
    root = f"bench-{os.getpid()}-{name}"
    bare, obsq, rate = await _round_trips(url, root, count)
    bare_events = await bare_publish_rate(url, f"{root}/bare/events", events, qos=1, retain=True)
    obsq_events = await _obsq_event_rate(url, root, events)
    return BusFigures(
        broker=name,
        bare_p50_ms=statistics.median(bare) * 1e3,
        bare_p99_ms=percentile(bare, 0.99) * 1e3,
        obsq_p50_ms=statistics.median(obsq) * 1e3,
        obsq_p99_ms=percentile(obsq, 0.99) * 1e3,
        obsq_commands_per_s=rate,
        bare_events_per_s=bare_events,
        obsq_events_per_s=obsq_events,
    )


def format_figures(figures: list[BusFigures]) -> str:
    lines = [
        "broker      measurement                    bare aiomqtt        obsq   obsq/bare  target",
    ]
    for f in figures:
        rows = [
            ("round trip p50 (ms)", f.bare_p50_ms, f.obsq_p50_ms, f.p50_ratio, "<= 1.3x"),
            ("round trip p99 (ms)", f.bare_p99_ms, f.obsq_p99_ms, f.obsq_p99_ms / f.bare_p99_ms, "<= 4 ms"),
            ("sequential commands/s", None, f.obsq_commands_per_s, None, ">= 500/s"),
            ("events/s (QoS 1, retained)", f.bare_events_per_s, f.obsq_events_per_s, f.event_ratio, ">= 0.8x"),
        ]
        for label, bare, obsq, ratio, target in rows:
            bare_text = "" if bare is None else f"{bare:12.2f}"
            ratio_text = "" if ratio is None else f"{ratio:9.2f}"
            lines.append(f"{f.broker:<11} {label:<28} {bare_text:>12} {obsq:11.2f} {ratio_text:>10}  {target}")
    return "\n".join(lines)


async def _embedded_process() -> tuple[asyncio.subprocess.Process, BrokerUrl]:
    port = free_port()
    process = await _child("obsq.csc.cli", "broker", "--port", str(port))
    await wait_port("127.0.0.1", port, 30)
    return process, BrokerUrl.parse(f"mqtt://127.0.0.1:{port}")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass(frozen=True)
class BusBenchOptions:
    """`obsq bench bus`: how many round trips and events, on which broker (None: Mosquitto and embedded)."""

    broker: BrokerUrl | None
    count: int = 2000
    events: int = 5000
    json_out: Path | None = None


async def run_bus_benchmark(options: BusBenchOptions) -> int:
    """The `obsq bench bus` command."""
    figures: list[BusFigures] = []
    count, events = options.count, options.events
    if options.broker is not None:
        figures.append(await measure_broker("given", options.broker, count, events))
    else:
        if mosquitto_path() is not None:
            with MosquittoProcess() as mosquitto:
                url = BrokerUrl.parse(mosquitto.url)
                figures.append(await measure_broker("mosquitto", url, count, events))
        else:
            print("mosquitto not installed: measuring the embedded broker only", file=sys.stderr)
        process, url = await _embedded_process()
        async with _running(process, None):
            figures.append(await measure_broker("embedded", url, count, events))
    print(format_figures(figures))
    if options.json_out is not None:
        text = json.dumps([asdict(f) for f in figures], indent=2)
        await asyncio.to_thread(options.json_out.write_text, text)
    return 0
