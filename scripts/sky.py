"""Where a sky position is seen from the auxiliary telescope: ICRS to azimuth and elevation (astropy).

Rubin's AuxTel on Cerro Pachón; a time is TAI unix seconds, as a script's clock gives it.
Coordinates are taken as Rubin's scripts take them: RA in hours (a number, or a sexagesimal
string `12:30:00.0`), Dec in degrees (`-30:30:00.0`).
"""

from __future__ import annotations

from obsq.csc.core.sky import altaz, angle_deg, radec

__all__ = ["altaz", "angle_deg", "radec"]
