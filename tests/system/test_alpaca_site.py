"""A cut-down calibration block through the queue on Alpaca devices obsq did not make (issue 24).

`obsq up --devices` with ATSpectrograph, ATCamera and ATMCS on alpaca-simulators (wheels, a
camera, a telescope) and ATDome on its simulator, all in real time; the block goes in with
`obsq queue add-block` as an operator adds it: the telescope to the flat position (the mount's
slew on the device, the dome's on its simulator), biases with a filter change, darks. Every
script DONE, the frames in the registry with the camera's keywords. No flats: the simulator's
light frames ask Gaia for stars over the network.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from astropy.io import fits

from obsq.csc.acquired import AcquiredImages
from obsq.csc.bench.alpaca import simulator_camera
from obsq.csc.bus.brokers import MosquittoProcess
from obsq.csc.clock import LoopClock

from .alpaca_sim import AlpacaSimulators
from .conftest import run_cli, stop_processes
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
    devices = tmp_path / "devices.yaml"
    devices.write_text(
        f"ATSpectrograph: {{filter: '{sims.url('filterwheel', 0)}', disperser: '{sims.url('filterwheel', 1)}'}}\n"
        f"ATCamera: {{camera: '{sims.url('camera', 0)}'}}\nATMCS: {{mount: '{sims.url('telescope', 0)}'}}\n"
    )
    block = tmp_path / "BLOCK-T900.json"
    block.write_text(json.dumps(BLOCK))
    link = ("--broker", mosquitto.url, "--root", root)
    data = tmp_path / "data"
    log = tmp_path / "up.log"
    with log.open("wb") as out:
        up = subprocess.Popen(
            [sys.executable, "-m", "obsq.csc.cli", "up", *link, "--state", "enabled", "--devices", str(devices),
             "--only", "ATSpectrograph,ATCamera,ATMCS,ATDome,ScriptQueue:2", "--data", str(data)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    clock = LoopClock()
    try:
        while "obsq up: ready" not in log.read_text():  # the test's timeout bounds a bring-up that hangs
            assert up.poll() is None, log.read_text()
            await clock.sleep(0.2)
        added = await asyncio.to_thread(run_cli, "queue", "add-block", str(block), *link)
        assert added.returncode == 0, added.stdout + added.stderr
        shown = ""
        while shown.count(" DONE ") < 3:
            assert "FAILED" not in shown, shown
            shown = (await asyncio.to_thread(run_cli, "queue", "show", *link)).stdout
            await clock.sleep(0.5)
    finally:
        stop_processes(up)
    images = AcquiredImages(data / "registry.sqlite3").images()
    assert [(i.imgtype, i.filter) for i in images] == [("BIAS", "SDSSg_65mm")] * 3 + [("DARK", "SDSSg_65mm")] * 2
    assert device_position(sims, 0) == 2  # the wheel itself moved
    assert device(sims, "azimuth") == pytest.approx(188.7, abs=0.1)  # the telescope itself at the flat position
    assert device(sims, "altitude") == pytest.approx(39.0, abs=0.1)
    with fits.open(images[-1].path) as hdus:
        assert hdus[0].header["CAMERA"] == sims.url("camera", 0)
        assert hdus[0].header["PROGRAM"] == "BLOCK-T900"
        assert hdus[1].data.shape == (96, 128)
