"""The lamp's rules, pure: what may be done when, and what state the lamp is in.

Invariants (the bulb-life rules of ts_atwhitelight and the LATISS procedure):
- the lamp is struck only while the chiller runs with its pump on and no alarm;
- for `warmup_s` after it lights, turning it off needs `force`;
- for `cooldown_s` after it goes off, it may not be struck again, the chiller may not be
  stopped, and the component may not go to STANDBY;
- STANDBY is refused while the lamp is on (turn it off first);
- turning on a lamp that is lit sets its power and nothing else (Rubin's turnLampOn "turns the lamp
  on or changes the power"), so a set-up run again with the lamp on completes.

Only the ATWhiteLight service changes this object, through the methods below; times are TAI
seconds passed in by the caller, so the rules are tested without a clock.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Protocol

from obsq.csc.core.errors import ExpectedError


class LampBasicState(enum.IntEnum):
    """The lamp as the outside world sees it (SAL ATWhiteLight.LampBasicState)."""

    UNKNOWN = 0
    OFF = 1
    ON = 2
    COOLDOWN = 3
    WARMUP = 4
    TURNING_ON = 5
    TURNING_OFF = 6
    UNEXPECTEDLY_ON = 7
    UNEXPECTEDLY_OFF = 8


class LampControllerState(enum.IntEnum):
    """What the lamp controller reports."""

    UNKNOWN = 0
    STANDBY_OR_ON = 1
    COOLDOWN = 2
    ERROR = 3


class ShutterState(enum.IntEnum):
    """The shutter; UNKNOWN while it moves."""

    UNKNOWN = 0
    CLOSED = 1
    OPEN = 2
    INVALID = 3


class ChillerControllerState(enum.IntEnum):
    """The chiller controller's state."""

    UNKNOWN = -1
    AUTOSTART = 0
    STANDBY = 1
    RUN = 2
    SAFETY = 3
    TEST = 4


class ChillerWarnings(enum.IntFlag):
    """The chiller's warnings, as Rubin's ATWhiteLight.ChillerWarnings bits."""

    LOW_COOLANT_FLOW = 0x1
    COOLANT_FLUID_LEVEL = 0x2
    SWITCH_TO_SUPPLY_TEMP_AS_CONTROL_TEMP = 0x4
    HIGH_CONTROL_TEMP = 0x10
    LOW_CONTROL_TEMP = 0x20
    HIGH_AMBIENT_TEMP = 0x40
    LOW_AMBIENT_TEMP = 0x80


#: Below this coolant flow (L/min) a running chiller warns LOW_COOLANT_FLOW.
LOW_FLOW_WARNING_L_MIN = 2.0


def chiller_warnings(*, running: bool, flow_l_min: float, supply_c: float, low_c: float, high_c: float) -> int:
    """The warning bits of a chiller: flow too low while it runs, supply beyond the warning limits."""
    warnings = ChillerWarnings(0)
    if running and flow_l_min < LOW_FLOW_WARNING_L_MIN:
        warnings |= ChillerWarnings.LOW_COOLANT_FLOW
    if supply_c > high_c:
        warnings |= ChillerWarnings.HIGH_CONTROL_TEMP
    if supply_c < low_c:
        warnings |= ChillerWarnings.LOW_CONTROL_TEMP
    return int(warnings)


class ErrorCode(enum.IntEnum):
    """ATWhiteLight fault codes, as SAL's."""

    CHILLER_DISCONNECTED = 1
    LAMP_DISCONNECTED = 2
    LAMP_ERROR = 3
    CHILLER_ERROR = 4
    NOT_CHILLING_WITH_LAMP_ON = 5
    LAMP_UNEXPECTEDLY_OFF = 6
    LAMP_UNEXPECTEDLY_ON = 7


@dataclass(frozen=True)
class LampConfig:
    """The lamp part of the configuration (schema "Whitelight v4")."""

    default_power_w: float = 900.0
    min_power_w: float = 800.0
    max_power_w: float = 1200.0
    warmup_s: float = 900.0
    cooldown_s: float = 900.0
    max_lamp_on_delay_s: float = 25.0
    max_lamp_off_delay_s: float = 4.0
    max_retries: int = 3
    retry_sleep_s: float = 60.0

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> LampConfig:
        return cls(
            default_power_w=config["default_power"],
            warmup_s=config["warmup_period"],
            cooldown_s=config["cooldown_period"],
            max_lamp_on_delay_s=config["max_lamp_on_delay"],
            max_lamp_off_delay_s=config["max_lamp_off_delay"],
            max_retries=config["max_retries"],
            retry_sleep_s=config["retry_sleep"],
        )

    @property
    def max_strike_s(self) -> float:
        """Longest a turnLampOn can take: every strike waits, with a pause between strikes."""
        return self.max_retries * self.max_lamp_on_delay_s + (self.max_retries - 1) * self.retry_sleep_s


@dataclass(frozen=True)
class ChillerStatus:
    """What the rules need to know of the chiller."""

    running: bool
    pump_on: bool
    alarms: bool


class LampRules:
    """The lamp's commanded state, its on/off times, and the checks every command makes."""

    def __init__(self, config: LampConfig) -> None:
        self.config = config
        self.commanded_on = False
        self.striking = False
        self.turning_off = False
        self.set_power_w = 0.0
        self.lit_at: float | None = None
        self.off_at: float | None = None
        #: Seconds the lamp was on before the current lighting (since the component started).
        self.on_seconds_before = 0.0

    # -- times ---------------------------------------------------------------------------

    def warmup_end(self) -> float:
        """TAI when the warm-up ends (0 if the lamp is not lit)."""
        return self.lit_at + self.config.warmup_s if self.commanded_on and self.lit_at is not None else 0.0

    def cooldown_end(self) -> float:
        """TAI when the cool-down ends (0 if the lamp has not been lit and turned off)."""
        return self.off_at + self.config.cooldown_s if self.off_at is not None else 0.0

    def warmup_remaining(self, now: float) -> float:
        return max(0.0, self.warmup_end() - now) if self.warmup_end() else 0.0

    def cooldown_remaining(self, now: float) -> float:
        return 0.0 if self.commanded_on else max(0.0, self.cooldown_end() - now)

    def on_hours(self, now: float) -> float:
        """Estimated hours the lamp has been on (from lighting to being commanded off)."""
        current = now - self.lit_at if self.commanded_on and self.lit_at is not None else 0.0
        return (self.on_seconds_before + max(0.0, current)) / 3600.0

    # -- checks (raise ExpectedError with the reason) ---------------------------------------

    def power_for(self, power_w: float) -> float:
        """The power to strike at: the default for 0, else within the allowed range."""
        if power_w == 0:
            return self.config.default_power_w
        if not self.config.min_power_w <= power_w <= self.config.max_power_w:
            raise ExpectedError(
                f"power {power_w:g} W is outside {self.config.min_power_w:g}-{self.config.max_power_w:g} W"
                f" (0 = the default {self.config.default_power_w:g} W)"
            )
        return power_w

    def check_turn_on(self, power_w: float, now: float, chiller: ChillerStatus | None) -> float:
        """The power to strike at, or ExpectedError why not; `chiller` None: the lamp has no chiller to wait for."""
        power = self.power_for(power_w)
        if self.striking:
            raise ExpectedError("the lamp is already turning on")
        if self.commanded_on:
            return power  # as Rubin's: a lit lamp takes the new power, its warm-up goes on (see `repowered`)
        if (left := self.cooldown_remaining(now)) > 0:
            raise ExpectedError(f"the lamp is cooling down: {left:.0f} s left before it may be struck again")
        if chiller is None:
            return power
        if not chiller.running or not chiller.pump_on:
            raise ExpectedError("the chiller is not running: start it first (the lamp runs only while it does)")
        if chiller.alarms:
            raise ExpectedError("the chiller reports alarms: the lamp may not be turned on")
        return power

    def check_turn_off(self, force: bool, now: float) -> None:
        if not self.commanded_on and not self.striking:
            raise ExpectedError("the lamp is already off")
        if (left := self.warmup_remaining(now)) > 0 and not force:
            raise ExpectedError(f"the lamp is warming up: {left:.0f} s left; use force=true to turn it off anyway")

    def check_stop_chiller(self, now: float) -> None:
        if self.commanded_on or self.striking:
            raise ExpectedError("the lamp is on: turn it off and let it cool down before stopping the chiller")
        if (left := self.cooldown_remaining(now)) > 0:
            raise ExpectedError(f"the lamp is cooling down: {left:.0f} s left before the chiller may stop")

    def check_standby(self, now: float) -> None:
        if self.commanded_on or self.striking:
            raise ExpectedError("the lamp is on: turn it off before going to STANDBY")
        if (left := self.cooldown_remaining(now)) > 0:
            raise ExpectedError(f"the lamp is cooling down: {left:.0f} s left before STANDBY is allowed")

    # -- changes --------------------------------------------------------------------------

    def repowered(self, power_w: float) -> None:
        """A turnLampOn of a lamp already lit: only its power changes."""
        self.set_power_w = power_w

    def strike_started(self, power_w: float) -> None:
        self.striking = True
        self.set_power_w = power_w

    def lit(self, now: float) -> None:
        self.striking = False
        self.commanded_on = True
        self.lit_at = now

    def strike_failed(self) -> None:
        self.striking = False
        self.set_power_w = 0.0

    def turned_off(self, now: float) -> None:
        """The lamp was commanded off (light may linger up to max_lamp_off_delay)."""
        if self.commanded_on:
            self.off_at = now
            if self.lit_at is not None:
                self.on_seconds_before += max(0.0, now - self.lit_at)
        self.commanded_on = False
        self.striking = False
        self.set_power_w = 0.0
        self.lit_at = None

    # -- state ----------------------------------------------------------------------------

    def basic_state(self, now: float, light: bool) -> LampBasicState:
        if self.striking:
            return LampBasicState.TURNING_ON
        if self.commanded_on:
            if not light:
                return LampBasicState.UNEXPECTEDLY_OFF
            return LampBasicState.WARMUP if self.warmup_remaining(now) > 0 else LampBasicState.ON
        if light:
            return LampBasicState.TURNING_OFF if self.turning_off else LampBasicState.UNEXPECTEDLY_ON
        return LampBasicState.COOLDOWN if self.cooldown_remaining(now) > 0 else LampBasicState.OFF


@dataclass(frozen=True)
class ChillerReading:
    """The chiller as read at one instant (telemetry units: C, L/min, Hz, %, A)."""

    running: bool
    pump_on: bool
    alarm_level1: int
    controller: ChillerControllerState
    set_c: float
    supply_c: float
    return_c: float
    ambient_c: float
    flow_l_min: float
    fans_hz: tuple[float, float, float, float]
    tec_cooling: bool
    tec_level_pct: float
    tec_currents_a: tuple[float, float]

    @property
    def status(self) -> ChillerStatus:
        return ChillerStatus(running=self.running, pump_on=self.pump_on, alarms=self.alarm_level1 != 0)


@dataclass(frozen=True)
class LampReading:
    """The lamp hardware as read at one instant; `chiller` is None where the device has none."""

    light: bool
    shutter: ShutterState
    chiller: ChillerReading | None


class WhiteLightDriver(Protocol):
    """The lamp, chiller and shutter hardware as the service awaits it.

    sim.py simulates it on the clock; alpaca.py drives an Alpaca CoverCalibrator (the lamp and its
    cover as the shutter) with an optional Switch (the chiller). Every method raises DeviceError
    when the device fails or does not answer.
    """

    #: Where the device is, for messages ("simulated" for the simulator).
    device: str
    #: Has the device a chiller? (If not, the rules do without one, and its commands are refused by name.)
    has_chiller: bool

    async def connect(self) -> None: ...

    async def disconnect(self) -> None: ...

    async def close(self) -> None: ...

    async def read(self) -> LampReading: ...

    async def start_chiller(self) -> None: ...

    async def stop_chiller(self) -> None: ...

    async def set_temperature(self, temperature_c: float) -> None: ...

    async def power_on(self, power_w: float, max_power_w: float) -> None:
        """Apply power (strike the lamp) at `power_w`; a device with a brightness scale takes power / max_power_w."""
        ...

    async def wait_light(self, timeout_s: float) -> bool:
        """Wait up to `timeout_s` for light; whether it came."""
        ...

    async def power_off(self) -> None: ...

    async def wait_dark(self, timeout_s: float) -> bool:
        """Wait up to `timeout_s` for the light to go; whether it went."""
        ...

    async def move_shutter(self, open_: bool) -> None:
        """Start the shutter moving."""
        ...

    async def wait_shutter(self, open_: bool, timeout_s: float) -> None:
        """Wait until the shutter is open (closed); DeviceTimeoutError after `timeout_s`."""
        ...
