"""Where a sky position is seen from the auxiliary telescope: ICRS to azimuth and elevation (astropy).

Rubin's AuxTel on Cerro Pachón; a time is TAI unix seconds, as a script's clock gives it.
Coordinates are taken as Rubin's scripts take them: RA in hours (a number, or a sexagesimal
string `12:30:00.0`), Dec in degrees (`-30:30:00.0`).
"""

from __future__ import annotations

from typing import Any

from obsq.csc.core.errors import ExpectedError
from obsq.csc.core.sky import altaz, radec

__all__ = ["altaz", "angle_deg", "radec"]


def angle_deg(value: Any, *, hours: bool, field: str) -> float:
    """A coordinate in degrees from a number or a sexagesimal string; ExpectedError naming `field` if not one."""
    from astropy import units
    from astropy.coordinates import Angle

    unit = units.hourangle if hours else units.deg
    try:
        return float(Angle(value, unit=unit).to_value(units.deg))
    except (ValueError, TypeError) as exc:
        raise ExpectedError(f"{field}: {value!r} is not an angle ({exc})") from None
