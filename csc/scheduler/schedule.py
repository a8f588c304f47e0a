"""The schedule as data: a site and rules, read from YAML and validated at the door.

`deploy/schedule.yaml` (or `--schedule FILE`, `$OBSQ_SCHEDULE`) is checked against
`schemas/schedule.json`, then each rule's cron expression (croniter), the site's time zone
(IANA, zoneinfo), unique rule names and, where the block folders are given, that each block
exists. A refusal names the file, the rule and the field.
"""

from __future__ import annotations

import datetime
import json
import os
import zoneinfo
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from croniter import croniter

from obsq.csc.core.errors import ValidationError
from obsq.csc.core.interface import make_validator, with_defaults
from obsq.csc.core.yamltext import load_yaml
from obsq.csc.interfaces import interface_names
from obsq.csc.scriptqueue.blocks import check_target

SCHEDULE_SCHEMA: dict[str, Any] = json.loads(resources.files("obsq.schemas").joinpath("schedule.json").read_text())
_VALIDATOR = make_validator(SCHEDULE_SCHEMA)
SCHEDULE_ENV = "OBSQ_SCHEDULE"


@dataclass(frozen=True)
class Site:
    """Where the observatory is: for its time zone and its Sun."""

    name: str
    latitude: float
    longitude: float
    elevation: float
    timezone: str

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    def local(self, unix_s: float) -> datetime.datetime:
        return datetime.datetime.fromtimestamp(unix_s, tz=self.zone)


@dataclass(frozen=True)
class Rule:
    """One thing the Scheduler does by itself: when (cron, site time), what, and its guards."""

    name: str
    cron: str
    blocks: tuple[str, ...]
    estimated_duration_h: float
    enabled: bool
    window_h: float
    retry_min: float
    daylight_margin_min: float
    needs_enabled: tuple[str, ...]
    no_fault: tuple[str, ...]
    skip_if_certified: tuple[str, ...]
    only_when_due: tuple[str, ...] = ()
    #: flats by cadence: program -> cadence, the complete targets and the flats per set (None: not a flats rule)
    cadence_flats: Mapping[str, Any] | None = None
    #: blocks that end every run of the rule whatever happens to the others (the shutdown): runs.py's policy
    safe: tuple[str, ...] = ()
    #: a night rule's target (blocks.TARGET_SCHEMA), given to every block; None: a daytime rule
    target: Mapping[str, Any] | None = None
    min_elevation_deg: float = 20.0

    def occurrences(self, site: Site, start_unix: float, end_unix: float) -> list[float]:
        """Unix times of the rule's occurrences in [start, end), in the site's time zone."""
        first = datetime.datetime.fromtimestamp(start_unix, tz=site.zone) - datetime.timedelta(seconds=1)
        times: list[float] = []
        for moment in croniter(self.cron, first).all_next(datetime.datetime):
            stamp = moment.timestamp()
            if stamp >= end_unix:
                break
            if stamp >= start_unix:
                times.append(stamp)
        return times

    def latest(self, site: Site, now_unix: float) -> float | None:
        """The last occurrence at or before `now` (None if there is none in the past year).

        Never one after `now`, however close: at 600x a look at 16:59:59.4 is 1 ms of wall time early.
        """
        start = datetime.datetime.fromtimestamp(now_unix + 1, tz=site.zone)
        moment = croniter(self.cron, start).get_prev(datetime.datetime)
        if moment.timestamp() > now_unix:
            moment = croniter(self.cron, moment).get_prev(datetime.datetime)
        stamp: float = moment.timestamp()
        return stamp if now_unix - stamp < 366 * 86400 else None


@dataclass(frozen=True)
class Schedule:
    """A validated schedule file."""

    site: Site
    check_interval_s: float
    rules: tuple[Rule, ...]
    source: str

    def rule(self, name: str) -> Rule:
        for rule in self.rules:
            if rule.name == name:
                return rule
        raise KeyError(name)


def default_schedule_path() -> Path | None:
    """$OBSQ_SCHEDULE, else `deploy/schedule.yaml` of the source checkout if there is one."""
    if env := os.environ.get(SCHEDULE_ENV):
        return Path(env)
    candidate = Path(__file__).resolve().parents[2] / "deploy" / "schedule.yaml"
    return candidate if candidate.is_file() else None


def read_schedule(path: Path, known_blocks: Iterable[str] | None = None) -> Schedule:
    """The schedule in `path`; ValidationError naming the file, the rule and the field if it is not right."""
    label = f"schedule {path}"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValidationError(f"{label}: cannot be read ({exc.strerror or exc})") from None
    return parse_schedule(text, label, known_blocks)


def _check_rule(raw: dict[str, Any], where: str, rules: list[Rule], known: set[str] | None) -> None:
    """ValidationError naming the rule and the field unless a rule (defaults filled) is sound beside `rules`."""
    if any(r.name == raw["name"] for r in rules):
        raise ValidationError(f"{where}: field 'name': {raw['name']!r} is used by another rule")
    if not croniter.is_valid(raw["cron"]):
        raise ValidationError(f"{where}: field 'cron': {raw['cron']!r} is not a cron expression")
    components = set(interface_names())
    for field_name in ("needs_enabled", "no_fault"):
        for name in raw[field_name]:
            if name.partition(":")[0] not in components:
                raise ValidationError(f"{where}: field '{field_name}': {name!r} is no component; "
                                      f"known: {', '.join(sorted(components))}")  # fmt: skip
    safe = tuple(raw["safe"])
    tail = tuple(raw["blocks"][len(raw["blocks"]) - len(safe) :])
    if safe and any(b in raw["blocks"] for b in safe) and tail != safe:
        raise ValidationError(f"{where}: field 'safe': {list(safe)} must be the last of 'blocks' "
                              f"({list(raw['blocks'])}), or not in it: they run after the others")  # fmt: skip
    if known is not None:
        for block in (*raw["blocks"], *safe):
            if block not in known:
                raise ValidationError(
                    f"{where}: field 'blocks': unknown block {block!r}; available: {', '.join(sorted(known))}"
                )
    if "target" in raw:
        check_target(raw["target"], f"{where}: field 'target'")  # its fields and angles, named if wrong


def parse_schedule(text: str, label: str, known_blocks: Iterable[str] | None = None) -> Schedule:
    data = load_yaml(text, label)
    if not isinstance(data, dict):
        raise ValidationError(f"{label}: must be a mapping with 'site' and 'rules'")
    data = with_defaults(SCHEDULE_SCHEMA, data)
    _VALIDATOR.validate(label, data)
    site = Site(**data["site"])
    try:
        site.zone  # noqa: B018  (resolving the zone is the check)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"{label}: field 'site/timezone': {site.timezone!r} is not an IANA time zone") from None
    known = set(known_blocks) if known_blocks is not None else None
    rule_schema = SCHEDULE_SCHEMA["properties"]["rules"]["items"]
    rules: list[Rule] = []
    for i, given in enumerate(data["rules"]):
        raw = with_defaults(rule_schema, given)
        where = f"{label}: rule {raw['name']!r} (rules[{i}])"
        _check_rule(raw, where, rules, known)
        safe = tuple(raw["safe"])
        rule = Rule(
            name=raw["name"], cron=raw["cron"], blocks=tuple(raw["blocks"]),
            estimated_duration_h=raw["estimated_duration"], enabled=raw["enabled"], window_h=raw["window"],
            retry_min=raw["retry"], daylight_margin_min=raw["daylight_margin"],
            needs_enabled=tuple(raw["needs_enabled"]), no_fault=tuple(raw["no_fault"]),
            skip_if_certified=tuple(raw["skip_if_certified"]), only_when_due=tuple(raw["only_when_due"]),
            cadence_flats=with_defaults(rule_schema["properties"]["cadence_flats"], raw["cadence_flats"])
            if "cadence_flats" in raw else None, safe=safe, target=raw.get("target"),
            min_elevation_deg=raw["min_elevation"],
        )  # fmt: skip
        rules.append(rule)
    return Schedule(site, data["check_interval"], tuple(rules), label)
