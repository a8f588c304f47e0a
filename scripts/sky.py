"""Where a sky position is seen from the auxiliary telescope: ICRS to azimuth and elevation (astropy).

Rubin's AuxTel on Cerro Pachón; a time is TAI unix seconds, as a script's clock gives it.
Coordinates are taken as Rubin's scripts take them: RA in hours (a number, or a sexagesimal
string `12:30:00.0`), Dec in degrees (`-30:30:00.0`).
"""

from __future__ import annotations

from typing import Any

from obsq.csc.core.errors import ExpectedError

#: Rubin's AuxTel (Cerro Pachón): latitude, longitude (deg) and height (m).
AUXTEL = (-30.2446, -70.7494, 2663.0)


def angle_deg(value: Any, *, hours: bool, field: str) -> float:
    """A coordinate in degrees from a number or a sexagesimal string; ExpectedError naming `field` if not one."""
    from astropy import units
    from astropy.coordinates import Angle

    unit = units.hourangle if hours else units.deg
    try:
        return float(Angle(value, unit=unit).to_value(units.deg))
    except (ValueError, TypeError) as exc:
        raise ExpectedError(f"{field}: {value!r} is not an angle ({exc})") from None


def altaz(ra_deg: float, dec_deg: float, tai_unix: float) -> tuple[float, float]:
    """(azimuth, elevation) in degrees of an ICRS position seen from AuxTel at `tai_unix`."""
    from astropy import units
    from astropy.coordinates import AltAz, EarthLocation, SkyCoord
    from astropy.time import Time

    lat, lon, height = AUXTEL
    site = EarthLocation(lat=lat * units.deg, lon=lon * units.deg, height=height * units.m)
    when = Time(tai_unix, format="unix_tai", scale="tai")
    seen = SkyCoord(ra=ra_deg * units.deg, dec=dec_deg * units.deg, frame="icrs").transform_to(
        AltAz(obstime=when, location=site)
    )
    return float(seen.az.deg), float(seen.alt.deg)
