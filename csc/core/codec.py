"""The message codec: JSON objects with SAL's private fields.

Every payload is a JSON object. The private fields say who sent it and when:

- `private_seqNum` (int >= 1): the sender's sequence number; for a command, what its acks echo;
- `private_identity` (str): the sender's identity (`Name[:index]` or `user@host`);
- `private_origin` (int): the sender's process id (0 if unknown);
- `private_sndStamp` (float): TAI unix seconds at sending (0 if unknown).

Only `private_seqNum` and `private_identity` are required, so a person with
`mosquitto_pub` can send a command by hand.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from obsq.csc.core.errors import DecodeError

#: Largest payload accepted by default (bytes); a site may raise it per bus.
MAX_PAYLOAD_BYTES = 1_000_000

PRIVATE_FIELDS = ("private_seqNum", "private_identity", "private_origin", "private_sndStamp")


@dataclass(frozen=True, slots=True)
class Envelope:
    """A decoded message: the private fields and the topic's own fields."""

    seq_num: int
    identity: str
    origin: int
    snd_stamp: float
    data: dict[str, Any] = field(default_factory=dict)


def encode(envelope: Envelope, max_bytes: int = MAX_PAYLOAD_BYTES) -> bytes:
    """Serialise an envelope; raise DecodeError if the result would exceed `max_bytes`."""
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
    if len(raw) > max_bytes:
        raise DecodeError(f"payload of {len(raw)} bytes exceeds the {max_bytes}-byte limit")
    return raw


def decode(raw: bytes, max_bytes: int = MAX_PAYLOAD_BYTES) -> Envelope:
    """Parse and check a payload; raise DecodeError naming what is wrong."""
    if len(raw) > max_bytes:
        raise DecodeError(f"payload of {len(raw)} bytes exceeds the {max_bytes}-byte limit")
    try:
        obj = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise DecodeError(f"payload is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise DecodeError(f"payload must be a JSON object, not {type(obj).__name__}")
    seq_num = obj.pop("private_seqNum", None)
    identity = obj.pop("private_identity", None)
    origin = obj.pop("private_origin", 0)
    snd_stamp = obj.pop("private_sndStamp", 0.0)
    if type(seq_num) is not int or seq_num < 1:
        raise DecodeError("field 'private_seqNum' is required and must be an integer >= 1")
    if not isinstance(identity, str) or not identity:
        raise DecodeError("field 'private_identity' is required and must be a non-empty string")
    if type(origin) is not int:
        raise DecodeError("field 'private_origin' must be an integer")
    if type(snd_stamp) not in (int, float) or not math.isfinite(snd_stamp):
        raise DecodeError("field 'private_sndStamp' must be a finite number")
    return Envelope(seq_num, identity, origin, float(snd_stamp), obj)
