"""A cut-down calibration block through the queue on Alpaca devices obsq did not make (issue 24).

`obsq up --devices` with ATSpectrograph, ATCamera and ATMCS on alpaca-simulators (wheels, a
camera, a telescope) and ATDome on its simulator, all in real time; the block goes in with
`obsq queue add-block` as an operator adds it: the telescope to the flat position (the mount's
slew on the device, the dome's on its simulator), biases with a filter change, darks. Every
script DONE, the frames in the registry with the camera's keywords. No flats: the simulator's
light frames ask Gaia for stars over the network.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from astropy.io import fits

from obsq.csc.acquired import AcquiredImages
from obsq.csc.bench.alpaca import simulator_camera
from obsq.csc.bus.brokers import MosquittoProcess

from .alpaca_sim import AlpacaSimulators
from .device_site import run_block_on_devices
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
               f"ATMCS: {{mount: '{sims.url('telescope', 0)}'}}\n")  # fmt: skip
    members = "ATSpectrograph,ATCamera,ATMCS,ATDome,ScriptQueue:2"
    data = await run_block_on_devices(devices, BLOCK, members, mosquitto.url, root, tmp_path)
    images = AcquiredImages(data / "registry.sqlite3").images()
    assert [(i.imgtype, i.filter) for i in images] == [("BIAS", "SDSSg_65mm")] * 3 + [("DARK", "SDSSg_65mm")] * 2
    assert device_position(sims, 0) == 2  # the wheel itself moved
    assert device(sims, "azimuth") == pytest.approx(188.7, abs=0.1)  # the telescope itself at the flat position
    assert device(sims, "altitude") == pytest.approx(39.0, abs=0.1)
    with fits.open(images[-1].path) as hdus:
        assert hdus[0].header["CAMERA"] == sims.url("camera", 0)
        assert hdus[0].header["PROGRAM"] == "BLOCK-T900"
        assert hdus[1].data.shape == (96, 128)
