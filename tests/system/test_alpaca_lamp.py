"""ATWhiteLight on a real Alpaca CoverCalibrator and Switch: alpaca-simulators' devices (issue 24).

The lamp is the calibrator (CalibratorOn at the brightness the power asks for), its shutter the
cover, its chiller a switch named for it, with the supply temperature and the flow read from
read-only switches; the lamp rules stay obsq's (no strike without the chiller, warm-up before
turning off). Without a chiller device the lamp is struck without one and the chiller's commands
are refused by name; a lamp that stops answering is a FAULT naming it and the call.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from obsq.csc.alpaca.address import parse_address
from obsq.csc.atwhitelight.alpaca import AlpacaLamp
from obsq.csc.atwhitelight.csc import ATWhiteLightCsc
from obsq.csc.atwhitelight.model import ErrorCode
from obsq.csc.clock import LoopClock
from obsq.csc.component import AckError, Remote
from obsq.csc.core.states import State
from obsq.csc.testing import wait_state

from .alpaca_sim import AlpacaSimulators
from .device_site import serving

pytestmark = [pytest.mark.system, pytest.mark.timeout(180)]


def template(kind: str) -> dict[str, Any]:
    import alpaca_simulators

    path = Path(alpaca_simulators.__file__).parent / "config" / "template.yaml"
    return dict(yaml.safe_load(path.read_text())["devices"][kind][0])


def chiller_switch() -> dict[str, Any]:
    def switch(name: str, value: Any, writable: bool, maximum: float) -> dict[str, Any]:
        return {"name": name, "description": name, "canwrite": writable, "canasync": False, "value": value,
                "minimum": 0.0, "maximum": maximum, "step": 0.01}  # fmt: skip

    switches = {0: switch("Chiller power", False, True, 1.0), 1: switch("Supply temperature", 19.25, False, 60.0),
                2: switch("Coolant flow", 3.5, False, 10.0)}  # fmt: skip
    return {**template("switch"), "maxswitch": 3, "switches": switches}


@pytest.fixture
def sims(tmp_path: Path) -> Iterator[AlpacaSimulators]:
    pytest.importorskip("alpaca_simulators", reason="pip install alpaca-simulators (a test extra)")
    calibrator = {**template("covercalibrator"), "calibratorstate": 1}  # present and off
    server = AlpacaSimulators(tmp_path, {"covercalibrator": {0: calibrator}, "switch": {0: chiller_switch()}})
    try:
        server.start()
        yield server
    finally:
        server.stop()


async def lamp_on(sims: AlpacaSimulators, *, chiller: bool) -> AsyncIterator[tuple[ATWhiteLightCsc, Remote]]:
    clock = LoopClock()
    switch = parse_address(sims.url("switch", 0)) if chiller else None
    driver = AlpacaLamp(parse_address(sims.url("covercalibrator", 0)), switch, clock, call_timeout_s=2.0, poll_s=0.1)
    async with serving(
        lambda **kw: ATWhiteLightCsc(driver=driver, **kw), "ATWhiteLight", clock, telemetry=True
    ) as pair:
        yield pair


@pytest.fixture
async def lamp(sims: AlpacaSimulators) -> AsyncIterator[tuple[ATWhiteLightCsc, Remote]]:
    async for pair in lamp_on(sims, chiller=True):
        yield pair


@pytest.fixture
async def bare_lamp(sims: AlpacaSimulators) -> AsyncIterator[tuple[ATWhiteLightCsc, Remote]]:
    async for pair in lamp_on(sims, chiller=False):
        yield pair


def device(sims: AlpacaSimulators, kind: str, member: str) -> Any:
    url = f"http://127.0.0.1:{sims.port}/api/v1/{kind}/0/{member}"
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.load(answer)["Value"]


async def test_the_lamp_and_its_chiller_run_on_the_devices_by_obsq_s_rules(
    lamp: tuple[ATWhiteLightCsc, Remote], sims: AlpacaSimulators
) -> None:
    _, remote = lamp
    await remote.command("start", {"configurationOverride": ""})
    await remote.command("enable")
    with pytest.raises(AckError, match="the chiller is not running: start it first"):
        await remote.command("turnLampOn", {"power": 0})
    assert device(sims, "covercalibrator", "calibratorstate") == 1  # refused by obsq: the lamp never asked
    await remote.command("startChiller")
    assert device(sims, "switch", "getswitch?Id=0") is True
    ack = await remote.command("turnLampOn", {"power": 1200}, timeout_s=60)
    assert ack.result.startswith("lamp on at 1200 W")
    assert device(sims, "covercalibrator", "calibratorstate") == 3  # Ready: the light is on
    assert device(sims, "covercalibrator", "brightness") == 255  # the largest power is the largest brightness
    temperatures = await remote.telemetry("chillerTemperatures").aget(timeout_s=30)
    assert temperatures["supplyTemperature"] == pytest.approx(19.25)  # read from the device's own switch
    assert (await remote.telemetry("chillerCoolantFlow").aget(timeout_s=30)) == {"flow": pytest.approx(3.5)}
    await remote.command("openShutter", timeout_s=30)
    assert device(sims, "covercalibrator", "coverstate") == 3  # the cover is the shutter: open
    with pytest.raises(AckError, match="the chiller"):  # obsq's rule: not with the lamp on
        await remote.command("stopChiller")
    await remote.command("turnLampOff", {"force": True}, timeout_s=30)
    assert device(sims, "covercalibrator", "calibratorstate") == 1
    assert remote.event("lampState").get()["lightDetected"] is False


async def test_a_lamp_without_a_chiller_device_is_struck_without_one(
    bare_lamp: tuple[ATWhiteLightCsc, Remote], sims: AlpacaSimulators
) -> None:
    _, remote = bare_lamp
    await remote.command("start", {"configurationOverride": ""})
    await remote.command("enable")
    assert remote.event("chillerConnected").get() == {"connected": False}
    with pytest.raises(AckError, match=r"the lamp alpaca://127\.0\.0\.1:\d+/covercalibrator/0 has no chiller"):
        await remote.command("startChiller")
    await remote.command("turnLampOn", {"power": 900}, timeout_s=60)
    assert device(sims, "covercalibrator", "brightness") == 191  # 900 of 1200 W: 3/4 of 255
    await remote.command("turnLampOff", {"force": True}, timeout_s=30)


async def test_a_lamp_that_stops_answering_is_a_fault_naming_it(
    bare_lamp: tuple[ATWhiteLightCsc, Remote], sims: AlpacaSimulators
) -> None:
    _, remote = bare_lamp
    await remote.command("start", {"configurationOverride": ""})
    await remote.command("enable")
    sims.pause()
    try:
        with pytest.raises(AckError, match=r"alpaca://127\.0\.0\.1:\d+/covercalibrator/0 .*no answer"):
            await remote.command("turnLampOn", {"power": 900}, timeout_s=60)
        await wait_state(remote, State.FAULT)
        assert remote.event("errorCode").get()["errorCode"] == ErrorCode.LAMP_DISCONNECTED
    finally:
        sims.resume()
    await remote.command("standby")
    await remote.command("start", {"configurationOverride": ""})
    await remote.command("enable")
    await remote.command("turnLampOn", {"power": 900}, timeout_s=60)
    assert device(sims, "covercalibrator", "calibratorstate") == 3
    await remote.command("turnLampOff", {"force": True}, timeout_s=30)
