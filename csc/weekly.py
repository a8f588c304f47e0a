"""`obsq weekly`, `obsq queue` and `obsq script run`: operating the queue from the command line.

`obsq weekly` is the LATISS weekly calibration as a site runs it: BLOCK-309 (setup), BLOCK-295
(the BIAS/DARK/FLAT sets and the PTC), BLOCK-310 (shutdown), queued on ScriptQueue:2 and
followed to the end with progress. The scripts have the reduction service (OCPS:1) build,
verify and certify the masters as they go; at the end the PTC flats go to OCPS for the photon
transfer curve. The summary (images, scripts, verification per check, masters, PTC per
amplifier) is printed, written as JSON beside the data, and as a report folder with one
self-contained HTML page. The exit status is 0 only if every script is DONE and every check
passed. Without `--broker` it first brings up a private broker and the simulated observatory
(each component its own supervised process).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import os
import sqlite3
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from obsq.csc.bus.brokers import EmbeddedBroker, MosquittoProcess, free_port, mosquitto_path
from obsq.csc.bus.mqtt import MqttBus
from obsq.csc.bus.url import BrokerUrl
from obsq.csc.clock import LoopClock, perf_counter, utc_now_unix, wall_tai
from obsq.csc.component import AckError, Remote
from obsq.csc.compose import injections_for
from obsq.csc.core.errors import ExpectedError
from obsq.csc.core.states import State
from obsq.csc.core.status import StatusBoard
from obsq.csc.report import collect, write_report
from obsq.csc.status import collect_status
from obsq.csc.supervisor import Child, Supervisor, component_argv
from obsq.scripts.base import BaseScript
from obsq.scripts.ocps import Ocps
from obsq.scripts.states import ScriptState

#: The observatory the weekly calibration expects: ATCS and LATISS enabled (as the procedure
#: leaves them), the lamp and the reduction service in STANDBY (BLOCK-309 enables them).
WEEKLY_COMPONENTS: list[tuple[str, str]] = [
    ("ATMCS", "enabled"),
    ("ATDome", "enabled"),
    ("ATSpectrograph", "enabled"),
    ("ATCamera", "enabled"),
    ("ATWhiteLight", "standby"),
    ("OCPS:1", "standby"),
    ("ScriptQueue:2", "enabled"),
]
QUEUE = "ScriptQueue:2"


@contextlib.asynccontextmanager
async def local_broker() -> AsyncIterator[BrokerUrl]:
    """A private broker on a free loopback port: Mosquitto if installed, else the embedded amqtt."""
    port = free_port()
    if mosquitto_path() is not None:
        mosquitto = MosquittoProcess(port=port)
        await asyncio.to_thread(mosquitto.start)
        try:
            yield BrokerUrl.parse(mosquitto.url)
        finally:
            await asyncio.to_thread(mosquitto.close)
    else:
        async with EmbeddedBroker("127.0.0.1", port) as broker:
            yield BrokerUrl.parse(broker.url)


@dataclass
class SimulatedObservatory:
    """Components as supervised processes, sharing one clock epoch and speed."""

    url: BrokerUrl
    root: str
    data: Path
    speed: float
    components: list[tuple[str, str]]
    inject: list[str] = field(default_factory=list)
    report: Callable[[str], None] = print

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        wall = LoopClock()
        supervisor = Supervisor(wall, lambda line: self.report(f"supervisor: {line}"))
        epoch = wall_tai()
        common = ["--broker", str(self.url), "--root", self.root, "--speed", f"{self.speed:g}", "--epoch", repr(epoch),
                  "--data", str(self.data)]  # fmt: skip
        children = [
            Child(name, component_argv(name, *common, "--state", state,
                  *(f"--inject={i}" for i in injections_for(name.split(":")[0], self.inject))),
                  self.data / "logs" / f"{name.replace(':', '-')}.log")
            for name, state in self.components
        ]  # fmt: skip
        task = asyncio.create_task(supervisor.run(children), name="observatory.supervisor")
        try:
            await self._wait_ready(wall)
            yield
        finally:
            supervisor.stop()
            await task

    async def _wait_ready(self, wall: LoopClock, timeout_s: float = 60.0) -> None:
        board = StatusBoard()
        bus = MqttBus(self.url, clock=wall)
        await bus.start()
        try:
            await collect_status(bus, self.root, board, wall)
            wanted = {name: State[state.upper()] for name, state in self.components}
            start = wall.monotonic()
            while True:
                rows = {row.component: row for row in board.rows(wall.tai())}
                missing = [n for n, s in wanted.items() if n not in rows or rows[n].state != s.name]
                if not missing:
                    return
                if wall.monotonic() - start > timeout_s:
                    raise TimeoutError(f"components not ready within {timeout_s:g} s: {', '.join(missing)}")
                await wall.sleep(0.05)
        finally:
            await bus.close()


# -- following the queue --------------------------------------------------------------------


@dataclass
class QueueFollower:
    """Watches ScriptQueue's queue event and prints progress for the scripts we added."""

    speed: float
    indices: set[int] = field(default_factory=set)
    items: dict[int, dict[str, Any]] = field(default_factory=dict)
    running: bool = True
    current: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    _last_line: str = ""

    def on_queue(self, data: dict[str, Any]) -> None:
        self.running = data["running"]
        self.current = data["currentSalIndex"]
        for item in json.loads(data.get("items") or "[]"):
            self.items[item["index"]] = item
        self.changed.set()

    def ours(self) -> list[dict[str, Any]]:
        return [self.items[i] for i in sorted(self.indices) if i in self.items]

    @property
    def finished(self) -> bool:
        return bool(self.indices) and all(self.items.get(i, {}).get("area") == "history" for i in self.indices)

    @property
    def failed_current(self) -> dict[str, Any] | None:
        item = self.items.get(self.current)
        return item if item and item["state"] == "FAILED" and not self.running else None

    def progress_line(self) -> str:
        items = self.ours()
        done = sum(i["done"] for i in items)
        total = sum(max(i["total"], i["done"]) for i in items)
        left_s = sum(
            i["duration"] * (1 - (i["done"] / i["total"] if i["total"] else 0.0))
            for i in items if i["area"] != "history"
        )  # fmt: skip
        current = self.items.get(self.current)
        where = "idle"
        if current is not None:
            block = f"{current['block']} " if current["block"] else ""
            position = (
                [i["index"] for i in items].index(current["index"]) + 1 if current["index"] in self.indices else 0
            )
            where = f"{block}[{position}/{len(items)}] {current['path']}: {current['checkpoint'] or current['state']}"
        return f"{where} | images {done}/{total} | left ~{left_s:,.0f} s simulated ({left_s / self.speed:,.1f} s real)"

    def print_progress(self) -> None:
        line = self.progress_line()
        if line != self._last_line:
            print(line, flush=True)
            self._last_line = line


async def add_blocks(remote: Remote, blocks: list[str], inject_override: str = "") -> list[int]:
    indices: list[int] = []
    for block in blocks:
        ack = await remote.command("addBlock", {"id": block, "override": inject_override}, timeout_s=180)
        added = json.loads(ack.result)
        print(f"queued {block}: scripts {added[0]}..{added[-1]}", flush=True)
        indices += added
    return indices


async def follow(remote: Remote, follower: QueueFollower, timeout_s: float) -> None:
    remote.event("queue").callback = lambda envelope: follower.on_queue(envelope.data)
    wall = LoopClock()
    start = wall.monotonic()
    await remote.command("showQueue", timeout_s=30)
    while not follower.finished and follower.failed_current is None:
        follower.changed.clear()
        follower.print_progress()
        with contextlib.suppress(TimeoutError):
            await wall.wait_for(follower.changed.wait(), 1.0)
        if wall.monotonic() - start > timeout_s:
            raise TimeoutError(f"the blocks did not finish within {timeout_s:g} s")
    follower.print_progress()


# -- the summary ------------------------------------------------------------------------------


def image_summary(registry: Path, groups: set[str] | None = None) -> list[dict[str, Any]]:
    """Images per type, filter, grating and exposure time in the registry."""
    if not registry.is_file():
        return []
    db = sqlite3.connect(registry)
    try:
        rows = db.execute("SELECT imgtype, filter, grating, exptime, groupid FROM acquired_images").fetchall()
    finally:
        db.close()
    counts = Counter((t, f, g, e) for t, f, g, e, gid in rows if groups is None or gid in groups)
    return [
        {"imgtype": t, "filter": f, "grating": g, "exptime": e, "count": n}
        for (t, f, g, e), n in sorted(counts.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2], kv[0][3]))
    ]


def ptc_inputs(registry: Path, reason: str = "weekly_PTC") -> list[str]:
    """The PTC flats of the run (take_image_latiss with BLOCK-295's reason), in sequence order."""
    if not registry.is_file():
        return []
    db = sqlite3.connect(registry)
    try:
        rows = db.execute(
            "SELECT path FROM acquired_images WHERE reason = ? ORDER BY dayobs, seqnum", (reason,)
        ).fetchall()
    finally:
        db.close()
    return [r[0] for r in rows]


async def run_ptc(bus: MqttBus, root: str, inputs: list[str]) -> str:
    """The PTC of the run's flat pairs, through OCPS:1; a line saying what happened."""
    if not inputs:
        return "PTC: no PTC flats in this run"
    async with Remote(bus, "OCPS:1", clock=LoopClock(), root=root) as remote:
        try:
            result = await Ocps(remote).run("cpPtc", {"inputs": inputs, "force": True}, timeout_s=600)
        except (ExpectedError, AckError) as exc:
            return f"PTC: {exc}"
    return f"PTC: product {result['product']} from {len(inputs)} flats"


async def _lamp_state(bus: MqttBus, root: str) -> dict[str, Any]:
    """ATWhiteLight's summary state and lamp state as the run ends."""
    async with Remote(bus, "ATWhiteLight", clock=LoopClock(), root=root) as lamp:
        try:
            state = State((await lamp.event("summaryState").aget(timeout_s=5))["summaryState"]).name
            basic = (await lamp.event("lampState").aget(timeout_s=5))["basicState"]
        except TimeoutError:
            return {"summaryState": "unknown", "lamp": "unknown"}
    names = {0: "UNKNOWN", 1: "OFF", 2: "ON", 3: "COOLDOWN", 4: "WARMUP", 5: "TURNING_ON", 6: "TURNING_OFF"}
    return {"summaryState": state, "lamp": names.get(basic, str(basic))}


def print_summary(summary: dict[str, Any]) -> None:
    print("\nimages (type, filter~grating: exposure times x count)")
    by_set: dict[tuple[str, str, str], list[str]] = {}
    for row in summary["images"]:
        by_set.setdefault((row["imgtype"], row["filter"], row["grating"]), []).append(
            f"{row['exptime']:g}s x{row['count']}"
        )
    for (imgtype, filter_, grating), times in by_set.items():
        shown = (
            ", ".join(times)
            if len(times) <= 6
            else f"{len(times)} exposure times, {sum(int(t.split('x')[1]) for t in times)} images"
        )
        print(f"  {imgtype:<5} {filter_}~{grating}: {shown}")
    print(f"  total: {sum(r['count'] for r in summary['images'])} images")
    print("\nscripts")
    for script in summary["scripts"]:
        reason = f" ({script['reason']})" if script["reason"] and script["state"] != "DONE" else ""
        print(f"  {script['index']} {script['block']:<9} {script['path']:<45} {script['state']}{reason}")
    lamp = summary["lamp"]
    print(f"\nATWhiteLight {lamp['summaryState']}, lamp {lamp['lamp']}")
    results = summary.get("calibration")
    if results is not None:
        print_calibration(results)
        print(f"report: {summary['report']}")
    print(f"{summary['outcome']}; wall time {summary['wall_time_s']:.1f} s; summary written to {summary['file']}")


def print_calibration(results: dict[str, Any]) -> None:
    print("\nverification (passed/run)")
    for kind, names in sorted(results["verification"].items()):
        cells = ", ".join(f"{name} {c['passed']}/{c['run']}" for name, c in sorted(names.items()))
        print(f"  {kind:<13} {cells}")
    for failure in results["failures"][:10]:
        print(
            f"  FAILED {failure['kind']} {failure['name']} {failure['amp']} {failure['exposure']}: {failure['detail']}"
        )
    for job in results["jobs"]["failed"]:
        print(f"  FAILED job {job['id']} ({job['pipeline']}): {job['result']}")
    print("\nmasters")
    for m in results["masters"]:
        certified = "certified now" if m["certified"] else "not certified"
        print(
            f"  {m['id']:>3} {m['type']:<4} v{m['version']:<2} {m['filter'] or '-':<22} {m['verified']:<12} {certified}"
        )
    ptc = results["ptc"]
    if ptc is not None:
        print(f"\nPTC (product {ptc['product']}, {ptc['n_inputs']} flats)")
        print("  amp  gain e-/ADU  vs nominal  read noise e-  turnoff ADU")
        for name, a in sorted(ptc["amps"].items()):
            ratio = f"{a['gain_ratio'] - 1:+.2%}" if a["gain_ratio"] is not None else "n/a"
            print(f"  {name}  {a['gain']:.4f}       {ratio:>8}    {a['noise_e']:.2f}          {a['turnoff_adu']:.0f}")
    print(f"\ncalibration {'PASSED' if results['passed'] else 'FAILED'}")


async def run_weekly(args: Any) -> int:
    """The `obsq weekly` command."""
    blocks = args.blocks.split(",") if args.blocks else ["BLOCK-309", "BLOCK-295", "BLOCK-310"]
    if args.skip_setup:
        blocks = [b for b in blocks if b != "BLOCK-309"]
    if args.skip_shutdown:
        blocks = [b for b in blocks if b != "BLOCK-310"]
    stamp = datetime.datetime.fromtimestamp(utc_now_unix(), tz=datetime.UTC).strftime("%Y%m%dT%H%M%S")
    data = Path(args.data) / f"weekly-{stamp}"
    root = args.root if args.broker else f"weekly-{os.getpid()}"
    t0 = perf_counter()
    async with contextlib.AsyncExitStack() as stack:
        if args.broker:
            url = BrokerUrl.parse(args.broker, ca_file=args.ca_file)
            print(f"obsq weekly: driving {QUEUE} on {url} (root {root})", flush=True)
        else:
            url = await stack.enter_async_context(local_broker())
            print(f"obsq weekly: simulated observatory on {url}, speed {args.speed:g}, data {data}", flush=True)
            observatory = SimulatedObservatory(url, root, data, args.speed, WEEKLY_COMPONENTS, args.inject)
            await stack.enter_async_context(observatory.running())
        bus = MqttBus(url, clock=LoopClock())
        await bus.start()
        stack.push_async_callback(bus.close)
        # the queue works in wall time (starting processes does not speed up with the simulation)
        remote = await stack.enter_async_context(Remote(bus, QUEUE, clock=LoopClock(), root=root))
        follower = QueueFollower(args.speed)
        try:
            follower.indices = set(await add_blocks(remote, blocks))
            await follow(remote, follower, args.timeout)
        except (AckError, TimeoutError) as exc:
            print(f"obsq weekly: {exc}", file=sys.stderr, flush=True)
        lamp = await _lamp_state(bus, root)
        ptc_line = await run_ptc(bus, root, ptc_inputs(data / "registry.sqlite3")) if not args.broker else ""
        if ptc_line:
            print(ptc_line, flush=True)
        scripts = [
            {"index": i["index"], "block": i["block"], "path": i["path"], "state": i["state"], "reason": i["reason"]}
            for i in follower.ours()
        ]  # fmt: skip
        ok = bool(scripts) and all(s["state"] == "DONE" for s in scripts) and len(scripts) == len(follower.indices)
        data.mkdir(parents=True, exist_ok=True)
        summary = {
            "blocks": blocks,
            "speed": args.speed,
            "outcome": "all scripts DONE" if ok else "FAILED: not every script is DONE",
            "wall_time_s": perf_counter() - t0,
            "scripts": scripts,
            "images": image_summary(data / "registry.sqlite3"),
            "lamp": lamp,
            "file": str(data / "weekly-summary.json"),
        }
        if (data / "repo" / "registry.sqlite3").is_file():
            results = collect(data / "repo")
            summary["calibration"] = results
            summary["report"] = str(data / "report" / "report.html")
            write_report(data / "report", results, summary)
            ok = ok and results["passed"]
        (data / "weekly-summary.json").write_text(json.dumps(summary, indent=2))
        print_summary(summary)
    return 0 if ok else 1


async def _wait_own_state(remote: Remote, process: asyncio.subprocess.Process) -> bool:
    """Until the script process has published its first state; False if it died first."""
    wall = LoopClock()
    while (envelope := remote.event("state").get_envelope()) is None or envelope.origin != process.pid:
        if process.returncode is not None:
            return False
        await wall.sleep(0.01)
    return True


async def run_script_standalone(args: Any, cls: type[BaseScript]) -> int:
    """`obsq script run`: one script, in its own process, against what is on the bus."""
    config = await asyncio.to_thread(Path(args.config).read_text) if args.config else ""
    try:
        cls.validate_configuration(config)
    except Exception as exc:
        print(f"obsq script: {exc}", file=sys.stderr)
        return 2
    index = 900_000 + os.getpid() % 99_999
    root = args.root
    async with contextlib.AsyncExitStack() as stack:
        if args.broker:
            url = BrokerUrl.parse(args.broker, ca_file=args.ca_file)
        elif args.sim:
            url = await stack.enter_async_context(local_broker())
            root = f"script-{os.getpid()}"
            components = [
                (n, "enabled" if n != "ATWhiteLight" else "standby") for n, _ in WEEKLY_COMPONENTS if n != QUEUE
            ]
            observatory = SimulatedObservatory(url, root, Path(args.data), args.speed, components)
            await stack.enter_async_context(observatory.running())
        else:
            url = BrokerUrl.parse(os.environ.get("OBSQ_BROKER") or "mqtt://127.0.0.1:18830")
        argv = [sys.executable, "-m", "obsq.scripts.process", args.path, str(index), "--broker", str(url),
                "--root", root, "--speed", f"{args.speed:g}", *([] if args.external else ["--standard"])]  # fmt: skip
        process = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL)
        bus = MqttBus(url, clock=LoopClock())
        await bus.start()
        stack.push_async_callback(bus.close)
        remote = await stack.enter_async_context(Remote(bus, f"Script:{index}", clock=LoopClock(), root=root))
        final: list[int] = []
        done = asyncio.Event()

        def on_state(envelope: Any) -> None:
            if envelope.origin != process.pid:
                return
            state = ScriptState(envelope.data["state"])
            checkpoint = envelope.data.get("lastCheckpoint", "")
            print(f"Script:{index} {state.name} {checkpoint}".rstrip(), flush=True)
            if state.is_final:
                final.append(state)
                reason = envelope.data.get("reason", "")
                if reason:
                    print(f"  reason: {reason}", flush=True)
                done.set()

        remote.event("state").callback = on_state
        if not await _wait_own_state(remote, process):
            return 1
        try:
            await remote.command("configure", {"config": config}, timeout_s=60)
            await remote.command("setGroupId", {"groupId": f"script-run-{index}"}, timeout_s=10)
            await remote.command("run", timeout_s=10)
            await done.wait()
        except AckError as exc:
            print(f"obsq script: {exc}", file=sys.stderr)
        await process.wait()
    return 0 if final and final[0] in (ScriptState.DONE, ScriptState.STOPPED) else 1
