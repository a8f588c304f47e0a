"""The sky over the auxiliary telescope, pure: where a position is seen, where the Sun is, how bright twilight is.

Rubin's AuxTel on Cerro Pachón; a time is TAI unix seconds. Positions are ICRS degrees,
azimuth and elevation are degrees (azimuth from North through East). astropy does the
astronomy, with its bundled Earth-orientation tables only (nothing is downloaded).

Twilight (`twilight_e_s`): the sky's surface brightness falls by about 1.1 mag for each degree
the Sun is below the horizon between sunset and the end of nautical twilight (Tyson & Gal 1993,
AJ 105, 1206; the model pyobs and N.I.N.A.'s sky-flat tools assume), to the night sky's level.
At sunset the sky gives LATISS about 50,000 e-/s/pixel through SDSSr_65mm, so a 15,000 e- flat
takes 1 s with the Sun 1.2 deg down and 300 s at 6.8 deg down.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator
from typing import Any

from obsq.csc.core.errors import ExpectedError

#: Rubin's AuxTel (Cerro Pachón): latitude, longitude (deg) and height (m).
AUXTEL = (-30.2446, -70.7494, 2663.0)
#: e-/s/pixel of the sky at sunset through SDSSr_65mm, empty disperser.
SUNSET_SKY_E_S = 50_000.0
#: Magnitudes the twilight sky fades for each degree the Sun goes down.
TWILIGHT_MAG_PER_DEG = 1.1
#: e-/s/pixel of the dark night sky through SDSSr_65mm (about 21 mag/arcsec^2 at 0.1"/pixel).
NIGHT_SKY_E_S = 0.5


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Astropy's warnings on Earth-orientation tables and far dates: arcsecond matters, not for a simulator's sky."""
    from astropy.utils.exceptions import AstropyWarning
    from erfa import ErfaWarning  # type: ignore[import-untyped]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyWarning)
        warnings.simplefilter("ignore", ErfaWarning)
        yield


def _site() -> Any:
    from astropy import units
    from astropy.coordinates import EarthLocation
    from astropy.utils import iers

    iers.conf.auto_download = False
    lat, lon, height = AUXTEL
    return EarthLocation(lat=lat * units.deg, lon=lon * units.deg, height=height * units.m)


def _frame(tai_unix: float) -> Any:
    from astropy.coordinates import AltAz
    from astropy.time import Time

    return AltAz(obstime=Time(tai_unix, format="unix_tai", scale="tai"), location=_site())


def altaz(ra_deg: float, dec_deg: float, tai_unix: float) -> tuple[float, float]:
    """(azimuth, elevation) in degrees of an ICRS position seen from AuxTel at `tai_unix`."""
    with _quiet():
        from astropy import units
        from astropy.coordinates import SkyCoord

        seen = SkyCoord(ra=ra_deg * units.deg, dec=dec_deg * units.deg, frame="icrs").transform_to(_frame(tai_unix))
        return float(seen.az.deg), float(seen.alt.deg)


def radec(azimuth_deg: float, elevation_deg: float, tai_unix: float) -> tuple[float, float]:
    """(ra, dec) in ICRS degrees of the point seen at azimuth/elevation from AuxTel at `tai_unix`."""
    with _quiet():
        from astropy import units
        from astropy.coordinates import ICRS, SkyCoord

        seen = SkyCoord(az=azimuth_deg * units.deg, alt=elevation_deg * units.deg, frame=_frame(tai_unix))
        icrs = seen.transform_to(ICRS())
        return float(icrs.ra.deg), float(icrs.dec.deg)


def sun_azel(tai_unix: float) -> tuple[float, float]:
    """(azimuth, elevation) of the Sun in degrees, seen from AuxTel at `tai_unix`."""
    with _quiet():
        from astropy.coordinates import get_body

        frame = _frame(tai_unix)
        seen = get_body("sun", frame.obstime, frame.location).transform_to(frame)
        return float(seen.az.deg), float(seen.alt.deg)


def twilight_e_s(sun_elevation_deg: float) -> float:
    """e-/s/pixel of the sky through SDSSr_65mm with the Sun at this elevation (day: the sunset level x its rise).

    >>> round(twilight_e_s(0.0)), round(twilight_e_s(-5.0), 1), twilight_e_s(-30.0)
    (50000, 315.5, 0.5)
    """
    fade = 10.0 ** (-0.4 * TWILIGHT_MAG_PER_DEG * -sun_elevation_deg)
    return float(max(NIGHT_SKY_E_S, SUNSET_SKY_E_S * fade))


def separation_deg(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Angle between two (longitude, latitude) points in degrees (haversine)."""
    (lon1, lat1), (lon2, lat2) = (tuple(math.radians(v) for v in p) for p in (a, b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return math.degrees(2 * math.asin(min(1.0, math.sqrt(h))))


def altaz_many(ra_deg: Any, dec_deg: Any, tai_unix: float) -> tuple[Any, Any]:
    """(azimuths, elevations) in degrees of arrays of ICRS positions seen from AuxTel at `tai_unix`."""
    with _quiet():
        from astropy import units
        from astropy.coordinates import SkyCoord

        seen = SkyCoord(ra=ra_deg * units.deg, dec=dec_deg * units.deg, frame="icrs").transform_to(_frame(tai_unix))
        return seen.az.deg, seen.alt.deg


def angle_deg(value: Any, *, hours: bool, field: str) -> float:
    """A coordinate in degrees from a number or a sexagesimal string; ExpectedError naming `field` if not one."""
    from astropy import units
    from astropy.coordinates import Angle

    unit = units.hourangle if hours else units.deg
    try:
        return float(Angle(value, unit=unit).to_value(units.deg))
    except (ValueError, TypeError) as exc:
        raise ExpectedError(f"{field}: {value!r} is not an angle ({exc})") from None
