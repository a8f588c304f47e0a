"""The dome on an ASCOM Alpaca Dome (issue 24): azimuth, home, and its one shutter.

`configure` connects the dome and reads what it can do: CanSetAzimuth (required: obsq moves the
dome in azimuth), CanFindHome (if not, the dome keeps its own azimuth and counts as homed),
CanSetShutter (if so, its one shutter is obsq's main door; Alpaca has no dropout door, which the
service then refuses by name). A motion is the Alpaca call (SlewToAzimuth, FindHome, OpenShutter,
CloseShutter) followed by polling (Slewing, ShutterStatus) at the device's pace (pace.py); a halt
is AbortSlew (which stops the shutter too) and a read of where the dome got to; a motion that
does not end within its timeout is aborted and named. An Alpaca shutter has no opening
percentage: 0 closed, 100 open, 50 anywhere between (ShutterStatus opening/closing after a halt).
"""

from __future__ import annotations

import asyncio

from obsq.csc.alpaca.address import AlpacaAddress
from obsq.csc.alpaca.client import CALL_TIMEOUT_S, AlpacaDevice
from obsq.csc.alpaca.pace import Pace
from obsq.csc.atdome.model import MAIN, DomeModel, ShutterModel
from obsq.csc.clock import Clock
from obsq.csc.core.errors import DeviceError, DeviceTimeoutError

#: Seconds between two readings of a moving dome (at the device's pace: real seconds for a real one).
POLL_S = 0.2
#: Degrees from the target within which a slew that ended has arrived.
ARRIVED_DEG = 0.5
#: ASCOM ShutterState values.
SHUTTER_OPEN, SHUTTER_CLOSED, SHUTTER_OPENING, SHUTTER_CLOSING, SHUTTER_ERROR = range(5)


class AlpacaDome:
    """One Alpaca Dome as the ATDome service's DomeDriver."""

    def __init__(
        self, address: AlpacaAddress, clock: Clock, *, call_timeout_s: float = CALL_TIMEOUT_S, poll_s: float = POLL_S
    ) -> None:
        self.alpaca = AlpacaDevice(address, call_timeout_s=call_timeout_s)
        self.device = str(address)
        self.clock = clock
        self.pace = Pace(clock, poll_s)
        self.poll_s = poll_s
        self.doors: tuple[str, ...] = ()
        self.can_home = False
        #: The configured speeds (estimates for timeouts) and the last azimuth read.
        self.model = DomeModel(drift_per_degree=0.0)
        self._shutter = ShutterModel()
        self._homed = False

    # -- readings ---------------------------------------------------------------------------

    @property
    def azimuth_deg(self) -> float:
        return self.model.encoder_deg

    @property
    def homed(self) -> bool:
        return self._homed

    @property
    def true_azimuth_deg(self) -> float | None:
        return None  # only a simulation knows where a dome really points

    @property
    def shutter(self) -> ShutterModel:
        return self._shutter

    def door_percent(self, door: str) -> float:
        return self._shutter.door(door).percent

    def move_time(self, azimuth_deg: float) -> float:
        return self.model.move_time(azimuth_deg)

    def home_time(self) -> float:
        return self.model.home_time()

    # -- set-up -----------------------------------------------------------------------------

    async def configure(
        self, speed_deg_s: float, settle_s: float, drift_per_degree: float, main_door_s: float, dropout_door_s: float
    ) -> None:
        self.model.speed_deg_s, self.model.settle_s = speed_deg_s, settle_s
        self._shutter.main.travel_s = main_door_s
        await self.alpaca.put("connected", Connected=True)
        if not await self.alpaca.get("cansetazimuth"):
            raise DeviceError(f"{self.device}: the dome cannot be moved in azimuth (CanSetAzimuth is false)")
        self.can_home = bool(await self.alpaca.get("canfindhome"))
        self.doors = (MAIN,) if await self.alpaca.get("cansetshutter") else ()
        self._homed = not self.can_home or bool(await self.alpaca.get("athome"))
        await self._read_azimuth()
        if self.doors:
            await self._read_shutter()

    async def close(self) -> None:
        await self.alpaca.close()

    # -- motions ----------------------------------------------------------------------------

    async def move(self, azimuth_deg: float, halt: asyncio.Event, timeout_s: float) -> None:
        target = azimuth_deg % 360.0
        await self.alpaca.put("slewtoazimuth", Azimuth=target)
        if await self._until_still(halt, timeout_s, f"the move to {azimuth_deg:g} deg"):
            off = abs((self.model.encoder_deg - target + 180.0) % 360.0 - 180.0)
            if off > ARRIVED_DEG:
                raise DeviceError(
                    f"{self.device}: the move to {azimuth_deg:g} deg ended at {self.model.encoder_deg:.2f} deg"
                )

    async def home(self, halt: asyncio.Event, timeout_s: float) -> None:
        await self.alpaca.put("findhome")
        if await self._until_still(halt, timeout_s, "homing"):
            if not await self.alpaca.get("athome"):
                raise DeviceError(f"{self.device}: homing ended away from home, at {self.model.encoder_deg:.2f} deg")
            self._homed = True

    async def move_door(self, door: str, open_: bool, halt: asyncio.Event, timeout_s: float) -> None:
        want = SHUTTER_OPEN if open_ else SHUTTER_CLOSED
        await self.alpaca.put("openshutter" if open_ else "closeshutter")
        deadline = self.pace.deadline(timeout_s)
        while (status := await self._read_shutter()) != want:
            if status == SHUTTER_ERROR:
                raise DeviceError(f"{self.device}: the shutter reports an error (ShutterStatus 4)")
            if halt.is_set():
                await self._abort()
                return
            if deadline.passed:
                await self._abort()
                raise DeviceTimeoutError(
                    f"{self.device}: the shutter did not {'open' if open_ else 'close'} within {timeout_s:g} s"
                )
            await self.pace.pause(halt)

    async def _until_still(self, halt: asyncio.Event, timeout_s: float, what: str) -> bool:
        """Poll until the dome stops slewing: True if it ended by itself, False if halted; raises on the timeout."""
        deadline = self.pace.deadline(timeout_s)
        while True:
            slewing = await self.alpaca.get("slewing")
            await self._read_azimuth()
            if not slewing:
                return True
            if halt.is_set():
                await self._abort()
                return False
            if deadline.passed:
                await self._abort()
                raise DeviceTimeoutError(
                    f"{self.device}: {what} did not end within {timeout_s:g} s; aborted at"
                    f" {self.model.encoder_deg:.2f} deg"
                )
            await self.pace.pause(halt)

    async def _abort(self) -> None:
        await self.alpaca.put("abortslew")
        await self._read_azimuth()
        if self.doors:
            await self._read_shutter()

    async def _read_azimuth(self) -> None:
        azimuth = await self.alpaca.get("azimuth")
        if not isinstance(azimuth, int | float) or isinstance(azimuth, bool):
            raise DeviceError(f"{self.device} GET azimuth: {azimuth!r} is not a number")
        self.model.encoder_deg = float(azimuth) % 360.0

    async def _read_shutter(self) -> int:
        status = await self.alpaca.get("shutterstatus")
        if status not in range(5) or isinstance(status, bool):
            raise DeviceError(f"{self.device} GET shutterstatus: {status!r} is not an ASCOM ShutterState (0-4)")
        self._shutter.main.percent = {SHUTTER_OPEN: 100.0, SHUTTER_CLOSED: 0.0}.get(status, 50.0)
        return int(status)
