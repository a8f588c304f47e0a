"""ATWhiteLight on INDI's own light panel simulator under indiserver (issue 24).

The lamp is the panel: the intensity the power asks for, then FLAT_LIGHT_ON; the lamp rules stay
obsq's (warm-up before turning off); the panel has no shutter and no chiller, whose commands are
refused naming it; a server that goes away is a FAULT naming it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from obsq.csc.atwhitelight.csc import ATWhiteLightCsc
from obsq.csc.atwhitelight.indi import IndiLamp
from obsq.csc.atwhitelight.model import ErrorCode
from obsq.csc.clock import LoopClock
from obsq.csc.component import AckError, Remote
from obsq.csc.core.states import State
from obsq.csc.indi.client import IndiConnection
from obsq.csc.testing import wait_state

from .device_site import serving
from .indi_server import IndiServer

pytestmark = [pytest.mark.system, pytest.mark.timeout(240)]
PANEL = "Light Panel Simulator"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[IndiServer]:
    indi = IndiServer(tmp_path, "indi_simulator_lightpanel")
    try:
        indi.start()
        yield indi
    finally:
        indi.stop()


@pytest.fixture
async def lamp(server: IndiServer) -> AsyncIterator[tuple[ATWhiteLightCsc, Remote]]:
    clock = LoopClock()
    driver = IndiLamp(IndiConnection("127.0.0.1", server.port, clock), PANEL)
    async with serving(lambda **kw: ATWhiteLightCsc(driver=driver, **kw), "ATWhiteLight", clock) as pair:
        yield pair


async def test_the_lamp_is_the_indi_panel_by_obsq_s_rules(
    lamp: tuple[ATWhiteLightCsc, Remote], server: IndiServer
) -> None:
    _, remote = lamp
    await remote.command("start")
    await remote.command("enable")
    assert remote.event("chillerConnected").get() == {"connected": False}
    with pytest.raises(AckError, match=rf"the lamp {server.url(PANEL)} has no chiller"):
        await remote.command("startChiller")
    ack = await remote.command("turnLampOn", {"power": 900}, timeout_s=60)
    assert ack.result.startswith("lamp on at 900 W")
    assert server.get(f"{PANEL}.FLAT_LIGHT_CONTROL.FLAT_LIGHT_ON") == "On"
    assert float(server.get(f"{PANEL}.FLAT_LIGHT_INTENSITY.FLAT_LIGHT_INTENSITY_VALUE")) > 0
    with pytest.raises(AckError, match="has no shutter"):
        await remote.command("openShutter")
    with pytest.raises(AckError, match="the lamp is warming up"):  # obsq's rule, the device never asked
        await remote.command("turnLampOff", {"force": False})
    assert server.get(f"{PANEL}.FLAT_LIGHT_CONTROL.FLAT_LIGHT_ON") == "On"
    await remote.command("turnLampOff", {"force": True}, timeout_s=30)
    assert server.get(f"{PANEL}.FLAT_LIGHT_CONTROL.FLAT_LIGHT_OFF") == "On"


async def test_a_panel_server_that_goes_away_is_a_fault_naming_it(
    lamp: tuple[ATWhiteLightCsc, Remote], server: IndiServer
) -> None:
    _, remote = lamp
    await remote.command("start")
    await remote.command("enable")
    server.stop()
    with pytest.raises(AckError, match=r"indi://127\.0\.0\.1:\d+"):
        await remote.command("turnLampOn", {"power": 900}, timeout_s=60)
    await wait_state(remote, State.FAULT)
    assert remote.event("errorCode").get()["errorCode"] == ErrorCode.LAMP_DISCONNECTED
    assert remote.event("deviceConnection").get()["connected"] is False
