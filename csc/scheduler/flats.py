"""Flats by cadence, as N.I.N.A.'s Target Scheduler takes them (seed 000), pure.

The acquired light (OBJECT) images of the last 45 days are aggregated into flat
specifications: a light session (the date at noon, covering dusk to the following dawn, site
time) and the exposure parameters a flat must share with the lights (filter, grating, gain,
offset, binning, readout mode, rotation, ROI). A specification with a record in the flats
history is done. The others are grouped by their parameters: one flat set covers every pending
session of the same parameters, and it is due as soon as one of them is — when its program's
cadence (1, 2, 3, 5, 7, 10 or 14 days) has elapsed since that session, or at once when the
program flats on target completion and the target is complete. A program whose flats are off
asks for none. A due set with no trained flat exposure (the flat wizard's table, by filter,
grating, gain, offset and binning) is skipped, saying so.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: The cadences a program may ask for (days), "off", or "completion" (target completion).
CADENCES = (1, 2, 3, 5, 7, 10, 14)
OFF, COMPLETION = "off", "completion"
#: Only light images this recent count (Target Scheduler's limit).
LOOKBACK_DAYS = 45
#: The parameters a flat must share with its lights; the first five are those a trained exposure is keyed by.
PARAMETERS = ("filter", "grating", "gain", "offset", "binning", "readout", "rotation", "roi")
TRAINED_KEY = PARAMETERS[:5]

Params = tuple[tuple[str, str], ...]


def session_date(local: datetime.datetime) -> datetime.date:
    """The light session of a site-time moment: the date at noon before it (dusk to the following dawn)."""
    return (local - datetime.timedelta(hours=12)).date()


@dataclass(frozen=True)
class Light:
    """One acquired light image, as the flats need it."""

    local_time: datetime.datetime
    program: str
    target: str
    params: Mapping[str, str]


@dataclass(frozen=True)
class Program:
    """A program's flats handling: off, a cadence in days, or target completion."""

    name: str
    flats: int | str = OFF
    completed_targets: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.flats not in (*CADENCES, OFF, COMPLETION):
            raise ValueError(f"program {self.name!r}: flats {self.flats!r} is not off, completion or one of {CADENCES}")


@dataclass(frozen=True)
class FlatSet:
    """Flats to take now: their parameters, the sessions they cover, and why."""

    params: Params
    sessions: tuple[datetime.date, ...]
    exposure_s: float | None
    reason: str

    @property
    def taken(self) -> bool:
        return self.exposure_s is not None


@dataclass
class _Pending:
    params: Params
    sessions: dict[datetime.date, set[str]] = field(default_factory=dict)  # session -> why it is due ("" if not)


def key_of(params: Mapping[str, str]) -> Params:
    return tuple((name, str(params.get(name, ""))) for name in PARAMETERS)


def describe(params: Params) -> str:
    return ", ".join(f"{k}={v}" for k, v in params if v)


def flats_due(
    lights: Iterable[Light],
    programs: Mapping[str, Program],
    history: Iterable[tuple[datetime.date, Params]],
    trained: Mapping[Params, float],
    today: datetime.date,
) -> list[FlatSet]:
    """The flat sets to take on `today` (site date), each covering its parameters' pending sessions.

    `history` holds the (session, parameters) flats were taken for; `trained` the flat exposure
    (s) per trained key (`TRAINED_KEY` of the parameters, the rest empty).
    """
    done = set(history)
    pending: dict[Params, _Pending] = {}
    earliest = today - datetime.timedelta(days=LOOKBACK_DAYS)
    for light in lights:
        session = session_date(light.local_time)
        program = programs.get(light.program)
        if program is None or program.flats == OFF or session < earliest or session >= today:
            continue
        params = key_of(light.params)
        if (session, params) in done:
            continue
        reasons = pending.setdefault(params, _Pending(params)).sessions.setdefault(session, set())
        if program.flats == COMPLETION:
            if light.target in program.completed_targets:
                reasons.add(f"target {light.target} of {program.name} is complete")
        elif (today - session).days >= int(program.flats):
            reasons.add(f"{program.name}'s {program.flats}-day cadence has elapsed since the night of {session}")
    sets = []
    for params, group in sorted(pending.items()):
        why = sorted({reason for reasons in group.sessions.values() for reason in reasons})
        if not why:
            continue
        sessions = tuple(sorted(group.sessions))
        covered = ", ".join(str(s) for s in sessions)
        trained_key = tuple((k, v if k in TRAINED_KEY else "") for k, v in params)
        exposure = trained.get(trained_key)
        if exposure is None:
            reason = f"skipped: no trained flat exposure for {describe(trained_key)} (train it with the flat wizard)"
        else:
            reason = f"{'; '.join(why)}; covers the nights of {covered}; {exposure:g} s trained exposure"
        sets.append(FlatSet(params, sessions, exposure, reason))
    return sets


def trained_from(table: Mapping[str, Mapping[str, object]]) -> dict[Params, float]:
    """The flat wizard's trained table (`DATA/flats/trained.json`) as trained key -> exposure (s)."""
    trained: dict[Params, float] = {}
    for entry in table.values():
        params = {name: str(entry.get(name, "")) for name in TRAINED_KEY}
        trained[key_of(params)] = float(str(entry["exposure_s"]))
    return trained


def lights_from(images: Iterable[Any], zone: datetime.tzinfo) -> list[Light]:
    """The acquired-images registry's OBJECT images as lights (LATISS: binning 1x1; the group id is the target)."""
    lights = []
    for image in images:
        if image.imgtype != "OBJECT":
            continue
        local = datetime.datetime.fromtimestamp((image.mjd_obs - 40587.0) * 86400, tz=zone)
        params = {"filter": image.filter, "grating": image.grating, "binning": "1x1"}
        lights.append(Light(local.replace(tzinfo=None), image.program, image.groupid, params))
    return lights
