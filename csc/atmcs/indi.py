"""The mount on an INDI telescope driver (issue 24): alt/az as INDI's equatorial coordinates.

INDI's standard telescope speaks equatorial coordinates of the epoch (EQUATORIAL_EOD_COORD: RA in
hours, Dec in degrees) at the site it is told (GEOGRAPHIC_COORD) and the time it keeps: obsq's
alt/az target is turned into RA/Dec for now at the device's own latitude and longitude (pure
spherical astronomy below: the local sidereal time from the UTC, the hour angle and declination
from the altitude and azimuth), sent with ON_COORD_SET SLEW (the mount stops there, not tracking,
as ATMCS's moveToPosition), and awaited while the driver says Busy. Where the mount points is
read back the same way. The limits and the slew estimate stay obsq's MountModel's. INDI devices
run in real time.
"""

from __future__ import annotations

import math

from obsq.csc.atmcs.model import MountModel
from obsq.csc.clock import Clock
from obsq.csc.core.errors import DeviceError, DeviceTimeoutError
from obsq.csc.indi.client import IndiConnection, Request, alert
from obsq.csc.indi.protocol import Vector

COORD, SITE, ON_SET = "EQUATORIAL_EOD_COORD", "GEOGRAPHIC_COORD", "ON_COORD_SET"
TRACK, PARK, ABORT = "TELESCOPE_TRACK_STATE", "TELESCOPE_PARK", "TELESCOPE_ABORT_MOTION"
#: Real seconds for a device to define its properties and to connect.
CONNECT_WAIT_S = 15.0
#: Degrees from the target within which a slew that ended has arrived.
ARRIVED_DEG = 0.2
#: TAI - UTC (s), as obsq's clock keeps it.
TAI_MINUS_UTC_S = 37.0


def sidereal_hours(unix_utc: float, longitude_deg: float) -> float:
    """Local mean sidereal time (h) at `longitude_deg` east, from the UTC as unix seconds (IAU 1982, ~0.1 s)."""
    days = unix_utc / 86400.0 + 2440587.5 - 2451545.0
    return (18.697374558 + 24.06570982441908 * days + longitude_deg / 15.0) % 24.0


def equatorial(azimuth_deg: float, altitude_deg: float, latitude_deg: float, lst_h: float) -> tuple[float, float]:
    """(RA h, Dec deg) of the alt/az direction (azimuth from north through east) at latitude and sidereal time."""
    az, alt, lat = (math.radians(v) for v in (azimuth_deg, altitude_deg, latitude_deg))
    sin_dec = math.sin(lat) * math.sin(alt) + math.cos(lat) * math.cos(alt) * math.cos(az)
    dec = math.asin(max(-1.0, min(1.0, sin_dec)))
    hour_angle = math.atan2(-math.sin(az) * math.cos(alt),
                            math.cos(lat) * math.sin(alt) - math.sin(lat) * math.cos(alt) * math.cos(az))  # fmt: skip
    return (lst_h - math.degrees(hour_angle) / 15.0) % 24.0, math.degrees(dec)


def horizontal(ra_h: float, dec_deg: float, latitude_deg: float, lst_h: float) -> tuple[float, float]:
    """(azimuth deg from north through east, altitude deg) of RA/Dec at latitude and sidereal time."""
    hour_angle, dec, lat = math.radians((lst_h - ra_h) * 15.0), math.radians(dec_deg), math.radians(latitude_deg)
    sin_alt = math.sin(lat) * math.sin(dec) + math.cos(lat) * math.cos(dec) * math.cos(hour_angle)
    alt = math.asin(max(-1.0, min(1.0, sin_alt)))
    az = math.atan2(-math.sin(hour_angle) * math.cos(dec),
                    math.cos(lat) * math.sin(dec) - math.sin(lat) * math.cos(dec) * math.cos(hour_angle))  # fmt: skip
    return math.degrees(az) % 360.0, math.degrees(alt)


class IndiMount:
    """One INDI telescope as the ATMCS service's MountDriver."""

    def __init__(self, connection: IndiConnection, device: str, clock: Clock) -> None:
        self.link = connection
        self.name_on_server = device
        self.device = f"{connection.where}/{device}"
        self.clock = clock
        self.model = MountModel()

    def _vector(self, name: str) -> Vector:
        vector = self.link.vector(self.name_on_server, name)
        if vector is None:
            raise DeviceError(f"{self.device}: the device has no {name} (disconnected?)")
        return vector

    def _site(self) -> tuple[float, float]:
        site = self._vector(SITE)
        return site.number("LAT"), site.number("LONG")

    def _now_lst(self) -> float:
        return sidereal_hours(self.clock.unscaled().tai() - TAI_MINUS_UTC_S, self._site()[1])

    def _read(self) -> tuple[float, float]:
        """Where the mount points (az, el), from its RA/Dec now."""
        coord = self._vector(COORD)
        azimuth, elevation = horizontal(coord.number("RA"), coord.number("DEC"), self._site()[0], self._now_lst())
        self.model.azimuth, self.model.elevation = azimuth, elevation
        return azimuth, elevation

    def _ended(self, coord: Vector, azimuth: float, elevation: float) -> bool:
        """The slew refused (Alert), or at rest at the target."""
        return coord.state == "Alert" or (coord.state != "Busy" and self._off(azimuth, elevation) <= ARRIVED_DEG)

    def _off(self, azimuth: float, elevation: float) -> float:
        """Degrees between where the mount points and (azimuth, elevation), on the larger axis."""
        where = self._read()
        return max(abs((where[0] - azimuth + 180.0) % 360.0 - 180.0), abs(where[1] - elevation))

    @property
    def azimuth(self) -> float:
        return self.model.azimuth

    @property
    def elevation(self) -> float:
        return self.model.elevation

    @property
    def tracking(self) -> bool:
        vector = self.link.vector(self.name_on_server, TRACK)
        return vector is not None and vector.values.get("TRACK_ON") == "On"

    async def configure(
        self,
        azimuth_limits: tuple[float, float],
        elevation_limits: tuple[float, float],
        azimuth_speed: float,
        elevation_speed: float,
        settle_s: float,
    ) -> None:
        self.model.set_axes(azimuth_limits, elevation_limits, azimuth_speed, elevation_speed, settle_s)
        await self.link.connect_device(self.name_on_server, CONNECT_WAIT_S, COORD, SITE)
        park = self.link.vector(self.name_on_server, PARK)
        if park is not None and park.values.get("PARK") == "On":
            await self._request((PARK, "Switch", {"PARK": False, "UNPARK": True}), CONNECT_WAIT_S, "unparking")
        self._read()

    def slew_time(self, azimuth: float, elevation: float) -> float:
        return self.model.slew_time(azimuth, elevation)

    async def slew(self, azimuth: float, elevation: float, timeout_s: float) -> None:
        latitude, _ = self._site()
        ra, dec = equatorial(azimuth % 360.0, elevation, latitude, self._now_lst())
        await self._request((ON_SET, "Switch", {"SLEW": True, "TRACK": False, "SYNC": False}), CONNECT_WAIT_S,
                            "choosing SLEW")  # fmt: skip
        coord, what = self._vector(COORD), f"the slew to az {azimuth:g} el {elevation:g}"
        await self.link.send(self.name_on_server, COORD, "Number", {"RA": ra, "DEC": dec})
        try:  # a periodic report from before the request must not pass for its end: at rest, and there
            await self.link.wait_until(lambda: self._ended(coord, azimuth, elevation), timeout_s, what)
        except DeviceTimeoutError:
            await self.link.send(self.name_on_server, ABORT, "Switch", {"ABORT": True})
            raise
        if coord.state == "Alert":
            raise alert(self.link, coord, what)
        where = self._read()
        if self._off(azimuth, elevation) > ARRIVED_DEG:
            raise DeviceError(f"{self.device}: the slew to az {azimuth:g} el {elevation:g} ended at az"
                              f" {where[0]:.3f} el {where[1]:.3f}")  # fmt: skip
        self.model.azimuth = azimuth  # arrived: obsq's cable-wrap azimuth for the position the device reports

    async def set_tracking(self, on: bool) -> None:
        await self._request((TRACK, "Switch", {"TRACK_ON": on, "TRACK_OFF": not on}), CONNECT_WAIT_S,
                            f"turning tracking {'on' if on else 'off'}", busy_is_done=True)  # fmt: skip
        if self.tracking != on:
            raise DeviceError(f"{self.device}: tracking is still {'off' if on else 'on'} after it was asked")

    async def close(self) -> None:
        await self.link.close()

    async def _request(self, request: Request, timeout_s: float, what: str, *, busy_is_done: bool = False) -> None:
        await self.link.request(self.name_on_server, request, timeout_s, what, busy_is_done=busy_is_done)
