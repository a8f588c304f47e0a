"""The simulated auxiliary telescope as real processes (`obsq up`) over Mosquitto, driven with `obsq cmd`."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.stats import sigma_clipped_stats

from obsq.csc.acquired import AcquiredImages
from obsq.csc.atcamera.illumination import ObservatoryState, flat_flux_e_s
from obsq.csc.atcamera.model import GEOMETRIES, DetectorModel
from obsq.csc.bus.brokers import MosquittoProcess
from obsq.csc.bus.mqtt import MqttBus
from obsq.csc.bus.url import BrokerUrl
from obsq.csc.clock import TAI_MINUS_UTC_S, LoopClock
from obsq.csc.component import Remote
from obsq.csc.core.status import StatusBoard
from obsq.csc.observatory import SITE
from obsq.csc.status import collect_status

from .conftest import run_cli
from .test_components import until

pytestmark = [pytest.mark.system, pytest.mark.timeout(600)]  # the bring-up has no fixed limit of its own

SPEED = "600"
CLOCK = LoopClock()


class Telescope:
    """`obsq up` as a child process, and `obsq cmd` against it."""

    def __init__(self, url: str, root: str, data: Path, *extra: str) -> None:
        self.url, self.root, self.data = url, root, data
        self.log = data.parent / f"up-{root}.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "obsq.csc.cli", "up", "--broker", url, "--root", root, "--speed", SPEED,
                 "--state", "enabled", "--data", str(data), *extra],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip

    async def cmd(self, component: str, command: str, *fields: str) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(
            run_cli, "cmd", component, command, *fields, "--broker", self.url, "--root", self.root, "--speed", SPEED
        )

    async def ok(self, component: str, command: str, *fields: str) -> str:
        result = await self.cmd(component, command, *fields)
        assert result.returncode == 0, f"{component} {command}: {result.stdout} {result.stderr}"
        return result.stdout

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def telescope_broker() -> Iterator[MosquittoProcess]:
    from .conftest import start_mosquitto

    broker = start_mosquitto()
    yield broker
    broker.close()


@pytest.fixture
async def board(telescope_broker: MosquittoProcess, root: str) -> AsyncIterator[StatusBoard]:
    bus = MqttBus(BrokerUrl.parse(telescope_broker.url), clock=CLOCK)
    await bus.start()
    board = StatusBoard()
    await collect_status(bus, root, board, CLOCK)
    yield board
    await bus.close()


@pytest.fixture
async def telescope(
    telescope_broker: MosquittoProcess, root: str, tmp_path: Path, board: StatusBoard
) -> AsyncIterator[Telescope]:
    up = Telescope(telescope_broker.url, root, tmp_path / "data")
    try:
        await until(lambda: "obsq up: ready" in up.log.read_text() or up.process.poll() is not None, 300)
        assert up.process.poll() is None, up.log.read_text()[-2000:]
        assert all_enabled(board)
        yield up
    finally:
        up.close()
    assert up.process.returncode == 0, up.log.read_text()[-2000:]


def all_enabled(board: StatusBoard) -> bool:
    rows = {row.component: row for row in board.rows(CLOCK.tai())}
    names = [str(cid) for cid, _ in SITE]  # what obsq up brings up: the observatory and its Scheduler
    return all(name in rows and rows[name].state == "ENABLED" and rows[name].health == "alive" for name in names)


def mjd_to_tai(mjd: float) -> float:
    return (mjd - 40587.0) * 86400.0 + TAI_MINUS_UTC_S


def flat_level(path: str) -> list[float]:
    g = GEOMETRIES["small"]
    with fits.open(path) as hdus:
        return [
            float(sigma_clipped_stats(h.data[: g.ny, : g.nx] - np.median(h.data[: g.ny, g.nx :]), sigma=3)[0])
            for h in hdus[1:]
        ]


async def prepare_flat_position(up: Telescope) -> None:
    await up.ok("ATSpectrograph", "changeFilter", "name=SDSSr_65mm")
    await up.ok("ATDome", "homeAzimuth")  # moves need the axis homed since start-up (Rubin's rule)
    await up.ok("ATDome", "moveAzimuth", "azimuth=3.0")
    await up.ok("ATMCS", "moveToPosition", "azimuth=188.7", "elevation=39.0")


async def test_lamp_warm_up_flats_and_a_misaligned_dome(telescope: Telescope, root: str) -> None:
    up = telescope
    await up.ok("ATWhiteLight", "startChiller")
    await up.ok("ATWhiteLight", "openShutter")
    bus = MqttBus(BrokerUrl.parse(up.url), clock=CLOCK)
    await bus.start()
    try:
        async with Remote(bus, "ATWhiteLight", clock=CLOCK, root=root) as lamp:
            out = await up.ok("ATWhiteLight", "turnLampOn")
            assert "COMPLETE lamp on at 900 W" in out
            state = lamp.event("lampState")
            await until(lambda: state.get().get("basicState") in (2, 4))  # WARMUP (or already ON)
            warmup_end_tai = state.get()["warmupEndTime"]
            await up.ok("ATCamera", "takeImages", "numImages=1", "expTime=0", "shutter=false", "imageType=BIAS",
                        "groupId=warming")  # fmt: skip
            await until(lambda: state.get().get("basicState") == 2)  # ON
    finally:
        await bus.close()
    # the processes share one simulated clock: the camera's time stamps and the lamp's warm-up agree
    registry = AcquiredImages(up.data / "registry.sqlite3")
    (warming,) = registry.images(groupid="warming")
    assert 0 < warmup_end_tai - mjd_to_tai(warming.mjd_obs) <= 900  # taken during the 900 s warm-up

    await prepare_flat_position(up)
    out = await up.ok("ATCamera", "takeImages", "numImages=1", "expTime=6", "imageType=FLAT", "groupId=aligned")
    (aligned,) = registry.images(groupid="aligned")
    assert mjd_to_tai(aligned.mjd_obs) >= warmup_end_tai
    assert aligned.obsid in out
    assert (aligned.filter, aligned.grating, aligned.exptime) == ("SDSSr_65mm", "empty_1", 6.0)
    state = ObservatoryState(
        now_tai=0, lamp_basic_state=2, lamp_power_w=900, lamp_shutter=2, filter="SDSSr_65mm", disperser="empty_1",
        dome_azimuth_true=3.0 + 0.005 * 3.0, mount_azimuth=188.7, mount_elevation=39.0,
    )  # fmt: skip
    expected = DetectorModel(GEOMETRIES["small"], seed=1).expected_signal_adu(flat_flux_e_s(state), 6.0)
    measured = flat_level(aligned.path)
    assert measured == pytest.approx(list(expected), rel=0.05)

    await up.ok("ATDome", "moveAzimuth", "azimuth=6.0")  # 3 deg off the screen
    await up.ok("ATCamera", "takeImages", "numImages=1", "expTime=6", "imageType=FLAT", "groupId=misaligned")
    (misaligned,) = registry.images(groupid="misaligned")
    assert max(flat_level(misaligned.path)) < 10_000


async def test_bad_input_is_refused_by_name_and_state_unchanged(telescope: Telescope) -> None:
    up = telescope
    result = await up.cmd("ATSpectrograph", "changeFilter", "name=SDSSq_65mm")
    assert result.returncode == 1
    assert "unknown filter 'SDSSq_65mm'; installed: empty_1, SDSSr_65mm" in result.stdout
    result = await up.cmd("ATCamera", "takeImages", "numImages=1", "expTime=-6", "imageType=FLAT")
    assert result.returncode == 2
    assert "field 'expTime': -6.0 is less than the minimum of 0" in result.stderr
    result = await up.cmd("ATMCS", "moveToPosition", "azimuth=0", "elevation=100")
    assert result.returncode == 1
    assert "elevation 100 deg is beyond the limits 5 to 90 deg" in result.stdout
    await up.ok("ATWhiteLight", "disable")
    result = await up.cmd("ATWhiteLight", "startChiller")
    assert result.returncode == 1
    assert "startChiller not allowed in state DISABLED" in result.stdout
    status = await asyncio.to_thread(run_cli, "status", "--broker", up.url, "--root", up.root)
    table, _, devices = status.stdout.partition("\nDEVICES\n")
    states = {line.split()[0]: line.split()[1] for line in table.strip().splitlines()[1:]}
    drives = {line.split()[0]: line.split()[1:] for line in devices.splitlines()}
    assert drives["ATDome"] == ["simulated", "connected"]  # the hardware each drives, and that it answers
    assert set(drives) == {"ATCamera", "ATDome", "ATMCS", "ATSpectrograph", "ATWhiteLight"}
    assert states == {"ATCamera": "ENABLED", "ATDome": "ENABLED", "ATMCS": "ENABLED", "ATSpectrograph": "ENABLED",
                      "ATWhiteLight": "DISABLED", "OCPS:1": "ENABLED", "ScriptQueue:2": "ENABLED",
                      "Scheduler:2": "ENABLED"}  # fmt: skip


async def test_a_killed_component_is_restarted(telescope: Telescope, board: StatusBoard) -> None:
    up = telescope
    pids = (
        await asyncio.to_thread(
            subprocess.run, ["pgrep", "-f", f"csc run ATMCS .*--root {up.root}"], capture_output=True, text=True
        )
    ).stdout.split()
    assert len(pids) == 1
    os.kill(int(pids[0]), signal.SIGKILL)
    await until(lambda: board.rows(CLOCK.tai())[2].health.startswith("gone"))
    await until(lambda: all_enabled(board))  # restarted, and back to ENABLED (--state enabled)
    assert "ATMCS died (status -9); restarting" in up.log.read_text()
    await up.ok("ATMCS", "moveToPosition", "azimuth=10", "elevation=45")


async def test_block_309_added_twice_in_a_row_both_complete(telescope: Telescope, root: str) -> None:
    """The recovery the procedure prescribes: the set-up again with the lamp already on (Rubin's turnLampOn on a lit
    lamp sets its power), so the second BLOCK-309 completes as the first did.
    """
    up = telescope
    common = ("--broker", up.url, "--root", root)
    bus = MqttBus(BrokerUrl.parse(up.url), clock=CLOCK)
    await bus.start()
    try:
        async with Remote(bus, "ScriptQueue:2", clock=CLOCK, root=root) as queue:
            items: dict[int, dict[str, object]] = {}
            queue.event("queue").callback = lambda e: items.update({i["index"]: i for i in json.loads(e.data["items"])})
            for _ in range(2):
                result = await asyncio.to_thread(run_cli, "queue", "add-block", "BLOCK-309", *common)
                assert result.returncode == 0, result.stdout + result.stderr
            await until(lambda: sum(1 for i in items.values() if i["state"] in ("DONE", "FAILED")) >= 8, 300)
    finally:
        await bus.close()
    ours = sorted((i for i in items.values() if i["block"] == "BLOCK-309"), key=lambda i: int(str(i["index"])))
    assert [i["state"] for i in ours] == ["DONE"] * 8, [(i["path"], i["state"], i["reason"]) for i in ours]
