"""The calibration library's rhythm as policy data (seed 001), pure: which masters are due, and why.

For every setup in use (the signature of recent raw frames, reduced to the policy's `setup`
keys) and every type of the policy, the certified masters of that setup (and filter, for a
per-filter type) are looked at:

- none at all: due at once — a new gain, offset, readout mode, binning or temperature needs
  new calibrations; nothing is recycled from another setup;
- the newest one's data older than `refresh_days`: due;
- `per_season` and the season has turned since the newest one's data: due;
- drift: the newest one's mean, median or bad-pixel count differs from the one certified
  before it by more than the limit (10 %): due early.
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from obsq.csc.core.errors import ValidationError
from obsq.csc.core.interface import make_validator, with_defaults
from obsq.csc.core.yamltext import load_yaml

POLICY_SCHEMA: dict[str, Any] = json.loads(
    resources.files("obsq.schemas").joinpath("calibration-policy.json").read_text()
)
_VALIDATOR = make_validator(POLICY_SCHEMA)
#: How recent the raws are whose setups count as in use (days).
LOOKBACK_DAYS = 30
POLICY_ENV = "OBSQ_CALIBRATION_POLICY"


def default_policy_path() -> Path | None:
    """$OBSQ_CALIBRATION_POLICY, else `deploy/calibration-policy.yaml` of the source checkout if there is one."""
    if env := os.environ.get(POLICY_ENV):
        return Path(env)
    candidate = Path(__file__).resolve().parents[2] / "deploy" / "calibration-policy.yaml"
    return candidate if candidate.is_file() else None


@dataclass(frozen=True)
class TypePolicy:
    """One type's rhythm: a refresh age, a rebuild each season, one master per filter."""

    refresh_days: float | None
    per_season: bool
    per_filter: bool


@dataclass(frozen=True)
class Policy:
    """A validated calibration policy."""

    seasons: dict[int, str]  # month -> season
    setup: tuple[str, ...]
    types: dict[str, TypePolicy]
    drift_limit: float
    drift_metrics: tuple[str, ...]


@dataclass(frozen=True)
class Master:
    """A certified master as the policy sees it."""

    id: int
    type: str
    signature: Mapping[str, Any]
    filter: str
    mjd: float
    stats: Mapping[str, Any]


@dataclass(frozen=True)
class Due:
    """A master due, for which setup and filter, and why."""

    type: str
    setup: str
    filter: str
    reason: str
    last: int | None

    def row(self) -> dict[str, Any]:
        return {"type": self.type, "setup": self.setup, "filter": self.filter, "reason": self.reason,
                "last": self.last}  # fmt: skip


def read_policy(path: Path) -> Policy:
    label = f"calibration policy {path}"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValidationError(f"{label}: cannot be read ({exc.strerror or exc})") from None
    return parse_policy(text, label)


def parse_policy(text: str, label: str) -> Policy:
    data = load_yaml(text, label)
    if not isinstance(data, dict):
        raise ValidationError(f"{label}: must be a mapping with 'types'")
    data = with_defaults(POLICY_SCHEMA, data)
    _VALIDATOR.validate(label, data)
    months: dict[int, str] = {}
    for season, members in data["seasons"].items():
        for month in members:
            if month in months:
                raise ValidationError(f"{label}: field 'seasons': month {month} is in {months[month]} and {season}")
            months[month] = season
    if set(months) != set(range(1, 13)):
        missing = ", ".join(str(m) for m in range(1, 13) if m not in months)
        raise ValidationError(f"{label}: field 'seasons': months {missing} are in no season")
    types = {
        name: TypePolicy(spec.get("refresh_days"), spec.get("per_season", False), spec.get("per_filter", False))
        for name, spec in data["types"].items()
    }
    drift = with_defaults(POLICY_SCHEMA["properties"]["drift"], data["drift"])
    return Policy(months, tuple(data["setup"]), types, drift["limit"], tuple(drift["metrics"]))


def setup_key(policy: Policy, signature: Mapping[str, Any]) -> str:
    """The setup a signature belongs to, as text: the policy's setup keys that the signature has."""
    return ", ".join(f"{k}={signature[k]}" for k in policy.setup if k in signature and signature[k] != "")


def metric(stats: Mapping[str, Any], name: str) -> float | None:
    """A master's mean (of its amplifiers' clipped means), median (their p50) or bad-pixel count."""
    amps = [a for a in (stats.get("amps") or {}).values() if isinstance(a, Mapping)]
    key = {"mean": "mean_clip", "median": "p50", "bad_pixels": "n_bad"}[name]
    values = [float(a[key]) for a in amps if isinstance(a.get(key), int | float)]
    if not values:
        return None
    return sum(values) if name == "bad_pixels" else sum(values) / len(values)


def due(
    policy: Policy,
    masters: Iterable[Master],
    setups: Iterable[tuple[Mapping[str, Any], str]],
    today_mjd: float,
    month_of: Callable[[float], int],
) -> list[Due]:
    """What is due for the setups in use, `(signature, filter)` of recent raws, on `today_mjd`."""
    by_key: dict[tuple[str, str, str], list[Master]] = {}
    for master in masters:
        by_key.setdefault((master.type, setup_key(policy, master.signature), master.filter), []).append(master)
    wanted: set[tuple[str, str, str]] = set()
    for signature, filter_ in setups:
        for type_, rules in policy.types.items():
            wanted.add((type_, setup_key(policy, signature), filter_ if rules.per_filter else ""))
    result = []
    for type_, setup, filter_ in sorted(wanted):
        rules = policy.types[type_]
        found = sorted(by_key.get((type_, setup, filter_), []), key=lambda m: m.mjd)
        where = f"{setup}" + (f", filter {filter_}" if filter_ else "")
        if not found:
            result.append(Due(type_, setup, filter_, f"no certified {type_} master for {where}: a new setup needs new "
                              "calibrations at once (nothing is recycled)", None))  # fmt: skip
            continue
        newest = found[-1]
        reasons = []
        age = today_mjd - newest.mjd
        if rules.refresh_days is not None and age > rules.refresh_days:
            reasons.append(
                f"refresh: its data are {age:.0f} days old, over the {rules.refresh_days:g} days of the policy"
            )
        then, now = policy.seasons[month_of(newest.mjd)], policy.seasons[month_of(today_mjd)]
        if rules.per_season and then != now:
            reasons.append(f"the season turned: taken in the {then} season, now {now}")
        if len(found) > 1:
            before = found[-2]
            for name in policy.drift_metrics:
                old, new = metric(before.stats, name), metric(newest.stats, name)
                if old is None or new is None or old == 0:
                    continue
                change = (new - old) / abs(old)
                if abs(change) > policy.drift_limit:
                    reasons.append(f"early: its {name.replace('_', ' ')} drifted {change:+.0%} from #{before.id} "
                                   f"(limit {policy.drift_limit:.0%})")  # fmt: skip
        if reasons:
            result.append(Due(type_, setup, filter_, f"#{newest.id}: " + "; ".join(reasons), newest.id))
    return result


def month_of_mjd(mjd: float) -> int:
    """The UTC month of an MJD (a season is months long: the site's offset does not matter)."""
    return datetime.datetime.fromtimestamp((mjd - 40587.0) * 86400, tz=datetime.UTC).month


def setups_in_use(folder: Path, since_unix: float) -> tuple[list[tuple[dict[str, Any], str]], int]:
    """The (signature, filter) of each setup of the raws under `folder` written since `since_unix`.

    Only headers are read; the second value counts the files that could not be read as frames.
    """
    from obsq.csc.reduction.formats import READABLE_SUFFIXES
    from obsq.csc.reduction.frames import FrameError, open_frame

    found: dict[str, tuple[dict[str, Any], str]] = {}
    unread = 0
    files = [p for p in folder.rglob("*") if p.suffix.lower() in READABLE_SUFFIXES] if folder.is_dir() else []
    for file in sorted(files):
        try:
            if file.stat().st_mtime < since_unix:
                continue
            frame = open_frame(file, imgtype="OBJECT")  # a setup is the same whatever the frame's type (or none)
        except (FrameError, OSError):
            unread += 1
            continue
        found.setdefault(f"{sorted(frame.signature.items())}|{frame.filter}", (frame.signature, frame.filter))
    return list(found.values()), unread


@dataclass(frozen=True)
class DueNow:
    """What is due now, over how many setups and certified masters, and how many raws could not be read."""

    items: list[Due]
    setups: int
    masters: int
    unread: int


def due_now(policy: Policy, products: Iterable[Any], raws: Path, *, now_unix: float,
            days: float = LOOKBACK_DAYS) -> DueNow:  # fmt: skip
    """The policy applied to the repository's `products` and the setups of the raws of the last `days` days."""
    setups, unread = setups_in_use(raws, now_unix - days * 86400)
    masters = [Master(p.id, p.type, p.signature, p.filter, p.mjd_mean, p.stats) for p in products if p.certified]
    return DueNow(due(policy, masters, setups, now_unix / 86400 + 40587.0, month_of_mjd), len(setups), len(masters),
                  unread)  # fmt: skip
