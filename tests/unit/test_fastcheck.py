"""The compiled fast path agrees with jsonschema on every schema of every interface."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from obsq.csc.core.fastcheck import compile_check
from obsq.csc.core.interface import make_validator
from obsq.csc.core.topics import TopicKind
from obsq.csc.interfaces import interface_names, load_interface


def all_schemas() -> list[tuple[str, dict[str, Any]]]:
    """Every distinct schema of every interface (the generic topics once)."""
    schemas: dict[str, tuple[str, dict[str, Any]]] = {}
    for name in interface_names():
        interface = load_interface(name)
        for kind in TopicKind:
            for topic, spec in interface.topics(kind).items():
                schemas.setdefault(
                    json.dumps(spec.schema, sort_keys=True), (f"{name}.{kind.value}.{topic}", dict(spec.schema))
                )
        config = dict(interface.configuration_schema)
        schemas.setdefault(json.dumps(config, sort_keys=True), (f"{name}.configuration", config))
    return list(schemas.values())


SCHEMAS = all_schemas()

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([0, 1, -1, 0.0, 1.0, 2.5, 301, 303, -302, 5, 50, 51, 86401, ""])
    | st.text(max_size=5)
    | st.text(max_size=300)
    | st.sampled_from(["_x", "a/b", "fast.yaml", "x" * 201])
)
values = st.recursive(
    scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c, max_size=3), max_leaves=6
)


@st.composite
def payloads(draw: st.DrawFn, schema: dict[str, Any]) -> Any:
    """Mostly objects built from the schema's own property names, with wrong and right values."""
    if draw(st.integers(0, 9)) == 0:
        return draw(values)
    names = list(schema.get("properties", {}))
    keys = draw(st.lists(st.sampled_from([*names, "extra"]) if names else st.just("extra"), max_size=len(names) + 1))
    return {key: draw(values) for key in keys}


@pytest.mark.parametrize(("label", "schema"), SCHEMAS, ids=[label for label, _ in SCHEMAS])
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_fast_path_agrees_with_jsonschema(label: str, schema: dict[str, Any], data: st.DataObject) -> None:
    check = compile_check(schema)
    assert check is not None, f"{label}: every interface schema should compile"
    payload = data.draw(payloads(schema))
    assert check(payload) == make_validator(schema).full.is_valid(payload), payload


def test_fast_path_edge_cases() -> None:
    schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["n"],
        "properties": {
            "n": {"type": "integer", "minimum": 0},
            "e": {"enum": [1, 2]},
            "s": {"type": "string", "pattern": "^a", "maxLength": 3},
            "x": {"type": "number", "exclusiveMinimum": 0},
            "l": {"type": "array", "items": {"type": "string"}, "maxItems": 2},
        },
    }
    check = compile_check(schema)
    assert check is not None
    validator = make_validator(schema).full
    for payload in [
        {"n": 1},
        {"n": 1.0},
        {"n": True},
        {"n": -1},
        {},
        {"n": 1, "e": True},
        {"n": 1, "e": 1.0},
        {"n": 1, "s": "abc"},
        {"n": 1, "s": "bab"},
        {"n": 1, "s": "abcd"},
        {"n": 1, "x": 0},
        {"n": 1, "x": False},
        {"n": 1, "l": ["a", "b"]},
        {"n": 1, "l": ["a", 1]},
        {"n": 1, "l": ["a", "b", "c"]},
        {"n": 1, "z": 0},
        [],
        "x",
    ]:
        assert check(payload) == validator.is_valid(payload), payload


def test_unsupported_keywords_fall_back_to_jsonschema() -> None:
    assert compile_check({"type": "object", "oneOf": [{"required": ["a"]}, {"required": ["b"]}]}) is None
    assert compile_check({"$ref": "#/$defs/x"}) is None
    assert compile_check({"enum": [[1], [2]]}) is None
