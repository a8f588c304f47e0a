"""ATWhiteLight service: the lamp rules (model.py) driving the lamp hardware, awaited (sim.py, alpaca.py).

Commands check the rules first, then carry out their steps through the driver: a strike waits
up to `max_lamp_on_delay` for light and retries after `retry_sleep`, logging each failed strike;
warm-up and cool-down ends are published at the instant they happen. A monitor reads the
hardware and faults the component (and forces the lamp off) on a chiller alarm, on the lamp
running without the chiller, on the lamp unexpectedly on/off, or on a device that fails or stops
answering (LAMP_DISCONNECTED, naming the device and the call). A lamp without a chiller (an
Alpaca CoverCalibrator alone) is struck without one; the chiller's commands are refused by name.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable
from typing import Any, NoReturn, TypeVar

from obsq.csc.atwhitelight.model import (
    ChillerReading,
    ErrorCode,
    LampBasicState,
    LampConfig,
    LampControllerState,
    LampReading,
    LampRules,
    ShutterState,
    WhiteLightDriver,
    chiller_warnings,
)
from obsq.csc.component import BaseCsc, Command
from obsq.csc.core.errors import DeviceError, ExpectedError
from obsq.csc.core.states import State, Transition

T = TypeVar("T")

#: Seconds of wall time between checks of the hardware for faults.
MONITOR_INTERVAL_S = 0.2
#: Shortest real time between telemetry samples, however fast the clock runs.
MIN_TELEMETRY_WALL_S = 0.2


class ATWhiteLightCsc(BaseCsc):
    """The white-light lamp, chiller and shutter."""

    device_fault_codes = frozenset({ErrorCode.LAMP_DISCONNECTED})

    def __init__(self, *, driver: WhiteLightDriver, index: int = 0, **kwargs: Any) -> None:
        super().__init__("ATWhiteLight", index=index, **kwargs)
        self.driver = driver
        self.rules = LampRules(LampConfig())
        self.settings: dict[str, Any] = {}
        self._monitoring = False
        self._connected = False
        #: The hardware as last read (before the first read: dark, shutter unknown, no chiller news).
        self.reading = LampReading(light=False, shutter=ShutterState.UNKNOWN, chiller=None)
        self._read_under: tuple[object, ...] = ()
        for name, handler in (
            ("turnLampOn", self._do_turn_lamp_on),
            ("turnLampOff", self._do_turn_lamp_off),
            ("openShutter", self._do_open_shutter),
            ("closeShutter", self._do_close_shutter),
            ("setChillerTemperature", self._do_set_chiller_temperature),
            ("startChiller", self._do_start_chiller),
            ("stopChiller", self._do_stop_chiller),
        ):
            self.register_command(name, handler)

    # -- state handling ---------------------------------------------------------------------

    def devices(self) -> str:
        return self.driver.device

    async def configure(self, config: dict[str, Any]) -> None:
        self.rules.config = LampConfig.from_config(config)
        self.settings = config
        if self.driver.has_chiller:
            await self._device(self.driver.set_temperature(config["initial_temperature"]), "setting the chiller")

    async def before_transition(self, transition: Transition) -> None:
        if transition.new == State.STANDBY:
            self.rules.check_standby(self.clock.tai())

    async def handle_summary_state(self) -> None:
        state = self.summary_state
        if state in (State.DISABLED, State.ENABLED):
            if not self._connected:
                await self._device(self.driver.connect(), "connecting")
                self._connected = True
                await self.publish_event("lampConnected", {"connected": True})
                await self.publish_event("chillerConnected", {"connected": self.driver.has_chiller})
            if not self._monitoring:
                self._monitoring = True
                self.create_task(self._monitor(), "monitor")
                self.create_task(self._telemetry(), "telemetry")
            await self._publish_status()
            return
        await self._force_lamp_off()
        if state == State.STANDBY and self._connected:
            self._connected = False
            try:
                await self.driver.disconnect()
            except DeviceError as exc:  # leaving service: said, not raised
                self.log.error("lamp_not_disconnected", device=self.driver.device, reason=str(exc))
            await self.publish_event("lampConnected", {"connected": False})
            await self.publish_event("chillerConnected", {"connected": False})

    # -- commands -----------------------------------------------------------------------------

    async def _do_turn_lamp_on(self, command: Command) -> str:
        now = self.clock.tai()
        await self._read()
        chiller = self.reading.chiller.status if self.reading.chiller is not None else None
        power = self.rules.check_turn_on(command.data["power"], now, chiller)
        config = self.rules.config
        if self.rules.commanded_on:
            self.rules.repowered(power)
            await self._publish_lamp_state()
            left = self.rules.warmup_remaining(now)
            return f"the lamp is on; power set to {power:g} W" + (f"; warm-up ends in {left:.0f} s" if left else "")
        await command.in_progress(config.max_strike_s + 2, f"striking at {power:g} W")
        self.rules.strike_started(power)
        await self._publish_lamp_state()
        for attempt in range(1, config.max_retries + 1):
            await self._device(self.driver.power_on(power, config.max_power_w), "striking the lamp")
            if await self._device(self.driver.wait_light(config.max_lamp_on_delay_s), "waiting for light"):
                self.rules.lit(self.clock.tai())
                await self._publish_lamp_state()
                self.create_task(self._publish_at(self.rules.warmup_end()), "warmup_end")
                return f"lamp on at {power:g} W; warm-up ends in {config.warmup_s:g} s"
            await self._device(self.driver.power_off(), "turning off a lamp that did not strike")
            self.log.warning(
                "lamp_did_not_strike", attempt=attempt, attempts=config.max_retries, wait_s=config.max_lamp_on_delay_s
            )
            if attempt < config.max_retries:
                self.log.info("lamp_strike_retry", retry_in_s=config.retry_sleep_s)
                await self.clock.sleep(config.retry_sleep_s)
        self.rules.strike_failed()
        await self._publish_lamp_state(LampBasicState.UNEXPECTEDLY_OFF)
        report = f"the lamp did not strike in {config.max_retries} attempts"
        await self.fault(ErrorCode.LAMP_UNEXPECTEDLY_OFF, report)
        raise ExpectedError(report)

    async def _do_turn_lamp_off(self, command: Command) -> str:
        now = self.clock.tai()
        self.rules.check_turn_off(command.data["force"], now)
        await command.in_progress(self.rules.config.max_lamp_off_delay_s + 2, "turning off")
        if not await self._lamp_off(now):
            report = "the lamp still gives light after being turned off"
            await self.fault(ErrorCode.LAMP_UNEXPECTEDLY_ON, report)
            raise ExpectedError(report)
        return f"lamp off; cool-down ends in {self.rules.config.cooldown_s:g} s"

    async def _lamp_off(self, now: float) -> bool:
        """Power the lamp off and wait for the light to go; whether it went."""
        self.rules.turning_off = True
        try:
            try:
                await self._device(self.driver.power_off(), "turning the lamp off")
            finally:  # commanded off, whether the device heard it or not (a failure is a FAULT saying so)
                self.rules.turned_off(now)
            await self._publish_lamp_state()
            dark = await self._device(self.driver.wait_dark(self.rules.config.max_lamp_off_delay_s), "turning off")
        finally:
            self.rules.turning_off = False
        await self._publish_lamp_state()
        if self.rules.cooldown_end():
            self.create_task(self._publish_at(self.rules.cooldown_end()), "cooldown_end")
        return dark

    async def _force_lamp_off(self) -> None:
        if self.rules.commanded_on or self.rules.striking:
            self.log.warning("lamp_forced_off", state=self.summary_state.name)
            try:
                await self._lamp_off(self.clock.tai())
            except ExpectedError as exc:  # the device failed: the component is in FAULT saying so
                self.log.error("lamp_not_turned_off", device=self.driver.device, reason=str(exc))

    async def _move_shutter(self, command: Command, open_: bool) -> str:
        timeout = self.settings.get("shutter_timeout", 30.0)
        await self._device(self.driver.move_shutter(open_), "moving the shutter")
        await command.in_progress(timeout)
        await self._publish_status()
        await self._device(self.driver.wait_shutter(open_, timeout), "moving the shutter")
        await self._publish_status()
        return "shutter open" if open_ else "shutter closed"

    async def _do_open_shutter(self, command: Command) -> str:
        return await self._move_shutter(command, True)

    async def _do_close_shutter(self, command: Command) -> str:
        return await self._move_shutter(command, False)

    async def _do_set_chiller_temperature(self, command: Command) -> str:
        temperature = command.data["temperature"]
        low, high = self.settings["low_supply_temperature_warning"], self.settings["high_supply_temperature_warning"]
        if not low <= temperature <= high:
            raise ExpectedError(
                f"temperature {temperature:g} C is outside the supply warning limits {low:g}-{high:g} C"
            )
        self._check_chiller()
        await self._device(self.driver.set_temperature(temperature), "setting the chiller")
        return f"set point {temperature:g} C"

    async def _do_start_chiller(self, command: Command) -> None:
        self._check_chiller()
        await self._device(self.driver.start_chiller(), "starting the chiller")
        await self._publish_status()

    async def _do_stop_chiller(self, command: Command) -> None:
        self._check_chiller()
        self.rules.check_stop_chiller(self.clock.tai())
        await self._device(self.driver.stop_chiller(), "stopping the chiller")
        await self._publish_status()

    def _check_chiller(self) -> None:
        if not self.driver.has_chiller:
            raise ExpectedError(f"the lamp {self.driver.device} has no chiller")

    async def _device(self, work: Awaitable[T], what: str) -> T:
        """Await a driver call; a device failure is a FAULT (LAMP_DISCONNECTED) naming the device and `what`."""
        try:
            return await work
        except DeviceError as exc:
            await self._fail(f"{what} failed: {exc}")

    async def _fail(self, report: str) -> NoReturn:
        if self.summary_state != State.FAULT:
            await self.fault(ErrorCode.LAMP_DISCONNECTED, report)
        raise ExpectedError(report)

    async def _read(self) -> LampReading:
        """The hardware now; `_read_under` keeps what the rules were when it was asked (see `_check_faults`)."""
        under = self._rules_state()
        self.reading = await self._device(self.driver.read(), "reading the lamp")
        self._read_under = under
        return self.reading

    def _rules_state(self) -> tuple[object, ...]:
        rules = self.rules
        return (rules.commanded_on, rules.striking, rules.turning_off, rules.lit_at, rules.off_at)

    # -- publishing and monitoring --------------------------------------------------------------

    async def _publish_lamp_state(self, basic: LampBasicState | None = None) -> None:
        now = self.clock.tai()
        if not self.rules.commanded_on:  # while the lamp is on its hours grow: published when it goes off
            await self.publish_event("lampOnHours", {"hours": round(self.rules.on_hours(now), 4)})
        light = (await self._read()).light
        state = basic if basic is not None else self.rules.basic_state(now, light)
        controller = (
            LampControllerState.COOLDOWN
            if self.rules.cooldown_remaining(now) > 0
            else LampControllerState.STANDBY_OR_ON
        )
        await self.publish_event(
            "lampState",
            {
                "basicState": int(state),
                "controllerError": -1,
                "controllerState": int(controller),
                "lightDetected": light,
                "setPower": self.rules.set_power_w,
                "cooldownEndTime": self.rules.cooldown_end() if self.rules.cooldown_remaining(now) > 0 else 0.0,
                "warmupEndTime": self.rules.warmup_end(),
            },
        )

    async def _publish_status(self) -> None:
        await self._publish_lamp_state()
        chiller = self.reading.chiller
        if chiller is not None:
            warnings = chiller_warnings(
                running=chiller.running, flow_l_min=chiller.flow_l_min, supply_c=chiller.supply_c,
                low_c=self.settings.get("low_supply_temperature_warning", 5.0),
                high_c=self.settings.get("high_supply_temperature_warning", 50.0),
            )  # fmt: skip
            await self.publish_event(
                "chillerWatchdog",
                {
                    "controllerState": int(chiller.controller),
                    "pumpRunning": chiller.pump_on,
                    "alarmsPresent": chiller.alarm_level1 != 0,
                    "warningsPresent": warnings != 0,
                },
            )
            await self.publish_event("chillerWarnings", {"warnings": warnings})
            await self.publish_event("chillerAlarms", {"level1": chiller.alarm_level1, "level21": 0, "level22": 0})
        shutter = self.reading.shutter
        await self.publish_event(
            "shutterState", {"commandedState": int(shutter), "actualState": int(shutter), "enabled": True}
        )

    async def _publish_at(self, tai: float) -> None:
        """Publish the lamp state at `tai` (the end of a warm-up or cool-down)."""
        await self.clock.sleep(max(0.0, tai - self.clock.tai()))
        await self._publish_lamp_state()

    async def _monitor(self) -> None:
        wall = self.clock.unscaled()
        while True:
            if self.summary_state in (State.DISABLED, State.ENABLED):
                try:
                    await self._publish_status()
                    await self._check_faults()
                except ExpectedError as exc:  # the device failed: the component is in FAULT saying so
                    self.log.warning("lamp_monitor", reason=str(exc))
            await wall.sleep(MONITOR_INTERVAL_S)

    async def _check_faults(self) -> None:
        if self._read_under != self._rules_state():
            return  # the lamp was struck or turned off while it was read: that reading cannot judge it
        now = self.clock.tai()
        chiller = self.reading.chiller
        basic = self.rules.basic_state(now, self.reading.light)
        lamp_on = self.rules.commanded_on or self.rules.striking
        if chiller is not None and chiller.alarm_level1:
            await self.fault(ErrorCode.CHILLER_ERROR, f"chiller alarm (level1 mask {chiller.alarm_level1})")
        elif chiller is not None and lamp_on and not (chiller.running and chiller.pump_on):
            await self.fault(ErrorCode.NOT_CHILLING_WITH_LAMP_ON, "the lamp is on but the chiller is not running")
        elif basic == LampBasicState.UNEXPECTEDLY_ON:
            await self.fault(ErrorCode.LAMP_UNEXPECTEDLY_ON, "the lamp gives light while commanded off")
        elif basic == LampBasicState.UNEXPECTEDLY_OFF:
            await self.fault(ErrorCode.LAMP_UNEXPECTEDLY_OFF, "the lamp went out while commanded on")

    async def _sample_chiller(self, chiller: ChillerReading) -> None:
        """The chiller's telemetry less what the device does not report (NaN); nothing known: not sent."""
        bank1, bank2 = chiller.tec_currents_a
        topics: dict[str, dict[str, Any]] = {
            "chillerTemperatures": {
                "setTemperature": chiller.set_c, "supplyTemperature": round(chiller.supply_c, 3),
                "returnTemperature": round(chiller.return_c, 3), "ambientTemperature": chiller.ambient_c,
            },
            "chillerCoolantFlow": {"flow": round(chiller.flow_l_min, 3)},
            "chillerFanSpeeds": {f"fan{i}": round(v, 2) for i, v in enumerate(chiller.fans_hz, 1)},
            "chillerTECDrive": {"isCooling": chiller.tec_cooling, "level": round(chiller.tec_level_pct, 2)},
            "chillerTECBankCurrents": {"bank1": round(bank1, 3), "bank2": round(bank2, 3)},
        }  # fmt: skip
        for topic, data in topics.items():
            known = {k: v for k, v in data.items() if not (isinstance(v, float) and math.isnan(v))}
            if any(isinstance(v, float) for v in known.values()):
                await self.publish_telemetry(topic, known)

    async def _telemetry(self) -> None:
        wall = self.clock.unscaled()
        while True:
            if self._connected and self.reading.chiller is not None:
                await self._sample_chiller(self.reading.chiller)
            # the interval is simulated time, but never less than MIN_TELEMETRY_WALL_S of real time
            interval = self.settings.get("telemetry_interval", 7.0)
            await wall.sleep(max(interval / self.clock.speed, MIN_TELEMETRY_WALL_S))

    async def _publish_goodbye(self) -> None:
        await self.driver.close()
        await super()._publish_goodbye()
