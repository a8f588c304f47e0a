"""Loading component interfaces from the package data in `obsq.schemas`.

`interface_names` and `interface_summary` read the files only (the command line lists
components with them, and must start fast); `load_interface` builds the validators.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

from obsq.csc.core.codec import WireLimits
from obsq.csc.core.errors import ValidationError

if TYPE_CHECKING:
    import jsonschema

    from obsq.csc.core.interface import ComponentInterface


def _read_json(*parts: str) -> Any:
    node = resources.files("obsq.schemas").joinpath(*parts)
    return json.loads(node.read_text(encoding="utf-8"))


@functools.cache
def _meta_validator() -> jsonschema.protocols.Validator:
    import jsonschema

    return jsonschema.Draft202012Validator(_read_json("interface.schema.json"))


@functools.cache
def interface_names() -> list[str]:
    """Names of every component with an interface file."""
    folder = resources.files("obsq.schemas").joinpath("interfaces")
    return sorted(
        p.name.removesuffix(".json") for p in folder.iterdir() if p.name.endswith(".json") and p.name != "generics.json"
    )


@functools.cache
def wire_limits() -> WireLimits:
    """The limits every payload keeps: the `limits` section of generics.json."""
    return WireLimits.from_json(_read_json("interfaces", "generics.json")["limits"])


@dataclass(frozen=True)
class InterfaceSummary:
    """What an interface file says of its component, without its topics."""

    name: str
    description: str
    indexed: bool


def interface_summary(name: str) -> InterfaceSummary:
    spec = _read_json("interfaces", f"{name}.json")
    return InterfaceSummary(name, str(spec.get("description", "")), bool(spec.get("indexed", False)))


def check_interface_file(data: Any, filename: str) -> None:
    """Validate an interface file against schemas/interface.schema.json."""
    import jsonschema

    from obsq.csc.core.interface import describe_error

    error = jsonschema.exceptions.best_match(_meta_validator().iter_errors(data))
    if error is not None:
        raise ValidationError(describe_error(f"interface file {filename}", error))


@functools.cache
def load_interface(name: str) -> ComponentInterface:
    """The interface of component `name`, generic topics included."""
    from obsq.csc.core.interface import ComponentInterface

    if name not in interface_names():
        raise ValidationError(f"no interface for component {name!r}; known: {', '.join(interface_names())}")
    generics = _read_json("interfaces", "generics.json")
    spec = _read_json("interfaces", f"{name}.json")
    check_interface_file(generics, "generics.json")
    check_interface_file(spec, f"{name}.json")
    return ComponentInterface(spec, generics)
