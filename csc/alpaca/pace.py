"""A device's pace: how often it is polled and when a wait for it is over, at the device's own clock speed.

A real device runs in real time (speed 1): a poll every `poll_s` seconds, a timeout of `timeout_s`
seconds. obsq's served simulation (`obsq alpaca serve --speed S`) runs S times faster, and so does
the component driving it: the poll and the timeout are then clock seconds, as the simulated
physics (a slew, a strike, a wheel's move) take. But real work on the other side (an image
computed and sent) does not speed up: a poll is never less than MIN_POLL_S of real time, and a
wait for such work is over only when both its clock time and `real_floor_s` real seconds (at most
the timeout) have passed. At speed 1 all of them are the same.
"""

from __future__ import annotations

import asyncio
import contextlib

from obsq.csc.clock import Clock

#: The shortest real time between two polls of a device, whatever the clock speed.
MIN_POLL_S = 0.01
#: The real seconds a wait for the other side's real work (an image) always allows, whatever the clock speed.
REAL_FLOOR_S = 10.0


class Deadline:
    """A wait's end: `timeout_s` of clock time and, for the other side's real work, a real floor."""

    def __init__(self, clock: Clock, timeout_s: float, real_floor_s: float = 0.0) -> None:
        self._clock, self._wall = clock, clock.unscaled()
        self._t0, self._w0 = self._clock.monotonic(), self._wall.monotonic()
        self.timeout_s = timeout_s
        self.real_floor_s = min(timeout_s, real_floor_s)

    @property
    def passed(self) -> bool:
        clock_done = self._clock.monotonic() - self._t0 >= self.timeout_s
        return clock_done and self._wall.monotonic() - self._w0 >= self.real_floor_s


class Pace:
    """Polls and deadlines for one device driven on `clock` (the component's)."""

    def __init__(self, clock: Clock, poll_s: float) -> None:
        self.clock = clock
        self.poll_s = poll_s

    def deadline(self, timeout_s: float, *, real_work: bool = False) -> Deadline:
        """A wait of `timeout_s` clock seconds; `real_work`: for the other side's real work (REAL_FLOOR_S)."""
        return Deadline(self.clock, timeout_s, REAL_FLOOR_S if real_work else 0.0)

    async def pause(self, halt: asyncio.Event | None = None) -> None:
        """One poll interval (at least MIN_POLL_S real), or less if `halt` is set."""
        wall = self.clock.unscaled()
        seconds = max(self.poll_s / self.clock.speed, MIN_POLL_S)
        if halt is None:
            await wall.sleep(seconds)
            return
        with contextlib.suppress(TimeoutError):
            await wall.wait_for(halt.wait(), seconds)
