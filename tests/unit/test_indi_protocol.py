"""INDI's XML stream read into properties, as indiserver and its drivers write it (issue 24)."""

from __future__ import annotations

import pytest

from obsq.csc.core.errors import ValidationError
from obsq.csc.indi.address import parse_address
from obsq.csc.indi.protocol import IndiProtocolError, IndiReader, new_vector, parse_number

# as indi_simulator_wheel (indi-bin 1.9.9) sends it, whitespace and all
STREAM = b"""<defSwitchVector device="Filter Simulator" name="CONNECTION" label="Connection" group="Main Control" \
state="Idle" perm="rw" rule="OneOfMany" timeout="60" timestamp="2026-12-04T00:25:18">
    <defSwitch name="CONNECT" label="Connect">
Off
    </defSwitch>
    <defSwitch name="DISCONNECT" label="Disconnect">
On
    </defSwitch>
</defSwitchVector>
<defNumberVector device="Filter Simulator" name="FILTER_SLOT" label="Filter Slot" group="Filter Wheel" state="Idle" \
perm="rw" timeout="60" timestamp="2026-12-04T00:25:18">
    <defNumber name="FILTER_SLOT_VALUE" label="Filter" format="%3.0f" min="1" max="8" step="1">
1
    </defNumber>
</defNumberVector>
<message device="Filter Simulator" timestamp="2026-12-04T00:25:19" message="[INFO] Filter wheel is moving"/>
<setNumberVector device="Filter Simulator" name="FILTER_SLOT" state="Busy" timeout="60" \
timestamp="2026-12-04T00:25:19">
    <oneNumber name="FILTER_SLOT_VALUE">
3
    </oneNumber>
</setNumberVector>
"""


@pytest.mark.parametrize("chunk", [1, 7, 64, len(STREAM)])
def test_a_stream_in_any_pieces_gives_the_same_properties(chunk: int) -> None:
    reader = IndiReader()
    updates = []
    for start in range(0, len(STREAM), chunk):
        updates += reader.feed(STREAM[start : start + chunk])
    assert [(u.kind, u.name) for u in updates] == [
        ("def", "CONNECTION"), ("def", "FILTER_SLOT"), ("message", ""), ("set", "FILTER_SLOT"),
    ]  # fmt: skip
    assert updates[2].message == "[INFO] Filter wheel is moving"
    slot = reader.properties[("Filter Simulator", "FILTER_SLOT")]
    assert (slot.state, slot.number("FILTER_SLOT_VALUE"), slot.timeout_s) == ("Busy", 3.0, 60.0)
    assert slot.attributes["FILTER_SLOT_VALUE"]["max"] == "8"
    assert reader.properties[("Filter Simulator", "CONNECTION")].values == {"CONNECT": "Off", "DISCONNECT": "On"}


def test_a_property_defined_again_is_the_same_vector_so_its_holder_sees_what_is_set_next() -> None:
    # A driver answers every getProperties with its definitions; one still starting sends CONNECTION twice.
    reader = IndiReader()
    reader.feed(STREAM)
    held = reader.properties[("Filter Simulator", "CONNECTION")]
    reader.feed(STREAM.split(b"<defNumberVector")[0])
    on = b'<oneSwitch name="CONNECT">On</oneSwitch><oneSwitch name="DISCONNECT">Off</oneSwitch>'
    reader.feed(b'<setSwitchVector device="Filter Simulator" name="CONNECTION">' + on + b"</setSwitchVector>")
    assert reader.properties[("Filter Simulator", "CONNECTION")] is held
    assert held.values["CONNECT"] == "On"
    assert held.label == "Connection"


def test_del_property_removes_one_or_every_property_of_a_device() -> None:
    reader = IndiReader()
    reader.feed(STREAM)
    reader.feed(b'<delProperty device="Filter Simulator" name="FILTER_SLOT"/>')
    assert list(reader.properties) == [("Filter Simulator", "CONNECTION")]
    reader.feed(b'<delProperty device="Filter Simulator"/>')
    assert reader.properties == {}


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"<defNumberVector device='a' name='b'><oops></defNumberVector>", "not INDI XML"),
        (b"<setNumberVector name='b'></setNumberVector>", "without its device and name"),
        (b"<defTextVector device='a' name='b'>" + b"x" * 5000, "a message over 4,096 bytes"),
    ],
)
def test_a_broken_stream_is_named(data: bytes, match: str) -> None:
    with pytest.raises(IndiProtocolError, match=match):
        IndiReader(max_message_bytes=4096).feed(data)


def test_unknown_messages_are_passed_over() -> None:
    reader = IndiReader()
    assert reader.feed(b'<pingRequest uid="1"/><getProperties version="1.7"/>') == []


def test_numbers_decimal_and_sexagesimal() -> None:
    assert parse_number(" 3 ") == 3.0
    assert parse_number("12:30:00") == 12.5
    assert parse_number("-12:30:36") == pytest.approx(-12.51)
    with pytest.raises(ValueError, match="could not convert"):
        parse_number("three")


def test_what_a_client_sends_is_escaped() -> None:
    assert new_vector("Filter Simulator", "FILTER_SLOT", "Number", {"FILTER_SLOT_VALUE": 3.0}) == (
        b'<newNumberVector device="Filter Simulator" name="FILTER_SLOT">'
        b'<oneNumber name="FILTER_SLOT_VALUE">3</oneNumber></newNumberVector>\n'
    )
    assert b'<oneText name="N">R&amp;D &lt;1&gt;</oneText>' in new_vector('a"b', "X", "Text", {"N": "R&D <1>"})
    reader = IndiReader()  # a quote in a name stays a quote: the server reads back what was sent
    reader.feed(
        new_vector('a"b', "X", "Switch", {"CONNECT": True})
        .replace(b"newSwitch", b"defSwitch")
        .replace(b"oneSwitch", b"defSwitch")
    )
    assert reader.properties[('a"b', "X")].values == {"CONNECT": "On"}


def test_addresses() -> None:
    address = parse_address("indi://127.0.0.1/Filter Simulator")
    assert (address.host, address.port, address.device) == ("127.0.0.1", 7624, "Filter Simulator")
    assert parse_address("indi://astro.local:7625/QHY%20CCD%20QHY600M").device == "QHY CCD QHY600M"
    for text, rule in [("alpaca://h/camera/0", "not an INDI address"), ("indi://h/", "names no device"),
                       ("indi://h/a/b", "names no device"), ("indi://h:x/a", "is not an address")]:  # fmt: skip
        with pytest.raises(ValidationError, match=rule):
            parse_address(text)
