"""TopicReader: the received samples of one event or telemetry topic, pull or push (salobj's read topics).

Waits on a component — for an ack, for an event — are measured by `Deadline` against the
component's own life as its heartbeats show it (`Life`), not only against the caller's clock:
a budget in clock seconds (simulated time for simulated hardware) is overdue only once the
caller has waited it *and* the component has lived it. A busy machine that slows the
component slows its deadlines as much, so no fixed real-time floor is needed; a component
that stops beating is named as not running or not responding.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from obsq.csc.clock import Clock, wait_for
from obsq.csc.core.codec import Envelope

#: Past its budget a wait goes on until the component has lived this much more (real s, two heartbeats):
#: its answer, sent as the budget ends, may come after a later heartbeat.
LIFE_GRACE_S = 2.0
#: A component whose newest heartbeat is older than this many real seconds (and than three of its
#: heartbeat periods) is not running or not responding: waits on it end.
SILENT_S = 30.0
#: How long (real s) a wait goes on for a component never heard from, not even its retained heartbeat.
UNSEEN_S = 10.0
#: How often (real s) an overdue-looking wait looks again at the component's life.
RECHECK_S = 0.5
#: A component's heartbeat period when only one heartbeat has been seen (SAL's 1 s).
DEFAULT_PERIOD_S = 1.0


class Life:
    """How long a component has run, as its heartbeats show it (send stamps on its unscaled clock, TAI).

    Each gap between two heartbeats counts as life up to one heartbeat period: a component whose
    beats stop for a while (a process starved of CPU on a busy machine) is not taken to have run
    meanwhile, even though its next stamp is later.
    """

    def __init__(self, clock: Clock) -> None:
        self._wall = clock.unscaled()
        self._last: float | None = None
        self._gaps: list[float] = []
        self._lived = 0.0  # life up to the newest heartbeat

    def beat(self, snd_stamp: float) -> None:
        """A heartbeat of the component was received (a retained old one included)."""
        if self._last is None:
            self._last = snd_stamp
            return
        gap = snd_stamp - self._last
        if gap <= 0:
            return
        self._lived += min(gap, self.period_s()) if self._gaps else gap
        self._gaps = [*self._gaps[-2:], gap]
        self._last = snd_stamp

    @property
    def stamp(self) -> float | None:
        """Send stamp of the newest heartbeat, or None if none was seen."""
        return self._last

    def period_s(self) -> float:
        """The component's heartbeat period: the shortest of its last three gaps."""
        return min(self._gaps) if self._gaps else DEFAULT_PERIOD_S

    def age_s(self) -> float | None:
        """Real seconds since the newest heartbeat was sent, or None if none was seen."""
        return None if self._last is None else self._wall.tai() - self._last

    def silent(self) -> bool:
        """Whether the component has stopped beating: no heartbeat for SILENT_S and three of its periods."""
        age = self.age_s()
        return age is not None and age > max(SILENT_S, 3 * self.period_s())

    def lived(self) -> float:
        """Real seconds of the component's life so far (a reading to subtract from a later one).

        Since its newest heartbeat it is taken to have run as long as the caller, up to one period.
        """
        if self._last is None:
            return 0.0
        return self._lived + min(max(0.0, self._wall.tai() - self._last), self.period_s())


class Deadline:
    """When a wait on a component is overdue: its budget has passed for the caller, and the component lived it.

    The budget is in clock seconds of the caller's clock (`timeout_s`, simulated seconds at a
    speed above 1, as the component's own INPROGRESS timeouts are), turned into real seconds by
    the clock's speed. `extend` moves the end later (an INPROGRESS); `shift` leaves out time the
    link to the broker was down.
    """

    def __init__(self, life: Life, clock: Clock, budget_s: float) -> None:
        self._life = life
        self._wall = clock.unscaled()
        self._speed = clock.speed
        self._start_mono = self._wall.monotonic()
        self._start_life = life.lived()
        self._real_s = max(0.0, budget_s) / self._speed

    @property
    def budget_s(self) -> float:
        """The budget in clock seconds from the start (after extensions)."""
        return self._real_s * self._speed

    def extend(self, budget_s: float) -> None:
        """The wait may go on `budget_s` clock seconds from now, if that is later than its end."""
        now_mono, real_s = self._wall.monotonic(), max(0.0, budget_s) / self._speed
        if now_mono + real_s > self._start_mono + self._real_s:
            self._start_mono, self._start_life, self._real_s = now_mono, self._life.lived(), real_s

    def shift(self, seconds: float) -> None:
        """Leave `seconds` of real time out of the wait (the link to the broker was down)."""
        self._start_mono += seconds
        self._start_life += seconds

    def wait_s(self) -> float:
        """Real seconds to wait before looking again at whether the wait is overdue."""
        left = self._start_mono + self._real_s + LIFE_GRACE_S - self._wall.monotonic()
        return left if left > 0 else RECHECK_S

    def overdue(self) -> str | None:
        """None while the wait goes on; else why it ends ("" when the budget was simply lived)."""
        elapsed = self._wall.monotonic() - self._start_mono
        if elapsed < self._real_s + LIFE_GRACE_S:
            return None
        age = self._life.age_s()
        if age is None:
            return "unseen" if elapsed >= max(self._real_s + LIFE_GRACE_S, UNSEEN_S) else None
        if self._life.silent():
            return "silent"
        return "" if self._life.lived() - self._start_life >= self._real_s + LIFE_GRACE_S else None

    async def wait(self, event: asyncio.Event) -> str | None:
        """Wait for `event`; None once it is set, else why the wait became overdue."""
        while not event.is_set():
            try:
                await wait_for(self._wall, event.wait(), self.wait_s())
            except TimeoutError:
                why = self.overdue()
                if why is not None:
                    return why
        return None


def overdue_text(why: str, owner: str, life: Life) -> str:
    """Words for why a wait on `owner` ended (see Deadline.overdue)."""
    if why == "unseen":
        return f"no heartbeat of {owner} was seen: is it running?"
    if why == "silent":
        return f"{owner}'s last heartbeat is {life.age_s() or 0:.0f} s old: it is not running or not responding"
    return ""


class TopicReader:
    """The received samples of one event or telemetry topic of a Remote.

    Pull (`get`, `aget`, `next`) or push (`callback`), as salobj's read topics. Waits for a
    sample are measured against the component's life (`life`, fed by its Remote).
    """

    def __init__(
        self, name: str, clock: Clock, queue_len: int = 100, *, life: Life | None = None, owner: str = ""
    ) -> None:
        self.name = name
        self._clock = clock
        self._life = life or Life(clock)
        self._owner = owner or "the component"
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
        if timeout_s <= 0:  # a poll: no sample now is the answer
            raise TimeoutError(f"no {self.name} sample")
        self._new.clear()
        why = await Deadline(self._life, self._clock, timeout_s).wait(self._new)
        if why is not None:
            detail = overdue_text(why, self._owner, self._life)
            raise TimeoutError(f"no {self.name} sample within {timeout_s:g} s" + (f": {detail}" if detail else ""))

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
