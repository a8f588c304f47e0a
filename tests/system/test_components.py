"""Components as real processes over real brokers: CLI, liveness, broker restart, bad input."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from obsq.csc.bus.brokers import MosquittoProcess
from obsq.csc.bus.mqtt import MqttBus
from obsq.csc.bus.url import BrokerUrl
from obsq.csc.clock import LoopClock, wait_for
from obsq.csc.component import AckError, Remote
from obsq.csc.core.acks import AckCode
from obsq.csc.core.states import State
from obsq.csc.core.status import StatusBoard
from obsq.csc.status import collect_status
from obsq.csc.testing import wait_state

from .conftest import ComponentProcess, run_cli

pytestmark = pytest.mark.system

CLOCK = LoopClock()


@asynccontextmanager
async def remote_on(url: str, root: str, component: str = "Test:1") -> AsyncIterator[Remote]:
    bus = MqttBus(BrokerUrl.parse(url), clock=CLOCK)
    await bus.start()
    try:
        async with Remote(bus, component, clock=CLOCK, root=root) as remote:
            yield remote
    finally:
        await bus.close()


@asynccontextmanager
async def component(url: str, root: str, tmp_path: Path, *extra: str) -> AsyncIterator[ComponentProcess]:
    process = ComponentProcess("Test:1", url, root, *extra, log=tmp_path / "Test-1.log")
    try:
        yield process
    finally:
        process.close()


async def wait_alive(remote: Remote, timeout_s: float = 20.0) -> None:
    async def poll() -> None:
        reader = remote.event("liveness")
        while (reader.get()).get("alive") is not True:
            await reader.next(flush=False, timeout_s=timeout_s)

    await wait_for(CLOCK, poll(), timeout_s)


async def until(condition: Callable[[], bool], limit_s: float = 30.0) -> None:
    """Until `condition()` is true (polled every 10 ms); `limit_s` only bounds a test that would hang.

    No test asserts how long something took: timings belong in the benchmarks.
    """
    await wait_for(CLOCK, _poll(condition), limit_s)


async def _poll(condition: Callable[[], bool]) -> None:
    while not condition():
        await CLOCK.sleep(0.01)


async def test_cli_commands_a_component(broker_url: str, root: str, tmp_path: Path) -> None:
    async with component(broker_url, root, tmp_path), remote_on(broker_url, root) as remote:
        await wait_alive(remote)
        common = ("--broker", broker_url, "--root", root)
        result = await asyncio.to_thread(run_cli, "cmd", "Test:1", "start", *common)
        assert result.returncode == 0, result.stderr
        assert "Test:1 start: COMPLETE Done" in result.stdout
        result = await asyncio.to_thread(run_cli, "cmd", "Test:1", "wait", "duration=0.2", *common)
        assert result.returncode == 1
        assert "FAILED Failed: wait not allowed in state DISABLED" in result.stdout
        assert (await asyncio.to_thread(run_cli, "cmd", "Test:1", "enable", *common)).returncode == 0
        result = await asyncio.to_thread(run_cli, "cmd", "Test:1", "wait", "duration=0.3", *common)
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == [
            "Test:1 wait: INPROGRESS waiting 0.3 s timeout=0.3s",
            "Test:1 wait: COMPLETE waited 0.3 s",
        ]
        bad = await asyncio.to_thread(run_cli, "cmd", "Test:1", "wait", "duration=soon", *common)
        assert bad.returncode == 2
        assert "field 'duration': 'soon' is not a valid number" in bad.stderr
        bad = await asyncio.to_thread(run_cli, "cmd", "Test:1", "fly", *common)
        assert bad.returncode == 2
        assert "Test has no command 'fly'" in bad.stderr
        bad = await asyncio.to_thread(run_cli, "cmd", "Nope:1", "start", *common)
        assert bad.returncode == 2
        assert "unknown component 'Nope'" in bad.stderr
        # a target that does not run is named at once, not after the command's timeout
        absent = await asyncio.to_thread(run_cli, "cmd", "Test:2", "start", *common)
        assert absent.returncode == 2
        assert f"Test:2 is not running (no heartbeat on {broker_url})" in absent.stderr
        for action in ("show", "pause"):
            absent = await asyncio.to_thread(run_cli, "queue", action, *common)
            assert absent.returncode == 2
            assert f"ScriptQueue:2 is not running (no heartbeat on {broker_url})" in absent.stderr
        missing = await asyncio.to_thread(
            run_cli, "queue", "add", "set_summary_state.py", "--config", "nope.yaml", *common
        )
        assert missing.returncode == 2
        assert "--config nope.yaml: cannot be read: No such file or directory" in missing.stderr
        status = await asyncio.to_thread(run_cli, "status", *common)
        assert status.returncode == 0
        row = next(line for line in status.stdout.splitlines() if line.startswith("Test:1"))
        assert "ENABLED" in row
        assert "alive" in row
        listed = await asyncio.to_thread(run_cli, "status", "--json", *common)
        assert listed.returncode == 0, listed.stderr
        (test,) = [r for r in json.loads(listed.stdout) if r["component"] == "Test:1"]
        assert (test["state"], test["health"]) == ("ENABLED", "alive")


@asynccontextmanager
async def monitored(url: str, root: str, tmp_path: Path) -> AsyncIterator[tuple[ComponentProcess, StatusBoard]]:
    """A component process, and the status board `obsq status` uses, fed until it shows it alive."""
    board = StatusBoard()
    async with component(url, root, tmp_path) as process, remote_on(url, root) as remote:
        await wait_alive(remote)
        await collect_status(remote.bus, root, board, CLOCK)
        await until(lambda: any(r.health == "alive" for r in board.rows(CLOCK.tai())))
        yield process, board


async def test_sigkill_is_reported_gone_by_its_last_will(broker_url: str, root: str, tmp_path: Path) -> None:
    async with monitored(broker_url, root, tmp_path) as (process, board):
        os.kill(process.pid, signal.SIGKILL)
        await until(lambda: board.rows(CLOCK.tai())[0].health != "alive")
        assert board.rows(CLOCK.tai())[0].health == "gone (connection lost)"  # the will, not a stale heartbeat
        status = await asyncio.to_thread(run_cli, "status", "--broker", broker_url, "--root", root, "--wait", "0.5")
        assert "gone (connection lost)" in status.stdout


async def test_hung_component_is_reported_not_responding(broker_url: str, root: str, tmp_path: Path) -> None:
    async with monitored(broker_url, root, tmp_path) as (process, board):
        os.kill(process.pid, signal.SIGSTOP)
        try:
            await until(lambda: board.rows(CLOCK.tai())[0].health != "alive")
        finally:
            os.kill(process.pid, signal.SIGCONT)
        # stale heartbeats (3 s) are seen before the broker's keep-alive gives up (1.5 x 5 s)
        assert board.rows(CLOCK.tai())[0].health == "not responding"


async def test_broker_restart(own_mosquitto: MosquittoProcess, root: str, tmp_path: Path) -> None:
    url = own_mosquitto.url
    async with component(url, root, tmp_path), remote_on(url, root) as remote:
        await wait_alive(remote)
        await remote.command("start", timeout_s=10)
        await remote.command("enable", timeout_s=10)
        in_flight = asyncio.create_task(remote.command("wait", {"duration": 1}, timeout_s=10))
        await remote.event("logMessage").aget(timeout_s=5)
        await CLOCK.sleep(0.2)
        own_mosquitto.stop()
        await CLOCK.sleep(1.5)  # the command ends on the component while the broker is down: its ack is lost
        assert not in_flight.done()
        own_mosquitto.start()
        # the command is sent again after the reconnect and answered with the ack it had: run once
        assert (await in_flight).result == "waited 1 s"
        # the component reconnects and republishes its retained state for late joiners
        async with remote_on(url, root) as late:
            await wait_for(CLOCK, late.event("summaryState").aget(timeout_s=5), 5)
            assert late.event("summaryState").get() == {"summaryState": int(State.ENABLED)}
            assert (await late.event("liveness").aget(timeout_s=5))["alive"] is True
        # the old remote's bus reconnects and resubscribes; a new command completes once
        await until(lambda: remote.bus.connected)
        scalars = remote.event("scalars")
        ack = await remote.command("setScalars", {"int0": 7}, timeout_s=5)
        assert ack.ack == AckCode.COMPLETE
        assert (await scalars.aget(timeout_s=2))["int0"] == 7


async def test_bad_input_over_a_real_broker(broker_url: str, root: str, tmp_path: Path) -> None:
    async with component(broker_url, root, tmp_path), remote_on(broker_url, root) as remote:
        await wait_alive(remote)
        bus = remote.bus
        acks: dict[int, dict[str, object]] = {}
        await bus.subscribe(
            f"{root}/Test/1/ackcmd",
            lambda m: acks.setdefault(json.loads(m.payload)["private_seqNum"], json.loads(m.payload)),
        )

        def command(seq: int, **fields: object) -> bytes:
            return json.dumps({"private_seqNum": seq, "private_identity": "fuzz@test", **fields}).encode()

        topic = f"{root}/Test/1/cmd"
        await bus.publish(f"{topic}/start", b"{oops", qos=1)
        await bus.publish(f"{topic}/start", b"[]", qos=1)
        await bus.publish(f"{topic}/start", command(9, pad="x" * 1_100_000), qos=1)
        await bus.publish(f"{topic}/launch", command(1), qos=1)
        await bus.publish(f"{topic}/wait", command(2, duration=-5), qos=1)
        await bus.publish(f"{topic}/wait", command(3, duration=[1]), qos=1)
        await bus.publish(f"{topic}/wait", command(4), qos=1)
        await until(lambda: len(acks) >= 4)
        await CLOCK.sleep(0.3)
        assert set(acks) == {1, 2, 3, 4}  # undecodable and oversize messages are dropped, logged
        assert all(a["ack"] == AckCode.FAILED for a in acks.values())
        assert "has no command 'launch'" in str(acks[1]["result"])
        assert "'duration': -5 is less than the minimum of 0" in str(acks[2]["result"])
        assert "'duration': [1] is not of type 'number'" in str(acks[3]["result"])
        assert "field 'duration' is required" in str(acks[4]["result"])
        ack = await remote.command("start", timeout_s=5)
        assert ack.ack == AckCode.COMPLETE  # still serving
        with pytest.raises(AckError, match="not allowed in state DISABLED"):
            await remote.command("setScalars", timeout_s=5)
        await wait_state(remote, State.DISABLED)


async def test_watch_follows_events(mosquitto: MosquittoProcess, root: str, tmp_path: Path) -> None:
    async with component(mosquitto.url, root, tmp_path), remote_on(mosquitto.url, root) as remote:
        await wait_alive(remote)
        watch = asyncio.create_task(
            asyncio.to_thread(run_cli, "watch", "--broker", mosquitto.url, "--root", root, "--duration", "3")
        )
        await CLOCK.sleep(1.5)
        await remote.command("start", timeout_s=5)
        result = await watch
        assert result.returncode == 0
        assert f"Test:1 evt/summaryState {json.dumps({'summaryState': 1})}".replace(" ", "") in result.stdout.replace(
            " ", ""
        )
        assert "evt/heartbeat" not in result.stdout


async def test_retained_commands_left_on_the_broker_run_nothing(
    mosquitto: MosquittoProcess, root: str, tmp_path: Path
) -> None:
    """A careless `mosquitto_pub -r` of exitControl and setLogLevel, made before the component starts (issue 23)."""
    for name, extra in (("exitControl", {}), ("setLogLevel", {"level": 10})):
        payload = json.dumps({"private_seqNum": 7, "private_identity": "careless@laptop", **extra})
        sent = await asyncio.create_subprocess_exec(
            "mosquitto_pub", "-h", "127.0.0.1", "-p", str(mosquitto.port), "-q", "1", "-r",
            "-t", f"{root}/Test/1/cmd/{name}", "-m", payload,
        )  # fmt: skip
        assert await sent.wait() == 0
    for _ in range(2):  # two starts: the broker hands both retained commands to each
        async with component(mosquitto.url, root, tmp_path) as process, remote_on(mosquitto.url, root) as remote:
            await wait_alive(remote)
            await CLOCK.sleep(2.0)  # heartbeats, not a window: the commands were delivered at the subscription
            assert process.process.poll() is None  # exitControl did not run
            assert remote.event("summaryState").get() == {"summaryState": int(State.STANDBY)}
            assert remote.event("logLevel").get()["level"] == 20  # setLogLevel(10) did not run
            process.process.terminate()
            assert await asyncio.to_thread(process.process.wait, 60) == 0  # SIGTERM ends it
        log = (tmp_path / "Test-1.log").read_text()
        assert log.count("retained_command_ignored") == 2
        assert f"mosquitto_pub -r -n -t '{root}/Test/1/cmd/exitControl'" in log


async def test_sigterm_ends_a_component_in_every_state(mosquitto: MosquittoProcess, root: str, tmp_path: Path) -> None:
    for path in ([], ["start"], ["start", "enable"], ["start", "enable", "fault"]):
        async with component(mosquitto.url, root, tmp_path) as process, remote_on(mosquitto.url, root) as remote:
            await wait_alive(remote)
            for name in path:
                await remote.command(name, timeout_s=10)
            process.process.terminate()
            assert await asyncio.to_thread(process.process.wait, 60) == 0, path
