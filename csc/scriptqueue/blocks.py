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

from obsq.csc.core.errors import ValidationError
from obsq.csc.core.interface import make_validator, with_defaults
from obsq.csc.core.yamltext import load_yaml

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


def block_folders(site: list[Path] | None = None) -> list[Path]:
    """The shipped blocks, the site's (`$OBSQ_BLOCKS`), then `site`; a later folder's block overrides."""
    env = [Path(p) for p in os.environ.get(SITE_BLOCKS_ENV, "").split(os.pathsep) if p]
    return [Path(str(resources.files("obsq.blocks"))), *env, *(site or [])]


def available_blocks(folders: list[Path]) -> dict[str, Path]:
    """Program -> file, for every block file in `folders` and their subfolders (later folders override earlier ones)."""
    found: dict[str, Path] = {}
    for folder in folders:
        for file in sorted(folder.rglob("*.json")) if folder.is_dir() else []:
            try:
                program = json.loads(file.read_text()).get("program")
            except (json.JSONDecodeError, AttributeError):
                continue
            if isinstance(program, str):
                found[program] = file
    return found


def read_block(reference: str, folders: list[Path]) -> tuple[dict[str, Any], str]:
    """A block id (BLOCK-295), a path to a block file, or the block JSON itself; returns (data, label)."""
    text = reference.strip()
    if text.startswith("{"):
        label = "the block given as JSON"
    elif text.endswith(".json") and Path(text).is_file():
        label = f"block file {text}"
        text = Path(text).read_text()
    else:
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
) -> Block:
    """Validate the block and its scripts; fill `$variables`; `check_script(path, standard, yaml)` raises if bad."""
    _VALIDATOR.validate(label, data)
    program = data["program"]
    label = f"block {program}" if label.startswith("the block") else label
    values = _configuration(data.get("configuration_schema", ""), override, label)
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
            raise ValidationError(f"{where}: template ${missing[0]} has no value (not in the block's configuration)")
        if value.strip() == f"${template.get_identifiers()[0]}" and len(template.get_identifiers()) == 1:
            return values[template.get_identifiers()[0]]  # keep the value's type
        return template.substitute(values)
    return value
