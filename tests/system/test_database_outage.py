"""The weekly with its registries on PostgreSQL while the server goes away (issue 23): nothing dies, nothing is lost."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from obsq.csc.bus.brokers import MosquittoProcess, mosquitto_path
from obsq.csc.bus.mqtt import MqttBus
from obsq.csc.bus.url import BrokerUrl
from obsq.csc.clock import LoopClock
from obsq.csc.component import Remote
from obsq.csc.database import close_connections

from .conftest import REQUIRE_MOSQUITTO, ComponentProcess
from .postgres import PostgresServer

pytestmark = [pytest.mark.system, pytest.mark.timeout(900)]


@pytest.fixture
def server() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test's own: it is stopped and started again under the weekly."""
    if mosquitto_path() is None and not REQUIRE_MOSQUITTO:
        pytest.skip("mosquitto not installed: obsq weekly would use the embedded broker")
    own = PostgresServer()
    own.start()
    yield own
    own.stop()
    close_connections()


@pytest.mark.parametrize("away_s", [5, 60])
def test_the_weekly_waits_out_the_database_and_loses_nothing(
    server: PostgresServer, tmp_path: Path, away_s: int
) -> None:
    database = server.database()
    argv = [sys.executable, "-m", "obsq.csc.cli", "weekly", "--data", str(tmp_path), "--speed", "600",
            "--database", database]  # fmt: skip
    weekly = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 600  # bounds a hang only
        while len(list(tmp_path.glob("weekly-*/**/*.fits"))) < 40 and weekly.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        stopped = time.monotonic()
        server.interrupt()  # mid BLOCK-295: every registry away
        time.sleep(away_s)
        server.resume()
        print(f"PostgreSQL away for {time.monotonic() - stopped:.1f} s")
        out, _ = weekly.communicate(timeout=800)
    finally:
        if weekly.poll() is None:
            weekly.kill()
            weekly.communicate()  # its pipe read and closed: nothing outlives the test
    assert "died" not in out, out[-3000:]  # the supervisor restarted no one
    (run,) = tmp_path.glob("weekly-*")
    summary = json.loads((run / "weekly-summary.json").read_text())
    assert weekly.returncode == 0, out[-3000:]
    assert sum(i["count"] for i in summary["images"]) == 205
    assert summary["lamp"]["lamp"] == "OFF"


async def test_a_component_whose_database_is_away_at_start_waits_for_it(
    server: PostgresServer, mosquitto: MosquittoProcess, root: str, tmp_path: Path
) -> None:
    """OCPS:1 started while its PostgreSQL is down: it waits, says so, and comes up when the server is back."""
    database = server.database()
    server.interrupt()
    log = tmp_path / "ocps.log"
    process = ComponentProcess("OCPS:1", mosquitto.url, root, "--database", database, "--data", str(tmp_path), log=log)
    try:
        clock = LoopClock()
        for _ in range(1200):  # until it says it waits (a busy machine starts a process slowly); bounds a hang only
            if "waiting for its database" in log.read_text() or process.process.poll() is not None:
                break
            await clock.sleep(0.1)
        assert "waiting for its database" in log.read_text(), log.read_text()[-2000:]
        await clock.sleep(4.0)  # two more tries
        assert process.process.poll() is None, log.read_text()[-2000:]  # alive, waiting: not dead
        server.resume()
        bus = MqttBus(BrokerUrl.parse(mosquitto.url), clock=LoopClock())
        await bus.start()
        try:
            async with Remote(bus, "OCPS:1", clock=LoopClock(), root=root) as remote:
                assert await remote.wait_live(120.0), log.read_text()[-2000:]
        finally:
            await bus.close()
    finally:
        process.close()
