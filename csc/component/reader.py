"""TopicReader: the received samples of one event or telemetry topic, pull or push (salobj's read topics)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from obsq.csc.clock import Clock, wait_for
from obsq.csc.core.codec import Envelope

#: Shortest real time a command is waited for when the clock runs faster than real time.
MIN_SCALED_TIMEOUT_S = 10.0


def real_seconds(clock: Clock, seconds: float) -> float:
    """The real time to wait for `seconds` of `clock` time (on `clock.unscaled()`).

    Replies come in real time: the work behind them (files, processes) does not speed up with
    a scaled clock, so a fast clock shortens the wait by its speed but never below
    MIN_SCALED_TIMEOUT_S.
    """
    speed = clock.speed
    return max(seconds / speed, MIN_SCALED_TIMEOUT_S) if speed > 1 else seconds


class TopicReader:
    """The received samples of one event or telemetry topic of a Remote.

    Pull (`get`, `aget`, `next`) or push (`callback`), as salobj's read topics.
    """

    def __init__(self, name: str, clock: Clock, queue_len: int = 100) -> None:
        self.name = name
        self._clock = clock
        self._latest: Envelope | None = None
        self._queue: asyncio.Queue[Envelope] = asyncio.Queue()
        self._queue_len = queue_len
        self._new = asyncio.Event()
        self.callback: Callable[[Envelope], None] | None = None

    def get(self) -> dict[str, Any]:
        """The latest sample's data; an empty mapping if none has been seen (see `has_data`)."""
        return self._latest.data if self._latest else {}

    @property
    def has_data(self) -> bool:
        """Whether a sample has been seen."""
        return self._latest is not None

    def get_envelope(self) -> Envelope | None:
        return self._latest

    async def aget(self, timeout_s: float) -> dict[str, Any]:
        """The latest sample (a late joiner gets the retained one), waiting for a first if needed."""
        if self._latest is None:
            await self._wait_new(timeout_s)
        assert self._latest is not None
        return self._latest.data

    async def next(self, *, flush: bool, timeout_s: float) -> dict[str, Any]:
        """The oldest unread sample; with `flush`, drop unread ones and wait for a new one."""
        if flush:
            self.flush()
        if self._queue.empty():
            await self._wait_new(timeout_s)
        return self._queue.get_nowait().data

    def flush(self) -> None:
        while not self._queue.empty():
            self._queue.get_nowait()

    async def _wait_new(self, timeout_s: float) -> None:
        self._new.clear()
        try:
            await wait_for(self._clock.unscaled(), self._new.wait(), real_seconds(self._clock, timeout_s))
        except TimeoutError:
            raise TimeoutError(f"no {self.name} sample within {timeout_s:g} s") from None

    def receive(self, envelope: Envelope) -> None:
        """Called by the Remote for each decoded, validated sample."""
        latest = self._latest
        if latest is not None and (latest.identity, latest.origin, latest.seq_num) == (
            envelope.identity,
            envelope.origin,
            envelope.seq_num,
        ):
            return  # a retained copy delivered again (amqtt does this); state is idempotent
        self._latest = envelope
        if self.callback is not None:
            self.callback(envelope)
            return
        if self._queue.qsize() >= self._queue_len:
            self._queue.get_nowait()
        self._queue.put_nowait(envelope)
        self._new.set()
