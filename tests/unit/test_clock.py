"""Clocks: virtual time runs sleepers in order; the loop clock scales durations."""

from __future__ import annotations

import asyncio

import pytest

from obsq.csc.clock import LoopClock, ManualClock, wait_for


async def test_manual_clock_wakes_sleepers_in_deadline_order() -> None:
    clock = ManualClock()
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((name, clock.monotonic()))

    tasks = [asyncio.create_task(sleeper(n, s)) for n, s in (("late", 900), ("early", 10), ("mid", 60))]
    await clock.advance(59)
    assert woke == [("early", 10)]
    await clock.advance(900)
    assert woke == [("early", 10), ("mid", 60), ("late", 900)]
    assert clock.monotonic() == 959
    await asyncio.gather(*tasks)


async def test_manual_clock_wait_for_times_out_in_virtual_time() -> None:
    clock = ManualClock()
    never = asyncio.Event()
    task = asyncio.create_task(wait_for(clock, never.wait(), 30))
    await clock.advance(29)
    assert not task.done()
    await clock.advance(1)
    with pytest.raises(TimeoutError, match="30 s"):
        await task


async def test_loop_clock_speed_scales_sleep_and_time() -> None:
    clock = LoopClock(speed=600)
    start = clock.monotonic()
    await clock.sleep(60)  # 0.1 s of real time
    assert clock.monotonic() - start >= 60
    assert clock.unscaled().speed == 1
    with pytest.raises(TimeoutError):
        await clock.wait_for(asyncio.Event().wait(), 30)  # 0.05 s of real time


def test_loop_clock_refuses_bad_speed() -> None:
    with pytest.raises(ValueError, match="speed"):
        LoopClock(speed=0)


async def test_a_fast_clock_never_times_a_command_out_in_less_than_the_real_floor() -> None:
    from obsq.csc.bus.memory import MemoryBroker
    from obsq.csc.component import Remote

    broker = MemoryBroker()
    bus = broker.client()
    await bus.start()
    clock = LoopClock(speed=1e6)  # 2 s of simulated time would be 2 us of real time
    async with Remote(bus, "Test:1", clock=clock, root="floor") as remote:
        task = asyncio.create_task(remote.command("enable", timeout_s=2))
        await asyncio.sleep(0.05)
        assert not task.done()  # still waiting: the floor, not 2 us
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    await bus.close()
