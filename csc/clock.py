"""Clocks: the one place in obsq that reads wall time or sleeps.

Domain code takes a `Clock` and never calls `time.*`, `datetime.now` or `asyncio.sleep`
itself (ruff's banned-api rule enforces it). Two implementations:

- `LoopClock(speed)`: the event loop's time, scaled. At speed 600 a 900 s lamp warm-up
  takes 1.5 s of real time; models keep their real durations.
- `ManualClock`: virtual time for unit tests; `await clock.advance(900)` runs every
  sleeper due in the next 900 s, in order, in a few milliseconds.

`unscaled()` gives the clock that liveness uses (heartbeats, send stamps): real time for
a LoopClock whatever its speed; the same virtual time for a ManualClock.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import heapq
import itertools
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

#: TAI - UTC in seconds, valid since 2017-01-01 (no leap second announced since).
TAI_MINUS_UTC_S = 37.0

T = TypeVar("T")


class Clock(Protocol):
    """Time as a component sees it."""

    @property
    def speed(self) -> float:
        """How many clock seconds pass per real second."""
        ...

    def tai(self) -> float:
        """Current TAI time, unix seconds."""
        ...

    def monotonic(self) -> float:
        """A monotonic reading in clock seconds, for durations."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` of clock time."""
        ...

    def unscaled(self) -> Clock:
        """The clock for liveness and send stamps (real time for a scaled loop clock)."""
        ...

    async def wait_for(self, awaitable: Awaitable[T], timeout_s: float) -> T:
        """Await `awaitable`, raising TimeoutError after `timeout_s` of clock time."""
        ...

    async def to_thread(self, function: Callable[..., T], /, *args: Any) -> T:
        """Run blocking work (files, a database) in a worker thread; a virtual clock waits for it."""
        ...


def utc_now_unix() -> float:
    """Wall-clock UTC, unix seconds (for file names and human-facing stamps)."""
    return time.time()


def tai_iso(tai: float, *, places: int = 3) -> str:
    """TAI unix seconds as an ISO-8601 UTC time (`2026-12-07T17:02:11.250Z`), as an operator reads it."""
    moment = datetime.datetime.fromtimestamp(tai - TAI_MINUS_UTC_S, tz=datetime.UTC)
    timespec = "milliseconds" if places == 3 else "seconds"
    return moment.isoformat(timespec=timespec).replace("+00:00", "Z")


def day_obs(tai: float) -> int:
    """Rubin's observing day of a TAI time: the date at UTC-12 h, as YYYYMMDD."""
    moment = datetime.datetime.fromtimestamp(tai - TAI_MINUS_UTC_S, tz=datetime.UTC) - datetime.timedelta(hours=12)
    return int(moment.strftime("%Y%m%d"))


def perf_counter() -> float:
    """A high-resolution real-time counter, for benchmarks."""
    return time.perf_counter()


def blocking_sleep(seconds: float) -> None:
    """Block the thread (only for synchronous helpers such as test fixtures)."""
    time.sleep(seconds)


async def wait_for(clock: Clock, awaitable: Awaitable[T], timeout_s: float) -> T:
    """Await `awaitable`, raising TimeoutError after `timeout_s` of `clock` time."""
    return await clock.wait_for(awaitable, timeout_s)


async def _race_sleep(clock: Clock, awaitable: Awaitable[T], timeout_s: float) -> T:
    """wait_for for clocks whose time the event loop does not know (ManualClock)."""
    task = asyncio.ensure_future(awaitable)
    timer = asyncio.ensure_future(clock.sleep(timeout_s))
    try:
        done, _ = await asyncio.wait({task, timer}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        timer.cancel()
        raise
    timer.cancel()
    if task in done:
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    raise TimeoutError(f"timed out after {timeout_s:g} s")


def wall_tai() -> float:
    """The wall clock as TAI unix seconds."""
    return time.time() + TAI_MINUS_UTC_S


class LoopClock:
    """The event loop's clock, scaled by `speed`.

    Its TAI runs `speed` times faster than the wall clock from `epoch_tai` on (default: now).
    Processes given the same epoch (`obsq up` hands one to all its components) agree on
    the simulated time, so a lamp's warm-up end seen by the camera means the same instant.
    """

    def __init__(self, speed: float = 1.0, epoch_tai: float | None = None) -> None:
        if not speed > 0:
            raise ValueError(f"clock speed must be > 0, got {speed}")
        self._speed = float(speed)
        self._t0_mono = time.monotonic()
        now = wall_tai()
        epoch = now if epoch_tai is None else epoch_tai
        self._epoch_tai = epoch
        self._t0_tai = epoch + (now - epoch) * self._speed  # the simulated TAI right now
        self._unscaled: LoopClock = self if speed == 1.0 else LoopClock(1.0)

    @property
    def speed(self) -> float:
        return self._speed

    @property
    def epoch_tai(self) -> float:
        """The wall-clock TAI the scaled time runs `speed` times faster from: TAI = epoch + (wall - epoch) x speed."""
        return self._epoch_tai

    def monotonic(self) -> float:
        return (time.monotonic() - self._t0_mono) * self._speed

    def tai(self) -> float:
        return self._t0_tai + self.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self._speed)

    def unscaled(self) -> LoopClock:
        return self._unscaled

    async def wait_for(self, awaitable: Awaitable[T], timeout_s: float) -> T:
        try:
            async with asyncio.timeout(max(0.0, timeout_s) / self._speed):
                return await awaitable
        except TimeoutError:
            raise TimeoutError(f"timed out after {timeout_s:g} s") from None

    async def to_thread(self, function: Callable[..., T], /, *args: Any) -> T:
        return await asyncio.to_thread(function, *args)


class ManualClock:
    """Virtual time that moves only when a test calls `advance` (or `run_until_idle`)."""

    def __init__(self, tai: float = 1_800_000_000.0) -> None:
        self._start_tai = tai
        self._now = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._counter = itertools.count()
        self._threads: set[asyncio.Future[Any]] = set()

    @property
    def speed(self) -> float:
        return 1.0

    def monotonic(self) -> float:
        return self._now

    def tai(self) -> float:
        return self._start_tai + self._now

    def unscaled(self) -> ManualClock:
        return self

    async def wait_for(self, awaitable: Awaitable[T], timeout_s: float) -> T:
        return await _race_sleep(self, awaitable, timeout_s)

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._counter), future))
        await future

    @property
    def next_deadline(self) -> float | None:
        """Clock time of the earliest pending sleeper, or None."""
        self._drop_cancelled()
        return self._sleepers[0][0] if self._sleepers else None

    def _drop_cancelled(self) -> None:
        while self._sleepers and self._sleepers[0][2].done():
            heapq.heappop(self._sleepers)

    async def to_thread(self, function: Callable[..., T], /, *args: Any) -> T:
        """The work in a thread; until it ends the loop is not idle, so virtual time does not run past it."""
        future = asyncio.ensure_future(asyncio.to_thread(function, *args))
        self._threads.add(future)
        try:
            return await future
        finally:
            self._threads.discard(future)

    async def settle(self, max_rounds: int = 1000) -> None:
        """Let ready tasks run, without moving time, until the loop has nothing left to run.

        Idle means the loop's run queue stayed empty for two iterations in a row and no work
        started with `to_thread` is still running (it is waited for in real time); work waiting
        on a socket is not seen (unit tests use the memory bus and in-memory stores).
        """
        ready = getattr(asyncio.get_running_loop(), "_ready", None)  # CPython's run queue (a deque)
        idle = 0
        for _ in range(max_rounds):
            if self._threads:  # blocking work in flight: wait for it in real time, then look again
                await asyncio.wait(set(self._threads))
                idle = 0
                continue
            await asyncio.sleep(0)
            idle = idle + 1 if ready is None or not ready else 0
            if idle >= (2 if ready is not None else 20):  # a loop hiding its run queue: a fixed number of rounds
                return

    async def advance(self, seconds: float) -> None:
        """Move time forward by `seconds`, waking each sleeper at its own deadline in order."""
        if seconds < 0:
            raise ValueError("time cannot go backwards")
        target = self._now + seconds
        await self.settle()
        while (deadline := self.next_deadline) is not None and deadline <= target:
            self._now = max(self._now, deadline)
            while self._sleepers and self._sleepers[0][0] <= self._now:
                _, _, future = heapq.heappop(self._sleepers)
                if not future.done():
                    future.set_result(None)
            await self.settle()
        self._now = target
        await self.settle()
