"""Shared fixtures: a unique topic root per test, and no task left running after a test.

Every test process, and each component it starts, gets the schedule `tests/data/schedule-off.yaml`
(its rule switched off) unless a test gives its own: a test run at 14:00 site time on a Monday
must not find the Scheduler queueing the weekly calibrations beside it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from obsq.csc.scheduler.schedule import SCHEDULE_ENV
from obsq.csc.testing import unique_root

os.environ.setdefault(SCHEDULE_ENV, str(Path(__file__).parent / "data" / "schedule-off.yaml"))


@pytest.fixture
def root() -> str:
    """Every test gets its own MQTT topic root."""
    return unique_root()


@pytest.fixture(autouse=True)
async def no_leftover_tasks() -> AsyncIterator[None]:
    """Fail any test that leaves tasks running (structured concurrency, STYLE.md 9)."""
    before = asyncio.all_tasks()
    yield
    for _ in range(5):
        await asyncio.sleep(0)
    leftover = [t for t in asyncio.all_tasks() - before if not t.done() and t is not asyncio.current_task()]
    for task in leftover:
        task.cancel()
    if leftover:
        pytest.fail(f"test left tasks running: {[t.get_name() for t in leftover]}")
