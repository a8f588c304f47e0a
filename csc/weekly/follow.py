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

#: Real seconds an image usually takes end to end (exposure at speed, readout, file, registry, the reduction beside
#: it) before the run's own rate is measured: the weekly's 205 images in about 30 s here. An estimate that starts
#: from it does not jump once images come (it jumped from 5 s to 22 s starting from the simulated time alone).
USUAL_REAL_S_PER_IMAGE = 0.15


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
    #: real seconds left: the simulated time left at the clock's speed, or, once images come, the images left at
    #: the rate they have come (writing a file takes real time whatever the speed), whichever is longer
    left_real_s: float


@dataclass
class QueueFollower:
    """The items of ScriptQueue's queue event, and which of them are ours."""

    speed: float
    indices: set[int] = field(default_factory=set)
    items: dict[int, dict[str, Any]] = field(default_factory=dict)
    running: bool = True
    current: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    #: (real time, images done) when the first image was seen: the rate images come at is measured from it
    _first_image: tuple[float, int] | None = None

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

    def current_duration_s(self) -> float:
        """The running script's own estimate of its duration (simulated s; 0 when none runs)."""
        item = self.items.get(self.current)
        return float(item["duration"]) if item else 0.0

    @property
    def failed_current(self) -> dict[str, Any] | None:
        item = self.items.get(self.current)
        return item if item and item["state"] == "FAILED" and not self.running else None

    def left_real_s(self, left_s: float, done: int, total: int, now: float) -> float:
        """Real seconds left (see Progress.left_real_s); `now` is real (monotonic) time."""
        simulated = left_s / self.speed
        if done and self._first_image is None:
            self._first_image = (now, done)
        if self._first_image is None or done - self._first_image[1] < 3:  # no rate measured yet: the usual one
            return max(simulated, USUAL_REAL_S_PER_IMAGE * (total - done))
        since, done_then = self._first_image
        per_image = (now - since) / (done - done_then)
        return max(simulated, per_image * (total - done))

    def progress(self, now: float, *, adding: bool = False) -> Progress | None:
        """Where the run stands at real time `now` (None before the queue has shown anything of ours).

        `adding`: more blocks are being queued (so having run every script queued so far is not the end).
        """
        items = self.ours()
        if not items:
            return None
        done = sum(i["done"] for i in items)
        total = sum(max(i["total"], i["done"]) for i in items)
        left_s = sum(
            i["duration"] * (1 - (i["done"] / i["total"] if i["total"] else 0.0))
            for i in items if i["area"] != "history"
        )  # fmt: skip
        left_real = self.left_real_s(left_s, done, total, now)
        current = self.items.get(self.current)
        if current is None or current["index"] not in self.indices:
            waiting = next((i for i in items if i["area"] != "history"), None)
            step = "waiting for the queue" if waiting else "queueing the next block" if adding else "done"
            block = waiting["block"] if waiting else ""
            return Progress(block, 0, len(items), "", step, done, total, left_s, left_real)
        order = [i["index"] for i in items]
        position = order.index(current["index"]) + 1
        step = current["checkpoint"] or current["state"]
        return Progress(current["block"], position, len(items), current["path"], step, done, total, left_s, left_real)


async def add_blocks(remote: Remote, blocks: list[str], report: Callable[[str, list[int]], None]) -> list[int]:
    """Queue each block; the indices of their scripts, in order."""
    indices: list[int] = []
    for block in blocks:
        ack = await remote.command("addBlock", {"id": block}, timeout_s=180)
        added = json.loads(ack.result)
        report(block, added)
        indices += added
    return indices


async def start_following(remote: Remote, follower: QueueFollower) -> None:
    """Feed `follower` from the queue's events from now on (before adding, so no script goes unseen)."""
    remote.event("queue").callback = lambda envelope: follower.on_queue(envelope.data)
    await remote.command("showQueue", timeout_s=30)


async def follow(
    remote: Remote,
    follower: QueueFollower,
    clock: Clock,
    timeout_s: float,
    show: Callable[[Progress], None],
    *,
    adding: asyncio.Task[list[int]] | None = None,
) -> None:
    """Until our scripts are all in history or the current one failed; `show` sees each change.

    No limit on the run's length: it fails only when the queue shows no change for `timeout_s`
    real seconds plus the running script's own estimate of its duration.

    With `adding` (the task queueing the blocks, which adds to `follower.indices` as it goes) the
    run is followed while it is added, and is not over before every block is queued.
    """
    changed_at = clock.monotonic()
    await remote.command("showQueue", timeout_s=30)
    while (adding is not None and not adding.done()) or (not follower.finished and follower.failed_current is None):
        if adding is not None and adding.done():
            adding.result()  # a block the queue refused ends the run here
            adding = None
        follower.changed.clear()
        progress = follower.progress(clock.monotonic(), adding=adding is not None)
        if progress is not None:
            show(progress)
        with contextlib.suppress(TimeoutError):
            await clock.wait_for(follower.changed.wait(), 1.0)
        if follower.changed.is_set():
            changed_at = clock.monotonic()
        quiet_s = clock.monotonic() - changed_at
        if quiet_s > timeout_s + follower.current_duration_s() / follower.speed:
            raise TimeoutError(f"the queue has shown no progress of the blocks for {quiet_s:.0f} s")
    progress = follower.progress(clock.monotonic())
    if progress is not None:
        show(progress)
