"""Following the queue: ScriptQueue's `queue` event, the scripts we added, and where they stand."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from obsq.csc.clock import Clock
from obsq.csc.component import Remote


@dataclass
class Progress:
    """One moment of the run: where the queue is, images taken of planned, time left."""

    block: str
    position: int
    scripts: int
    path: str
    step: str
    images_done: int
    images_total: int
    left_s: float
    speed: float

    @property
    def left_real_s(self) -> float:
        return self.left_s / self.speed


@dataclass
class QueueFollower:
    """The items of ScriptQueue's queue event, and which of them are ours."""

    speed: float
    indices: set[int] = field(default_factory=set)
    items: dict[int, dict[str, Any]] = field(default_factory=dict)
    running: bool = True
    current: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def on_queue(self, data: dict[str, Any]) -> None:
        self.running = data["running"]
        self.current = data["currentSalIndex"]
        for item in json.loads(data.get("items") or "[]"):
            self.items[item["index"]] = item
        self.changed.set()

    def ours(self) -> list[dict[str, Any]]:
        return [self.items[i] for i in sorted(self.indices) if i in self.items]

    @property
    def finished(self) -> bool:
        return bool(self.indices) and all(self.items.get(i, {}).get("area") == "history" for i in self.indices)

    @property
    def failed_current(self) -> dict[str, Any] | None:
        item = self.items.get(self.current)
        return item if item and item["state"] == "FAILED" and not self.running else None

    def progress(self) -> Progress | None:
        """Where the run stands now (None before the queue has shown anything of ours)."""
        items = self.ours()
        if not items:
            return None
        done = sum(i["done"] for i in items)
        total = sum(max(i["total"], i["done"]) for i in items)
        left_s = sum(
            i["duration"] * (1 - (i["done"] / i["total"] if i["total"] else 0.0))
            for i in items if i["area"] != "history"
        )  # fmt: skip
        current = self.items.get(self.current)
        if current is None:
            return Progress("", 0, len(items), "", "idle", done, total, left_s, self.speed)
        order = [i["index"] for i in items]
        position = order.index(current["index"]) + 1 if current["index"] in order else 0
        step = current["checkpoint"] or current["state"]
        return Progress(current["block"], position, len(items), current["path"], step, done, total, left_s, self.speed)


async def add_blocks(remote: Remote, blocks: list[str], report: Callable[[str, list[int]], None]) -> list[int]:
    """Queue each block; the indices of their scripts, in order."""
    indices: list[int] = []
    for block in blocks:
        ack = await remote.command("addBlock", {"id": block}, timeout_s=180)
        added = json.loads(ack.result)
        report(block, added)
        indices += added
    return indices


async def follow(
    remote: Remote, follower: QueueFollower, clock: Clock, timeout_s: float, show: Callable[[Progress], None]
) -> None:
    """Until our scripts are all in history or the current one failed; `show` sees each change."""
    remote.event("queue").callback = lambda envelope: follower.on_queue(envelope.data)
    start = clock.monotonic()
    await remote.command("showQueue", timeout_s=30)
    while not follower.finished and follower.failed_current is None:
        follower.changed.clear()
        progress = follower.progress()
        if progress is not None:
            show(progress)
        with contextlib.suppress(TimeoutError):
            await clock.wait_for(follower.changed.wait(), 1.0)
        if clock.monotonic() - start > timeout_s:
            raise TimeoutError(f"the blocks did not finish within {timeout_s:g} s")
    progress = follower.progress()
    if progress is not None:
        show(progress)
