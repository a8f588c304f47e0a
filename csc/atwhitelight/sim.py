"""Simulated lamp, chiller and shutter: physics as functions of time, no asyncio.

- The chiller's supply temperature relaxes exponentially to its set point (time constant
  `chiller_tau_s`) while it runs, and to the ambient temperature while it is stopped.
- The lamp gives light `strike_delay_s` after power is applied (unless a strike is made to
  fail) and stops `off_delay_s` after power is removed.
- The shutter takes `shutter_travel_s` to move; it reads UNKNOWN while moving.
- While the chiller runs its pump moves `nominal_flow_l_min` of coolant; the thermo-electric
  coolers are driven in proportion to the supply's distance from the set point plus the lamp's
  heat, cooling when the supply is warmer than the set point; the fans follow the drive.

Faults are injected through the named methods at the bottom, never by touching attributes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from obsq.csc.atwhitelight.model import (
    ChillerControllerState,
    ChillerReading,
    ChillerStatus,
    LampReading,
    ShutterState,
)
from obsq.csc.clock import Clock


@dataclass
class _Relaxation:
    """A temperature relaxing from `start` at `t0` towards `target` with time constant `tau`."""

    t0: float
    start: float
    target: float
    tau: float

    def at(self, now: float) -> float:
        return self.target + (self.start - self.target) * math.exp(-max(0.0, now - self.t0) / self.tau)


class SimWhiteLight:
    """The hardware behind ATWhiteLight, simulated."""

    strike_delay_s = 2.0
    off_delay_s = 0.5
    shutter_travel_s = 3.0
    chiller_tau_s = 120.0
    nominal_flow_l_min = 3.6
    #: TEC drive (%) the lit lamp's heat needs, and per degree C of supply error.
    lamp_load_pct, idle_load_pct, drive_per_degree_pct = 35.0, 8.0, 20.0
    tec_full_current_a = 9.0

    def __init__(self, ambient_c: float = 18.0) -> None:
        self.ambient_c = ambient_c
        self.connected = False
        self.chiller_running = False
        self.set_temperature_c = 20.0
        self._supply = _Relaxation(0.0, ambient_c, ambient_c, self.chiller_tau_s)
        self._alarm_level1 = 0
        self._alarm_after_start_s: float | None = None
        self._alarm_at: float | None = None
        self._powered = False
        self._light_from: float | None = None
        self._light_until: float | None = None
        self._failing_strikes = 0
        self._stuck_on = False
        self._shutter_open = False
        self._shutter_arrives = 0.0
        self._flow_fraction = 1.0

    # -- connection -----------------------------------------------------------------------

    def connect(self) -> None:
        self.connected = True

    def disconnect(self) -> None:
        self.connected = False

    # -- chiller --------------------------------------------------------------------------

    def alarm_level1(self, now: float) -> int:
        """The level-1 alarm mask at `now` (an injected alarm may be due by then)."""
        if self._alarm_at is not None and now >= self._alarm_at:
            self._alarm_level1 |= 1
            self._alarm_at = None
        return self._alarm_level1

    def chiller_status(self, now: float) -> ChillerStatus:
        return ChillerStatus(
            running=self.chiller_running, pump_on=self.chiller_running, alarms=self.alarm_level1(now) != 0
        )

    def chiller_controller_state(self, now: float) -> ChillerControllerState:
        if self.alarm_level1(now):
            return ChillerControllerState.SAFETY
        return ChillerControllerState.RUN if self.chiller_running else ChillerControllerState.STANDBY

    def supply_temperature(self, now: float) -> float:
        return self._supply.at(now)

    def coolant_flow(self, now: float) -> float:
        return self.nominal_flow_l_min * self._flow_fraction if self.chiller_running else 0.0

    def tec_drive(self, now: float) -> tuple[bool, float]:
        if not self.chiller_running:
            return False, 0.0
        error = self.supply_temperature(now) - self.set_temperature_c
        load = self.lamp_load_pct if self.light(now) else self.idle_load_pct
        return error >= 0.0, min(100.0, load + self.drive_per_degree_pct * abs(error))

    def tec_currents(self, now: float) -> tuple[float, float]:
        level = self.tec_drive(now)[1]
        current = self.tec_full_current_a * level / 100.0
        return current, current * 0.97  # the two banks are not quite matched

    def fan_speeds(self, now: float) -> tuple[float, float, float, float]:
        if not self.chiller_running:
            return 0.0, 0.0, 0.0, 0.0
        speed = 15.0 + 0.3 * self.tec_drive(now)[1]
        return speed, speed, speed * 0.98, speed * 1.02

    def _relax(self, now: float, target: float) -> None:
        self._supply = _Relaxation(now, self._supply.at(now), target, self.chiller_tau_s)

    def start_chiller(self, now: float) -> None:
        self.chiller_running = True
        self._relax(now, self.set_temperature_c)
        if self._alarm_after_start_s is not None:
            self._alarm_at = now + self._alarm_after_start_s

    def stop_chiller(self, now: float) -> None:
        self.chiller_running = False
        self._relax(now, self.ambient_c)

    def set_temperature(self, temperature_c: float, now: float) -> None:
        self.set_temperature_c = temperature_c
        if self.chiller_running:
            self._relax(now, temperature_c)

    # -- lamp -----------------------------------------------------------------------------

    def power_on(self, now: float) -> None:
        """Apply power: the lamp strikes after strike_delay_s, unless this strike is made to fail."""
        self._powered = True
        self._light_until = None
        if self._failing_strikes > 0:
            self._failing_strikes -= 1
            self._light_from = None
        else:
            self._light_from = now + self.strike_delay_s

    def power_off(self, now: float) -> None:
        self._powered = False
        if self._stuck_on:
            return
        self._light_until = now + self.off_delay_s if self.light(now) else now

    def light(self, now: float) -> bool:
        if self._light_from is None or now < self._light_from:
            return False
        return self._light_until is None or now < self._light_until

    def light_appears_at(self) -> float | None:
        """When light will appear after the last power_on (None if this strike fails)."""
        return self._light_from if self._powered else None

    def light_gone_at(self) -> float | None:
        return self._light_until

    # -- shutter --------------------------------------------------------------------------

    def move_shutter(self, open_: bool, now: float) -> float:
        """Start moving; return when it arrives."""
        if open_ != self._shutter_open:
            self._shutter_open = open_
            self._shutter_arrives = now + self.shutter_travel_s
        return self._shutter_arrives

    def shutter_state(self, now: float) -> ShutterState:
        if now < self._shutter_arrives:
            return ShutterState.UNKNOWN
        return ShutterState.OPEN if self._shutter_open else ShutterState.CLOSED

    # -- fault injection (named hooks) -----------------------------------------------------

    def fail_next_strikes(self, count: int) -> None:
        """The next `count` strikes give no light (the lamp-fails-to-strike contingency)."""
        self._failing_strikes = count

    def raise_chiller_alarm(self, level1: int = 1) -> None:
        """A chiller alarm (bit mask of level-1 alarms): the component must fault, lamp off."""
        self._alarm_level1 = level1

    def alarm_after_start(self, seconds: float) -> None:
        """A chiller alarm `seconds` of clock time after the chiller is next started."""
        self._alarm_after_start_s = seconds

    def restrict_coolant_flow(self, fraction: float) -> None:
        """The coolant flows at `fraction` of its nominal rate (a kinked hose): a LOW_COOLANT_FLOW warning."""
        self._flow_fraction = fraction

    def clear_chiller_alarm(self) -> None:
        self._alarm_level1 = 0

    def stick_lamp_on(self) -> None:
        """The lamp keeps its light when powered off (LAMP_STUCK_ON)."""
        self._stuck_on = True


class SimLamp:
    """SimWhiteLight as the service's WhiteLightDriver: its physics read and commanded on the clock."""

    device = "simulated"
    has_chiller = True

    def __init__(self, clock: Clock, sim: SimWhiteLight | None = None) -> None:
        self.clock = clock
        #: The physics, and the fault-injection hooks (compose's HOOKS act on it).
        self.sim = sim or SimWhiteLight()

    async def connect(self) -> None:
        self.sim.connect()

    async def disconnect(self) -> None:
        self.sim.disconnect()

    async def close(self) -> None:
        """Nothing to let go of."""

    async def read(self) -> LampReading:
        sim, now = self.sim, self.clock.tai()
        status = sim.chiller_status(now)
        supply = sim.supply_temperature(now)
        cooling, level = sim.tec_drive(now)
        chiller = ChillerReading(
            running=status.running, pump_on=status.pump_on, alarm_level1=sim.alarm_level1(now),
            controller=sim.chiller_controller_state(now), set_c=sim.set_temperature_c, supply_c=supply,
            return_c=supply + 0.8, ambient_c=sim.ambient_c, flow_l_min=sim.coolant_flow(now),
            fans_hz=sim.fan_speeds(now), tec_cooling=cooling, tec_level_pct=level, tec_currents_a=sim.tec_currents(now),
        )  # fmt: skip
        return LampReading(light=sim.light(now), shutter=sim.shutter_state(now), chiller=chiller)

    async def start_chiller(self) -> None:
        self.sim.start_chiller(self.clock.tai())

    async def stop_chiller(self) -> None:
        self.sim.stop_chiller(self.clock.tai())

    async def set_temperature(self, temperature_c: float) -> None:
        self.sim.set_temperature(temperature_c, self.clock.tai())

    async def power_on(self, power_w: float, max_power_w: float) -> None:
        self.sim.power_on(self.clock.tai())

    async def wait_light(self, timeout_s: float) -> bool:
        now = self.clock.tai()
        appears = self.sim.light_appears_at()
        if appears is not None and appears - now <= timeout_s:
            await self.clock.sleep(appears - now)
            return True
        await self.clock.sleep(timeout_s)
        return self.sim.light(self.clock.tai())

    async def power_off(self) -> None:
        self.sim.power_off(self.clock.tai())

    async def wait_dark(self, timeout_s: float) -> bool:
        now = self.clock.tai()
        gone = self.sim.light_gone_at()
        await self.clock.sleep(max(0.0, timeout_s if gone is None else min(gone - now, timeout_s)))
        return not self.sim.light(self.clock.tai())

    async def move_shutter(self, open_: bool) -> None:
        self.sim.move_shutter(open_, self.clock.tai())

    async def wait_shutter(self, open_: bool, timeout_s: float) -> None:
        arrives = self.sim.move_shutter(open_, self.clock.tai())  # already under way: its arrival
        await self.clock.sleep(max(0.0, arrives - self.clock.tai()))
