"""A cut-down calibration block through the queue on Alpaca devices obsq did not make (issue 24).

`obsq up --devices` with ATSpectrograph, ATCamera, ATMCS and ATDome on alpaca-simulators
(wheels, a camera, a telescope, a dome), all in real time; the block goes in with
`obsq queue add-block` as an operator adds it: the dome homed and its shutter closed, the
telescope and the dome to the flat position (each slew the device's own), biases with a filter
change, darks. Every
script DONE, the frames in the registry with the camera's keywords. No flats: the simulator's
light frames ask Gaia for stars over the network.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from astropy.io import fits

from obsq.csc.acquired import AcquiredImages
from obsq.csc.bench.alpaca import simulator_camera
from obsq.csc.bus.brokers import MosquittoProcess

from .alpaca_sim import AlpacaSimulators
from .device_site import run_block_on_devices
from .test_alpaca_dome import dome_config
from .test_alpaca_mount import device, telescope_config
from .test_alpaca_wheels import DISPERSERS, FILTERS, device_position, wheel

pytestmark = [pytest.mark.system, pytest.mark.timeout(600)]

BLOCK = {
    "name": "cut_down_calibrations",
    "program": "BLOCK-T900",
    "constraints": [],
    "scripts": [
        {"name": "auxtel/prepare_for/flat.py", "standard": True, "parameters": {}},
        {"name": "auxtel/take_image_latiss.py", "standard": True,
         "parameters": {"image_type": "BIAS", "nimages": 3, "filter": "SDSSg_65mm", "program": "BLOCK-T900"}},
        {"name": "auxtel/take_image_latiss.py", "standard": True,
         "parameters": {"image_type": "DARK", "exp_times": [1.0, 1.0], "program": "BLOCK-T900"}},
    ],
}  # fmt: skip


@pytest.fixture
def sims(tmp_path: Path) -> Iterator[AlpacaSimulators]:
    devices = {
        "filterwheel": {0: wheel("filters", FILTERS), 1: wheel("gratings", DISPERSERS)},
        "camera": {0: simulator_camera(128, 96)},
        "telescope": {0: telescope_config()},
        "dome": {0: {**dome_config(), "athome": False, "azimuth": 250.0}},  # it must be homed first
    }
    server = AlpacaSimulators(tmp_path, devices)
    try:
        server.start()
        yield server
    finally:
        server.stop()


async def test_a_cut_down_calibration_block_runs_through_the_queue_on_alpaca_devices(
    sims: AlpacaSimulators, mosquitto: MosquittoProcess, root: str, tmp_path: Path
) -> None:
    wheels = f"filter: '{sims.url('filterwheel', 0)}', disperser: '{sims.url('filterwheel', 1)}'"
    devices = (f"ATSpectrograph: {{{wheels}}}\nATCamera: {{camera: '{sims.url('camera', 0)}'}}\n"
               f"ATMCS: {{mount: '{sims.url('telescope', 0)}'}}\n"
               f"ATDome: {{dome: '{sims.url('dome', 0)}'}}\n")  # fmt: skip
    members = "ATSpectrograph,ATCamera,ATMCS,ATDome,ScriptQueue:2"
    data = await run_block_on_devices(devices, BLOCK, members, mosquitto.url, root, tmp_path)
    images = AcquiredImages(data / "registry.sqlite3").images()
    assert [(i.imgtype, i.filter) for i in images] == [("BIAS", "SDSSg_65mm")] * 3 + [("DARK", "SDSSg_65mm")] * 2
    assert device_position(sims, 0) == 2  # the wheel itself moved
    assert device(sims, "azimuth") == pytest.approx(188.7, abs=0.1)  # the telescope itself at the flat position
    assert device(sims, "altitude") == pytest.approx(39.0, abs=0.1)
    dome = sims.url("dome", 0).replace("alpaca://", "http://").replace("/dome/0", "/api/v1/dome/0")
    assert read(f"{dome}/azimuth") == pytest.approx(3.0)  # homed, then to the flat position
    assert read(f"{dome}/shutterstatus") == 1  # closed
    with fits.open(images[-1].path) as hdus:
        assert hdus[0].header["CAMERA"] == sims.url("camera", 0)
        assert hdus[0].header["PROGRAM"] == "BLOCK-T900"
        assert hdus[1].data.shape == (96, 128)


def read(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.load(answer)["Value"]
