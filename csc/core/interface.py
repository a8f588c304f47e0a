"""Component interfaces as data: the commands, events and telemetry of a component.

An interface is built from the JSON files in `schemas/interfaces/` (the loader lives in
`obsq.csc.interfaces`); this module only turns the parsed data into validators. Payload
schemas describe the topic's own fields; the codec has already removed the private ones.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jsonschema
import jsonschema.exceptions

from obsq.csc.core.codec import WireLimits
from obsq.csc.core.errors import ValidationError
from obsq.csc.core.fastcheck import Check, compile_check
from obsq.csc.core.topics import TopicKind

_KIND_SECTIONS = {
    TopicKind.COMMAND: "commands",
    TopicKind.EVENT: "events",
    TopicKind.TELEMETRY: "telemetry",
}


_SHORT_VALUE = 60


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHORT_VALUE else f"{text[:_SHORT_VALUE]}… ({len(text)} characters)"


def _expected(schema: Any) -> str:  # noqa: PLR0911 — one return per kind of schema
    """A few words for what `schema` accepts (for anyOf/oneOf errors)."""
    if not isinstance(schema, Mapping):
        return "anything" if schema is True else "nothing"
    if "const" in schema:
        return _short(schema["const"])
    if "enum" in schema:
        return "one of " + ", ".join(_short(v) for v in schema["enum"])
    if "$ref" in schema:
        return str(schema["$ref"]).rpartition("/")[2]
    kind = schema.get("type")
    if isinstance(kind, list):
        return " or ".join(f"{k}" for k in kind)
    if isinstance(kind, str):
        return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"
    return "a value matching its schema"


def describe_error(what: str, error: jsonschema.exceptions.ValidationError) -> str:
    """One line naming the thing, the field and the rule that `error` reports (values shortened)."""
    path = "/".join(str(p) for p in error.absolute_path)
    if error.validator == "required" and isinstance(error.instance, dict):
        required = error.validator_value if isinstance(error.validator_value, list) else []
        missing = [p for p in required if p not in error.instance]
        where = f"field {'/'.join([path, missing[0]]).lstrip('/')!r}" if missing else "payload"
        return f"{what}: {where} is required (rule: required)"
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(error.schema.get("properties", {})) if isinstance(error.schema, Mapping) else set()
        extra = sorted(k for k in error.instance if k not in allowed)
        where = f"field {_short('/'.join([path, extra[0]]).lstrip('/'))}" if extra else "payload"
        close = difflib.get_close_matches(str(extra[0]), sorted(allowed), n=1, cutoff=0.6) if extra else []
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"{what}: {where} is not allowed (rule: additionalProperties){hint}"
    where = f"field {_short(path)}" if path else "payload"
    if error.validator in ("anyOf", "oneOf") and isinstance(error.validator_value, list):
        options = "; ".join(_expected(s) for s in error.validator_value)
        return f"{what}: {where}: {_short(error.instance)} is none of: {options} (rule: {error.validator})"
    message = error.message
    full = repr(error.instance)
    if len(full) > _SHORT_VALUE and full in message:
        message = message.replace(full, _short(error.instance))
    return f"{what}: {where}: {message} (rule: {error.validator})"


@dataclass(frozen=True)
class Validator:
    """jsonschema's validator, with a compiled fast path for payloads that are valid."""

    schema: Mapping[str, Any]
    full: jsonschema.protocols.Validator
    fast: Check | None

    def validate(self, what: str, data: Any) -> None:
        """Raise ValidationError naming the field and the rule of the most relevant error."""
        if self.fast is not None and self.fast(data):
            return
        error = jsonschema.exceptions.best_match(self.full.iter_errors(data))
        if error is not None:
            raise ValidationError(describe_error(what, error))

    def validate_all(self, what: str, data: Any) -> None:
        """Raise ValidationError naming every field that is wrong, each with its rule (for a person to fix at once)."""
        if self.fast is not None and self.fast(data):
            return
        found = []
        for error in sorted(self.full.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path]):
            for one in _each_extra(error):
                line = describe_error(what, one).removeprefix(f"{what}: ")
                if line not in found:
                    found.append(line)
        if len(found) == 1:
            raise ValidationError(f"{what}: {found[0]}")
        if found:
            raise ValidationError(f"{what}: {len(found)} problems: " + "; ".join(f"({i}) {line}"
                                  for i, line in enumerate(found, start=1)))  # fmt: skip


def _each_extra(error: jsonschema.exceptions.ValidationError) -> list[jsonschema.exceptions.ValidationError]:
    """An additionalProperties error once per unknown field (so each is named, with its hint); others as they are."""
    if error.validator != "additionalProperties" or not isinstance(error.instance, dict):
        return [error]
    allowed = set(error.schema.get("properties", {})) if isinstance(error.schema, Mapping) else set()
    extra = sorted(k for k in error.instance if k not in allowed)
    return [
        jsonschema.exceptions.ValidationError(
            error.message,
            validator="additionalProperties",
            path=error.absolute_path,
            instance={name: None},
            schema=error.schema,
        )
        for name in extra
    ] or [error]


def _strict_integer(checker: Any, instance: Any) -> bool:
    # JSON Schema lets 20.0 pass as an integer; on the wire and in configurations it is a mistake
    return isinstance(instance, int) and not isinstance(instance, bool)


def make_validator(schema: Mapping[str, Any], what: str = "schema") -> Validator:
    """A checked Draft 2020-12 validator (or the draft the schema declares); integers must be integers.

    A schema that is not valid raises ValidationError naming `what`, the place and the rule.
    """
    base = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    meta = base(base.META_SCHEMA)
    error = jsonschema.exceptions.best_match(meta.iter_errors(dict(schema)))
    if error is not None:
        raise ValidationError(describe_error(f"{what} is not a valid JSON Schema", error))
    cls = jsonschema.validators.extend(  # type: ignore[no-untyped-call]  # jsonschema ships no annotation for it
        base, type_checker=base.TYPE_CHECKER.redefine("integer", _strict_integer)
    )
    return Validator(schema, cls(dict(schema)), compile_check(schema))


def validate(validator: Validator, what: str, data: Any) -> None:
    """Raise ValidationError naming the field and the rule of the most relevant error."""
    validator.validate(what, data)


def with_defaults(schema: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `data` with the `default` of every missing property filled in, recursively.

    >>> with_defaults({"properties": {"a": {"default": 1}, "b": {"type": "object",
    ...     "properties": {"c": {"default": 2}}, "default": {}}}}, {})
    {'a': 1, 'b': {'c': 2}}
    """
    result = copy.deepcopy(dict(data))
    for name, prop in schema.get("properties", {}).items():
        if name not in result and "default" in prop:
            result[name] = copy.deepcopy(prop["default"])
        if isinstance(result.get(name), dict) and prop.get("type") == "object":
            result[name] = with_defaults(prop, result[name])
    return result


def bounded_strings(schema: Mapping[str, Any], max_length: int) -> dict[str, Any]:
    """A copy of `schema` in which every string without a `maxLength` of its own gets `max_length`.

    >>> bounded_strings({"type": "object", "properties": {"a": {"type": "string"}}}, 5)["properties"]
    {'a': {'type': 'string', 'maxLength': 5}}
    """
    result: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("properties", "$defs") and isinstance(value, Mapping):
            result[key] = {n: bounded_strings(v, max_length) if isinstance(v, Mapping) else v for n, v in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, Mapping):
            result[key] = bounded_strings(value, max_length)
        elif key in ("anyOf", "oneOf", "allOf") and isinstance(value, list):
            result[key] = [bounded_strings(v, max_length) if isinstance(v, Mapping) else v for v in value]
        else:
            result[key] = copy.deepcopy(value)
    kind = schema.get("type")
    if (kind == "string" or (isinstance(kind, list) and "string" in kind)) and "maxLength" not in schema:
        result["maxLength"] = max_length
    return result


@dataclass(frozen=True)
class TopicSpec:
    """One command, event or telemetry topic of an interface."""

    kind: TopicKind
    name: str
    description: str
    schema: Mapping[str, Any]
    validator: Validator


class ComponentInterface:
    """The topics of one component (generic ones included) with a validator for each."""

    def __init__(self, spec: Mapping[str, Any], generics: Mapping[str, Any]) -> None:
        self.name: str = spec["name"]
        self.description: str = spec.get("description", "")
        self.indexed: bool = spec.get("indexed", False)
        self.configuration_schema: Mapping[str, Any] = spec.get(
            "configuration", {"type": "object", "properties": {}, "additionalProperties": False}
        )
        self.configuration_validator = make_validator(self.configuration_schema)
        self.kind: str = spec.get("kind", "csc")
        self.limits = WireLimits.from_json(generics["limits"])
        sources = [generics["common"], *([generics["csc"]] if self.kind == "csc" else []), spec]
        self._topics: dict[TopicKind, dict[str, TopicSpec]] = {}
        for kind, section in _KIND_SECTIONS.items():
            topics: dict[str, TopicSpec] = {}
            for source in sources:
                for name, topic in source.get(section, {}).items():
                    if name in topics:
                        raise ValueError(f"interface {self.name}: {section} {name!r} defined twice")
                    schema = topic.get("schema", {"type": "object", "additionalProperties": False})
                    if kind is TopicKind.COMMAND:
                        schema = bounded_strings(schema, self.limits.max_string_length)
                    topics[name] = TopicSpec(kind, name, topic.get("description", ""), schema, make_validator(schema))
            self._topics[kind] = topics
        ack_schema = generics["ackcmd"]["schema"]
        self.ack = TopicSpec(TopicKind.ACK, "", "command acknowledgement", ack_schema, make_validator(ack_schema))

    def topics(self, kind: TopicKind) -> Mapping[str, TopicSpec]:
        return self._topics[kind] if kind is not TopicKind.ACK else {"": self.ack}

    def get(self, kind: TopicKind, name: str) -> TopicSpec:
        """The spec of a topic; ValidationError if the interface has no such topic."""
        if kind is TopicKind.ACK:
            return self.ack
        try:
            return self._topics[kind][name]
        except KeyError:
            label = {"cmd": "command", "evt": "event", "tel": "telemetry"}[kind.value]
            raise ValidationError(f"{self.name} has no {label} {_short(name)}") from None

    def validate(self, kind: TopicKind, name: str, data: Mapping[str, Any]) -> None:
        """Check a payload against its topic's schema; raise ValidationError naming the field."""
        spec = self.get(kind, name)
        label = {"cmd": "command", "ackcmd": "ackcmd", "evt": "event", "tel": "telemetry"}[kind.value]
        validate(spec.validator, f"{self.name} {label} {name}".rstrip(), data)

    def validate_configuration(self, config: Mapping[str, Any]) -> None:
        validate(self.configuration_validator, f"{self.name} configuration", config)
