"""Waits on a component are measured against its life (its heartbeats), not only the caller's clock."""

from __future__ import annotations

from obsq.csc.clock import ManualClock
from obsq.csc.component import Deadline, Life
from obsq.csc.component.reader import LIFE_GRACE_S, SILENT_S


async def beat_until(clock: ManualClock, life: Life, until: float) -> None:
    """The component beats each second (of the caller's clock) up to `until` s from the clock's zero."""
    while clock.monotonic() < until:
        life.beat(clock.tai())
        await clock.advance(1)


async def test_a_component_that_lives_its_budget_without_answering_is_overdue() -> None:
    clock = ManualClock()
    life = Life(clock)
    deadline = Deadline(life, clock, 5.0)
    await beat_until(clock, life, 5 + LIFE_GRACE_S - 1)
    assert deadline.overdue() is None  # not yet: budget and grace not both passed
    await beat_until(clock, life, 5 + LIFE_GRACE_S + 1)
    assert deadline.overdue() == ""


async def test_a_starved_component_is_waited_for_until_it_has_lived_the_budget_or_falls_silent() -> None:
    clock = ManualClock()
    life = Life(clock)
    deadline = Deadline(life, clock, 5.0)
    await beat_until(clock, life, 3)  # beats at 0, 1, 2 s, then its process gets no CPU
    await clock.advance(10)
    assert deadline.overdue() is None  # the caller's 5 s are long gone, but the component lived only ~3 s
    await beat_until(clock, life, 15)  # it runs again: ~5 s of its life in all, not yet 5 + grace
    assert deadline.overdue() is None
    await beat_until(clock, life, 19)
    assert deadline.overdue() == ""


async def test_a_component_that_stops_beating_is_named_silent() -> None:
    clock = ManualClock()
    life = Life(clock)
    deadline = Deadline(life, clock, 5.0)
    await beat_until(clock, life, 2)
    await clock.advance(SILENT_S - 5)
    assert deadline.overdue() is None
    await clock.advance(10)
    assert deadline.overdue() == "silent"


async def test_sparse_heartbeats_do_not_stretch_a_deadline() -> None:
    """A component beating hourly (virtual time in tests) that is fresh by its own rhythm has lived as we have."""
    clock = ManualClock()
    life = Life(clock)
    for _ in range(2):
        life.beat(clock.tai())
        await clock.advance(3600)
    life.beat(clock.tai())
    deadline = Deadline(life, clock, 5.0)
    await clock.advance(5 + LIFE_GRACE_S)
    assert deadline.overdue() == ""


async def test_an_inprogress_extends_and_an_outage_shifts_the_deadline() -> None:
    clock = ManualClock()
    life = Life(clock)
    deadline = Deadline(life, clock, 5.0)
    await beat_until(clock, life, 4)
    deadline.extend(10.0)  # INPROGRESS: 10 s from now
    await beat_until(clock, life, 4 + 10 + LIFE_GRACE_S - 1)
    assert deadline.overdue() is None
    deadline.shift(30.0)  # the link was down 30 s
    await beat_until(clock, life, 4 + 10 + LIFE_GRACE_S + 5)
    assert deadline.overdue() is None
    await beat_until(clock, life, 4 + 10 + LIFE_GRACE_S + 31)
    assert deadline.overdue() == ""
