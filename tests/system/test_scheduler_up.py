"""`obsq up` on a simulated Monday morning runs the weekly calibrations by itself, with no command typed."""

from __future__ import annotations

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
