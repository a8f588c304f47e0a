"""A broker outage in the middle of the main job: `obsq weekly` against `obsq up`, Mosquitto restarted twice.

Commands in flight are sent again after the reconnect and answered once; the scripts and their
blocks finish; the camera takes exactly the images the blocks plan, no more (nothing ran twice)
and no fewer.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from obsq.csc.bus.brokers import MosquittoProcess
from obsq.csc.clock import LoopClock

from .conftest import stop_processes
from .test_components import until
from .test_weekly import planned_images

pytestmark = [pytest.mark.system, pytest.mark.timeout(900)]

CLOCK = LoopClock()
OUTAGE_S = 1.5


def images_taken(registry: Path) -> int:
    if not registry.is_file():
        return 0
    db = sqlite3.connect(registry)
    try:
        return int(db.execute("SELECT COUNT(*) FROM acquired_images").fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        db.close()


async def test_weekly_survives_two_broker_restarts(own_mosquitto: MosquittoProcess, root: str, tmp_path: Path) -> None:
    data = tmp_path / "up"
    cli = [sys.executable, "-m", "obsq.csc.cli"]
    broker = ["--broker", own_mosquitto.url, "--root", root]
    logs = [(tmp_path / "up.log").open("w"), (tmp_path / "weekly.log").open("w")]
    up = subprocess.Popen(
        [*cli, "up", *broker, "--data", str(data), "--speed", "600",
         "--state", "enabled", "--state", "ATWhiteLight=standby", "--state", "OCPS=standby"],
        stdout=logs[0], stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    weekly = None
    try:
        await until(lambda: "obsq up: ready" in (tmp_path / "up.log").read_text(), 300)
        weekly = subprocess.Popen(
            [*cli, "weekly", *broker, "--data", str(tmp_path / "weekly"), "--speed", "600"],
            stdout=logs[1], stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        registry = data / "registry.sqlite3"
        for after_images in (20, 110):  # during BLOCK-295's biases, then during its flats
            await until(lambda n=after_images: images_taken(registry) >= n or weekly.poll() is not None, 600)
            assert weekly.poll() is None, (tmp_path / "weekly.log").read_text()[-3000:]
            own_mosquitto.stop()
            await CLOCK.sleep(OUTAGE_S)
            own_mosquitto.start()
        await until(lambda: weekly.poll() is not None, 800)
        output = (tmp_path / "weekly.log").read_text()
        assert weekly.returncode == 0, output[-4000:]
        assert "all scripts DONE" in output
        # the summary of a running site is the standalone run's: asked of the services, not read from their files
        assert "total: 205 images" in output
        assert "calibration PASSED" in output
        assert "PTC (product" in output
        assert "/repo/reports/" in output  # the report OCPS:1 wrote
        db = sqlite3.connect(registry)
        taken = Counter(db.execute("SELECT imgtype, filter, grating, exptime FROM acquired_images").fetchall())
        db.close()
        assert taken == planned_images()  # exactly: nothing taken twice, nothing missing
    finally:
        stop_processes(weekly, up)
        for log in logs:
            log.close()
