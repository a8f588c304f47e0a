"""Component configuration: YAML files per component, merged and validated against its schema.

Layout of a configuration root (default `deploy/config` of a source checkout, or
`$OBSQ_CONFIG_DIR`, or `--config-dir`):

    {root}/{Component}/_init.yaml      read first if present
    {root}/{Component}/_{site}.yaml    then the site's file, if present (`--site` / $OBSQ_SITE)
    {root}/{Component}/{override}      then the override named by `start`, which must exist

Files are deep-merged in that order onto the schema's defaults; a top-level `metadata` key
is dropped (as salobj does); the result must satisfy the component's configuration schema.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from obsq.csc.core.errors import ConfigurationError, ValidationError
from obsq.csc.core.interface import ComponentInterface, with_defaults
from obsq.csc.core.yamltext import load_yaml

CONFIG_DIR_ENV = "OBSQ_CONFIG_DIR"
SITE_ENV = "OBSQ_SITE"


@dataclass(frozen=True)
class AppliedConfiguration:
    """A validated configuration and the files it came from."""

    values: dict[str, Any]
    files: list[str]
    url: str
    schema_version: str


def default_config_root() -> Path | None:
    """$OBSQ_CONFIG_DIR, else `deploy/config` of the source checkout if there is one."""
    if env := os.environ.get(CONFIG_DIR_ENV):
        return Path(env)
    candidate = Path(__file__).resolve().parent.parent / "deploy" / "config"
    return candidate if candidate.is_dir() else None


def deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """`base` updated by `update`, merging nested mappings key by key.

    >>> deep_merge({"a": {"b": 1, "c": 2}}, {"a": {"c": 3}})
    {'a': {'b': 1, 'c': 3}}
    """
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_yaml(path: Path, component: str) -> dict[str, Any]:
    try:
        data = load_yaml(path.read_text(encoding="utf-8"), f"{component} configuration file {path.name}")
    except ValidationError as exc:
        raise ConfigurationError(str(exc)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigurationError(f"{component} configuration file {path.name}: must be a mapping")
    data.pop("metadata", None)
    return data


@dataclass(frozen=True)
class AvailableConfigurations:
    """What `start` may name: the override files of a component's folder (Rubin's configurationsAvailable)."""

    overrides: list[str]
    url: str
    schema_version: str


def _schema_version(interface: ComponentInterface) -> str:
    title = str(interface.configuration_schema.get("title", ""))
    return title.rsplit(" ", 1)[-1] if " v" in title else ""


def available_configurations(interface: ComponentInterface, *, config_root: Path | None) -> AvailableConfigurations:
    """The override files in the component's folder (not starting with '_' or '.'), sorted."""
    folder = config_root / interface.name if config_root else None
    if folder is None or not folder.is_dir():
        return AvailableConfigurations([], "", _schema_version(interface))
    names = sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix in (".yaml", ".yml")
                   and not p.name.startswith(("_", ".")))  # fmt: skip
    return AvailableConfigurations(names, folder.resolve().as_uri(), _schema_version(interface))


def load_configuration(
    interface: ComponentInterface,
    *,
    config_root: Path | None,
    site: str | None,
    override: str = "",
) -> AppliedConfiguration:
    """Read, merge and validate a component's configuration; ConfigurationError says what is wrong."""
    name = interface.name
    folder = config_root / name if config_root else None
    paths: list[Path] = []
    if folder is not None:
        paths += [p for p in (folder / "_init.yaml", folder / f"_{site}.yaml" if site else None) if p and p.is_file()]
    if override:
        if override.startswith("_") or "/" in override:
            raise ConfigurationError(
                f"{name} configuration override {override!r} must be a plain file name not starting with '_'"
            )
        if folder is None or not (folder / override).is_file():
            where = folder if folder is not None else "(no configuration directory)"
            raise ConfigurationError(f"{name} configuration override {override!r} not found in {where}")
        paths.append(folder / override)
    merged: dict[str, Any] = {}
    for path in paths:
        merged = deep_merge(merged, _read_yaml(path, name))
    values = with_defaults(interface.configuration_schema, merged)
    try:
        interface.validate_configuration(values)
    except ValidationError as exc:
        files = ", ".join(p.name for p in paths) or "defaults"
        raise ConfigurationError(f"{exc} (files: {files})") from None
    return AppliedConfiguration(
        values=values,
        files=[p.name for p in paths],
        url=folder.resolve().as_uri() if folder is not None and folder.is_dir() else "",
        schema_version=_schema_version(interface),
    )
