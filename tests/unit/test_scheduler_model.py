"""The Scheduler's rules and guards, pure: the site's Sun, cron in site time, every guard with its reason."""

from __future__ import annotations

import datetime
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from obsq.csc.core.errors import ValidationError
from obsq.csc.scheduler.model import Action, Conditions, certified_this_week, decide, plan, week_bounds
from obsq.csc.scheduler.schedule import parse_schedule, read_schedule
from obsq.csc.scheduler.sun import Sun

SCHEDULE = read_schedule(Path(__file__).resolve().parents[2] / "deploy" / "schedule.yaml")  # the site's, as deployed
SITE = SCHEDULE.site
RULE = SCHEDULE.rule("weekly-calibrations")
SUN = Sun(SITE)
READY = Conditions(states=dict.fromkeys(RULE.needs_enabled, "ENABLED"), queue_running=True)


def at(text: str) -> float:
    """A site time, 'YYYY-MM-DD HH:MM'."""
    return datetime.datetime.fromisoformat(text).replace(tzinfo=SITE.zone).timestamp()


def test_the_weekly_rule_falls_on_mondays_at_14_site_time_across_the_daylight_saving_change() -> None:
    december = RULE.occurrences(SITE, at("2026-12-01 00:00"), at("2026-12-31 00:00"))
    assert [SITE.local(t).strftime("%a %d %H:%M") for t in december] == [
        "Mon 07 14:00", "Mon 14 14:00", "Mon 21 14:00", "Mon 28 14:00"]  # fmt: skip
    # Chile leaves summer time on the first Sunday of April 2027: still 14:00 on the Monday after
    (april,) = RULE.occurrences(SITE, at("2027-04-05 00:00"), at("2027-04-06 00:00"))
    assert SITE.local(april).strftime("%H:%M %z") == "14:00 -0400"
    assert RULE.latest(SITE, at("2026-12-09 10:00")) == at("2026-12-07 14:00")
    assert RULE.latest(SITE, at("2026-12-07 14:00")) == at("2026-12-07 14:00")  # on the dot: this one
    assert RULE.latest(SITE, at("2026-12-07 14:00") - 0.6) == at("2026-11-30 14:00")  # 0.6 s early: not yet


def test_the_suns_set_at_the_site_is_where_an_almanac_puts_it() -> None:
    sunset = SITE.local(SUN.next_sunset(at("2026-12-07 12:00")))
    assert sunset.strftime("%Y-%m-%d") == "2026-12-07"
    assert 20 * 60 + 25 <= sunset.hour * 60 + sunset.minute <= 20 * 60 + 50  # Cerro Pachón, early December
    assert SUN.is_up(at("2026-12-07 14:00"))
    assert not SUN.is_up(at("2026-12-07 23:00"))
    june = SITE.local(SUN.next_sunset(at("2027-06-21 12:00")))
    assert 17 * 60 + 45 <= june.hour * 60 + june.minute <= 18 * 60 + 15  # winter: 2.5 h earlier


def test_a_ready_observatory_on_monday_at_14_is_queued_with_every_guard_it_passed() -> None:
    made = decide(RULE, SITE, SUN, at("2026-12-07 14:00"), now=at("2026-12-07 14:00"), seen=READY)
    assert made.action == Action.QUEUE
    assert made.blocks == ("BLOCK-309", "BLOCK-295", "BLOCK-310")
    for guard in (
        "no certified bias/dark/flat master this week",
        "h of daylight left (sunset 20:",
        "3.0 h needed",
        "no earlier run in progress",
        "the queue is running",
        "ATDome, ATMCS",
        "no fault in ATWhiteLight",
    ):
        assert guard in made.reason


def test_too_little_daylight_is_a_skip_that_says_how_much() -> None:
    late = at("2026-12-07 18:30")
    made = decide(RULE, SITE, SUN, late, now=late, seen=READY)
    assert made.action == Action.SKIP
    assert "not enough daylight: 2.5 h of blocks and 30 min of margin need 3.0 h, 2." in made.reason
    night = at("2026-12-07 23:30")
    assert "the Sun is down (it rises at 06:" in decide(RULE, SITE, SUN, night, now=night, seen=READY).reason


def test_this_weeks_certified_masters_skip_the_run() -> None:
    monday = at("2026-12-07 14:00")
    start, end = week_bounds(SITE, monday)
    assert SITE.local(start).strftime("%a %H:%M") == "Mon 00:00"
    assert end - start == 7 * 86400
    mjd_tuesday = (monday + 86400) / 86400 + 40587.0
    products = [SimpleNamespace(type=t, mjd_mean=mjd_tuesday, certified=[(0, 1)], id=i, version=1)
                for i, t in enumerate(("bias", "dark", "flat"), 1)]  # fmt: skip
    found = certified_this_week(products, SITE, monday, RULE.skip_if_certified)
    made = decide(
        RULE, SITE, SUN, monday, now=monday, seen=Conditions(**{**READY.__dict__, "certified_this_week": found})
    )
    assert made.action == Action.SKIP
    assert made.reason == "this week's masters are already certified (bias: #1 v1; dark: #2 v1; flat: #3 v1)"
    last_week = certified_this_week(products, SITE, monday + 7 * 86400, RULE.skip_if_certified)
    assert last_week == {"bias": [], "dark": [], "flat": []}  # last week's do not count
    uncertified = [SimpleNamespace(**{**p.__dict__, "certified": []}) for p in products]
    assert certified_this_week(uncertified, SITE, monday, ("bias",)) == {"bias": []}


@pytest.mark.parametrize(
    ("seen", "reason"),
    [
        (Conditions(states={**READY.states, "ATDome": "FAULT"}), "ATDome is FAULT: the dome and telescope may not"),
        (Conditions(states={**READY.states, "ATMCS": None}), "ATMCS is not responding"),
        (Conditions(states={**READY.states, "OCPS:1": "FAULT"}), "OCPS:1 in FAULT"),
        (Conditions(states=READY.states, queue_running=False), "ScriptQueue:2 is paused by an operator"),
        (Conditions(states=READY.states, run_in_progress="BLOCK-295 script 200012 RUNNING"),
         "the previous run has not finished (BLOCK-295 script 200012 RUNNING)"),
    ],
)  # fmt: skip
def test_guards_postpone_with_their_reason_then_skip_when_the_window_closes(seen: Conditions, reason: str) -> None:
    occurrence = at("2026-12-07 14:00")
    made = decide(RULE, SITE, SUN, occurrence, now=occurrence + 600, seen=seen)
    assert made.action == Action.POSTPONE
    assert made.reason.startswith(reason)
    assert made.reason.endswith("looking again in 15 min (window until 17:00 -03)")
    closing = decide(RULE, SITE, SUN, occurrence, now=occurrence + 2.9 * 3600, seen=seen)
    assert closing.action == Action.SKIP
    assert closing.reason.startswith(reason)
    assert closing.reason.endswith("; its window closed at 17:00 -03")


def test_plan_for_two_weeks_shows_two_runs() -> None:
    made = plan(SCHEDULE.rules, SITE, SUN, start=at("2026-12-07 00:00"), end=at("2026-12-21 00:00"),
                certified=lambda t, types: {k: [] for k in types})  # fmt: skip
    assert [(d.row()["time"], d.action) for d in made] == [
        ("2026-12-07T17:00:00Z", Action.QUEUE), ("2026-12-14T17:00:00Z", Action.QUEUE)]  # fmt: skip
    assert "assumed ready (a plan sees no bus)" in made[0].reason


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("site: {}\nrules: []", "field 'site/name' is required"),
        ("site: &s {name: x, latitude: -30, longitude: -70, elevation: 0, timezone: Mars/Olympus}\n"
         "rules: [{name: a, cron: '0 14 * * MON', blocks: [BLOCK-309], estimated_duration: 1}]",
         "field 'site/timezone': 'Mars/Olympus' is not an IANA time zone"),
        ("site: {name: x, latitude: -30, longitude: -70, elevation: 0, timezone: UTC}\n"
         "rules: [{name: a, cron: '0 25 * * MON', blocks: [BLOCK-309], estimated_duration: 1}]",
         "rule 'a' (rules[0]): field 'cron': '0 25 * * MON' is not a cron expression"),
        ("site: {name: x, latitude: -30, longitude: -70, elevation: 0, timezone: UTC}\n"
         "rules: [{name: a, cron: '0 14 * * MON', blocks: [BLOCK-999], estimated_duration: 1}]",
         "rule 'a' (rules[0]): field 'blocks': unknown block 'BLOCK-999'"),
        ("site: {name: x, latitude: -30, longitude: -70, elevation: 0, timezone: UTC}\n"
         "rules: [{name: a, cron: '0 14 * * MON', blocks: [BLOCK-309], estimated_duration: 1,"
         " needs_enabled: [ATDomee]}]",
         "rule 'a' (rules[0]): field 'needs_enabled': 'ATDomee' is no component"),
        ("site: {name: x, latitude: -30, longitude: -70, elevation: 0, timezone: UTC}\n"
         "rules: [{name: a, cron: '0 14 * * MON', blocks: [BLOCK-309], estimated_duration: 1, colour: red}]",
         "field 'rules/0/colour' is not allowed"),
    ],
)  # fmt: skip
def test_a_bad_schedule_is_refused_naming_the_field(text: str, message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        parse_schedule(text, "schedule test.yaml", known_blocks=["BLOCK-309", "BLOCK-295", "BLOCK-310"])


def test_a_library_rule_queues_only_what_the_calibration_policy_makes_due() -> None:
    library = parse_schedule(
        "site: {name: x, latitude: -30.2446, longitude: -70.7494, elevation: 2663, timezone: America/Santiago}\n"
        "rules: [{name: library, cron: '0 10 * * *', blocks: [BLOCK-295], estimated_duration: 1,"
        " only_when_due: [bias, dark], needs_enabled: [], no_fault: [], skip_if_certified: []}]",
        "schedule test.yaml",
    ).rule("library")
    morning = at("2026-12-08 10:00")
    quiet = decide(library, SITE, SUN, morning, now=morning, seen=Conditions())
    assert quiet.action == Action.SKIP
    assert quiet.reason == "nothing is due by the calibration policy for bias, dark"
    due = {"dark": ["gain=1.0: #5: the season turned: taken in the warm season, now cold"]}
    made = decide(library, SITE, SUN, morning, now=morning, seen=Conditions(due=due))
    assert made.action == Action.QUEUE
    assert made.reason.startswith("due by the calibration policy: dark (gain=1.0: #5: the season turned")


def test_a_night_rule_with_a_target_waits_for_the_night_and_the_target_to_rise() -> None:
    """A rule with Rubin's target values: queued at night only, once the target is above its lowest elevation."""
    night = parse_schedule(
        """
site: {name: Cerro Pachón, latitude: -30.2446, longitude: -70.7494, elevation: 2663, timezone: America/Santiago}
rules:
  - name: hd104304
    cron: "0 * * * *"
    blocks: [BLOCK-295]
    estimated_duration: 0.5
    min_elevation: 30
    target: {name: HD104304, ra: "12:0:44.4601", dec: "-10:26:46.0670", band_filter: r, exp_times: [30, 30]}
""",
        "night.yaml",
    ).rule("hd104304")
    assert night.target is not None
    ready = Conditions(states=dict.fromkeys(night.needs_enabled, "ENABLED"), queue_running=True)
    # mid-January: HD 104304 (RA 12 h) rises in the east after midnight
    day = decide(night, SITE, SUN, at("2027-01-15 15:00"), now=at("2027-01-15 15:00"), seen=ready)
    assert day.action == Action.SKIP
    assert day.reason.startswith("the Sun is up: HD104304 is observed at night")
    low = decide(night, SITE, SUN, at("2027-01-15 23:00"), now=at("2027-01-15 23:00"), seen=ready)
    assert low.action == Action.POSTPONE
    assert re.match(r"HD104304 is at elevation -?\d+\.\d deg, below 30 deg; looking again in 15 min", low.reason)
    high = decide(night, SITE, SUN, at("2027-01-16 03:00"), now=at("2027-01-16 03:00"), seen=ready)
    assert high.action == Action.QUEUE, high.reason
    assert "the Sun is down; HD104304 at elevation" in high.reason
    for wrong, message in (
        ("{name: x, ra: 25, dec: 0}", "field 'ra': 25 is greater than the maximum of 24"),
        ("{ra: 1, dec: 0, magnitude: 3}", "field 'magnitude' is not allowed"),
        ('{ra: "1:xx", dec: 0}', "ra: '1:xx' is not an angle"),
    ):
        with pytest.raises(ValidationError, match=re.escape(message)):
            parse_schedule(f"""
site: {{name: x, latitude: -30, longitude: -70, elevation: 0, timezone: UTC}}
rules: [{{name: r, cron: "0 * * * *", blocks: [BLOCK-295], estimated_duration: 1, target: {wrong}}}]
""", "bad.yaml")  # fmt: skip
