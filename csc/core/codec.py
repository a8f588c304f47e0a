"""The message codec: JSON objects with SAL's private fields, and the limits every payload keeps.

Every payload is a JSON object. The private fields say who sent it and when:

- `private_seqNum` (int, 1 … 2**31 - 1): the sender's sequence number; for a command, what its
  acks echo;
- `private_identity` (str, at most `WireLimits.max_identity_length` characters): the sender's
  identity (`Name[:index]` or `user@host`);
- `private_origin` (int, 0 … 2**31 - 1): the sender's process id (0 if unknown);
- `private_sndStamp` (float): TAI unix seconds at sending (0 if unknown).

Only `private_seqNum` and `private_identity` are required, so a person with `mosquitto_pub` can
send a command by hand.

What Rubin's salobj writes besides is read and checked too, so its payloads pass as they are:
`salIndex` (int, the component's index, on every topic of an indexed component: `Envelope.sal_index`,
which the component compares with its own), and salobj 8's `private_efdStamp`,
`private_kafkaStamp`, `private_rcvStamp` (numbers) and `private_revCode` (a string).

The door (`decode`) refuses, each by name: a payload over the size limit, bytes that are not
UTF-8 JSON, a non-object, a key given twice, NaN or Infinity (JSON has neither), an integer of
more digits than a 64-bit one, nesting deeper than the depth limit, and private fields out of
their ranges. (The string limit is applied by the interfaces: every string field of a command
without a `maxLength` of its own gets `maxStringLength`, so its refusal names the field.)
When the private fields could still be read, the refusal carries the sender
(`RefusedError.sender`), so a component can answer it with a FAILED ack instead of dropping it.
`encode` keeps the same size limit and refuses NaN, so nothing sent can be refused by the
receiver for its size.

The limits themselves are data: the `limits` section of `schemas/interfaces/generics.json`
(read by `obsq.csc.interfaces.wire_limits`), so every client sees them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from obsq.csc.core.errors import DecodeError

PRIVATE_FIELDS = ("private_seqNum", "private_identity", "private_origin", "private_sndStamp")
#: salobj 8's other private fields (ts_salobj topics/base_topic.py and the Kafka writers): read, checked, not kept.
SALOBJ_NUMBERS = ("private_efdStamp", "private_kafkaStamp", "private_rcvStamp")
SALOBJ_TEXT = ("private_revCode",)
MAX_REV_CODE = 64
#: SAL's sequence numbers and process ids are 32-bit signed integers.
MAX_SEQ_NUM = 2**31 - 1
#: An integer of more digits than a 64-bit one has is refused.
_MAX_INT_DIGITS = 19
DEFAULT_MAX_DEPTH = 32


@dataclass(frozen=True, slots=True)
class WireLimits:
    """What a payload may be: size in bytes, identity and string lengths, nesting depth."""

    max_payload_bytes: int = 1_000_000
    max_identity_length: int = 128
    max_string_length: int = 65_536
    max_depth: int = DEFAULT_MAX_DEPTH

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WireLimits:
        return cls(
            max_payload_bytes=int(data["maxPayloadBytes"]),
            max_identity_length=int(data["maxIdentityLength"]),
            max_string_length=int(data["maxStringLength"]),
            max_depth=int(data["maxDepth"]),
        )


@dataclass(frozen=True, slots=True)
class Sender:
    """Who sent a message, as its private fields say."""

    seq_num: int
    identity: str
    origin: int


@dataclass(frozen=True, slots=True)
class Envelope:
    """A decoded message: the private fields and the topic's own fields."""

    seq_num: int
    identity: str
    origin: int
    snd_stamp: float
    data: dict[str, Any] = field(default_factory=dict)
    #: the `salIndex` the sender wrote (Rubin's salobj does, on every topic of an indexed component); None if none
    sal_index: int | None = None

    @property
    def sender(self) -> Sender:
        return Sender(self.seq_num, self.identity, self.origin)


class RefusedError(DecodeError):
    """A payload broke a limit of the door; `sender` is set when its private fields could be read."""

    def __init__(self, message: str, sender: Sender | None = None) -> None:
        super().__init__(message)
        self.sender = sender


def encode(envelope: Envelope, limits: WireLimits) -> bytes:
    """Serialise an envelope; raise DecodeError if it has NaN/Infinity or exceeds the size limit."""
    payload = {
        "private_seqNum": envelope.seq_num,
        "private_identity": envelope.identity,
        "private_origin": envelope.origin,
        "private_sndStamp": envelope.snd_stamp,
        **envelope.data,
    }
    try:
        raw = json.dumps(payload, allow_nan=False, separators=(",", ":")).encode()
    except (TypeError, ValueError) as exc:
        raise DecodeError(f"payload cannot be encoded as JSON: {exc}") from None
    if len(raw) > limits.max_payload_bytes:
        raise DecodeError(f"payload of {len(raw)} bytes exceeds the {limits.max_payload_bytes}-byte limit")
    return raw


class _BrokenRuleError(ValueError):
    """Raised inside the JSON parser's hooks: the payload breaks a rule of the door."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _BrokenRuleError(f"field {key!r} is given twice (rule: unique keys)")
            seen.add(key)
    return obj


def _no_constant(name: str) -> Any:
    raise _BrokenRuleError(f"{name} is not a JSON number (rule: finite numbers)")


#: Built once (`json.loads(..., hooks)` would build a decoder per call); numbers are checked after
#: parsing, by `check_shape`, which is cheaper than a Python hook per number.
_STRICT = json.JSONDecoder(object_pairs_hook=_unique_keys, parse_constant=_no_constant)
_INT_BOUND = 10**_MAX_INT_DIGITS


def _strict_loads(raw: bytes | str) -> Any:
    try:
        return _STRICT.decode(raw.decode() if isinstance(raw, bytes) else raw)
    except ValueError as exc:
        if "integer string conversion" in str(exc):  # Python's own limit, thousands of digits
            raise _BrokenRuleError(
                "an integer of thousands of digits is out of range (rule: 64-bit integers)"
            ) from None
        raise


def _number_rule(value: Any) -> str | None:
    """What is wrong with a number that JSON parsing let through (1e999, a 30-digit integer), if anything."""
    kind = type(value)
    if kind is float and not math.isfinite(value):
        return f"{value} is out of range (rule: finite numbers)"
    if kind is int and not -_INT_BOUND < value < _INT_BOUND:
        return f"an integer of {len(str(abs(value)))} digits is out of range (rule: 64-bit integers)"
    return None


def parse_strict_json(text: str | bytes, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """JSON as the door reads it; ValueError naming the field and the rule when it breaks one.

    Refused: NaN/Infinity, a key given twice, an integer beyond 64 bits, nesting past `max_depth`.
    """
    try:
        data = _strict_loads(text)
        check_shape(data, max_depth)
    except _BrokenRuleError:
        raise
    except RecursionError:
        raise ValueError(f"nests deeper than {max_depth} levels (rule: maxDepth)") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{exc.msg} at character {exc.pos}") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8: {exc.reason}") from None
    return data


def _field(path: str) -> str:
    return repr(path if len(path) <= 80 else f"{path[:80]}…")


def check_shape(obj: Any, max_depth: int) -> None:
    """Raise _BrokenRuleError naming the field for nesting deeper than `max_depth` or an out-of-range number."""
    if type(obj) is dict:  # most payloads are flat: one pass over their values
        for key, value in obj.items():
            kind = type(value)
            if kind is dict or kind is list:
                break
            if (kind is float or kind is int) and (rule := _number_rule(value)) is not None:
                raise _BrokenRuleError(f"field {_field(key)}: {rule}")
        else:
            return
    stack: list[tuple[Any, str, int]] = [(obj, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth >= max_depth:
                raise _BrokenRuleError(f"field {_field(path)} nests deeper than {max_depth} levels (rule: maxDepth)")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            stack.extend((item, f"{path}/{key}".lstrip("/"), depth + 1) for key, item in items)
        elif (rule := _number_rule(value)) is not None:
            raise _BrokenRuleError(f"field {_field(path)}: {rule}")


def _sender_of(obj: Any, limits: WireLimits) -> Sender | None:
    """The sender if the private fields of `obj` are usable for an answer, else None."""
    if not isinstance(obj, dict):
        return None
    seq, identity, origin = obj.get("private_seqNum"), obj.get("private_identity"), obj.get("private_origin", 0)
    if type(seq) is not int or not 1 <= seq <= MAX_SEQ_NUM:
        return None
    if not isinstance(identity, str) or not 0 < len(identity) <= limits.max_identity_length:
        return None
    if type(origin) is not int or not 0 <= origin <= MAX_SEQ_NUM:
        return None
    return Sender(seq, identity, origin)


def _offending_path(obj: Any, offends: Callable[[Any], bool]) -> str | None:
    """The path of the first value in `obj` (parsed leniently) that `offends`, if any."""
    stack: list[tuple[Any, str]] = [(obj, "")]
    while stack:
        value, path = stack.pop()
        if offends(value):
            return path
        if isinstance(value, dict):
            stack.extend((v, f"{path}/{k}".lstrip("/")) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, f"{path}/{i}".lstrip("/")) for i, v in enumerate(value))
    return None


def _nonfinite(value: Any) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


def _refusal(raw: bytes, broken: _BrokenRuleError, limits: WireLimits) -> RefusedError:
    """The refusal of a payload whose parsing broke a rule: with its sender and field if plain JSON can read them."""
    try:
        lenient = json.loads(raw)
    except (ValueError, RecursionError):
        return RefusedError(str(broken))
    path = _offending_path(lenient, _nonfinite) if "finite numbers" in str(broken) else None
    text = f"field {path[:200]!r}: {broken}" if path else str(broken)
    return RefusedError(text, _sender_of(lenient, limits))


def _salobj_fields(obj: dict[str, Any], sender: Sender) -> int | None:
    """Take salobj's own fields out of `obj`, checked (RefusedError naming one); the salIndex, if given."""
    for name in SALOBJ_NUMBERS:
        if type(obj.pop(name, 0.0)) not in (int, float):
            raise RefusedError(f"field {name!r} must be a number (salobj's stamp, TAI unix seconds)", sender)
    for name in SALOBJ_TEXT:
        text = obj.pop(name, "")
        if not isinstance(text, str) or len(text) > MAX_REV_CODE:
            raise RefusedError(f"field {name!r} must be a string of at most {MAX_REV_CODE} characters", sender)
    sal_index = obj.pop("salIndex", None)
    if sal_index is not None and (type(sal_index) is not int or not 0 <= sal_index <= MAX_SEQ_NUM):
        raise RefusedError(f"field 'salIndex' must be an integer in 0…{MAX_SEQ_NUM} (the component's index)", sender)
    return sal_index


def decode(raw: bytes, limits: WireLimits) -> Envelope:
    """Parse and check a payload; raise DecodeError (RefusedError) naming the field and the rule."""
    if len(raw) > limits.max_payload_bytes:
        raise RefusedError(f"payload of {len(raw)} bytes exceeds the {limits.max_payload_bytes}-byte limit")
    try:
        obj = _strict_loads(raw)
    except _BrokenRuleError as exc:
        raise _refusal(raw, exc, limits) from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise RefusedError(f"payload is not JSON: {exc}") from None
    except RecursionError:
        raise RefusedError(f"payload nests deeper than {limits.max_depth} levels (rule: maxDepth)") from None
    if not isinstance(obj, dict):
        raise RefusedError(f"payload must be a JSON object, not {type(obj).__name__}")
    seq_num = obj.pop("private_seqNum", None)
    identity = obj.pop("private_identity", None)
    origin = obj.pop("private_origin", 0)
    snd_stamp = obj.pop("private_sndStamp", 0.0)
    if type(seq_num) is not int or not 1 <= seq_num <= MAX_SEQ_NUM:
        raise RefusedError(f"field 'private_seqNum' is required and must be an integer in 1…{MAX_SEQ_NUM}")
    if not isinstance(identity, str) or not identity:
        raise RefusedError("field 'private_identity' is required and must be a non-empty string")
    if len(identity) > limits.max_identity_length:
        raise RefusedError(
            f"field 'private_identity' has {len(identity)} characters, more than {limits.max_identity_length}"
            " (rule: maxIdentityLength)"
        )
    if type(origin) is not int or not 0 <= origin <= MAX_SEQ_NUM:
        raise RefusedError(f"field 'private_origin' must be an integer in 0…{MAX_SEQ_NUM}")
    sender = Sender(seq_num, identity, origin)
    if type(snd_stamp) not in (int, float):
        raise RefusedError("field 'private_sndStamp' must be a number", sender)
    sal_index = _salobj_fields(obj, sender)
    try:
        check_shape(obj, limits.max_depth)
    except _BrokenRuleError as exc:
        raise RefusedError(str(exc), sender) from None
    return Envelope(seq_num, identity, origin, float(snd_stamp), obj, sal_index)
