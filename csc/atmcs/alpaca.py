"""The mount on an ASCOM Alpaca Telescope (issue 24): alt/az slews, tracking, the limits kept in obsq.

`configure` connects the mount, unparks it where it is parked (and can be unparked), and reads
where it points. A slew is SlewToAltAzAsync (with tracking off, as ASCOM requires for an alt/az
slew), then `slewing` polled until false; one that does not end in time is aborted
(AbortSlew) and named. obsq's azimuth runs -270..270 deg (cable wrap); ASCOM's 0..360: the
device is given the azimuth modulo 360, and reports its own, which obsq keeps as the last known.
The limits and the slew estimate are obsq's MountModel's, from the configuration. Polls and
timeouts are at the device's pace (csc/alpaca/pace.py).
"""

from __future__ import annotations

from obsq.csc.alpaca.address import AlpacaAddress
from obsq.csc.alpaca.client import CALL_TIMEOUT_S, AlpacaDevice
from obsq.csc.alpaca.pace import Pace
from obsq.csc.atmcs.model import MountModel
from obsq.csc.clock import Clock
from obsq.csc.core.errors import DeviceError, DeviceTimeoutError

#: Seconds between two readings of a slewing mount (at the device's pace).
POLL_S = 0.2
#: Degrees from the target within which a slew that ended has arrived.
ARRIVED_DEG = 0.1


class AlpacaMount:
    """One Alpaca Telescope as the ATMCS service's MountDriver."""

    def __init__(
        self, address: AlpacaAddress, clock: Clock, *, call_timeout_s: float = CALL_TIMEOUT_S, poll_s: float = POLL_S
    ) -> None:
        self.alpaca = AlpacaDevice(address, call_timeout_s=call_timeout_s)
        self.device = str(address)
        self.clock = clock
        self.pace = Pace(clock, poll_s)
        self.poll_s = poll_s
        self.model = MountModel()
        self._tracking = False

    @property
    def azimuth(self) -> float:
        return self.model.azimuth

    @property
    def elevation(self) -> float:
        return self.model.elevation

    @property
    def tracking(self) -> bool:
        return self._tracking

    async def configure(
        self,
        azimuth_limits: tuple[float, float],
        elevation_limits: tuple[float, float],
        azimuth_speed: float,
        elevation_speed: float,
        settle_s: float,
    ) -> None:
        self.model.set_axes(azimuth_limits, elevation_limits, azimuth_speed, elevation_speed, settle_s)
        await self.alpaca.put("connected", Connected=True)
        if not await self.alpaca.get("canslewaltazasync"):
            raise DeviceError(f"{self.device}: the mount cannot slew to alt/az asynchronously (CanSlewAltAzAsync)")
        if await self.alpaca.get("atpark"):
            if not await self.alpaca.get("canunpark"):
                raise DeviceError(f"{self.device}: the mount is parked and cannot be unparked from here")
            await self.alpaca.put("unpark")
        await self._read()

    def slew_time(self, azimuth: float, elevation: float) -> float:
        return self.model.slew_time(azimuth, elevation)

    async def slew(self, azimuth: float, elevation: float, timeout_s: float) -> None:
        if self._tracking:
            await self.set_tracking(False)
        await self.alpaca.put("slewtoaltazasync", Azimuth=azimuth % 360.0, Altitude=elevation)
        deadline = self.pace.deadline(timeout_s)
        while await self.alpaca.get("slewing"):
            if deadline.passed:
                await self.alpaca.put("abortslew")
                await self._read()
                raise DeviceTimeoutError(
                    f"{self.device}: the slew to az {azimuth:g} el {elevation:g} did not end within {timeout_s:g} s;"
                    f" aborted at az {self.model.azimuth:.2f} el {self.model.elevation:.2f}"
                )
            await self.pace.pause()
        await self._read()  # a mount says it is slewing until it has settled (ASCOM's SlewSettleTime)
        off_az = abs((self.model.azimuth - azimuth + 180.0) % 360.0 - 180.0)
        off_el = abs(self.model.elevation - elevation)
        if max(off_az, off_el) > ARRIVED_DEG:
            raise DeviceError(
                f"{self.device}: the slew to az {azimuth:g} el {elevation:g} ended at az {self.model.azimuth:.3f}"
                f" el {self.model.elevation:.3f}"
            )
        self.model.azimuth = azimuth  # arrived: obsq's cable-wrap azimuth for the position the device reports

    async def set_tracking(self, on: bool) -> None:
        await self.alpaca.put("tracking", Tracking=on)
        self._tracking = bool(await self.alpaca.get("tracking"))

    async def close(self) -> None:
        await self.alpaca.close()

    async def _read(self) -> None:
        azimuth, altitude = await self.alpaca.get("azimuth"), await self.alpaca.get("altitude")
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (azimuth, altitude)):
            raise DeviceError(f"{self.device}: azimuth {azimuth!r} and altitude {altitude!r} are not numbers")
        self.model.azimuth, self.model.elevation = float(azimuth), float(altitude)
        self._tracking = bool(await self.alpaca.get("tracking"))
