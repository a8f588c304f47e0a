"""The white-light lamp on an ASCOM Alpaca CoverCalibrator, with its chiller on an Alpaca Switch (issue 24).

The lamp is the CoverCalibrator's calibrator: `power_on` is CalibratorOn at the brightness the
power asks for (power / the largest power × MaxBrightness), light is CalibratorState Ready
(NotReady while it warms up), and a device in Error is a DeviceError naming it. The lamp's
shutter is the CoverCalibrator's cover (OpenCover/CloseCover, CoverState polled).

The chiller, where the site names one, is a Switch device: the switch whose name says "chiller"
is its power, and read-only switches whose names say "temperature" and "flow" are its supply
temperature (C) and coolant flow (L/min). What such a device does not report (alarms, fans,
the thermo-electric coolers, a set point under obsq's control) is not made up: the readings
are NaN and their telemetry is not published; the set point is kept as configured. Without a
chiller device the lamp is struck without one, and the chiller's commands are refused by name.
"""

from __future__ import annotations

from collections.abc import Callable

from obsq.csc.alpaca.address import AlpacaAddress
from obsq.csc.alpaca.client import CALL_TIMEOUT_S, AlpacaDevice
from obsq.csc.alpaca.pace import Pace
from obsq.csc.atwhitelight.model import ChillerControllerState, ChillerReading, LampReading, ShutterState
from obsq.csc.clock import Clock
from obsq.csc.core.errors import DeviceError, DeviceTimeoutError

#: Seconds between two readings of a changing lamp or a moving cover (at the device's pace).
POLL_S = 0.2
#: ASCOM CalibratorStatus and CoverStatus values.
NOT_PRESENT, CAL_OFF, CAL_NOT_READY, CAL_READY, CAL_UNKNOWN, CAL_ERROR = range(6)
COVER_CLOSED, COVER_MOVING, COVER_OPEN, COVER_UNKNOWN, COVER_ERROR = range(1, 6)
_SHUTTER = {COVER_CLOSED: ShutterState.CLOSED, COVER_OPEN: ShutterState.OPEN, COVER_MOVING: ShutterState.UNKNOWN,
            COVER_UNKNOWN: ShutterState.UNKNOWN}  # fmt: skip
NAN = float("nan")


class AlpacaLamp:
    """An Alpaca CoverCalibrator (and optionally a Switch for the chiller) as ATWhiteLight's WhiteLightDriver."""

    def __init__(
        self,
        lamp: AlpacaAddress,
        chiller: AlpacaAddress | None,
        clock: Clock,
        *,
        call_timeout_s: float = CALL_TIMEOUT_S,
        poll_s: float = POLL_S,
    ) -> None:
        self.alpaca = AlpacaDevice(lamp, call_timeout_s=call_timeout_s)
        self.switch = AlpacaDevice(chiller, call_timeout_s=call_timeout_s) if chiller is not None else None
        self.device = str(lamp) + (f" with the chiller {chiller}" if chiller is not None else "")
        self.has_chiller = chiller is not None
        self.clock = clock
        self.pace = Pace(clock, poll_s)
        self.poll_s = poll_s
        self._max_brightness = 0
        self._power_id: int | None = None
        self._temperature_id: int | None = None
        self._flow_id: int | None = None
        self._set_c = NAN

    async def connect(self) -> None:
        await self.alpaca.put("connected", Connected=True)
        if await self._calibrator() == NOT_PRESENT:
            raise DeviceError(
                f"{self.alpaca.address}: the CoverCalibrator has no calibrator (CalibratorState NotPresent)"
            )
        self._max_brightness = await self.alpaca.get("maxbrightness")
        if not isinstance(self._max_brightness, int) or self._max_brightness < 1:
            raise DeviceError(f"{self.alpaca.address} GET maxbrightness: {self._max_brightness!r} is not a count >= 1")
        if self.switch is not None:
            await self.switch.put("connected", Connected=True)
            await self._find_switches(self.switch)

    async def _find_switches(self, switch: AlpacaDevice) -> None:
        count = await switch.get("maxswitch")
        if not isinstance(count, int) or not 0 < count <= 256:
            raise DeviceError(f"{switch.address} GET maxswitch: {count!r} is not a count of 1 to 256")
        names = [str(await switch.get("getswitchname", Id=i)) for i in range(count)]
        for i, name in enumerate(names):
            lower = name.lower()
            if "chiller" in lower and self._power_id is None:
                self._power_id = i
            elif "temperature" in lower and self._temperature_id is None:
                self._temperature_id = i
            elif "flow" in lower and self._flow_id is None:
                self._flow_id = i
        if self._power_id is None:
            raise DeviceError(
                f"{switch.address}: no switch is named for the chiller's power (a name with 'chiller');"
                f" it has {', '.join(repr(n) for n in names)}"
            )

    async def disconnect(self) -> None:
        await self.alpaca.put("connected", Connected=False)

    async def close(self) -> None:
        await self.alpaca.close()
        if self.switch is not None:
            await self.switch.close()

    # -- readings ---------------------------------------------------------------------------

    async def _calibrator(self) -> int:
        state = await self.alpaca.get("calibratorstate")
        if state not in range(6) or isinstance(state, bool):
            raise DeviceError(f"{self.alpaca.address} GET calibratorstate: {state!r} is not an ASCOM CalibratorStatus")
        if state == CAL_ERROR:
            raise DeviceError(f"{self.alpaca.address}: the calibrator reports an error (CalibratorState Error)")
        return int(state)

    async def _cover(self) -> ShutterState:
        state = await self.alpaca.get("coverstate")
        if state == COVER_ERROR:
            raise DeviceError(f"{self.alpaca.address}: the cover reports an error (CoverState Error)")
        if state == NOT_PRESENT:
            return ShutterState.INVALID
        if state not in _SHUTTER or isinstance(state, bool):
            raise DeviceError(f"{self.alpaca.address} GET coverstate: {state!r} is not an ASCOM CoverStatus")
        return _SHUTTER[state]

    async def _value(self, switch: AlpacaDevice, switch_id: int | None) -> float:
        if switch_id is None:
            return NAN
        value = await switch.get("getswitchvalue", Id=switch_id)
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise DeviceError(f"{switch.address} GET getswitchvalue Id={switch_id}: {value!r} is not a number")
        return float(value)

    async def read(self) -> LampReading:
        light = await self._calibrator() == CAL_READY
        shutter = await self._cover()
        chiller = None
        if self.switch is not None:
            running = bool(await self.switch.get("getswitch", Id=self._power_id))
            supply = await self._value(self.switch, self._temperature_id)
            chiller = ChillerReading(
                running=running, pump_on=running, alarm_level1=0,
                controller=ChillerControllerState.RUN if running else ChillerControllerState.STANDBY,
                set_c=self._set_c, supply_c=supply, return_c=NAN, ambient_c=NAN,
                flow_l_min=await self._value(self.switch, self._flow_id), fans_hz=(NAN, NAN, NAN, NAN),
                tec_cooling=False, tec_level_pct=NAN, tec_currents_a=(NAN, NAN),
            )  # fmt: skip
        return LampReading(light=light, shutter=shutter, chiller=chiller)

    # -- the chiller ------------------------------------------------------------------------

    async def _chiller(self, on: bool) -> None:
        if self.switch is None:
            raise DeviceError(f"{self.device}: no chiller")
        await self.switch.put("setswitch", Id=self._power_id, State=on)

    async def start_chiller(self) -> None:
        await self._chiller(True)

    async def stop_chiller(self) -> None:
        await self._chiller(False)

    async def set_temperature(self, temperature_c: float) -> None:
        self._set_c = temperature_c  # a Switch chiller's set point is its own: kept as configured

    # -- the lamp and the cover -------------------------------------------------------------

    async def power_on(self, power_w: float, max_power_w: float) -> None:
        brightness = max(1, min(self._max_brightness, round(self._max_brightness * power_w / max_power_w)))
        await self.alpaca.put("calibratoron", Brightness=brightness)

    async def wait_light(self, timeout_s: float) -> bool:
        return await self._until(lambda state: state == CAL_READY, timeout_s)

    async def power_off(self) -> None:
        await self.alpaca.put("calibratoroff")

    async def wait_dark(self, timeout_s: float) -> bool:
        return await self._until(lambda state: state in (CAL_OFF, CAL_UNKNOWN), timeout_s)

    async def _until(self, done: Callable[[int], bool], timeout_s: float) -> bool:
        deadline = self.pace.deadline(timeout_s)
        while True:
            if done(await self._calibrator()):
                return True
            if deadline.passed:
                return False
            await self.pace.pause()

    async def move_shutter(self, open_: bool) -> None:
        await self.alpaca.put("opencover" if open_ else "closecover")

    async def wait_shutter(self, open_: bool, timeout_s: float) -> None:
        want = ShutterState.OPEN if open_ else ShutterState.CLOSED
        deadline = self.pace.deadline(timeout_s)
        while (state := await self._cover()) != want:
            if state == ShutterState.INVALID:
                raise DeviceError(f"{self.alpaca.address}: the CoverCalibrator has no cover (CoverState NotPresent)")
            if deadline.passed:
                raise DeviceTimeoutError(
                    f"{self.alpaca.address}: the cover did not {'open' if open_ else 'close'} within {timeout_s:g} s"
                )
            await self.pace.pause()
