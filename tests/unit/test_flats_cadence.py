"""Flats by cadence, as Target Scheduler takes them: the seed's three examples and the rules around them."""

from __future__ import annotations

import datetime

import pytest

from obsq.csc.scheduler.flats import COMPLETION, OFF, Light, Program, flats_due, key_of, session_date

R = {"filter": "SDSSr_65mm", "grating": "empty_1", "gain": "1", "offset": "0", "binning": "1x1"}
G = {**R, "filter": "SDSSg_65mm"}
TRAINED = {key_of(R): 6.0, key_of(G): 9.5}


def night(date: str, *, params: dict[str, str] = R, program: str = "survey", target: str = "M42") -> list[Light]:
    """Lights over the night starting on `date`: one at 23:00, one at 03:00 the next morning."""
    start = datetime.datetime.fromisoformat(f"{date}T23:00")
    return [Light(start, program, target, params), Light(start + datetime.timedelta(hours=4), program, target, params)]


def day(text: str) -> datetime.date:
    return datetime.date.fromisoformat(text)


def test_a_light_session_runs_from_noon_to_noon() -> None:
    assert session_date(datetime.datetime(2026, 12, 2, 3, 0)) == day("2026-12-01")
    assert session_date(datetime.datetime(2026, 12, 1, 21, 0)) == day("2026-12-01")
    assert session_date(datetime.datetime(2026, 12, 2, 12, 30)) == day("2026-12-02")


def test_cadence_1_after_the_night_of_december_1_to_2() -> None:
    programs = {"survey": Program("survey", 1)}
    (flats,) = flats_due(night("2026-12-01"), programs, [], TRAINED, day("2026-12-02"))
    assert flats.sessions == (day("2026-12-01"),)
    assert flats.exposure_s == 6.0
    assert "survey's 1-day cadence has elapsed since the night of 2026-12-01" in flats.reason


def test_cadence_3_over_december_1_to_4() -> None:
    programs = {"survey": Program("survey", 3)}
    lights = night("2026-12-01") + night("2026-12-02") + night("2026-12-03")
    assert flats_due(lights[:2], programs, [], TRAINED, day("2026-12-02")) == []  # morning of Dec 2: too soon
    assert flats_due(lights[:4], programs, [], TRAINED, day("2026-12-03")) == []  # morning of Dec 3: too soon
    (flats,) = flats_due(lights, programs, [], TRAINED, day("2026-12-04"))  # morning of Dec 4: taken
    assert flats.sessions == (day("2026-12-01"), day("2026-12-02"), day("2026-12-03"))


def test_the_weather_gap_to_december_6_to_7_covers_every_night_left() -> None:
    programs = {"survey": Program("survey", 3)}
    lights = night("2026-12-01") + night("2026-12-02") + night("2026-12-03") + night("2026-12-06")
    (flats,) = flats_due(lights, programs, [], TRAINED, day("2026-12-07"))
    assert flats.sessions == tuple(day(f"2026-12-0{d}") for d in (1, 2, 3, 6))
    history = [(s, flats.params) for s in flats.sessions]
    assert flats_due(lights, programs, history, TRAINED, day("2026-12-08")) == []  # recorded: not again


def test_each_parameter_set_is_its_own_flat_set_and_untrained_ones_are_skipped_by_name() -> None:
    programs = {"survey": Program("survey", 1)}
    binned = {**R, "binning": "2x2"}
    lights = night("2026-12-01") + night("2026-12-01", params=G) + night("2026-12-01", params=binned)
    sets = {dict(s.params)["filter"] + dict(s.params)["binning"]: s for s in flats_due(lights, programs, [], TRAINED,
                                                                                      day("2026-12-02"))}  # fmt: skip
    assert sets["SDSSg_65mm1x1"].exposure_s == 9.5
    skipped = sets["SDSSr_65mm2x2"]
    assert not skipped.taken
    assert skipped.reason.startswith("skipped: no trained flat exposure for filter=SDSSr_65mm, grating=empty_1, "
                                     "gain=1, offset=0, binning=2x2")  # fmt: skip


def test_off_and_target_completion_and_the_45_day_look_back() -> None:
    programs = {"off": Program("off", OFF), "done": Program("done", COMPLETION, frozenset({"M42"})),
                "open": Program("open", COMPLETION)}  # fmt: skip
    assert flats_due(night("2026-12-01", program="off"), programs, [], TRAINED, day("2026-12-20")) == []
    (flats,) = flats_due(night("2026-12-01", program="done"), programs, [], TRAINED, day("2026-12-02"))
    assert "target M42 of done is complete" in flats.reason
    assert flats_due(night("2026-12-01", program="open"), programs, [], TRAINED, day("2026-12-20")) == []
    old = {"survey": Program("survey", 14)}
    assert flats_due(night("2026-10-01"), old, [], TRAINED, day("2026-12-01")) == []  # older than 45 days
    with pytest.raises(ValueError, match="flats 4 is not off, completion or one of"):
        Program("x", 4)
