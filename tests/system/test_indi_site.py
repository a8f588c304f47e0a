"""A cut-down calibration block through the queue on INDI's own simulators (issue 24).

`obsq up --devices` with ATSpectrograph's wheels, ATCamera and ATDome on indi_simulator_wheel,
indi_simulator_ccd and indi_simulator_dome under indiserver, all in real time; the block goes in
with `obsq queue add-block`: the dome to the flat position, biases with a filter change, darks.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from obsq.csc.acquired import AcquiredImages
from obsq.csc.bus.brokers import MosquittoProcess

from .device_site import run_block_on_devices
from .indi_server import IndiServer

pytestmark = [pytest.mark.system, pytest.mark.timeout(600)]

BLOCK = {
    "name": "cut_down_calibrations_indi",
    "program": "BLOCK-T901",
    "constraints": [],
    "scripts": [
        {"name": "auxtel/atdome/slew_dome.py", "standard": True, "parameters": {"az": 3.0}},
        {"name": "auxtel/take_image_latiss.py", "standard": True,
         "parameters": {"image_type": "BIAS", "nimages": 2, "filter": "Green", "program": "BLOCK-T901"}},
        {"name": "auxtel/take_image_latiss.py", "standard": True,
         "parameters": {"image_type": "DARK", "exp_times": [1.0], "program": "BLOCK-T901"}},
    ],
}  # fmt: skip


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[IndiServer, IndiServer]]:
    """The filters and the camera on one server, the gratings on another (a wheel driver names one device)."""
    pair = (IndiServer(tmp_path / "a", "indi_simulator_wheel", "indi_simulator_ccd", "indi_simulator_dome"),
            IndiServer(tmp_path / "b", "indi_simulator_wheel"))  # fmt: skip
    try:
        for server in pair:
            server.start()
        yield pair
    finally:
        for server in pair:
            server.stop()


async def test_a_cut_down_calibration_block_runs_through_the_queue_on_indi_devices(
    servers: tuple[IndiServer, IndiServer], mosquitto: MosquittoProcess, root: str, tmp_path: Path
) -> None:
    first, second = servers
    wheels = f"filter: '{first.url('Filter Simulator')}', disperser: '{second.url('Filter Simulator')}'"
    devices = (f"ATSpectrograph: {{{wheels}}}\nATCamera: {{camera: '{first.url('CCD Simulator')}'}}\n"
               f"ATDome: {{dome: '{first.url('Dome Simulator')}'}}\n")  # fmt: skip
    data = await run_block_on_devices(devices, BLOCK, "ATSpectrograph,ATCamera,ATDome,ScriptQueue:2", mosquitto.url,
                                      root, tmp_path)  # fmt: skip
    images = AcquiredImages(data / "registry.sqlite3").images()
    assert [(i.imgtype, i.filter) for i in images] == [("BIAS", "Green"), ("BIAS", "Green"), ("DARK", "Green")]
    assert first.get("Filter Simulator.FILTER_SLOT.FILTER_SLOT_VALUE") == "2"  # INDI's slot 2 is Green
    assert float(first.get("Dome Simulator.ABS_DOME_POSITION.DOME_ABSOLUTE_POSITION")) == pytest.approx(3.0, abs=0.5)
