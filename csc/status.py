"""Feeding a StatusBoard from the bus: what `obsq status`, `obsq weekly` and the tests watch."""

from __future__ import annotations

import contextlib

from obsq.csc.bus.base import Bus, Message
from obsq.csc.clock import Clock
from obsq.csc.core.codec import decode
from obsq.csc.core.errors import DecodeError, TopicError
from obsq.csc.core.status import WATCHED_EVENTS, StatusBoard
from obsq.csc.core.topics import Topic
from obsq.csc.interfaces import wire_limits


async def collect_status(bus: Bus, root: str, board: StatusBoard, clock: Clock) -> None:
    """Feed `board` with the status events of every component under `root`."""

    def on_event(message: Message) -> None:
        try:
            topic = Topic.parse(message.topic)
            envelope = decode(message.payload, wire_limits())
        except (TopicError, DecodeError):
            return  # includes the empty payloads that clear retained topics
        with contextlib.suppress(KeyError, ValueError, TypeError):
            board.observe(topic.component, topic.name, envelope.data, envelope.snd_stamp, clock.tai())

    for event in WATCHED_EVENTS:
        await bus.subscribe(f"{root}/+/+/evt/{event}", on_event)
