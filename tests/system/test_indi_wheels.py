"""ATSpectrograph's wheels on INDI: indi_simulator_wheel under indiserver, INDI's own simulator (issue 24).

The same service and seam as on Alpaca: the slot names are the device's (INDI's FILTER_NAME),
a change is a FILTER_SLOT request answered Busy then Ok, INDI's slots count from 1 and obsq's
from 0; a server that goes away is a FAULT naming it, and the component recovers when it is back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from obsq.csc.atspectrograph.csc import WHEEL_DEVICE_FAILED, ATSpectrographCsc
from obsq.csc.atspectrograph.devices import DeviceSpectrograph
from obsq.csc.atspectrograph.indi import IndiWheel
from obsq.csc.bus.brokers import MosquittoProcess
from obsq.csc.bus.memory import MemoryBroker
from obsq.csc.clock import LoopClock
from obsq.csc.component import AckError, Remote
from obsq.csc.core.states import State
from obsq.csc.indi.client import IndiConnection
from obsq.csc.testing import unique_root, wait_state

from .device_site import command_on_devices
from .indi_server import IndiServer

pytestmark = [pytest.mark.system, pytest.mark.timeout(180)]

WHEEL = "Filter Simulator"
NAMES = "Red,Green,Blue,H_Alpha,SII,OIII,LPR,Luminance"


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[IndiServer, IndiServer]]:
    """Two servers, each with INDI's simulated wheel: the filters and the gratings."""
    pair = (IndiServer(tmp_path / "filters", "indi_simulator_wheel"),
            IndiServer(tmp_path / "gratings", "indi_simulator_wheel"))  # fmt: skip
    try:
        for server in pair:
            server.start()
        yield pair
    finally:
        for server in pair:
            server.stop()


@pytest.fixture
async def spectrograph(servers: tuple[IndiServer, IndiServer]) -> AsyncIterator[tuple[ATSpectrographCsc, Remote]]:
    clock = LoopClock()
    filters, gratings = servers
    driver = DeviceSpectrograph(
        IndiWheel("filter", IndiConnection("127.0.0.1", filters.port, clock), WHEEL),
        IndiWheel("disperser", IndiConnection("127.0.0.1", gratings.port, clock), WHEEL),
    )
    broker, root = MemoryBroker(), unique_root()
    csc = ATSpectrographCsc(driver=driver, bus=broker.client("csc"), clock=clock, root=root)
    remote_bus = broker.client("remote")
    await csc.bus.start()
    await remote_bus.start()
    async with csc, Remote(remote_bus, "ATSpectrograph", clock=clock, root=root) as remote:
        yield csc, remote


async def test_the_wheels_move_on_indi_and_name_its_slots(
    spectrograph: tuple[ATSpectrographCsc, Remote], servers: tuple[IndiServer, IndiServer]
) -> None:
    _, remote = spectrograph
    filters, gratings = servers
    await remote.command("start")
    await remote.command("enable")
    assert remote.event("installed").get() == {"filters": NAMES, "dispersers": NAMES}
    ack = await remote.command("changeFilter", {"name": "Blue"})
    assert ack.result == "filter Blue in position"
    assert remote.event("reportedFilterPosition").get() == {"slot": 2, "name": "Blue"}
    # INDI's own client reads the device: its slot 3 is obsq's slot 2
    assert filters.get(f"{WHEEL}.FILTER_SLOT.FILTER_SLOT_VALUE") == "3"
    await remote.command("changeDisperser", {"disperser": 3})  # Rubin's schema: slots 0-3
    assert gratings.get(f"{WHEEL}.FILTER_SLOT.FILTER_SLOT_VALUE") == "4"
    with pytest.raises(AckError, match="unknown filter 'SDSSr_65mm'; installed: Red, Green, Blue"):
        await remote.command("changeFilter", {"name": "SDSSr_65mm"})


async def test_an_indi_server_that_goes_away_is_a_fault_naming_it_and_it_recovers(
    spectrograph: tuple[ATSpectrographCsc, Remote], servers: tuple[IndiServer, IndiServer]
) -> None:
    _, remote = spectrograph
    filters, _ = servers
    await remote.command("start")
    await remote.command("enable")
    filters.stop()
    with pytest.raises(AckError, match=rf"indi://127\.0\.0\.1:{filters.port}"):
        await remote.command("changeFilter", {"name": "Green"})
    await wait_state(remote, State.FAULT)
    error = remote.event("errorCode").get()
    assert error["errorCode"] == WHEEL_DEVICE_FAILED
    assert f"indi://127.0.0.1:{filters.port}" in error["errorReport"]
    await remote.command("standby")
    with pytest.raises(AckError, match=r"the wheels could not be reached: .*cannot connect"):
        await remote.command("start")  # still away: start says so, and the component is FAULT again
    filters.start()  # back, on the same port
    await remote.command("standby")
    await remote.command("start")
    await remote.command("enable")
    await remote.command("changeFilter", {"name": "Green"})
    assert filters.get(f"{WHEEL}.FILTER_SLOT.FILTER_SLOT_VALUE") == "2"


async def test_obsq_csc_run_drives_indi_wheels_named_on_its_command_line(
    servers: tuple[IndiServer, IndiServer], mosquitto: MosquittoProcess, root: str, tmp_path: Path
) -> None:
    filters, gratings = servers
    devices = {"filter": filters.url(WHEEL), "disperser": gratings.url(WHEEL)}
    await command_on_devices("ATSpectrograph", devices, mosquitto.url, root, tmp_path, "changeFilter", "name=OIII")
    assert filters.get(f"{WHEEL}.FILTER_SLOT.FILTER_SLOT_VALUE") == "6"
