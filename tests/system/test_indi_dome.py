"""ATDome on INDI's own dome simulator under indiserver (issue 24): a server obsq did not make.

The dome's moves are INDI's ABS_DOME_POSITION, awaited while the driver says Busy; its shutter is
DOME_SHUTTER, obsq's main door; stopMotion is DOME_ABORT_MOTION; the simulator has no home switch,
so the dome keeps its own azimuth and homeAzimuth is refused by name; a server that goes away is a
FAULT naming it, and the component works again once it is back.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from obsq.csc.atdome.csc import DOME_DEVICE_FAILED, ATDomeCsc
from obsq.csc.atdome.indi import IndiDome
from obsq.csc.clock import LoopClock
from obsq.csc.component import AckError, Remote
from obsq.csc.core.states import State
from obsq.csc.indi.client import IndiConnection
from obsq.csc.testing import wait_state

from .device_site import serving
from .indi_server import IndiServer

pytestmark = [pytest.mark.system, pytest.mark.timeout(240)]
DOME = "Dome Simulator"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[IndiServer]:
    indi = IndiServer(tmp_path, "indi_simulator_dome")
    try:
        indi.start()
        yield indi
    finally:
        indi.stop()


@pytest.fixture
async def dome(server: IndiServer) -> AsyncIterator[tuple[ATDomeCsc, Remote]]:
    clock = LoopClock()
    driver = IndiDome(IndiConnection("127.0.0.1", server.port, clock), DOME)
    async with serving(lambda **kw: ATDomeCsc(driver=driver, **kw), "ATDome", clock) as pair:
        yield pair


async def test_the_dome_moves_and_opens_its_shutter_on_indi(dome: tuple[ATDomeCsc, Remote], server: IndiServer) -> None:
    _, remote = dome
    await remote.command("start")
    await remote.command("enable")
    assert remote.event("deviceConnection").get() == {"devices": server.url(DOME), "connected": True, "report": ""}
    with pytest.raises(AckError, match=rf"the dome {server.url(DOME)} cannot find home; it keeps its own azimuth"):
        await remote.command("homeAzimuth")
    ack = await remote.command("moveAzimuth", {"azimuth": 12.5}, timeout_s=120)
    assert ack.result == "at 12.5 deg"
    assert float(server.get(f"{DOME}.ABS_DOME_POSITION.DOME_ABSOLUTE_POSITION")) == pytest.approx(12.5, abs=0.5)
    await remote.command("openShutter", timeout_s=120)
    assert server.get(f"{DOME}.DOME_SHUTTER.SHUTTER_OPEN") == "On"
    with pytest.raises(AckError, match="has no dropout door"):
        await remote.command("moveShutterDropoutDoor", {"open": False})
    await remote.command("closeShutter", timeout_s=120)
    assert server.get(f"{DOME}.DOME_SHUTTER.SHUTTER_CLOSE") == "On"


async def test_stop_motion_aborts_the_indi_dome_part_way(dome: tuple[ATDomeCsc, Remote], server: IndiServer) -> None:
    _, remote = dome
    await remote.command("start")
    await remote.command("enable")
    move = asyncio.ensure_future(remote.command("moveAzimuth", {"azimuth": 170.0}, timeout_s=300))
    await asyncio.sleep(3.0)
    await remote.command("stopMotion")
    with pytest.raises(AckError, match=r"the move to 170 deg was stopped at \d+\.\d+ deg \(stopMotion\)"):
        await move
    where = float(server.get(f"{DOME}.ABS_DOME_POSITION.DOME_ABSOLUTE_POSITION"))
    assert 0.0 < where < 170.0


async def test_a_dome_server_that_goes_away_is_a_fault_naming_it(
    dome: tuple[ATDomeCsc, Remote], server: IndiServer
) -> None:
    _, remote = dome
    await remote.command("start")
    await remote.command("enable")
    server.stop()
    with pytest.raises(AckError, match=r"the move to 40 deg failed: indi://127\.0\.0\.1:\d+"):
        await remote.command("moveAzimuth", {"azimuth": 40.0}, timeout_s=60)
    await wait_state(remote, State.FAULT)
    assert remote.event("errorCode").get()["errorCode"] == DOME_DEVICE_FAILED
    assert remote.event("deviceConnection").get()["connected"] is False
    server.start()
    await remote.command("standby")
    await remote.command("start")
    await remote.command("enable")
    await remote.command("moveAzimuth", {"azimuth": 40.0}, timeout_s=120)
    assert float(server.get(f"{DOME}.ABS_DOME_POSITION.DOME_ABSOLUTE_POSITION")) == pytest.approx(40.0, abs=0.5)
