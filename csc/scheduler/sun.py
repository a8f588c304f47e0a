"""The Sun at the site: its rises and sets, by astropy, pure (no clock, no bus).

The Sun's altitude is computed on a 10-minute grid aligned on the unix epoch, vectorized, one
astropy call per span of `SPAN_DAYS` days (spans are fixed: span k starts at k * `SPAN_S`), and
each crossing of -0.833 deg (the upper limb at the horizon, with standard refraction) is
interpolated linearly between grid points: well within a minute. IERS tables are never
downloaded (the bundled ones with degraded accuracy are plenty for sunsets).

Invariants: a span's crossings are computed once and kept while it is among the `MAX_SPANS`
most recently asked about, so walking a horizon day by day (once per rule, as a plan does)
computes each day of the Sun once; a crossing belongs to the span holding the grid point just
before it, so none is lost or counted twice at a span's edge. Only `Sun._span` fills the cache.
"""

from __future__ import annotations

import bisect
import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from obsq.csc.scheduler.schedule import Site

SUNSET_ALTITUDE_DEG = -0.833
GRID_S = 600.0
#: How many days one astropy call covers (about 0.3 s of CPU).
SPAN_DAYS = 10
SPAN_S = SPAN_DAYS * 86400.0
#: How many spans a Sun keeps (the most recently asked about): 640 days, more than a 366-day plan.
MAX_SPANS = 64
#: How far ahead a next sunset or sunrise is looked for before giving up (polar day or night).
SEARCH_SPANS = 40

#: The Sun's altitude (deg) at a site at each of an array of unix times.
Altitudes = Callable[[Site, np.ndarray], np.ndarray]


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


@dataclass(frozen=True)
class Crossings:
    """The Sun's crossings of the horizon in one span of days.

    Attributes:
        up_at_start: whether the Sun is up at the span's first instant.
        times: sorted unix times (s) of the crossings.
        sets: for each crossing, whether it is a sunset (True) or a sunrise (False).
    """

    up_at_start: bool
    times: list[float]
    sets: list[bool]


def span_index(unix_s: float) -> int:
    """The span holding `unix_s`."""
    return math.floor(unix_s / SPAN_S)


def span_crossings(site: Site, index: int, altitudes: Altitudes = sun_altitudes) -> Crossings:
    """The crossings in span `index`, [index * SPAN_S, (index + 1) * SPAN_S), by one call of `altitudes`."""
    # the next span's first grid point too, to see a crossing between the two spans
    grid = index * SPAN_S + GRID_S * np.arange(round(SPAN_S / GRID_S) + 1)
    alt = np.asarray(altitudes(site, grid)) - SUNSET_ALTITUDE_DEG
    times, sets = [], []
    for i in np.nonzero(np.sign(alt[:-1]) != np.sign(alt[1:]))[0]:
        fraction = alt[i] / (alt[i] - alt[i + 1])
        times.append(float(grid[i] + fraction * GRID_S))
        sets.append(bool(alt[i] > 0))
    return Crossings(bool(alt[0] > 0), times, sets)


@dataclass
class Sun:
    """Sunrises and sunsets at a site, computed a span of days at a time as needed, and kept.

    `altitudes` computes the Sun's altitudes (astropy's by default; tests count or replace it).
    """

    site: Site
    altitudes: Altitudes = field(default=sun_altitudes, repr=False)
    #: span index -> its crossings, least recently asked about first
    _spans: OrderedDict[int, Crossings] = field(default_factory=OrderedDict, repr=False)

    def _span(self, index: int) -> Crossings:
        crossings = self._spans.get(index)
        if crossings is not None:
            self._spans.move_to_end(index)
            return crossings
        crossings = self._spans[index] = span_crossings(self.site, index, self.altitudes)
        if len(self._spans) > MAX_SPANS:
            self._spans.popitem(last=False)
        return crossings

    def _next(self, unix_s: float, *, sunset: bool) -> float:
        first = span_index(unix_s)
        for index in range(first, first + SEARCH_SPANS):
            crossings = self._span(index)
            i = bisect.bisect_right(crossings.times, unix_s)
            for time, is_set in zip(crossings.times[i:], crossings.sets[i:], strict=True):
                if is_set == sunset:
                    return time
        what = "sunset" if sunset else "sunrise"
        raise ValueError(f"no {what} at {self.site.name} within {SEARCH_SPANS * SPAN_DAYS} days of {unix_s:.0f}")

    def is_up(self, unix_s: float) -> bool:
        """Is the Sun above the horizon (its upper limb) at `unix_s`?"""
        crossings = self._span(span_index(unix_s))
        i = bisect.bisect_right(crossings.times, unix_s) - 1
        return not crossings.sets[i] if i >= 0 else crossings.up_at_start

    def next_sunset(self, unix_s: float) -> float:
        return self._next(unix_s, sunset=True)

    def next_sunrise(self, unix_s: float) -> float:
        return self._next(unix_s, sunset=False)

    def daylight_left_s(self, unix_s: float) -> float:
        """Seconds until sunset if the Sun is up, else 0."""
        return self.next_sunset(unix_s) - unix_s if self.is_up(unix_s) else 0.0
