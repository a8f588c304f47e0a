"""Supervising component processes: start each, report and restart the ones that die.

A process that exits with status 0 (exitControl) is reported and left stopped; one that
dies otherwise (a crash, SIGKILL) is reported and restarted after a short pause, at most
`max_restarts` times within `window_s`, after which it is reported as given up. While
restarts are held (during a bring-up, until every component is ready) a death is only
recorded: the bring-up names it instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from obsq.csc.clock import Clock

#: Clock ticks per second of /proc/<pid>/stat's CPU times.


@dataclass
class Child:
    """One supervised process and what happened to it."""

    name: str
    argv: list[str]
    log_path: Path
    #: added to the child's environment (its credentials: never on its command line)
    env: dict[str, str] = field(default_factory=dict)
    process: asyncio.subprocess.Process | None = None
    restarts: list[float] = field(default_factory=list)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def log_tail(self, lines: int = 12) -> list[str]:
        """The last lines of the child's log (empty if it wrote none)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return []
        return text.rstrip("\n").splitlines()[-lines:] if text.strip() else []


class Supervisor:
    """Runs children until `stop()`; `report` gets one line per noteworthy event."""

    def __init__(
        self, clock: Clock, report: Callable[[str], None], *, max_restarts: int = 5, window_s: float = 60.0
    ) -> None:
        self.clock = clock
        self.report = report
        self.max_restarts = max_restarts
        self.window_s = window_s
        self.children: dict[str, Child] = {}
        self.hold_restarts = False
        self._stopping = asyncio.Event()

    async def _spawn(self, child: Child) -> None:
        child.log_path.parent.mkdir(parents=True, exist_ok=True)
        with child.log_path.open("ab") as log:
            child.process = await asyncio.create_subprocess_exec(
                *child.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env={**os.environ, **child.env}
            )

    async def run(self, children: list[Child]) -> None:
        """Start every child and watch them until `stop()`; then terminate them all."""
        for child in children:
            self.children[child.name] = child
            await self._spawn(child)
        watchers = [asyncio.create_task(self._watch(child), name=f"supervise.{child.name}") for child in children]
        await self._stopping.wait()
        await self._terminate_all()
        for watcher in watchers:
            watcher.cancel()
        for watcher in watchers:
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    def stop(self) -> None:
        self._stopping.set()

    async def _watch(self, child: Child) -> None:
        while True:
            assert child.process is not None
            code = await child.process.wait()
            if self._stopping.is_set() or self.hold_restarts:
                return
            if code == 0:
                self.report(f"{child.name} exited (status 0); not restarted")
                return
            now = self.clock.monotonic()
            child.restarts = [t for t in child.restarts if now - t < self.window_s] + [now]
            if len(child.restarts) > self.max_restarts:
                self.report(
                    f"{child.name} died (status {code}) {self.max_restarts} times in {self.window_s:g} s; giving up"
                )
                return
            self.report(f"{child.name} died (status {code}); restarting (log: {child.log_path})")
            await self.clock.sleep(0.5)
            await self._spawn(child)

    async def _terminate_all(self) -> None:
        running = [c.process for c in self.children.values() if c.process and c.process.returncode is None]
        for process in running:
            process.terminate()
        try:
            await self.clock.wait_for(asyncio.gather(*(p.wait() for p in running)), 10.0)
        except TimeoutError:
            for process in running:
                if process.returncode is None:
                    process.kill()
            await asyncio.gather(*(p.wait() for p in running))
