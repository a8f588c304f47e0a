"""INDI's XML messages, pure: a stream of them read into vectors, and the `new…Vector` a client sends.

An INDI server sends a stream of XML elements with no enclosing root: `def*Vector` defines a
property of a device (its elements and their values), `set*Vector` changes values and state,
`delProperty` removes one, `message` is a device's log line. A property's state is Idle, Ok,
Busy or Alert: a client asks for a change with `new*Vector` and the driver answers Busy while
it works, then Ok, or Alert with a `message` saying why. `IndiReader` turns bytes into `Vector`
updates; `new_vector` writes what a client sends. Nothing here does I/O.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import cast
from xml.sax.saxutils import escape, quoteattr

#: Property types and the element each holds.
TYPES = {"Number": "Number", "Text": "Text", "Switch": "Switch", "Light": "Light", "BLOB": "BLOB"}
#: States of a property.
STATES = ("Idle", "Ok", "Busy", "Alert")
#: The largest message read (a BLOB of a camera's frame is the largest; base64 of 2^28 bytes).
MAX_MESSAGE_BYTES = 400 * 2**20


class IndiProtocolError(ValueError):
    """The server's stream is not INDI (not XML, a message too large, a vector without its device)."""


@dataclass
class Vector:
    """One property of one device, as last defined and set."""

    device: str
    name: str
    type: str
    state: str = "Idle"
    label: str = ""
    perm: str = ""
    timeout_s: float = 0.0
    values: dict[str, str] = field(default_factory=dict)
    #: Attributes of each element (a BLOB's format and size; a number's min and max).
    attributes: dict[str, dict[str, str]] = field(default_factory=dict)

    def number(self, element: str) -> float:
        """An element's value as a number (INDI numbers may be sexagesimal: 12:30:00 is 12.5)."""
        return parse_number(self.values[element])


@dataclass(frozen=True)
class Update:
    """What one message did: `kind` def, set, del or message; `vector` the property after it (none for a message)."""

    kind: str
    device: str
    name: str
    vector: Vector | None
    message: str = ""
    timestamp: str = ""


class IndiReader:
    """Feed it the server's bytes; it keeps every device's properties and returns what each message changed."""

    def __init__(self, *, max_message_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self.properties: dict[tuple[str, str], Vector] = {}
        self.max_message_bytes = max_message_bytes
        self._parser: ET.XMLPullParser[ET.Element] = ET.XMLPullParser(events=("start", "end"))
        self._parser.feed(b"<indi>")
        self._depth = 0
        self._pending = 0

    def feed(self, data: bytes) -> list[Update]:
        """The updates the bytes completed; IndiProtocolError if the stream is broken."""
        self._pending += len(data)
        if self._pending > self.max_message_bytes:
            raise IndiProtocolError(f"a message over {self.max_message_bytes:,} bytes")
        try:
            self._parser.feed(data)
            # only start and end events were asked for: each is (event, element)
            events = cast("list[tuple[str, ET.Element]]", list(self._parser.read_events()))
        except ET.ParseError as exc:
            raise IndiProtocolError(f"not INDI XML: {exc}") from None
        updates: list[Update] = []
        for event, element in events:
            if event == "start":
                self._depth += 1
                continue
            self._depth -= 1
            if self._depth == 1:  # a whole message, a child of the stream
                self._pending = 0
                update = self._apply(element)
                if update is not None:
                    updates.append(update)
                element.clear()
        return updates

    def _apply(self, element: ET.Element) -> Update | None:
        tag = element.tag
        device = element.get("device", "")
        name = element.get("name", "")
        text = element.get("message", "")
        stamp = element.get("timestamp", "")
        if tag == "message":
            return Update("message", device, "", None, text, stamp)
        if tag == "delProperty":
            if name:
                self.properties.pop((device, name), None)
            else:
                self.properties = {k: v for k, v in self.properties.items() if k[0] != device}
            return Update("del", device, name, None, text, stamp)
        kind, kind_type = _vector_kind(tag)
        if kind is None:
            return None  # a message INDI may add later (getProperties from a snooping driver, pingRequest…)
        if not device or not name:
            raise IndiProtocolError(f"<{tag}> without its device and name")
        vector = self.properties.get((device, name))
        if vector is None or (kind == "def" and vector.type != kind_type):
            vector = Vector(device, name, kind_type, label=element.get("label", ""), perm=element.get("perm", ""))
            self.properties[(device, name)] = vector
        elif kind == "def":  # defined again (a driver answers every getProperties): the same vector, redefined
            vector.label, vector.perm = element.get("label", ""), element.get("perm", "")
            vector.values.clear()
            vector.attributes.clear()
        vector.state = element.get("state", vector.state)
        if element.get("timeout"):
            vector.timeout_s = parse_number(element.get("timeout", "0"))
        for child in element:
            key = child.get("name", "")
            vector.values[key] = (child.text or "").strip()
            vector.attributes.setdefault(key, {}).update({k: v for k, v in child.attrib.items() if k != "name"})
        return Update(kind, device, name, vector, text, stamp)


def _vector_kind(tag: str) -> tuple[str | None, str]:
    for kind in ("def", "set"):
        if tag.startswith(kind) and tag.endswith("Vector"):
            kind_type = tag[len(kind) : -len("Vector")]
            if kind_type in TYPES:
                return kind, kind_type
    return None, ""


def parse_number(text: str) -> float:
    """An INDI number: decimal, or sexagesimal (`-12:30:36` is -12.51); ValueError if neither."""
    text = text.strip()
    if ":" not in text and " " not in text:
        return float(text)
    parts = [float(p) for p in text.replace(" ", ":").split(":") if p]
    sign = -1.0 if text.startswith("-") else 1.0
    value = 0.0
    for scale, part in zip((1.0, 60.0, 3600.0), parts, strict=False):
        value += abs(part) / scale
    return sign * value


def new_vector(device: str, name: str, type_: str, values: dict[str, str | float | bool]) -> bytes:
    """The `new<type>Vector` asking `device` to set `values` of property `name`."""
    if type_ not in ("Number", "Text", "Switch"):
        raise ValueError(f"a client sends Number, Text or Switch vectors, not {type_}")
    parts = [f"<new{type_}Vector device={quoteattr(device)} name={quoteattr(name)}>"]
    for key, value in values.items():
        if isinstance(value, bool):
            text = "On" if value else "Off"
        else:
            text = f"{value:.10g}" if isinstance(value, float) else str(value)
        parts.append(f"<one{type_} name={quoteattr(key)}>{escape(text)}</one{type_}>")
    parts.append(f"</new{type_}Vector>\n")
    return "".join(parts).encode()


def enable_blob(device: str, mode: str = "Also") -> bytes:
    """Ask the server to send `device`'s BLOBs (images) on this connection too (INDI sends none unless asked)."""
    if mode not in ("Never", "Also", "Only"):
        raise ValueError(f"enableBLOB takes Never, Also or Only, not {mode!r}")
    return f"<enableBLOB device={quoteattr(device)}>{mode}</enableBLOB>\n".encode()


def get_properties(device: str = "") -> bytes:
    """Ask the server for every property (of `device` only, if given)."""
    who = f" device={quoteattr(device)}" if device else ""
    return f'<getProperties version="1.7"{who}/>\n'.encode()
