"""Observing blocks: find, validate, template and expand them into queue items — pure apart from reading files.

A block is validated in full before anything is queued: the block against schemas/block.json,
its `$variable` templates against its configuration schema (defaults filled in, then the
override), each script path against the script roots, and each script's parameters against
that script's configuration schema. Refusals name the block, the script, the field and the rule.
"""

from __future__ import annotations

import json
import os
import string
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from obsq.csc.core.errors import ExpectedError, ValidationError
from obsq.csc.core.interface import make_validator, with_defaults
from obsq.csc.core.yamltext import load_yaml

#: MJD of 1970-01-01 (a TAI unix time's days counted from it give a TAI MJD).
MJD_AT_UNIX_EPOCH = 40_587.0
BLOCK_SCHEMA: dict[str, Any] = json.loads(resources.files("obsq.schemas").joinpath("block.json").read_text())
_VALIDATOR = make_validator(BLOCK_SCHEMA)


@dataclass(frozen=True)
class BlockScript:
    """One script of an expanded block: path, standard, and its configuration as YAML text."""

    path: str
    standard: bool
    config: str


@dataclass(frozen=True)
class Block:
    """A validated block, its templates filled in."""

    program: str
    name: str
    scripts: list[BlockScript]


#: A site's own block folders (os.pathsep-separated), after the shipped blocks: read by the queue, the
#: Scheduler and the command line alike (as Rubin's Scheduler reads its observing-blocks folder).
SITE_BLOCKS_ENV = "OBSQ_BLOCKS"


@dataclass(frozen=True)
class Target:
    """Where and how a block observes, as Rubin's Scheduler knows it (ts_scheduler DriverTarget): angles in degrees.

    The defaults are those of an `addBlock` (a target at 0, 0 with no exposures), which Rubin's
    driver fills in for a block queued by hand.
    """

    targetid: int = 0
    band_filter: str = ""
    note: str = "Target"
    ra_deg: float = 0.0
    dec_deg: float = 0.0
    rot_sky: float = 0.0
    alt: float = 0.0
    az: float = 0.0
    rot: float = 0.0
    obs_time: float = 0.0
    exp_times: tuple[float, ...] = ()
    slew_time: float = 0.0


#: A target as a rule, an operator or `addBlock`'s `target` gives it: Rubin's DriverTarget's values.
TARGET_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["ra", "dec"],
    "properties": {
        "name": {"type": "string", "description": "target name ($name)"},
        "note": {"type": "string", "description": "Rubin's note, program:name ($note; $name is after the colon)"},
        "targetid": {"type": "integer", "minimum": 0},
        "ra": {"anyOf": [{"type": "number", "minimum": 0, "maximum": 24}, {"type": "string"}],
               "description": "ICRS RA (hour), a number or sexagesimal"},
        "dec": {"anyOf": [{"type": "number", "minimum": -90, "maximum": 90}, {"type": "string"}],
                "description": "ICRS Dec (deg), a number or sexagesimal"},
        "band_filter": {"type": "string"},
        "exp_times": {"anyOf": [{"type": "number", "minimum": 0},
                                {"type": "array", "items": {"type": "number", "minimum": 0}}]},
        "rot_sky": {"type": "number"},
        "estimated_slew_time": {"type": "number", "minimum": 0},
    },
}  # fmt: skip
_TARGET_VALIDATOR = make_validator(TARGET_SCHEMA, "target")


def check_target(values: Any, where: str) -> tuple[float, float]:
    """A target mapping's ICRS (ra, dec) in degrees; ValidationError naming `where`, the field and the rule."""
    from obsq.csc.core.sky import angle_deg

    if not isinstance(values, dict):
        raise ValidationError(f"{where}: a target is a mapping (ra, dec, name…), not {type(values).__name__}")
    _TARGET_VALIDATOR.validate(where, values)
    try:
        return (angle_deg(values["ra"], hours=True, field=f"{where}: ra"),
                angle_deg(values["dec"], hours=False, field=f"{where}: dec"))  # fmt: skip
    except ExpectedError as exc:
        raise ValidationError(str(exc)) from None


def parse_target(values: Any, where: str, tai: float) -> Target:
    """A Target from a mapping (TARGET_SCHEMA); its alt/az and obs_time (MJD) where it is at `tai`.

    ValidationError naming `where`, the field and the rule if the mapping is not a target.
    """
    from obsq.csc.core.sky import altaz

    ra, dec = check_target(values, where)
    azimuth, elevation = altaz(ra, dec, tai)
    exp_times = values.get("exp_times", [])
    name = str(values.get("name", ""))
    return Target(
        targetid=values.get("targetid", 0), band_filter=values.get("band_filter", ""),
        note=str(values.get("note", name or "Target")), ra_deg=ra, dec_deg=dec,
        rot_sky=float(values.get("rot_sky", 0.0)),
        alt=elevation, az=azimuth, obs_time=tai / 86400.0 + MJD_AT_UNIX_EPOCH,
        exp_times=tuple(float(t) for t in (exp_times if isinstance(exp_times, list) else [exp_times])),
        slew_time=float(values.get("estimated_slew_time", 0.0)),
    )  # fmt: skip


def block_target(text: str, where: str, tai: float) -> Target | None:
    """The target an addBlock's `target` field gives (YAML/JSON), None when empty."""
    if not text.strip():
        return None
    return parse_target(load_yaml(text, where), where, tai)


#: The names Rubin's Scheduler substitutes in every block's script configuration (`$ra`, `$exp_times`…).
TARGET_VALUES = ("targetid", "band_filter", "filter_name", "name", "note", "ra", "dec", "rot_sky", "alt", "az",
                 "rot", "obs_time", "num_exp", "exp_times", "estimated_slew_time", "program",
                 "observation_reason")  # fmt: skip


def target_values(program: str, target: Target | None = None) -> dict[str, Any]:
    """The values of TARGET_VALUES for a block, as ts_scheduler's DriverTarget.get_script_config gives them.

    RA and Dec are sexagesimal strings with a sign (`+8:13:49.62936`, `-33:07:24.4416`), as astropy
    writes them there; the target's name is its note after the last colon; the reason is Rubin's
    `Scheduler_Driven_Observation`. A block's own configuration values take precedence over these.
    """
    target = target or Target()
    return {
        "targetid": int(target.targetid), "band_filter": target.band_filter, "filter_name": target.band_filter,
        "name": target.note.split(":", maxsplit=1)[-1], "note": target.note,
        "ra": _sexagesimal(target.ra_deg, hours=True), "dec": _sexagesimal(target.dec_deg, hours=False),
        "rot_sky": float(target.rot_sky), "alt": float(target.alt), "az": float(target.az), "rot": float(target.rot),
        "obs_time": float(target.obs_time), "num_exp": len(target.exp_times),
        "exp_times": [float(t) for t in target.exp_times], "estimated_slew_time": float(target.slew_time),
        "program": program, "observation_reason": "Scheduler_Driven_Observation",
    }  # fmt: skip


def _sexagesimal(degrees: float, *, hours: bool) -> str:
    if degrees == 0.0:
        return "+0:00:00"
    from astropy import units
    from astropy.coordinates import Angle

    return str(Angle(degrees, unit=units.deg).to_string(unit=units.hourangle if hours else units.deg, sep=":",
                                                        alwayssign=True))  # fmt: skip


def block_folders(site: list[Path] | None = None) -> list[Path]:
    """The shipped blocks, the site's (`$OBSQ_BLOCKS`), then `site`; a later folder's block overrides."""
    env = [Path(p) for p in os.environ.get(SITE_BLOCKS_ENV, "").split(os.pathsep) if p]
    return [Path(str(resources.files("obsq.blocks"))), *env, *(site or [])]


def available_blocks(folders: list[Path]) -> dict[str, Path]:
    """Program -> file, for every block file in `folders` and their subfolders; a program defined twice is left out.

    The same definition found twice (a site's copy of a shipped block) is one block; two different
    definitions of one program are a clash (`block_clashes`), and neither is taken.
    """
    found, clashes = _index(folders)
    return {program: files[0] for program, files in found.items() if program not in clashes}


def block_clashes(folders: list[Path]) -> dict[str, list[Path]]:
    """Programs defined differently by two or more files in `folders`: program -> the files."""
    return _index(folders)[1]


def _index(folders: list[Path]) -> tuple[dict[str, list[Path]], dict[str, list[Path]]]:
    found: dict[str, list[Path]] = {}
    contents: dict[str, list[Any]] = {}
    for folder in folders:
        for file in sorted(folder.rglob("*.json")) if folder.is_dir() else []:
            try:
                data = json.loads(file.read_text())
                program = data.get("program")
            except (json.JSONDecodeError, AttributeError, OSError, UnicodeDecodeError):
                continue
            if isinstance(program, str):
                found.setdefault(program, []).append(file)
                contents.setdefault(program, []).append(data)
    clashes = {p: files for p, files in found.items() if any(c != contents[p][0] for c in contents[p][1:])}
    return found, clashes


def read_block(reference: str, folders: list[Path]) -> tuple[dict[str, Any], str]:
    """A block id (BLOCK-295), a path to a block file, or the block JSON itself; returns (data, label)."""
    text = reference.strip()
    if text.startswith("{"):
        label = "the block given as JSON"
    elif text.endswith(".json") and Path(text).is_file():
        label = f"block file {text}"
        text = Path(text).read_text()
    elif text.endswith(".json") and Path(text).is_symlink():
        raise ValidationError(f"block file {text} is a link to {os.readlink(text)}, which does not exist")
    elif text.endswith(".json") and ("/" in text or os.sep in text):
        raise ValidationError(f"no block file {text}")
    else:
        clashes = block_clashes(folders)
        if text in clashes:
            raise ValidationError(
                f"block {text} is defined differently in {len(clashes[text])} files ("
                f"{', '.join(str(f) for f in clashes[text])}): a program id names one block (rule: unique "
                "program ids); give the file, or rename one's program"
            )
        blocks = available_blocks(folders)
        if text not in blocks:
            raise ValidationError(f"unknown block {reference!r}; available: {', '.join(sorted(blocks)) or 'none'}")
        label = f"block {reference}"
        text = blocks[text].read_text()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(f"{label} is not valid JSON: {exc}") from None
    return data, label


def expand_block(
    data: Any,
    label: str,
    override: dict[str, Any],
    check_script: Callable[[str, bool, str], None],
    target: Target | None = None,
) -> Block:
    """Validate the block and its scripts; fill `$variables`; `check_script(path, standard, yaml)` raises if bad.

    The variables are the block's configuration (defaults, then `override`) and the target's values
    (TARGET_VALUES, `target` or an addBlock's defaults).
    """
    _VALIDATOR.validate(label, data)
    program = data["program"]
    label = f"block {program}" if label.startswith("the block") else label
    # Rubin's Scheduler substitutes a target's values in every block, the block's configuration winning
    values = target_values(program, target) | _configuration(data.get("configuration_schema", ""), override, label)
    scripts = []
    for i, script in enumerate(data["scripts"], start=1):
        where = f"{label} script {i} ({script['name']})"
        parameters = _substitute(script.get("parameters", {}), values, where)
        config = yaml.safe_dump(parameters, sort_keys=False) if parameters else ""
        try:
            check_script(script["name"], script["standard"], config)
        except ValidationError as exc:
            raise ValidationError(f"{where}: {exc}") from None
        scripts.append(BlockScript(script["name"], script["standard"], config))
    return Block(program, data["name"], scripts)


def _configuration(schema_text: str, override: dict[str, Any], label: str) -> dict[str, Any]:
    if not schema_text.strip():
        if override:
            raise ValidationError(
                f"{label} has no configuration_schema, so it takes no override ({', '.join(override)})"
            )
        return {}
    schema = load_yaml(schema_text, f"{label}: configuration_schema")
    if not isinstance(schema, dict):
        raise ValidationError(f"{label}: configuration_schema must be a mapping, not {type(schema).__name__}")
    validator = make_validator(schema, f"{label}: configuration_schema")
    values = with_defaults(schema, override)
    validator.validate(f"{label} configuration", values)
    return values


def _substitute(value: Any, values: dict[str, Any], where: str) -> Any:
    """`$name` templates in strings replaced by the block's configuration values."""
    if isinstance(value, dict):
        return {k: _substitute(v, values, where) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, values, where) for v in value]
    if isinstance(value, str) and "$" in value:
        template = string.Template(value)
        if not template.is_valid():
            shown = value if len(value) <= 60 else f"{value[:60]}…"
            raise ValidationError(
                f"{where}: {shown!r} is not a valid template: write $name or ${{name}}, and $$ for a dollar"
                " (rule: template)"
            )
        missing = [name for name in template.get_identifiers() if name not in values]
        if missing:
            raise ValidationError(f"{where}: template ${missing[0]} has no value (not in the block's configuration "
                                  "nor one of the target's values: " + ", ".join(TARGET_VALUES) + ")")  # fmt: skip
        if value.strip() == f"${template.get_identifiers()[0]}" and len(template.get_identifiers()) == 1:
            return values[template.get_identifiers()[0]]  # keep the value's type
        return template.substitute(values)
    return value
