"""A cut-down calibration block through the queue on INDI's own simulators (issue 24).

`obsq up --devices` with ATSpectrograph's wheels and ATCamera on indi_simulator_wheel and
indi_simulator_ccd under indiserver, the dome and the mount on obsq's simulators, all in real
time; the block goes in with `obsq queue add-block`: biases with a filter change, darks.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from obsq.csc.acquired import AcquiredImages
from obsq.csc.bus.brokers import MosquittoProcess
from obsq.csc.clock import LoopClock

from .conftest import run_cli, stop_processes
from .indi_server import IndiServer

pytestmark = [pytest.mark.system, pytest.mark.timeout(600)]

BLOCK = {
    "name": "cut_down_calibrations_indi",
    "program": "BLOCK-T901",
    "constraints": [],
    "scripts": [
        {"name": "auxtel/take_image_latiss.py", "standard": True,
         "parameters": {"image_type": "BIAS", "nimages": 2, "filter": "Green", "program": "BLOCK-T901"}},
        {"name": "auxtel/take_image_latiss.py", "standard": True,
         "parameters": {"image_type": "DARK", "exp_times": [1.0], "program": "BLOCK-T901"}},
    ],
}  # fmt: skip


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[IndiServer, IndiServer]]:
    """The filters and the camera on one server, the gratings on another (a wheel driver names one device)."""
    pair = (IndiServer(tmp_path / "a", "indi_simulator_wheel", "indi_simulator_ccd"),
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
    devices = tmp_path / "devices.yaml"
    wheels = f"filter: '{first.url('Filter Simulator')}', disperser: '{second.url('Filter Simulator')}'"
    devices.write_text(f"ATSpectrograph: {{{wheels}}}\nATCamera: {{camera: '{first.url('CCD Simulator')}'}}\n")
    block = tmp_path / "BLOCK-T901.json"
    block.write_text(json.dumps(BLOCK))
    link = ("--broker", mosquitto.url, "--root", root)
    data = tmp_path / "data"
    log = tmp_path / "up.log"
    with log.open("wb") as out:
        up = subprocess.Popen(
            [sys.executable, "-m", "obsq.csc.cli", "up", *link, "--state", "enabled", "--devices", str(devices),
             "--only", "ATSpectrograph,ATCamera,ScriptQueue:2", "--data", str(data)],
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
        while shown.count(" DONE ") < 2:
            assert "FAILED" not in shown, shown
            shown = (await asyncio.to_thread(run_cli, "queue", "show", *link)).stdout
            await clock.sleep(0.5)
    finally:
        stop_processes(up)
    images = AcquiredImages(data / "registry.sqlite3").images()
    assert [(i.imgtype, i.filter) for i in images] == [("BIAS", "Green"), ("BIAS", "Green"), ("DARK", "Green")]
    assert first.get("Filter Simulator.FILTER_SLOT.FILTER_SLOT_VALUE") == "2"  # INDI's slot 2 is Green
