"""ATWhiteLight service: the lamp rules (model.py) driving the lamp hardware (sim.py).

Commands check the rules first, then carry out their steps with real durations on the
injected clock: a strike waits up to `max_lamp_on_delay` for light and retries after
`retry_sleep`, logging each failed strike; warm-up and cool-down ends are published at
the instant they happen. A monitor faults the component (and forces the lamp off) on a
chiller alarm, on the lamp running without the chiller, or on the lamp unexpectedly on/off.
"""

from __future__ import annotations

from typing import Any

from obsq.csc.atwhitelight.model import (
    ErrorCode,
    LampBasicState,
    LampConfig,
    LampControllerState,
    LampRules,
    WhiteLightDriver,
    chiller_warnings,
)
from obsq.csc.component import BaseCsc, Command
from obsq.csc.core.errors import ExpectedError
from obsq.csc.core.states import State, Transition

#: Seconds of wall time between checks of the hardware for faults.
MONITOR_INTERVAL_S = 0.2
#: Shortest real time between telemetry samples, however fast the clock runs.
MIN_TELEMETRY_WALL_S = 0.2


class ATWhiteLightCsc(BaseCsc):
    """The white-light lamp, chiller and shutter."""

    def __init__(self, *, driver: WhiteLightDriver, index: int = 0, **kwargs: Any) -> None:
        super().__init__("ATWhiteLight", index=index, **kwargs)
        self.driver = driver
        self.rules = LampRules(LampConfig())
        self.settings: dict[str, Any] = {}
        self._monitoring = False
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

    async def configure(self, config: dict[str, Any]) -> None:
        self.rules.config = LampConfig.from_config(config)
        self.settings = config
        self.driver.set_temperature(config["initial_temperature"], self.clock.tai())

    async def before_transition(self, transition: Transition) -> None:
        if transition.new == State.STANDBY:
            self.rules.check_standby(self.clock.tai())

    async def handle_summary_state(self) -> None:
        state = self.summary_state
        if state in (State.DISABLED, State.ENABLED):
            if not self.driver.connected:
                self.driver.connect()
                await self.publish_event("lampConnected", {"connected": True})
                await self.publish_event("chillerConnected", {"connected": True})
            if not self._monitoring:
                self._monitoring = True
                self.create_task(self._monitor(), "monitor")
                self.create_task(self._telemetry(), "telemetry")
            await self._publish_status()
            return
        await self._force_lamp_off()
        if state == State.STANDBY and self.driver.connected:
            self.driver.disconnect()
            await self.publish_event("lampConnected", {"connected": False})
            await self.publish_event("chillerConnected", {"connected": False})

    # -- commands -----------------------------------------------------------------------------

    async def _do_turn_lamp_on(self, command: Command) -> str:
        now = self.clock.tai()
        power = self.rules.check_turn_on(command.data["power"], now, self.driver.chiller_status(now))
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
            now = self.clock.tai()
            self.driver.power_on(now)
            appears = self.driver.light_appears_at()
            if appears is not None and appears - now <= config.max_lamp_on_delay_s:
                await self.clock.sleep(appears - now)
                self.rules.lit(self.clock.tai())
                await self._publish_lamp_state()
                self.create_task(self._publish_at(self.rules.warmup_end()), "warmup_end")
                return f"lamp on at {power:g} W; warm-up ends in {config.warmup_s:g} s"
            await self.clock.sleep(config.max_lamp_on_delay_s)
            self.driver.power_off(self.clock.tai())
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
        await self._lamp_off(now)
        if self.driver.light(self.clock.tai()):
            report = "the lamp still gives light after being turned off"
            await self.fault(ErrorCode.LAMP_UNEXPECTEDLY_ON, report)
            raise ExpectedError(report)
        return f"lamp off; cool-down ends in {self.rules.config.cooldown_s:g} s"

    async def _lamp_off(self, now: float) -> None:
        self.rules.turning_off = True
        self.driver.power_off(now)
        self.rules.turned_off(now)
        await self._publish_lamp_state()
        gone = self.driver.light_gone_at()
        wait = (
            self.rules.config.max_lamp_off_delay_s
            if gone is None
            else min(gone - now, self.rules.config.max_lamp_off_delay_s)
        )
        await self.clock.sleep(max(0.0, wait))
        self.rules.turning_off = False
        await self._publish_lamp_state()
        if self.rules.cooldown_end():
            self.create_task(self._publish_at(self.rules.cooldown_end()), "cooldown_end")

    async def _force_lamp_off(self) -> None:
        if self.rules.commanded_on or self.rules.striking:
            self.log.warning("lamp_forced_off", state=self.summary_state.name)
            await self._lamp_off(self.clock.tai())

    async def _move_shutter(self, command: Command, open_: bool) -> str:
        arrives = self.driver.move_shutter(open_, self.clock.tai())
        await command.in_progress(self.settings.get("shutter_timeout", 30.0))
        await self._publish_status()
        await self.clock.sleep(max(0.0, arrives - self.clock.tai()))
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
        self.driver.set_temperature(temperature, self.clock.tai())
        return f"set point {temperature:g} C"

    async def _do_start_chiller(self, command: Command) -> None:
        self.driver.start_chiller(self.clock.tai())
        await self._publish_status()

    async def _do_stop_chiller(self, command: Command) -> None:
        self.rules.check_stop_chiller(self.clock.tai())
        self.driver.stop_chiller(self.clock.tai())
        await self._publish_status()

    # -- publishing and monitoring --------------------------------------------------------------

    async def _publish_lamp_state(self, basic: LampBasicState | None = None) -> None:
        now = self.clock.tai()
        if not self.rules.commanded_on:  # while the lamp is on its hours grow: published when it goes off
            await self.publish_event("lampOnHours", {"hours": round(self.rules.on_hours(now), 4)})
        light = self.driver.light(now)
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
        now = self.clock.tai()
        await self._publish_lamp_state()
        status = self.driver.chiller_status(now)
        warnings = chiller_warnings(
            running=status.running, flow_l_min=self.driver.coolant_flow(now),
            supply_c=self.driver.supply_temperature(now),
            low_c=self.settings.get("low_supply_temperature_warning", 5.0),
            high_c=self.settings.get("high_supply_temperature_warning", 50.0),
        )  # fmt: skip
        await self.publish_event(
            "chillerWatchdog",
            {
                "controllerState": int(self.driver.chiller_controller_state(now)),
                "pumpRunning": status.pump_on,
                "alarmsPresent": status.alarms,
                "warningsPresent": warnings != 0,
            },
        )
        await self.publish_event("chillerWarnings", {"warnings": warnings})
        await self.publish_event("chillerAlarms", {"level1": self.driver.alarm_level1(now), "level21": 0, "level22": 0})
        shutter = self.driver.shutter_state(now)
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
                await self._publish_status()
                await self._check_faults()
            await wall.sleep(MONITOR_INTERVAL_S)

    async def _check_faults(self) -> None:
        now = self.clock.tai()
        status = self.driver.chiller_status(now)
        basic = self.rules.basic_state(now, self.driver.light(now))
        if status.alarms:
            await self.fault(ErrorCode.CHILLER_ERROR, f"chiller alarm (level1 mask {self.driver.alarm_level1(now)})")
        elif (self.rules.commanded_on or self.rules.striking) and not (status.running and status.pump_on):
            await self.fault(ErrorCode.NOT_CHILLING_WITH_LAMP_ON, "the lamp is on but the chiller is not running")
        elif basic == LampBasicState.UNEXPECTEDLY_ON:
            await self.fault(ErrorCode.LAMP_UNEXPECTEDLY_ON, "the lamp gives light while commanded off")
        elif basic == LampBasicState.UNEXPECTEDLY_OFF:
            await self.fault(ErrorCode.LAMP_UNEXPECTEDLY_OFF, "the lamp went out while commanded on")

    async def _sample_chiller(self, now: float) -> None:
        supply = self.driver.supply_temperature(now)
        await self.publish_telemetry("chillerTemperatures", {
            "setTemperature": self.driver.set_temperature_c, "supplyTemperature": round(supply, 3),
            "returnTemperature": round(supply + 0.8, 3), "ambientTemperature": self.driver.ambient_c,
        })  # fmt: skip
        await self.publish_telemetry("chillerCoolantFlow", {"flow": round(self.driver.coolant_flow(now), 3)})
        fans = self.driver.fan_speeds(now)
        await self.publish_telemetry("chillerFanSpeeds", {f"fan{i}": round(v, 2) for i, v in enumerate(fans, 1)})
        cooling, level = self.driver.tec_drive(now)
        await self.publish_telemetry("chillerTECDrive", {"isCooling": cooling, "level": round(level, 2)})
        bank1, bank2 = self.driver.tec_currents(now)
        await self.publish_telemetry("chillerTECBankCurrents", {"bank1": round(bank1, 3), "bank2": round(bank2, 3)})

    async def _telemetry(self) -> None:
        wall = self.clock.unscaled()
        while True:
            if self.driver.connected:
                now = self.clock.tai()
                await self._sample_chiller(now)
            # the interval is simulated time, but never less than MIN_TELEMETRY_WALL_S of real time
            interval = self.settings.get("telemetry_interval", 7.0)
            await wall.sleep(max(interval / self.clock.speed, MIN_TELEMETRY_WALL_S))
