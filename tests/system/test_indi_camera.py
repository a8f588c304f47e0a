"""ATCamera on INDI: indi_simulator_ccd under indiserver, INDI's own simulator (issue 24).

The image types are INDI's (CCD_FRAME_TYPE), the frame comes as a FITS BLOB in the XML stream;
a server that goes away mid-exposure is a FAULT naming it, and nothing enters the registry.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from obsq.csc.acquired import AcquiredImages
from obsq.csc.atcamera.csc import CAMERA_DEVICE_FAILED, ATCameraCsc
from obsq.csc.atcamera.illumination import ObservatoryState
from obsq.csc.atcamera.indi import IndiCamera
from obsq.csc.atcamera.sim import StaticObservatory
from obsq.csc.bus.memory import MemoryBroker
from obsq.csc.clock import LoopClock
from obsq.csc.component import AckError, Remote
from obsq.csc.core.states import State
from obsq.csc.indi.client import IndiConnection
from obsq.csc.testing import unique_root, wait_state

from .indi_server import IndiServer

pytestmark = [pytest.mark.system, pytest.mark.timeout(180)]

CCD = "CCD Simulator"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[IndiServer]:
    ccd = IndiServer(tmp_path / "indi", "indi_simulator_ccd")
    try:
        ccd.start()
        yield ccd
    finally:
        ccd.stop()


@pytest.fixture
async def camera(server: IndiServer, tmp_path: Path) -> AsyncIterator[tuple[ATCameraCsc, Remote, Path]]:
    clock = LoopClock()
    observatory = StaticObservatory(ObservatoryState(now_tai=0.0, filter="Red", disperser="empty_1"))
    driver = IndiCamera(IndiConnection("127.0.0.1", server.port, clock), CCD, observatory)
    broker, root, data = MemoryBroker(), unique_root(), tmp_path / "data"
    csc = ATCameraCsc(driver=driver, data_dir=data, bus=broker.client("csc"), clock=clock, root=root)
    remote_bus = broker.client("remote")
    await csc.bus.start()
    await remote_bus.start()
    async with csc, Remote(remote_bus, "ATCamera", clock=clock, root=root) as remote:
        yield csc, remote, data


async def test_biases_and_darks_come_from_the_indi_ccd(
    camera: tuple[ATCameraCsc, Remote, Path], server: IndiServer
) -> None:
    _, remote, data = camera
    await remote.command("start")
    await remote.command("enable")
    await remote.command("takeImages", {"numImages": 2, "expTime": 0, "shutter": False, "imageType": "BIAS"})
    assert server.get(f"{CCD}.CCD_FRAME_TYPE.FRAME_BIAS") == "On"  # INDI's own image type was set
    await remote.command("takeImages", {"numImages": 1, "expTime": 1.0, "shutter": False, "imageType": "DARK"})
    assert server.get(f"{CCD}.CCD_FRAME_TYPE.FRAME_DARK") == "On"
    images = AcquiredImages(data / "registry.sqlite3").images()
    assert [i.imgtype for i in images] == ["BIAS", "BIAS", "DARK"]
    with fits.open(images[-1].path) as hdus:
        header, pixels = hdus[0].header, hdus[1].data
        assert pixels.shape == (1024, 1280)  # rows x columns: the simulator's 1280 x 1024 sensor
        assert pixels.dtype == np.uint16
        assert header["CAMERA"] == server.url(CCD)
        assert "CCD-TEMP" in header  # from INDI's own FITS header
        assert header["EXPTIME"] == 1.0


async def test_an_indi_server_gone_mid_exposure_is_a_fault_and_nothing_is_recorded(
    camera: tuple[ATCameraCsc, Remote, Path], server: IndiServer
) -> None:
    _, remote, data = camera
    await remote.command("start")
    await remote.command("enable")
    dark = {"numImages": 1, "expTime": 5.0, "shutter": False, "imageType": "DARK"}
    pending = asyncio.ensure_future(remote.command("takeImages", dark))
    await LoopClock().sleep(1.5)  # mid-exposure
    server.stop()
    with pytest.raises(AckError, match=rf"indi://127\.0\.0\.1:{server.port}"):
        await pending
    await wait_state(remote, State.FAULT)
    assert remote.event("errorCode").get()["errorCode"] == CAMERA_DEVICE_FAILED
    assert AcquiredImages(data / "registry.sqlite3").images() == []
