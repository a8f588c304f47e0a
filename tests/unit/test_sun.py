"""The Sun's crossings, computed a span of days at a time and kept: the same as a fresh computation, each span once."""

from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np

from obsq.csc.scheduler.schedule import Site, read_schedule
from obsq.csc.scheduler.sun import GRID_S, MAX_SPANS, SPAN_S, SUNSET_ALTITUDE_DEG, Sun, sun_altitudes

SITE = read_schedule(Path(__file__).resolve().parents[2] / "deploy" / "schedule.yaml").site  # the site's, as deployed
DAY_S = 86400.0


def at(text: str) -> float:
    """A site time, 'YYYY-MM-DD HH:MM'."""
    return datetime.datetime.fromisoformat(text).replace(tzinfo=SITE.zone).timestamp()


def fresh_crossings(altitudes, start: float, end: float) -> list[tuple[float, bool]]:
    """(time, is a sunset) of each crossing in [start, end), from one computation on the 10-minute grid."""
    grid = np.arange(start // GRID_S * GRID_S, end + GRID_S, GRID_S)
    alt = altitudes(SITE, grid) - SUNSET_ALTITUDE_DEG
    found = [
        (float(grid[i] + alt[i] / (alt[i] - alt[i + 1]) * GRID_S), bool(alt[i] > 0))
        for i in np.nonzero(np.sign(alt[:-1]) != np.sign(alt[1:]))[0]
    ]
    return [(t, is_set) for t, is_set in found if start <= t < end]


def sun_answers(sun: Sun, start: float, end: float) -> list[tuple[float, bool]]:
    """The crossings in [start, end) as the Sun's next_sunset and next_sunrise give them."""
    found, t = [], start
    while True:
        crossing = min((sun.next_sunset(t), True), (sun.next_sunrise(t), False))
        if crossing[0] >= end:
            return found
        found.append(crossing)
        t = crossing[0]


class CountingAltitudes:
    """A cheap Sun of about the right shape (a day and a season), counting the grid points asked about."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, float]] = []

    def __call__(self, site: Site, unix_s: np.ndarray) -> np.ndarray:
        self.calls.append((float(unix_s[0]), float(unix_s[-1])))
        local_solar_s = unix_s + site.longitude / 360 * DAY_S
        season = 23.4 * np.sin(2 * np.pi * unix_s / (365.25 * DAY_S))
        return season / 2 - 60 * np.cos(2 * np.pi * local_solar_s / DAY_S) + 0.01 * np.sin(unix_s / 7e3)


def test_the_suns_crossings_on_days_far_apart_match_a_fresh_computation() -> None:
    sun = Sun(SITE)
    # asked about out of order; within the bundled IERS tables (after them astropy warns, and warnings are errors)
    days = [at("2027-06-21 00:00"), at("2026-03-20 00:00"), at("2026-12-07 00:00")]
    for day in days:
        assert sun.is_up(day + 14 * 3600)
        assert not sun.is_up(day + 23 * 3600)
    for day in days:
        fresh = fresh_crossings(sun_altitudes, day, day + DAY_S)
        got = sun_answers(sun, day, day + DAY_S)
        assert [is_set for _, is_set in got] == [is_set for _, is_set in fresh] == [False, True]
        assert np.allclose([t for t, _ in got], [t for t, _ in fresh], rtol=0, atol=1.0)  # within a second


def test_a_horizon_asked_about_day_by_day_computes_each_span_of_the_sun_once() -> None:
    altitudes = CountingAltitudes()
    sun = Sun(SITE, altitudes=altitudes)
    start, days = at("2026-12-07 00:00"), 366
    for _rule in range(2):  # a plan walks the horizon once per rule
        for day in range(days):
            noon = start + day * DAY_S + 12 * 3600
            sun.is_up(noon), sun.next_sunset(noon), sun.next_sunrise(noon)
    spans = [first for first, _ in altitudes.calls]
    assert len(spans) == len(set(spans)) <= (days + 2) * DAY_S / SPAN_S + 2  # each span once, the horizon's only
    assert all(last - first == SPAN_S for first, last in altitudes.calls)  # a span and the next one's first point
    # what was computed a span at a time is what one computation over the whole horizon finds
    fresh = fresh_crossings(CountingAltitudes(), start, start + days * DAY_S)
    assert sun_answers(sun, start, start + days * DAY_S) == fresh
    assert len(fresh) == 2 * days


def test_a_sun_that_runs_for_years_keeps_only_the_spans_asked_about_last() -> None:
    altitudes = CountingAltitudes()
    sun = Sun(SITE, altitudes=altitudes)
    start = at("2026-12-07 12:00")
    sun.is_up(start)
    for day in range(int((MAX_SPANS + 2) * SPAN_S / DAY_S)):
        sun.daylight_left_s(start + day * DAY_S)
    computed = len(altitudes.calls)
    sun.is_up(start + day * DAY_S - 3 * DAY_S)  # recent: kept
    assert len(altitudes.calls) == computed
    sun.is_up(start)  # long ago: forgotten, computed again
    assert len(altitudes.calls) == computed + 1
