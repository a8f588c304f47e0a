"""A compiled validity predicate for the JSON Schema subset obsq interfaces use.

jsonschema is the authority: it produces every error message. But it costs 10–35 µs per
small payload, on every message sent and received. `compile_check(schema)` turns a schema
into a plain predicate (about 1 µs), used as a fast path: valid -> accept; invalid -> ask
jsonschema for the message. A schema with any keyword this module does not implement
compiles to None, and jsonschema then checks every payload. Agreement with jsonschema is
property-tested (tests/unit/test_fastcheck.py).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

Check = Callable[[Any], bool]

#: Keywords that say something of a value and check nothing ("units": ts_xml's units of a field, as Rubin's).
_ANNOTATIONS = {
    "description",
    "title",
    "default",
    "$comment",
    "examples",
    "format",
    "$schema",
    "$id",
    "deprecated",
    "units",
}


def _is_integer(x: Any) -> bool:
    # stricter than JSON Schema: 20.0 is not an integer (interface.make_validator agrees)
    return isinstance(x, int) and not isinstance(x, bool)


_TYPES: dict[str, Check] = {
    "object": lambda x: isinstance(x, dict),
    "array": lambda x: isinstance(x, list),
    "string": lambda x: isinstance(x, str),
    "integer": _is_integer,
    "number": lambda x: isinstance(x, int | float) and not isinstance(x, bool),
    "boolean": lambda x: isinstance(x, bool),
    "null": lambda x: x is None,
}


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _scalar_equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


class _UnsupportedError(Exception):
    """The schema uses a keyword this module does not implement."""


def compile_check(schema: Mapping[str, Any] | bool) -> Check | None:
    """A predicate equivalent to jsonschema validity for `schema`, or None if unsupported."""
    try:
        return _compile(schema)
    except _UnsupportedError:
        return None


def _type_check(types: list[str]) -> Check:
    if any(t not in _TYPES for t in types):
        raise _UnsupportedError
    preds = [_TYPES[t] for t in types]
    if len(preds) == 1:
        return preds[0]
    return lambda x: any(p(x) for p in preds)


def _required_check(names: tuple[str, ...]) -> Check:
    return lambda x: not isinstance(x, dict) or all(n in x for n in names)


def _enum_check(options: list[Any]) -> Check:
    if any(isinstance(o, dict | list) for o in options):
        raise _UnsupportedError
    return lambda x: any(_scalar_equal(x, o) for o in options)


_BOUNDS: dict[str, Callable[[Any, Any], bool]] = {
    "minimum": lambda x, v: x >= v,
    "maximum": lambda x, v: x <= v,
    "exclusiveMinimum": lambda x, v: x > v,
    "exclusiveMaximum": lambda x, v: x < v,
}


def _bound_check(keyword: str, bound: Any) -> Check:
    if not _is_number(bound) or not math.isfinite(bound):
        raise _UnsupportedError
    compare = _BOUNDS[keyword]
    return lambda x: not _is_number(x) or compare(x, bound)


def _length_check(keyword: str, n: int) -> Check:
    kind: type[str] | type[list[Any]] = str if keyword.endswith("Length") else list
    low = keyword.startswith("min")

    def check_length(x: Any) -> bool:
        if not isinstance(x, kind):
            return True
        return len(x) >= n if low else len(x) <= n

    return check_length


def _pattern_check(pattern: str) -> Check:
    regex = re.compile(pattern)
    return lambda x: not isinstance(x, str) or regex.search(x) is not None


def _property_names_check(names_check: Check) -> Check:
    return lambda x: not isinstance(x, dict) or all(names_check(k) for k in x)


def _object_check(props: dict[str, Check], extra_check: Check) -> Check:
    def check_object(x: Any) -> bool:
        if not isinstance(x, dict):
            return True
        for key, item in x.items():
            sub = props.get(key)
            if not (sub(item) if sub is not None else extra_check(item)):
                return False
        return True

    return check_object


def _items_check(item_check: Check) -> Check:
    return lambda x: not isinstance(x, list) or all(map(item_check, x))


def _keyword_check(keyword: str, value: Any) -> Check:  # noqa: PLR0911 — one return per keyword
    if keyword == "type":
        return _type_check([value] if isinstance(value, str) else list(value))
    if keyword == "required":
        return _required_check(tuple(value))
    if keyword == "enum":
        return _enum_check(list(value))
    if keyword == "const":
        return _enum_check([value])
    if keyword in _BOUNDS:
        return _bound_check(keyword, value)
    if keyword in ("minLength", "maxLength", "minItems", "maxItems"):
        return _length_check(keyword, value)
    if keyword == "pattern":
        return _pattern_check(value)
    if keyword == "propertyNames":
        return _property_names_check(_compile(value))
    raise _UnsupportedError


def _compile(schema: Mapping[str, Any] | bool) -> Check:
    if schema is True:
        return lambda x: True
    if schema is False:
        return lambda x: False
    if not isinstance(schema, Mapping):
        raise _UnsupportedError
    checks = [
        _keyword_check(keyword, value)
        for keyword, value in schema.items()
        if keyword not in _ANNOTATIONS and keyword not in ("properties", "additionalProperties", "items")
    ]
    if "properties" in schema or "additionalProperties" in schema:
        props = {name: _compile(sub) for name, sub in schema.get("properties", {}).items()}
        checks.append(_object_check(props, _compile(schema.get("additionalProperties", True))))
    if "items" in schema:
        checks.append(_items_check(_compile(schema["items"])))
    return _all_of(checks)


def _all_of(checks: list[Check]) -> Check:
    """One predicate for all of `checks`; the common short cases without a generator (hot path)."""
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        first, second = checks
        return lambda x: first(x) and second(x)
    if len(checks) == 3:
        first, second, third = checks
        return lambda x: first(x) and second(x) and third(x)
    all_checks = tuple(checks)
    return lambda x: all(check(x) for check in all_checks)
