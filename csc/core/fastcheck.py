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

_ANNOTATIONS = {"description", "title", "default", "$comment", "examples", "format", "$schema", "$id", "deprecated"}


def _is_integer(x: Any) -> bool:
    if isinstance(x, bool):
        return False
    return isinstance(x, int) or (isinstance(x, float) and x.is_integer())


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


def _compile(schema: Mapping[str, Any] | bool) -> Check:  # noqa: PLR0912, PLR0915 — one branch per keyword
    if schema is True:
        return lambda x: True
    if schema is False:
        return lambda x: False
    if not isinstance(schema, Mapping):
        raise _UnsupportedError
    checks: list[Check] = []
    for keyword, value in schema.items():
        if keyword in _ANNOTATIONS or keyword in ("properties", "additionalProperties", "items"):
            continue
        if keyword == "type":
            types = [value] if isinstance(value, str) else list(value)
            if any(t not in _TYPES for t in types):
                raise _UnsupportedError
            preds = [_TYPES[t] for t in types]
            checks.append(preds[0] if len(preds) == 1 else lambda x, preds=preds: any(p(x) for p in preds))
        elif keyword == "required":
            names = tuple(value)
            checks.append(lambda x, names=names: not isinstance(x, dict) or all(n in x for n in names))
        elif keyword in ("enum", "const"):
            options = list(value) if keyword == "enum" else [value]
            if any(isinstance(o, dict | list) for o in options):
                raise _UnsupportedError
            checks.append(lambda x, options=options: any(_scalar_equal(x, o) for o in options))
        elif keyword in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            if not _is_number(value) or not math.isfinite(value):
                raise _UnsupportedError
            compare: Callable[[Any, Any], bool] = {
                "minimum": lambda x, v: x >= v,
                "maximum": lambda x, v: x <= v,
                "exclusiveMinimum": lambda x, v: x > v,
                "exclusiveMaximum": lambda x, v: x < v,
            }[keyword]
            checks.append(lambda x, v=value, c=compare: not _is_number(x) or c(x, v))
        elif keyword in ("minLength", "maxLength", "minItems", "maxItems"):
            kind: type = str if keyword.endswith("Length") else list
            low = keyword.startswith("min")
            checks.append(
                lambda x, n=value, kind=kind, low=low: not isinstance(x, kind) or (len(x) >= n if low else len(x) <= n)
            )
        elif keyword == "pattern":
            regex = re.compile(value)
            checks.append(lambda x, regex=regex: not isinstance(x, str) or regex.search(x) is not None)
        elif keyword == "propertyNames":
            names_check = _compile(value)
            checks.append(lambda x, c=names_check: not isinstance(x, dict) or all(c(k) for k in x))
        else:
            raise _UnsupportedError
    if "properties" in schema or "additionalProperties" in schema:
        props = {name: _compile(sub) for name, sub in schema.get("properties", {}).items()}
        extra = schema.get("additionalProperties", True)
        extra_check = _compile(extra)

        def check_object(x: Any, props: dict[str, Check] = props, extra_check: Check = extra_check) -> bool:
            if not isinstance(x, dict):
                return True
            for key, item in x.items():
                sub = props.get(key)
                if not (sub(item) if sub is not None else extra_check(item)):
                    return False
            return True

        checks.append(check_object)
    if "items" in schema:
        item_check = _compile(schema["items"])
        checks.append(lambda x, c=item_check: not isinstance(x, list) or all(map(c, x)))
    if len(checks) == 1:
        return checks[0]

    def check_all(x: Any, checks: tuple[Check, ...] = tuple(checks)) -> bool:
        return all(check(x) for check in checks)

    return check_all
