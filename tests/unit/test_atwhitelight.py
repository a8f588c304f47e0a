"""ATWhiteLight on virtual time: every bulb-life rule, faults, and the state conformance."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from obsq.csc.atwhitelight.csc import ATWhiteLightCsc
from obsq.csc.atwhitelight.model import ErrorCode, LampBasicState, ShutterState
from obsq.csc.atwhitelight.sim import SimLamp
from obsq.csc.component import AckError
from obsq.csc.core.acks import AckCode
from obsq.csc.core.states import State
from obsq.csc.testing import Rig, check_state_conformance, component_rig


def make(**kwargs: Any) -> ATWhiteLightCsc:
    return ATWhiteLightCsc(driver=SimLamp(kwargs["clock"]), **kwargs)


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async with component_rig(make, "ATWhiteLight") as rig:
        yield rig


def lamp(rig: Rig) -> LampBasicState:
    return LampBasicState(rig.remote.event("lampState").get()["basicState"])


async def lamp_on(rig: Rig) -> None:
    await rig.enable()
    await rig.command("startChiller")
    await rig.command("turnLampOn", {"power": 0})


async def test_state_conformance(rig: Rig) -> None:
    checked = await check_state_conformance(rig.csc, rig.remote)
    assert ("ENABLED", "turnLampOn") not in checked
    assert rig.csc.summary_state == State.OFFLINE


async def test_lamp_refuses_to_turn_on_while_chiller_is_off(rig: Rig) -> None:
    await rig.enable()
    with pytest.raises(AckError, match="the chiller is not running: start it first"):
        await rig.command("turnLampOn")
    assert not rig.csc.rules.commanded_on


async def test_strike_then_warm_up_of_900_s(rig: Rig) -> None:
    await lamp_on(rig)
    assert lamp(rig) == LampBasicState.WARMUP
    state = rig.remote.event("lampState").get()
    assert state is not None
    assert state["setPower"] == 900
    assert state["warmupEndTime"] == pytest.approx(rig.clock.tai() + 900)
    await rig.clock.advance(899)
    assert lamp(rig) == LampBasicState.WARMUP
    await rig.clock.advance(1)
    assert lamp(rig) == LampBasicState.ON


async def test_turning_on_a_lit_lamp_sets_its_power_and_keeps_its_warm_up(rig: Rig) -> None:
    """As Rubin's turnLampOn ("turn the lamp on or change the power"): a set-up run twice completes."""
    await lamp_on(rig)
    warm_end = rig.remote.event("lampState").get()["warmupEndTime"]
    await rig.clock.advance(300)
    ack = await rig.command("turnLampOn", {"power": 910})
    assert ack.result == "the lamp is on; power set to 910 W; warm-up ends in 600 s"
    state = rig.remote.event("lampState").get()
    assert (state["setPower"], state["warmupEndTime"]) == (910, warm_end)
    await rig.clock.advance(600)
    assert lamp(rig) == LampBasicState.ON
    assert (await rig.command("turnLampOn", {"power": 910})).result == "the lamp is on; power set to 910 W"


@pytest.mark.parametrize(("power", "message"), [(700, "outside 800-1200 W"), (1300, "outside 800-1200 W")])
async def test_power_limits(rig: Rig, power: float, message: str) -> None:
    await rig.enable()
    await rig.command("startChiller")
    with pytest.raises(AckError, match=message):
        await rig.command("turnLampOn", {"power": power})


async def test_turning_off_during_warm_up_needs_force(rig: Rig) -> None:
    await lamp_on(rig)
    await rig.clock.advance(300)
    with pytest.raises(AckError, match=r"warming up: 600 s left; use force=true"):
        await rig.command("turnLampOff")
    assert lamp(rig) == LampBasicState.WARMUP
    ack = await rig.command("turnLampOff", {"force": True})
    assert ack.ack == AckCode.COMPLETE
    assert lamp(rig) == LampBasicState.COOLDOWN


async def test_cool_down_refuses_on_chiller_stop_and_standby(rig: Rig) -> None:
    await lamp_on(rig)
    await rig.clock.advance(900)
    await rig.command("turnLampOff")
    assert lamp(rig) == LampBasicState.COOLDOWN
    with pytest.raises(AckError, match=r"cooling down: (899|900) s left before it may be struck again"):
        await rig.command("turnLampOn")
    with pytest.raises(AckError, match=r"cooling down: .* before the chiller may stop"):
        await rig.command("stopChiller")
    await rig.command("disable")
    with pytest.raises(AckError, match=r"cooling down: .* before STANDBY is allowed"):
        await rig.command("standby")
    assert rig.csc.summary_state == State.DISABLED
    await rig.clock.advance(900)
    assert lamp(rig) == LampBasicState.OFF
    await rig.command("enable")
    await rig.command("stopChiller")
    await rig.command("disable")
    await rig.command("standby")
    assert rig.csc.summary_state == State.STANDBY


async def test_standby_refused_while_lamp_on(rig: Rig) -> None:
    await lamp_on(rig)
    await rig.clock.advance(1000)
    await rig.command("disable")
    with pytest.raises(AckError, match="the lamp is on: turn it off before going to STANDBY"):
        await rig.command("standby")


async def test_stop_chiller_refused_while_lamp_on(rig: Rig) -> None:
    await lamp_on(rig)
    with pytest.raises(AckError, match="the lamp is on"):
        await rig.command("stopChiller")


async def test_failed_strikes_are_retried_and_logged(rig: Rig) -> None:
    assert isinstance(rig.csc, ATWhiteLightCsc)
    rig.csc.driver.sim.fail_next_strikes(2)
    await rig.enable()
    await rig.command("startChiller")
    logs = rig.remote.event("logMessage")
    logs.flush()
    ack = await rig.command("turnLampOn")
    assert ack.result.startswith("lamp on at 900 W")
    messages = []
    while True:
        try:
            messages.append((await logs.next(flush=False, timeout_s=0))["message"])
        except TimeoutError:
            break
    assert sum("lamp_did_not_strike" in m for m in messages) == 2
    assert any("attempt=1" in m for m in messages)
    # strikes 1 and 2 waited 25 s each with 60 s between: light after 2 x 85 + 2 s
    assert rig.csc.rules.lit_at == pytest.approx(rig.clock.tai())


async def test_lamp_that_never_strikes_faults(rig: Rig) -> None:
    assert isinstance(rig.csc, ATWhiteLightCsc)
    rig.csc.driver.sim.fail_next_strikes(3)
    await rig.enable()
    await rig.command("startChiller")
    with pytest.raises(AckError, match="did not strike in 3 attempts"):
        await rig.command("turnLampOn")
    assert rig.csc.summary_state == State.FAULT
    assert rig.remote.event("errorCode").get()["errorCode"] == ErrorCode.LAMP_UNEXPECTEDLY_OFF


async def test_chiller_alarm_faults_and_forces_lamp_off(rig: Rig) -> None:
    assert isinstance(rig.csc, ATWhiteLightCsc)
    await lamp_on(rig)
    rig.csc.driver.sim.raise_chiller_alarm(4)
    await rig.clock.advance(1)
    assert rig.csc.summary_state == State.FAULT
    assert rig.remote.event("errorCode").get()["errorCode"] == ErrorCode.CHILLER_ERROR
    assert not rig.csc.rules.commanded_on
    assert lamp(rig) == LampBasicState.COOLDOWN
    with pytest.raises(AckError, match="cooling down"):
        await rig.command("standby")  # FAULT -> STANDBY waits for the cool-down too
    await rig.clock.advance(900)
    await rig.command("standby")
    assert rig.csc.summary_state == State.STANDBY


async def test_stuck_lamp_faults_when_turned_off(rig: Rig) -> None:
    assert isinstance(rig.csc, ATWhiteLightCsc)
    await lamp_on(rig)
    await rig.clock.advance(900)
    rig.csc.driver.sim.stick_lamp_on()
    with pytest.raises(AckError, match="still gives light"):
        await rig.command("turnLampOff")
    assert rig.remote.event("errorCode").get()["errorCode"] == ErrorCode.LAMP_UNEXPECTEDLY_ON


async def test_chiller_converges_to_set_point(rig: Rig) -> None:
    assert isinstance(rig.csc, ATWhiteLightCsc)
    await rig.enable()
    await rig.command("setChillerTemperature", {"temperature": 15})
    with pytest.raises(AckError, match="outside the supply warning limits 5-50 C"):
        await rig.command("setChillerTemperature", {"temperature": 60})
    await rig.command("startChiller")
    start = rig.clock.tai()
    assert rig.csc.driver.sim.supply_temperature(start) == pytest.approx(18.0)
    assert rig.csc.driver.sim.supply_temperature(start + 600) == pytest.approx(15.0, abs=0.05)
    telemetry = rig.remote.telemetry("chillerTemperatures")
    await rig.clock.advance(700)
    sample = await telemetry.next(flush=False, timeout_s=0)
    assert sample["setTemperature"] == 15


async def test_shutter_moves(rig: Rig) -> None:
    await rig.enable()
    ack = await rig.command("openShutter")
    assert ack.result == "shutter open"
    assert rig.remote.event("shutterState").get()["actualState"] == ShutterState.OPEN
    await rig.command("closeShutter")
    assert rig.remote.event("shutterState").get()["actualState"] == ShutterState.CLOSED


async def test_chiller_telemetry_and_a_low_flow_warning(rig: Rig) -> None:
    assert isinstance(rig.csc.driver, SimLamp)
    await rig.enable()
    await rig.command("startChiller")
    await rig.clock.advance(700)  # the supply settles at its 20 C set point
    flow = await rig.remote.telemetry("chillerCoolantFlow").aget(timeout_s=0)
    assert flow == {"flow": 3.6}
    drive = await rig.remote.telemetry("chillerTECDrive").aget(timeout_s=0)
    assert drive["level"] == pytest.approx(8.0, abs=0.5)  # idle: the lamp is off
    await rig.command("turnLampOn", {"power": 0})
    await rig.clock.advance(10)
    lit = rig.remote.telemetry("chillerTECDrive").get()
    assert lit["level"] > 30  # the lamp's heat
    currents = rig.remote.telemetry("chillerTECBankCurrents").get()
    assert currents["bank1"] == pytest.approx(9.0 * lit["level"] / 100, rel=0.01)
    assert all(speed > 15 for speed in rig.remote.telemetry("chillerFanSpeeds").get().values())
    assert rig.remote.event("chillerWarnings").get() == {"warnings": 0}
    rig.csc.driver.sim.restrict_coolant_flow(0.4)  # 1.44 L/min: below the 2 L/min warning
    await rig.clock.advance(1)
    assert rig.remote.event("chillerWarnings").get() == {"warnings": 0x1}  # LOW_COOLANT_FLOW
    assert rig.remote.event("chillerWatchdog").get()["warningsPresent"] is True
    assert rig.csc.summary_state == State.ENABLED  # a warning is not an alarm


async def test_lamp_hours_count_the_time_it_was_on(rig: Rig) -> None:
    await lamp_on(rig)
    assert rig.remote.event("lampOnHours").get() == {"hours": 0.0}
    await rig.clock.advance(3600)
    await rig.command("turnLampOff", {"force": False})
    first = rig.remote.event("lampOnHours").get()["hours"]
    assert first == pytest.approx(1.0, abs=0.01)
    await rig.clock.advance(900)  # cool-down: not counted
    await rig.command("turnLampOn", {"power": 0})
    await rig.clock.advance(1800)
    await rig.command("turnLampOff", {"force": False})
    assert rig.remote.event("lampOnHours").get()["hours"] == pytest.approx(1.5, abs=0.01)


class SlowReadLamp(SimLamp):
    """A lamp whose readings arrive late (a device over the network): each describes the hardware 1 s ago."""

    async def read(self) -> Any:
        reading = await super().read()
        await self.clock.sleep(1.0)
        return reading


async def test_a_reading_taken_before_the_lamp_lit_does_not_fault_it() -> None:
    """Found through Alpaca: the monitor's read in flight across the strike said dark after the lamp lit."""
    async with component_rig(
        lambda **kw: ATWhiteLightCsc(driver=SlowReadLamp(kw["clock"]), **kw), "ATWhiteLight"
    ) as rig:
        for command in ("start", "enable", "startChiller"):
            await rig.command(command)
        await rig.command("turnLampOn", {"power": 0})
        await rig.clock.advance(30)
        assert rig.csc.summary_state == State.ENABLED, rig.remote.event("errorCode").get()
        assert lamp(rig) == LampBasicState.WARMUP
        rig.csc.driver.sim.power_off(rig.clock.tai())  # and a lamp that really goes out is still caught
        await rig.clock.advance(5)
        assert rig.csc.summary_state == State.FAULT
        assert rig.remote.event("errorCode").get()["errorCode"] == ErrorCode.LAMP_UNEXPECTEDLY_OFF
