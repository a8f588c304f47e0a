"""ATSpectrograph's wheels on real Alpaca FilterWheels: alpaca-simulators, a server obsq did not make (issue 24).

The service runs unchanged on its Alpaca driver (the await seam): the slot names are the
device's own, a change is a PUT and polled positions, and a device that hangs, refuses or is
not there is a FAULT naming the device and the call; the component recovers when it is back.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from obsq.csc.alpaca.address import parse_address
from obsq.csc.atspectrograph.alpaca import AlpacaWheel
from obsq.csc.atspectrograph.csc import WHEEL_DEVICE_FAILED, ATSpectrographCsc
from obsq.csc.atspectrograph.devices import DeviceSpectrograph
from obsq.csc.bus.brokers import MosquittoProcess
from obsq.csc.bus.memory import MemoryBroker
from obsq.csc.clock import LoopClock
from obsq.csc.component import AckError, Remote
from obsq.csc.core.states import State
from obsq.csc.testing import unique_root, wait_state

from .alpaca_sim import AlpacaSimulators
from .conftest import run_cli, stop_processes
from .device_site import command_on_devices

pytestmark = [pytest.mark.system, pytest.mark.timeout(180)]

FILTERS = ["empty_1", "SDSSr_65mm", "SDSSg_65mm"]
DISPERSERS = ["empty_1", "holo4_003"]


def wheel(name: str, names: list[str]) -> dict[str, object]:
    return {"name": name, "description": "a test wheel", "driverinfo": "", "driverversion": "1", "interfaceversion": 2,
            "focusoffsets": [0] * len(names), "names": names, "position": 0}  # fmt: skip


@pytest.fixture
def sims(tmp_path: Path) -> Iterator[AlpacaSimulators]:
    wheels = {0: wheel("filters", FILTERS), 1: wheel("gratings", DISPERSERS)}
    server = AlpacaSimulators(tmp_path, {"filterwheel": wheels})
    try:
        server.start()
        yield server
    finally:
        server.stop()


class Site:
    def __init__(self, csc: ATSpectrographCsc, remote: Remote) -> None:
        self.csc = csc
        self.remote = remote


@pytest.fixture
async def site(sims: AlpacaSimulators) -> AsyncIterator[Site]:
    clock = LoopClock()
    driver = DeviceSpectrograph(
        AlpacaWheel("filter", parse_address(sims.url("filterwheel", 0)), clock, call_timeout_s=2.0),
        AlpacaWheel("disperser", parse_address(sims.url("filterwheel", 1)), clock, call_timeout_s=2.0),
    )
    broker, root = MemoryBroker(), unique_root()
    csc = ATSpectrographCsc(driver=driver, bus=broker.client("csc"), clock=clock, root=root)
    remote_bus = broker.client("remote")
    await csc.bus.start()
    await remote_bus.start()
    async with csc, Remote(remote_bus, "ATSpectrograph", clock=clock, root=root) as remote:
        yield Site(csc, remote)


def device_position(sims: AlpacaSimulators, number: int) -> int:
    url = f"http://127.0.0.1:{sims.port}/api/v1/filterwheel/{number}/position"
    with urllib.request.urlopen(url, timeout=5) as answer:
        return int(json.load(answer)["Value"])


async def test_the_wheels_move_on_the_device_and_name_its_slots(site: Site, sims: AlpacaSimulators) -> None:
    await site.remote.command("start")
    await site.remote.command("enable")
    installed = site.remote.event("installed").get()
    assert installed == {"filters": ",".join(FILTERS), "dispersers": ",".join(DISPERSERS)}
    ack = await site.remote.command("changeFilter", {"name": "SDSSg_65mm"})
    assert ack.result == "filter SDSSg_65mm in position"
    assert device_position(sims, 0) == 2  # the device itself was moved
    assert site.remote.event("reportedFilterPosition").get() == {"slot": 2, "name": "SDSSg_65mm"}
    assert site.remote.event("filterInPosition").get() == {"inPosition": True}
    await site.remote.command("changeDisperser", {"disperser": 1})  # Rubin's other way: by slot
    assert device_position(sims, 1) == 1
    with pytest.raises(AckError, match=r"unknown filter 'SDSSz_65mm'; installed: empty_1, SDSSr_65mm, SDSSg_65mm"):
        await site.remote.command("changeFilter", {"name": "SDSSz_65mm"})
    assert device_position(sims, 0) == 2
    assert site.csc.summary_state == State.ENABLED


async def test_a_wheel_that_stops_answering_is_a_fault_naming_it_and_it_recovers(
    site: Site, sims: AlpacaSimulators
) -> None:
    await site.remote.command("start")
    await site.remote.command("enable")
    sims.pause()
    try:
        with pytest.raises(AckError, match=r"filterwheel/0 PUT position: no answer in time"):
            await site.remote.command("changeFilter", {"name": "SDSSr_65mm"})
        await wait_state(site.remote, State.FAULT)
        error = site.remote.event("errorCode").get()
        assert error["errorCode"] == WHEEL_DEVICE_FAILED
        assert f"alpaca://127.0.0.1:{sims.port}/filterwheel/0" in error["errorReport"]
    finally:
        sims.resume()
    await site.remote.command("standby")
    await site.remote.command("start")
    await site.remote.command("enable")
    await site.remote.command("changeFilter", {"name": "SDSSr_65mm"})
    assert device_position(sims, 0) == 1


async def test_a_wheel_that_is_not_there_faults_at_start_naming_it(site: Site, sims: AlpacaSimulators) -> None:
    sims.stop()
    unreachable = r"the wheels could not be reached: alpaca://127\.0\.0\.1:\d+/filterwheel/0 PUT connected: cannot"
    with pytest.raises(AckError, match=unreachable):
        await site.remote.command("start")
    await wait_state(site.remote, State.FAULT)


async def test_a_device_refusal_names_its_alpaca_error(site: Site, sims: AlpacaSimulators) -> None:
    """A slot the device does not have: the simulator's own InvalidValue, with its message, reaches the caller."""
    await site.remote.command("start")
    await site.remote.command("enable")
    site.csc.driver.filter_wheel.names.append("ghost")  # as if the wheel had lost a slot since it was read
    refused = r"PUT position: Alpaca error 1025 \(0x401, InvalidValue\): Position out of range"
    with pytest.raises(AckError, match=refused):
        await site.remote.command("changeFilter", {"name": "ghost"})
    assert site.csc.summary_state == State.FAULT


async def test_obsq_csc_run_drives_the_wheels_named_on_its_command_line(
    sims: AlpacaSimulators, mosquitto: MosquittoProcess, root: str, tmp_path: Path
) -> None:
    """The command line a site runs: `obsq csc run ATSpectrograph --device …`, and `obsq cmd` from another process."""
    devices = {"filter": sims.url("filterwheel", 0), "disperser": sims.url("filterwheel", 1)}
    done = await command_on_devices("ATSpectrograph", devices, mosquitto.url, root, tmp_path,
                                    "changeFilter", "name=SDSSr_65mm")  # fmt: skip
    assert "filter SDSSr_65mm in position" in done.stdout
    assert device_position(sims, 0) == 1


async def test_obsq_up_runs_the_members_its_devices_file_names_on_their_devices(
    sims: AlpacaSimulators, mosquitto: MosquittoProcess, root: str, tmp_path: Path
) -> None:
    """The site's way: `obsq up --devices FILE`; ATSpectrograph on the wheels, ATDome on its simulator."""
    devices = tmp_path / "devices.yaml"
    devices.write_text(f"ATSpectrograph:\n  filter: {sims.url('filterwheel', 0)}\n"
                       f"  disperser: {sims.url('filterwheel', 1)}\n")  # fmt: skip
    link = ("--broker", mosquitto.url, "--root", root)
    refused = await asyncio.to_thread(run_cli, "up", *link, "--devices", str(devices), "--speed", "600")
    assert refused.returncode == 2
    assert "a real device runs in real time: --speed 1, not 600" in refused.stderr
    log = tmp_path / "up.log"
    with log.open("wb") as out:
        up = subprocess.Popen(
            [sys.executable, "-m", "obsq.csc.cli", "up", *link, "--only", "ATSpectrograph,ATDome", "--state", "enabled",
             "--devices", str(devices), "--data", str(tmp_path / "data")],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    try:
        for _ in range(1200):  # bounds a hang only: until the bring-up says it is ready
            if "obsq up: ready" in log.read_text() or up.poll() is not None:
                break
            await asyncio.sleep(0.1)
        assert "obsq up: ready" in log.read_text(), log.read_text()
        done = await asyncio.to_thread(run_cli, "cmd", "ATSpectrograph", "changeFilter", "name=SDSSg_65mm", *link)
        assert done.returncode == 0, done.stdout + done.stderr
        assert device_position(sims, 0) == 2
        dome = await asyncio.to_thread(run_cli, "cmd", "ATDome", "homeAzimuth", *link)
        assert dome.returncode == 0, dome.stdout + dome.stderr  # the simulated dome beside the real wheels
    finally:
        stop_processes(up)
