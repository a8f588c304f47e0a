"""What the Scheduler decides, pure: for a rule's occurrence and what the guards see, queue, skip or postpone.

The guards, in order, each with a reason that names what it saw:

1. this week's masters (the rule's `skip_if_certified` types, taken Monday to Monday in site
   time) are all certified in the calibration repository: skip;
2. not enough daylight: the blocks' estimated duration plus the margin does not fit before
   sunset (or the Sun is down): skip — later would only leave less; for a rule with a target
   (a night rule), the Sun must be down (skip) and the target above the rule's lowest
   elevation (postpone: it may rise within the window);
3. the previous run of the rule has not finished: postpone;
4. the queue is paused by an operator: postpone;
5. a component the dome and telescope need is not ENABLED, or one that may be in any state is
   in FAULT: postpone.

A postponement whose next look would fall after the rule's window becomes a skip that says so.
A queue decision lists every guard it passed.
"""

from __future__ import annotations

import datetime
import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from obsq.csc.scheduler.schedule import Rule, Site
from obsq.csc.scheduler.sun import Sun

UNIX_EPOCH_MJD = 40587.0
#: TAI - UTC (s): the sky is computed on TAI.
TAI_MINUS_UTC_S = 37.0


class Action(enum.StrEnum):
    """What the Scheduler does with an occurrence of a rule."""

    QUEUE = "queue"
    SKIP = "skip"
    POSTPONE = "postpone"


@dataclass(frozen=True)
class Conditions:
    """What the guards look at, at one instant."""

    #: component -> its summary state's name, or None when it is not responding
    states: Mapping[str, str | None] = field(default_factory=dict)
    #: is the queue running (None: not known)
    queue_running: bool | None = True
    #: what is still running of the rule's previous run ("" if nothing)
    run_in_progress: str = ""
    #: master type -> the certified masters of that type taken this week (descriptions)
    certified_this_week: Mapping[str, list[str]] = field(default_factory=dict)
    #: master type -> why the calibration policy makes it due (for rules queued only when due)
    due: Mapping[str, list[str]] = field(default_factory=dict)
    #: the flat sets due by cadence (for flats rules): `flats.FlatSet`s
    flat_sets: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Decision:
    """One decision about one occurrence of a rule."""

    rule: str
    occurrence: float
    time: float
    action: Action
    blocks: tuple[str, ...]
    reason: str

    def row(self) -> dict[str, Any]:
        """As `obsq scheduler plan --json` and the `decision` event give it."""
        return {"time": iso_utc(self.time), "action": str(self.action), "blocks": list(self.blocks),
                "reason": self.reason, "rule": self.rule, "occurrence": iso_utc(self.occurrence)}  # fmt: skip


def iso_utc(unix_s: float) -> str:
    return datetime.datetime.fromtimestamp(unix_s, tz=datetime.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def week_bounds(site: Site, unix_s: float) -> tuple[float, float]:
    """The site-time week (Monday 00:00 to the next Monday 00:00) holding `unix_s`, as unix times."""
    local = site.local(unix_s)
    monday = (local - datetime.timedelta(days=local.weekday())).date()
    start = datetime.datetime.combine(monday, datetime.time(), tzinfo=site.zone)
    end = datetime.datetime.combine(monday + datetime.timedelta(days=7), datetime.time(), tzinfo=site.zone)
    return start.timestamp(), end.timestamp()


def mjd(unix_s: float) -> float:
    return unix_s / 86400.0 + UNIX_EPOCH_MJD


def _hm(site: Site, unix_s: float) -> str:
    return site.local(unix_s).strftime("%H:%M %Z")


@dataclass(frozen=True)
class _Look:
    """One look of the guards: the rule, where and when, and what they see."""

    rule: Rule
    site: Site
    sun: Sun
    now: float
    seen: Conditions


Verdict = tuple[Action, str] | None


def _certified(look: _Look, passed: list[str]) -> Verdict:
    types = look.rule.skip_if_certified
    if not types:
        return None
    have = {t: look.seen.certified_this_week.get(t, []) for t in types}
    if all(have.values()):
        masters = "; ".join(f"{t}: {', '.join(names)}" for t, names in have.items())
        return Action.SKIP, f"this week's masters are already certified ({masters})"
    passed.append(f"no certified {'/'.join(t for t, names in have.items() if not names)} master this week")
    return None


def _library(look: _Look, passed: list[str]) -> Verdict:
    types = look.rule.only_when_due
    if not types:
        return None
    hits = [f"{t} ({'; '.join(look.seen.due[t])})" for t in types if look.seen.due.get(t)]
    if not hits:
        return Action.SKIP, f"nothing is due by the calibration policy for {', '.join(types)}"
    passed.append(f"due by the calibration policy: {', '.join(hits)}")
    return None


def _cadence(look: _Look, passed: list[str]) -> Verdict:
    if look.rule.cadence_flats is None:
        return None
    sets = look.seen.flat_sets
    taken = [s for s in sets if s.taken]
    skipped = [s.reason for s in sets if not s.taken]
    if not taken:
        why = f" ({'; '.join(skipped)})" if skipped else ""
        return Action.SKIP, f"no flats are due by cadence{why}"
    passed.append(f"{len(taken)} flat set(s) due by cadence: "
                  + "; ".join(f"{dict(s.params)['filter']}: {s.reason}" for s in taken))  # fmt: skip
    passed.extend(skipped)
    return None


def _night(look: _Look, passed: list[str]) -> Verdict:
    """A target rule: the Sun down, the target high enough."""
    from obsq.csc.core.sky import altaz, angle_deg

    rule, site, sun, now = look.rule, look.site, look.sun, look.now
    assert rule.target is not None
    if sun.is_up(now):
        return Action.SKIP, f"the Sun is up: {rule.target.get('name', 'the target')} is observed at night " \
                            f"(sunset {_hm(site, sun.next_sunset(now))})"  # fmt: skip
    ra = angle_deg(rule.target["ra"], hours=True, field="target.ra")
    dec = angle_deg(rule.target["dec"], hours=False, field="target.dec")
    _, elevation = altaz(ra, dec, now + TAI_MINUS_UTC_S)
    name = rule.target.get("name", f"ra {rule.target['ra']} dec {rule.target['dec']}")
    if elevation < rule.min_elevation_deg:
        return Action.POSTPONE, f"{name} is at elevation {elevation:.1f} deg, below {rule.min_elevation_deg:g} deg"
    passed.append(f"the Sun is down; {name} at elevation {elevation:.1f} deg")
    return None


def _daylight(look: _Look, passed: list[str]) -> Verdict:
    rule, site, sun, now = look.rule, look.site, look.sun, look.now
    if rule.target is not None:
        return _night(look, passed)
    if not sun.is_up(now):
        return Action.SKIP, f"the Sun is down (it rises at {_hm(site, sun.next_sunrise(now))})"
    needed_h = rule.estimated_duration_h + rule.daylight_margin_min / 60
    sunset = sun.next_sunset(now)
    left_h = (sunset - now) / 3600
    if left_h < needed_h:
        return Action.SKIP, (
            f"not enough daylight: {rule.estimated_duration_h:g} h of blocks and {rule.daylight_margin_min:g} min "
            f"of margin need {needed_h:.1f} h, {left_h:.1f} h left before sunset at {_hm(site, sunset)}"
        )
    passed.append(f"{left_h:.1f} h of daylight left (sunset {_hm(site, sunset)}), {needed_h:.1f} h needed")
    return None


def _previous_run(look: _Look, passed: list[str]) -> Verdict:
    if look.seen.run_in_progress:
        return Action.POSTPONE, f"the previous run has not finished ({look.seen.run_in_progress})"
    passed.append("no earlier run in progress")
    return None


def _queue(look: _Look, passed: list[str]) -> Verdict:
    if look.seen.queue_running is False:
        return Action.POSTPONE, "ScriptQueue:2 is paused by an operator"
    passed.append("the queue is running" if look.seen.queue_running else "the queue's state is not known")
    return None


def _components(look: _Look, passed: list[str]) -> Verdict:
    rule, states = look.rule, look.seen.states
    for name in rule.needs_enabled:
        state = states.get(name)
        if state != "ENABLED":
            what = "not responding" if state is None else state
            return Action.POSTPONE, f"{name} is {what}: the dome and telescope may not move"
    if rule.needs_enabled:
        passed.append(f"{', '.join(rule.needs_enabled)} ENABLED")
    faulted = [name for name in rule.no_fault if states.get(name) == "FAULT"]
    if faulted:
        return Action.POSTPONE, f"{', '.join(faulted)} in FAULT"
    if rule.no_fault:
        passed.append(f"no fault in {', '.join(rule.no_fault)}")
    return None


GUARDS = (_certified, _library, _cadence, _daylight, _previous_run, _queue, _components)


def decide(rule: Rule, site: Site, sun: Sun, occurrence: float, *, now: float, seen: Conditions) -> Decision:
    """The decision about `occurrence` of `rule` at `now`, given what the guards see."""
    look = _Look(rule, site, sun, now, seen)
    passed: list[str] = []
    for guard in GUARDS:
        verdict = guard(look, passed)
        if verdict is None:
            continue
        action, reason = verdict
        if action == Action.POSTPONE:
            closes = occurrence + rule.window_h * 3600
            if now + rule.retry_min * 60 > closes:
                action, reason = Action.SKIP, f"{reason}; its window closed at {_hm(site, closes)}"
            else:
                reason = f"{reason}; looking again in {rule.retry_min:g} min (window until {_hm(site, closes)})"
        return Decision(rule.name, occurrence, now, action, rule.blocks, reason)
    return Decision(rule.name, occurrence, now, Action.QUEUE, rule.blocks, "; ".join(passed))


def certified_this_week(products: list[Any], site: Site, now: float, types: tuple[str, ...]) -> dict[str, list[str]]:
    """Type -> certified masters of that type whose data were taken in the site-time week of `now`.

    `products` are the calibration repository's (`type`, `mjd_mean`, `certified`, `id`, `version`).
    """
    start, end = week_bounds(site, now)
    found: dict[str, list[str]] = {t: [] for t in types}
    for product in products:
        if product.type in found and product.certified and mjd(start) <= product.mjd_mean < mjd(end):
            found[product.type].append(f"#{product.id} v{product.version}")
    return found


#: What a plan says of the guards it cannot see without a bus.
ASSUMED = "components and queue assumed ready (a plan sees no bus)"


def plan(
    rules: tuple[Rule, ...],
    site: Site,
    sun: Sun,
    *,
    start: float,
    end: float,
    certified: Any,
    due: Mapping[str, list[str]] | None = None,
) -> list[Decision]:
    """What the rules would do in [start, end) and why, assuming the observatory ready.

    `certified(unix_s, types)` gives the certified masters of the week of `unix_s` (see
    `certified_this_week`), `due` what the calibration policy makes due now; the daylight and
    the repository are checked as the Scheduler does.
    """
    decisions = []
    for rule in rules:
        if not rule.enabled:
            continue
        for occurrence in rule.occurrences(site, start, end):
            seen = Conditions(
                states=dict.fromkeys(rule.needs_enabled, "ENABLED"), queue_running=True,
                certified_this_week=certified(occurrence, rule.skip_if_certified), due=due or {},
            )  # fmt: skip
            made = decide(rule, site, sun, occurrence, now=occurrence, seen=seen)
            if made.action == Action.QUEUE:
                made = Decision(made.rule, made.occurrence, made.time, made.action, made.blocks,
                                f"{made.reason}; {ASSUMED}")  # fmt: skip
            decisions.append(made)
    return sorted(decisions, key=lambda d: (d.time, d.rule))


def due_by_type(items: Iterable[Any]) -> dict[str, list[str]]:
    """The calibration policy's due items (`library.Due`) as type -> reasons."""
    found: dict[str, list[str]] = {}
    for item in items:
        where = item.setup + (f", filter {item.filter}" if item.filter else "")
        found.setdefault(item.type, []).append(f"{where}: {item.reason}")
    return found
