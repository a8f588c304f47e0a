"""Topic grammar, filter matching and the message codec (fuzzed with hypothesis)."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from obsq.csc.core.codec import Envelope, RefusedError, Sender, WireLimits, decode, encode
from obsq.csc.core.errors import DecodeError, TopicError
from obsq.csc.core.topics import ComponentId, Topic, TopicKind, TopicRouter, filter_matches
from obsq.csc.interfaces import wire_limits

LIMITS = wire_limits()


def test_topic_round_trip() -> None:
    topic = Topic("site/test-1", ComponentId("ATCamera", 0), TopicKind.COMMAND, "takeImages")
    assert str(topic) == "site/test-1/ATCamera/0/cmd/takeImages"
    assert Topic.parse(str(topic)) == topic
    ack = Topic("obsq", ComponentId("OCPS", 1), TopicKind.ACK)
    assert str(ack) == "obsq/OCPS/1/ackcmd"
    assert Topic.parse("obsq/OCPS/1/ackcmd") == ack


@pytest.mark.parametrize(
    "text",
    [
        "obsq/ATCamera/cmd/x",
        "obsq/ATCamera/x/cmd/take",
        "obsq/ATCamera/0/foo/take",
        "a/b",
        "obsq/9bad/0/evt/x",
        "obsq/A/0/evt/bad-name",
        "+/A/0/evt/x",
    ],
)
def test_bad_topics_are_refused(text: str) -> None:
    with pytest.raises(TopicError):
        Topic.parse(text)


def test_component_id_parse() -> None:
    assert ComponentId.parse("OCPS:1") == ComponentId("OCPS", 1)
    assert str(ComponentId.parse("ATDome")) == "ATDome"
    with pytest.raises(TopicError, match="integer"):
        ComponentId.parse("OCPS:x")


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        ("a/+/c", "a/b/c", True),
        ("a/#", "a", True),
        ("a/#", "a/b/c", True),
        ("a/+", "a/b/c", False),
        ("a/b", "a/b/c", False),
        ("+/+", "a/b", True),
        ("#", "a/b", True),
        ("a/+/c", "a/b/d", False),
    ],
)
def test_filter_matching(topic_filter: str, topic: str, expected: bool) -> None:
    assert filter_matches(topic_filter, topic) is expected


def test_router_returns_each_handler_once() -> None:
    router: TopicRouter[str] = TopicRouter()
    router.add("a/b", "h1")
    router.add("a/+", "h1")
    router.add("a/#", "h2")
    assert list(router.match("a/b")) == ["h1", "h2"]
    assert list(router.match("z")) == []
    assert router.remove("a/b", "h1") is True
    with pytest.raises(TopicError):
        router.add("a/#/b", "h3")


def test_codec_round_trip() -> None:
    envelope = Envelope(7, "me@host", 42, 1.5, {"x": 1, "s": "é"})
    assert decode(encode(envelope, LIMITS), LIMITS) == envelope


def test_minimal_hand_written_command_decodes() -> None:
    envelope = decode(b'{"private_seqNum": 1, "private_identity": "me", "duration": 2}', LIMITS)
    assert (envelope.seq_num, envelope.origin, envelope.data) == (1, 0, {"duration": 2})


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"private_identity": "me"}', "private_seqNum"),
        (b'{"private_seqNum": 0, "private_identity": "me"}', "private_seqNum"),
        (b'{"private_seqNum": true, "private_identity": "me"}', "private_seqNum"),
        (b'{"private_seqNum": 1}', "private_identity"),
        (b'{"private_seqNum": 1, "private_identity": "me", "private_origin": "x"}', "private_origin"),
        (b'{"private_seqNum": 1, "private_identity": "me", "private_sndStamp": NaN}', "private_sndStamp"),
        (b"\xff\xfe", "not JSON"),
    ],
)
def test_bad_payloads_are_named(raw: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        decode(raw, LIMITS)


def test_oversize_payload_is_refused_both_ways() -> None:
    with pytest.raises(DecodeError, match="exceeds the 100-byte limit"):
        decode(b" " * 101, WireLimits(max_payload_bytes=100))
    with pytest.raises(DecodeError, match="exceeds"):
        encode(Envelope(1, "me", 0, 0.0, {"s": "x" * 200}), WireLimits(max_payload_bytes=100))


@given(st.binary(max_size=300))
def test_decoder_never_raises_anything_but_decode_error_on_bytes(raw: bytes) -> None:
    with contextlib.suppress(DecodeError):
        decode(raw, LIMITS)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(max_size=20), json_values, max_size=8))
def test_decoder_on_arbitrary_json_objects(obj: dict[str, object]) -> None:
    try:
        envelope = decode(json.dumps(obj).encode(), LIMITS)
    except DecodeError:
        return
    assert envelope.seq_num >= 1
    assert envelope.identity
    assert not any(
        k.startswith("private_") and k in obj
        for k in envelope.data
        if k in ("private_seqNum", "private_identity", "private_origin", "private_sndStamp")
    )


def test_limits_come_from_the_interface_files() -> None:
    assert (
        WireLimits(max_payload_bytes=1_000_000, max_identity_length=128, max_string_length=65_536, max_depth=32)
        == LIMITS
    )


def _command(**fields: object) -> str:
    return json.dumps({"private_seqNum": 5, "private_identity": "me@host", "private_origin": 9, **fields})


DEEP = '{"a": ' * 40 + "1" + "}" * 40


@pytest.mark.parametrize(
    ("raw", "rule", "identified"),
    [
        (_command()[:-1] + ', "x": NaN}', "finite numbers", True),
        (_command()[:-1] + ', "x": -Infinity}', "finite numbers", True),
        (_command()[:-1] + ', "x": 1e999}', "finite numbers", True),
        (_command()[:-1] + ', "x": 1, "x": 2}', "unique keys", True),
        (_command()[:-1] + ', "x": ' + "9" * 30 + "}", "64-bit integers", True),
        (_command()[:-1] + ', "x": ' + "9" * 5001 + "}", "64-bit integers", False),
        (_command()[:-1] + ', "x": ' + DEEP + "}", "maxDepth", True),
        ("[" * 100_000 + "]" * 100_000, "maxDepth", False),
        (_command(private_identity="x" * 999_850), "maxIdentityLength", False),
        (_command(private_seqNum=2**31), "private_seqNum", False),
        (_command(private_seqNum=2**63), "private_seqNum", False),
        (_command(private_seqNum=1.0), "private_seqNum", False),
        (_command(private_origin=-1), "private_origin", False),
    ],
)
def test_the_door_refuses_by_name_and_identifies_the_sender_when_it_can(raw: str, rule: str, identified: bool) -> None:
    with pytest.raises(RefusedError, match=rule) as caught:
        decode(raw.encode(), LIMITS)
    assert (caught.value.sender == Sender(5, "me@host", 9)) is identified


def test_encode_refuses_nan() -> None:
    with pytest.raises(DecodeError, match="JSON"):
        encode(Envelope(1, "me", 0, 0.0, {"x": float("nan")}), LIMITS)
