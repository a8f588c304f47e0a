"""ATDome on a real Alpaca Dome: alpaca-simulators' dome, a server obsq did not make (issue 24).

The dome's own slews (4 s each in this simulator) are awaited until it says it has stopped;
stopMotion is AbortSlew and a read of where it got to; its one shutter is obsq's main door and
the dropout door, which Alpaca has not, is refused by name; a dome that stops answering is a
FAULT naming it and the call, and the component works again once the dome answers.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from obsq.csc.alpaca.address import parse_address
from obsq.csc.atdome.alpaca import AlpacaDome
from obsq.csc.atdome.csc import DOME_DEVICE_FAILED, ATDomeCsc
from obsq.csc.clock import LoopClock
from obsq.csc.component import AckError, Remote
from obsq.csc.core.states import State
from obsq.csc.testing import wait_state

from .alpaca_sim import AlpacaSimulators
from .device_site import serving

pytestmark = [pytest.mark.system, pytest.mark.timeout(180)]


def dome_config() -> dict[str, Any]:
    """The simulator's own template dome (at home, shutter closed, as it comes)."""
    import alpaca_simulators

    template = Path(alpaca_simulators.__file__).parent / "config" / "template.yaml"
    return dict(yaml.safe_load(template.read_text())["devices"]["dome"][0])


@pytest.fixture
def sims(tmp_path: Path) -> Iterator[AlpacaSimulators]:
    pytest.importorskip("alpaca_simulators", reason="pip install alpaca-simulators (a test extra)")
    server = AlpacaSimulators(tmp_path, {"dome": {0: dome_config()}})
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
async def dome(sims: AlpacaSimulators) -> AsyncIterator[tuple[ATDomeCsc, Remote]]:
    clock = LoopClock()
    driver = AlpacaDome(parse_address(sims.url("dome", 0)), clock, call_timeout_s=2.0, poll_s=0.1)
    async with serving(lambda **kw: ATDomeCsc(driver=driver, **kw), "ATDome", clock, telemetry=True) as pair:
        yield pair


def device(sims: AlpacaSimulators, member: str) -> Any:
    url = f"http://127.0.0.1:{sims.port}/api/v1/dome/0/{member}"
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.load(answer)["Value"]


async def test_the_dome_moves_homes_and_opens_its_one_shutter_on_the_device(
    dome: tuple[ATDomeCsc, Remote], sims: AlpacaSimulators
) -> None:
    _, remote = dome
    await remote.command("start")
    await remote.command("enable")
    assert remote.event("azimuthPosition").get() == {"azimuth": 0.0, "homed": True}  # it starts at home
    ack = await remote.command("moveAzimuth", {"azimuth": 93.5}, timeout_s=120)
    assert ack.result == "at 93.5 deg"
    assert device(sims, "azimuth") == pytest.approx(93.5)
    assert remote.event("azimuthInPosition").get() == {"inPosition": True}
    samples = remote.telemetry("position").get()
    assert samples["azimuthPosition"] == pytest.approx(93.5)
    assert "dropoutDoorOpeningPercentage" not in samples  # the door it has not is not reported
    await remote.command("homeAzimuth", timeout_s=120)
    assert device(sims, "athome") is True
    assert device(sims, "azimuth") == pytest.approx(0.0)

    assert (await remote.command("openShutter", timeout_s=60)).result == "the shutter open"
    assert device(sims, "shutterstatus") == 0  # ASCOM ShutterState.Open
    assert remote.event("mainDoorState").get() == {"state": 2}  # OPENED
    assert remote.event("shutterInPosition").get() == {"inPosition": True}
    with pytest.raises(AckError, match=r"dome alpaca://127\.0\.0\.1:\d+/dome/0 has no dropout door"):
        await remote.command("moveShutterDropoutDoor", {"open": False})
    await remote.command("closeShutter", timeout_s=60)
    assert device(sims, "shutterstatus") == 1


async def test_stop_motion_aborts_the_device_s_slew_where_it_is(
    dome: tuple[ATDomeCsc, Remote], sims: AlpacaSimulators
) -> None:
    _, remote = dome
    await remote.command("start")
    await remote.command("enable")
    move = asyncio.ensure_future(remote.command("moveAzimuth", {"azimuth": 200.0}, timeout_s=120))
    for _ in range(100):
        if device(sims, "slewing"):
            break
        await asyncio.sleep(0.05)
    await remote.command("stopMotion")
    with pytest.raises(AckError, match=r"the move to 200 deg was stopped at 0\.00 deg \(stopMotion\)"):
        await move
    assert device(sims, "slewing") is False  # AbortSlew reached the device
    assert remote.event("azimuthCommandedState").get()["commandedState"] == 4  # STOP


async def test_a_dome_that_stops_answering_is_a_fault_naming_it(
    dome: tuple[ATDomeCsc, Remote], sims: AlpacaSimulators
) -> None:
    _, remote = dome
    await remote.command("start")
    await remote.command("enable")
    sims.pause()
    try:
        with pytest.raises(AckError, match=r"the move to 30 deg failed: alpaca://127\.0\.0\.1:\d+/dome/0 .*no answer"):
            await remote.command("moveAzimuth", {"azimuth": 30.0}, timeout_s=60)
        await wait_state(remote, State.FAULT)
        assert remote.event("errorCode").get()["errorCode"] == DOME_DEVICE_FAILED
        connection = remote.event("deviceConnection").get()
        assert connection["devices"] == sims.url("dome", 0)
        assert connection["connected"] is False
        assert "PUT slewtoazimuth: no answer" in connection["report"]
    finally:
        sims.resume()
    await remote.command("standby")
    await remote.command("start")
    await remote.command("enable")
    if not remote.event("azimuthPosition").get()["homed"]:  # the late slew left home: home again, as Rubin's
        await remote.command("homeAzimuth", timeout_s=120)
    await remote.command("moveAzimuth", {"azimuth": 30.0}, timeout_s=120)
    assert device(sims, "azimuth") == pytest.approx(30.0)
    assert remote.event("deviceConnection").get() == {"devices": sims.url("dome", 0), "connected": True, "report": ""}
