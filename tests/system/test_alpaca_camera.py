"""ATCamera on a real Alpaca Camera: alpaca-simulators' camera, a server obsq did not make (issue 24).

Biases and darks only: the simulator's light frames ask Gaia for stars over the network, and a
test talks to nothing but loopback. The frames are one assembled image with the camera's own
keywords; a camera that stops answering mid-exposure is a FAULT naming it and the call, and
nothing half-written enters the registry.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from obsq.csc.acquired import AcquiredImages
from obsq.csc.alpaca.address import parse_address
from obsq.csc.atcamera.alpaca import AlpacaCamera
from obsq.csc.atcamera.csc import CAMERA_DEVICE_FAILED, ATCameraCsc
from obsq.csc.atcamera.illumination import ObservatoryState
from obsq.csc.atcamera.sim import StaticObservatory
from obsq.csc.bench.alpaca import simulator_camera
from obsq.csc.bus.memory import MemoryBroker
from obsq.csc.cli import main
from obsq.csc.clock import LoopClock
from obsq.csc.component import AckError, Remote
from obsq.csc.core.states import State
from obsq.csc.testing import unique_root, wait_state

from .alpaca_sim import AlpacaSimulators
from .conftest import run_cli

pytestmark = [pytest.mark.system, pytest.mark.timeout(180)]


@pytest.fixture
def sims(tmp_path: Path) -> Iterator[AlpacaSimulators]:
    pytest.importorskip("alpaca_simulators", reason="pip install alpaca-simulators (a test extra)")
    server = AlpacaSimulators(tmp_path, {"camera": {0: simulator_camera(128, 96)}})
    try:
        server.start()
        yield server
    finally:
        server.stop()


class Site:
    def __init__(self, csc: ATCameraCsc, remote: Remote, data: Path) -> None:
        self.csc, self.remote, self.data = csc, remote, data


@pytest.fixture
async def site(sims: AlpacaSimulators, tmp_path: Path) -> AsyncIterator[Site]:
    clock = LoopClock()
    observatory = StaticObservatory(ObservatoryState(now_tai=0.0, filter="Red", disperser="empty_1"))
    driver = AlpacaCamera(parse_address(sims.url("camera", 0)), observatory, clock, call_timeout_s=2.0)
    broker, root = MemoryBroker(), unique_root()
    data = tmp_path / "data"
    csc = ATCameraCsc(driver=driver, data_dir=data, bus=broker.client("csc"), clock=clock, root=root)
    remote_bus = broker.client("remote")
    await csc.bus.start()
    await remote_bus.start()
    async with csc, Remote(remote_bus, "ATCamera", clock=clock, root=root) as remote:
        yield Site(csc, remote, data)


async def test_biases_and_darks_come_from_the_camera_with_its_keywords(site: Site, sims: AlpacaSimulators) -> None:
    await site.remote.command("start")
    await site.remote.command("enable")
    await site.remote.command("takeImages", {"numImages": 3, "expTime": 0, "shutter": False, "imageType": "BIAS"})
    await site.remote.command("takeImages", {"numImages": 1, "expTime": 1.5, "shutter": False, "imageType": "DARK"})
    images = AcquiredImages(site.data / "registry.sqlite3").images()
    assert [i.imgtype for i in images] == ["BIAS", "BIAS", "BIAS", "DARK"]
    with fits.open(images[3].path) as hdus:
        header, pixels = hdus[0].header, hdus[1].data
        assert pixels.shape == (96, 128)  # rows x columns: the camera's own size
        assert pixels.dtype == np.uint16
        assert (header["IMGTYPE"], header["IMAGETYP"], header["EXPTIME"]) == ("DARK", "Dark Frame", 1.5)
        assert header["DARKTIME"] >= 1.5
        assert header["CCD-TEMP"] == -20.0
        assert header["EGAIN"] == 1
        assert (header["XBINNING"], header["YBINNING"]) == (1, 1)
        assert header["CAMERA"] == sims.url("camera", 0)
        assert header["DETSIZE"] == "[1:128,1:96]"
        assert header["FILTER"] == "Red"
        assert "SIMULATE" not in header
    readout = site.remote.event("imageReadoutParameters").get()
    assert (readout["readRows"], readout["readCols"], readout["overCols"]) == (96, 128, 0)
    # the reducer takes the camera's frames as they are: one image, no overscan
    biases = [str(i.path) for i in images[:3]]
    assert main(["reduce", "bias", *biases, "--repo", str(site.data / "repo"), "--json"]) == 0


async def test_a_camera_that_stops_answering_mid_exposure_is_a_fault_and_nothing_is_recorded(
    site: Site, sims: AlpacaSimulators
) -> None:
    await site.remote.command("start")
    await site.remote.command("enable")
    sims.pause()
    try:
        with pytest.raises(AckError, match=r"alpaca://127\.0\.0\.1:\d+/camera/0 (GET|PUT) \w+: no answer in time"):
            await site.remote.command("takeImages", {"numImages": 1, "expTime": 0, "shutter": False,
                                                     "imageType": "BIAS"})  # fmt: skip
        await wait_state(site.remote, State.FAULT)
        assert site.remote.event("errorCode").get()["errorCode"] == CAMERA_DEVICE_FAILED
    finally:
        sims.resume()
    assert AcquiredImages(site.data / "registry.sqlite3").images() == []
    assert not list((site.data / "raw").rglob("*.fits"))  # no file either, half-written or not
    await site.remote.command("standby")
    await site.remote.command("start")
    await site.remote.command("enable")
    await site.remote.command("takeImages", {"numImages": 1, "expTime": 0, "shutter": False, "imageType": "BIAS"})
    assert len(AcquiredImages(site.data / "registry.sqlite3").images()) == 1


def test_obsq_bench_alpaca_measures_against_the_protocol_alone() -> None:
    """The benchmark runs (its figures are in the README; no test asserts a time)."""
    pytest.importorskip("alpaca_simulators", reason="pip install alpaca-simulators (a test extra)")
    done = run_cli("bench", "alpaca", "--images", "2", "--exptime", "0.5", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "obsq/protocol" in done.stdout
