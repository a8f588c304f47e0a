"""The Sun at the site: its rises and sets, by astropy, pure (no clock, no bus).

The Sun's altitude is computed on a 10-minute grid, vectorized (one astropy call per span of
days, cached), and each crossing of -0.833 deg (the upper limb at the horizon, with standard
refraction) is interpolated linearly between grid points: well within a minute. IERS tables
are never downloaded (the bundled ones with degraded accuracy are plenty for sunsets).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import numpy as np

from obsq.csc.scheduler.schedule import Site

SUNSET_ALTITUDE_DEG = -0.833
GRID_S = 600.0
#: How many days one astropy call covers.
SPAN_DAYS = 40


def sun_altitudes(site: Site, unix_s: np.ndarray) -> np.ndarray:
    """The Sun's altitude (deg) at the site at each unix time."""
    import astropy.units as u
    from astropy.coordinates import AltAz, EarthLocation, get_sun
    from astropy.time import Time
    from astropy.utils import iers

    iers.conf.auto_download = False
    iers.conf.iers_degraded_accuracy = "ignore"
    location = EarthLocation(lat=site.latitude * u.deg, lon=site.longitude * u.deg, height=site.elevation * u.m)
    times = Time(unix_s, format="unix", scale="utc")
    return np.asarray(get_sun(times).transform_to(AltAz(obstime=times, location=location)).alt.deg)


@dataclass
class Sun:
    """Sunrises and sunsets at a site, computed as needed and kept."""

    site: Site
    #: sorted crossing times and whether each is a sunset (True) or a sunrise (False)
    _times: list[float] = field(default_factory=list)
    _sets: list[bool] = field(default_factory=list)
    _covered: tuple[float, float] | None = None

    def _cover(self, start: float, end: float) -> None:
        if self._covered and self._covered[0] <= start and end <= self._covered[1]:
            return
        lo = min(start, self._covered[0]) if self._covered else start
        hi = max(end, self._covered[1]) if self._covered else end
        lo, hi = lo - 2 * 86400, max(hi + 2 * 86400, lo + SPAN_DAYS * 86400)
        grid = np.arange(lo, hi, GRID_S)
        alt = sun_altitudes(self.site, grid) - SUNSET_ALTITUDE_DEG
        times, sets = [], []
        for i in np.nonzero(np.sign(alt[:-1]) != np.sign(alt[1:]))[0]:
            fraction = alt[i] / (alt[i] - alt[i + 1])
            times.append(float(grid[i] + fraction * GRID_S))
            sets.append(bool(alt[i] > 0))
        self._times, self._sets, self._covered = times, sets, (lo + 86400, hi - 86400)

    def is_up(self, unix_s: float) -> bool:
        """Is the Sun above the horizon (its upper limb) at `unix_s`?"""
        self._cover(unix_s, unix_s)
        i = bisect.bisect_right(self._times, unix_s) - 1
        return i >= 0 and not self._sets[i]

    def next_sunset(self, unix_s: float) -> float:
        self._cover(unix_s, unix_s + 2 * 86400)
        i = bisect.bisect_right(self._times, unix_s)
        while not self._sets[i]:
            i += 1
        return self._times[i]

    def next_sunrise(self, unix_s: float) -> float:
        self._cover(unix_s, unix_s + 2 * 86400)
        i = bisect.bisect_right(self._times, unix_s)
        while self._sets[i]:
            i += 1
        return self._times[i]

    def daylight_left_s(self, unix_s: float) -> float:
        """Seconds until sunset if the Sun is up, else 0."""
        return self.next_sunset(unix_s) - unix_s if self.is_up(unix_s) else 0.0
