"""`obsq up` on a simulated Monday morning runs the weekly calibrations by itself, with no command typed.

And when things go wrong: a queue slow to accept a block (scripts that take real seconds to
configure, as on a busy machine) does not lose the run, and a BLOCK-295 that fails still has
BLOCK-310 run after it, so the lamp is off at the end.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from obsq.csc.bus.brokers import MosquittoProcess
from obsq.csc.bus.mqtt import MqttBus
from obsq.csc.bus.url import BrokerUrl
from obsq.csc.clock import utc_now_unix
from obsq.csc.component import Remote
from obsq.csc.ocps.repository import Repository
from obsq.csc.scheduler.schedule import SCHEDULE_ENV
from obsq.csc.scriptqueue.blocks import SITE_BLOCKS_ENV
from obsq.scripts.library import SITE_ROOTS_ENV

from .test_components import until
from .test_telescope import CLOCK, Telescope, telescope_broker  # noqa: F401  (the fixture)

pytestmark = [pytest.mark.system, pytest.mark.timeout(900)]


async def test_obsq_up_on_a_monday_morning_queues_and_runs_the_weekly_at_14(
    telescope_broker: MosquittoProcess,  # noqa: F811
    root: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    deployed = Path(__file__).resolve().parents[2] / "deploy" / "schedule.yaml"  # not the tests' (rule off)
    shutil.copy(deployed, tmp_path / "schedule.yaml")
    monkeypatch.setenv(SCHEDULE_ENV, str(tmp_path / "schedule.yaml"))
    bus = MqttBus(BrokerUrl.parse(telescope_broker.url), clock=CLOCK)
    await bus.start()
    decisions: list[dict[str, Any]] = []
    runs: list[dict[str, Any]] = []
    # at 600x, the 9 h from 05:00 to 14:00 are 54 s of wall time: the bring-up fits in them on a busy machine
    up = Telescope(telescope_broker.url, root, tmp_path / "data",
                   "--start", "2026-12-07T05:00:00-03:00", "--state", "ATWhiteLight=standby",
                   "--state", "OCPS:1=standby")  # fmt: skip
    try:
        async with Remote(bus, "Scheduler:2", clock=CLOCK, root=root) as scheduler:
            scheduler.event("decision").callback = lambda envelope: decisions.append(envelope.data)
            scheduler.event("run").callback = lambda envelope: runs.append(envelope.data)
            await until(lambda: any(r["outcome"] != "running" for r in runs) or up.process.poll() is not None, 800)
    finally:
        up.close()
        await bus.close()
    log = up.log.read_text()
    assert up.process.returncode == 0, log[-3000:]
    (queued,) = [d for d in decisions if d["action"] == "queue"]
    assert queued["occurrence"] == "2026-12-07T17:00:00Z"  # Monday 14:00 at the site
    assert queued["time"][:15] == "2026-12-07T17:0"  # looked at once a minute of clock time
    assert runs[-1]["outcome"] == "COMPLETED", (runs, log[-3000:])
    assert runs[-1]["blocks"] == "BLOCK-309,BLOCK-295,BLOCK-310"
    repo = Repository(tmp_path / "data" / "repo", now=utc_now_unix)
    certified = {p.type for p in repo.products() if p.certified}
    assert {"bias", "dark", "flat"} <= certified


async def follow_runs(up: Telescope, bus: MqttBus, root: str, limit_s: float) -> list[dict[str, Any]]:
    """The Scheduler's run events until a run ends (or `obsq up` does)."""
    runs: list[dict[str, Any]] = []
    async with Remote(bus, "Scheduler:2", clock=CLOCK, root=root) as scheduler:
        scheduler.event("run").callback = lambda envelope: runs.append(envelope.data)
        final = ("COMPLETED", "ERROR")
        await until(lambda: any(r["outcome"].startswith(final) for r in runs) or up.process.poll() is not None,
                    limit_s)  # fmt: skip
    return runs


SLOW_SCHEDULE = """
site: {name: Cerro Pachón, latitude: -30.2446, longitude: -70.7494, elevation: 2663, timezone: America/Santiago}
check_interval: 60
rules:
  - name: slow-to-accept
    cron: "0 14 * * MON"
    blocks: [BLOCK-T950, BLOCK-T951]
    safe: [BLOCK-T951]
    estimated_duration: 0.5
    window: 12
    needs_enabled: ["ScriptQueue:2"]
    no_fault: []
    skip_if_certified: []
"""


async def test_a_queue_slow_to_accept_a_block_does_not_lose_the_run(
    telescope_broker: MosquittoProcess,  # noqa: F811
    root: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Three scripts that each take 15 real seconds to configure: at 600x the queue takes longer to accept the
    block than the 120 s (0.2 s real) the Scheduler's addBlock once allowed, or its old 10 s floor.
    """
    blocks = tmp_path / "blocks"
    blocks.mkdir()
    slow = {"name": "testing/slow_configure.py", "standard": False, "parameters": {"configure_s": 15}}
    (blocks / "slow.json").write_text(json.dumps({"name": "slow", "program": "BLOCK-T950", "scripts": [slow] * 3}))
    wait = {"name": "testing/wait.py", "standard": False, "parameters": {"wait_time": 60}}
    (blocks / "after.json").write_text(json.dumps({"name": "after", "program": "BLOCK-T951", "scripts": [wait]}))
    (tmp_path / "schedule.yaml").write_text(SLOW_SCHEDULE)
    monkeypatch.setenv(SCHEDULE_ENV, str(tmp_path / "schedule.yaml"))
    monkeypatch.setenv(SITE_BLOCKS_ENV, str(blocks))
    monkeypatch.setenv(SITE_ROOTS_ENV, str(Path(__file__).resolve().parents[1] / "data" / "scripts"))
    bus = MqttBus(BrokerUrl.parse(telescope_broker.url), clock=CLOCK)
    await bus.start()
    up = Telescope(telescope_broker.url, root, tmp_path / "data", "--only", "ScriptQueue,Scheduler",
                   "--start", "2026-12-07T13:00:00-03:00")  # fmt: skip
    try:
        runs = await follow_runs(up, bus, root, 600)
    finally:
        up.close()
        await bus.close()
    log = up.log.read_text()
    assert runs, log[-3000:]
    assert runs[-1]["outcome"] == "COMPLETED", (runs, log[-3000:])
    assert len(runs[-1]["salIndices"].split(",")) == 4  # three slow scripts, then the wait


async def test_a_failed_block_295_still_runs_block_310_and_the_lamp_ends_off(
    telescope_broker: MosquittoProcess,  # noqa: F811
    root: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The filter wheel sticks at BLOCK-295's first filter change: its script fails, the Scheduler drops the rest
    of BLOCK-295, resumes the queue its failure paused, and the safe BLOCK-310 turns the lamp off.
    """
    deployed = Path(__file__).resolve().parents[2] / "deploy" / "schedule.yaml"
    shutil.copy(deployed, tmp_path / "schedule.yaml")
    monkeypatch.setenv(SCHEDULE_ENV, str(tmp_path / "schedule.yaml"))
    bus = MqttBus(BrokerUrl.parse(telescope_broker.url), clock=CLOCK)
    await bus.start()
    up = Telescope(telescope_broker.url, root, tmp_path / "data", "--start", "2026-12-07T05:00:00-03:00",
                   "--state", "ATWhiteLight=standby", "--state", "OCPS:1=standby",
                   "--inject", "filter-stuck")  # fmt: skip
    try:
        async with Remote(bus, "ATWhiteLight", clock=CLOCK, root=root) as lamp:
            runs = await follow_runs(up, bus, root, 800)
            lamp_state = lamp.event("lampState").get()
            summary = lamp.event("summaryState").get()
    finally:
        up.close()
        await bus.close()
    log = up.log.read_text()
    assert runs, log[-3000:]
    outcome = runs[-1]["outcome"]
    assert outcome.startswith("ERROR: script "), (runs, log[-3000:])
    assert "of BLOCK-295 FAILED" in outcome
    assert outcome.endswith("safe block BLOCK-310 COMPLETED (the site is safe)"), outcome
    assert any(r["outcome"].startswith("failing: ") for r in runs)  # said as it happened
    assert lamp_state["basicState"] in (1, 3)  # OFF, or COOLDOWN: off and cooling
    assert summary["summaryState"] == 5  # BLOCK-310 sent it to STANDBY
