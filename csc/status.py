"""Feeding a StatusBoard from the bus: what `obsq status`, `obsq weekly` and the tests watch."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from obsq.csc.bus.base import Bus, Message
from obsq.csc.clock import Clock
from obsq.csc.core.codec import Envelope, decode
from obsq.csc.core.errors import DecodeError, TopicError
from obsq.csc.core.status import WATCHED_EVENTS, StatusBoard
from obsq.csc.core.topics import Topic
from obsq.csc.interfaces import wire_limits


def decoded(handler: Callable[[Topic, Envelope], None]) -> Callable[[Message], None]:
    """A bus handler giving `handler` each message's topic and envelope; what cannot be read is skipped.

    Skipped: topics outside the grammar, and payloads that do not decode within the wire limits
    (the empty payloads that clear retained topics among them).
    """

    def on_message(message: Message) -> None:
        try:
            topic = Topic.parse(message.topic)
            envelope = decode(message.payload, wire_limits())
        except (TopicError, DecodeError):
            return
        handler(topic, envelope)

    return on_message


async def collect_status(bus: Bus, root: str, board: StatusBoard, clock: Clock) -> None:
    """Feed `board` with the status events of every component under `root`."""

    def on_event(topic: Topic, envelope: Envelope) -> None:
        with contextlib.suppress(KeyError, ValueError, TypeError):
            board.observe(topic.component, topic.name, envelope.data, envelope.snd_stamp, clock.tai())

    for event in WATCHED_EVENTS:
        await bus.subscribe(f"{root}/+/+/evt/{event}", decoded(on_event))
