"""The in-process script runner: scripts as tasks of this event loop on a memory bus (unit tests).

The script classes are the real ones, loaded from the same roots as the process runner's; each
script gets its own MemoryBus client and its own `private_origin`, as a process would. `kill`
cancels the task and drops its bus client the way a killed process drops its connection (its
last will is published).
"""

from __future__ import annotations

import asyncio
import itertools
import signal

from obsq.csc.bus.memory import MemoryBroker, MemoryBus
from obsq.csc.clock import Clock
from obsq.csc.component import HEARTBEAT_INTERVAL_S
from obsq.scripts.base import BaseScript
from obsq.scripts.library import ScriptRoots, load_script_class

#: In-process scripts get origins from here, far above any process id, one per script.
_origins = itertools.count(10_000_000)


class InProcessRunner:
    """Scripts as tasks of this event loop, each with its own client of a MemoryBroker."""

    def __init__(
        self,
        broker: MemoryBroker,
        clock: Clock,
        root: str,
        roots: ScriptRoots | None = None,
        heartbeat_s: float = HEARTBEAT_INTERVAL_S,
    ) -> None:
        self.broker = broker
        self.clock = clock
        self.root = root
        self.roots = roots or ScriptRoots.default()
        self.heartbeat_s = heartbeat_s

    async def start(self, index: int, path: str, standard: bool) -> _TaskHandle:
        cls = load_script_class(self.roots.resolve(path, standard))
        bus = self.broker.client(f"Script-{index}")
        script = cls(
            index=index, bus=bus, clock=self.clock, root=self.root, origin=next(_origins), heartbeat_s=self.heartbeat_s
        )
        await bus.start()
        return _TaskHandle(script, bus)


class _TaskHandle:
    def __init__(self, script: BaseScript, bus: MemoryBus) -> None:
        self.script = script
        self.bus = bus
        self._returncode: int | None = None
        self.task = asyncio.create_task(self._run(), name=f"{script.identity}.process")

    async def _run(self) -> None:
        try:
            await self.script.run()
            self._returncode = self.script.exit_code if self.script.exit_code is not None else 1
        except asyncio.CancelledError:
            self._returncode = -signal.SIGKILL
            raise
        except Exception:
            self._returncode = 1
        finally:
            await self.bus.close()

    @property
    def origin(self) -> int:
        return self.script.origin

    @property
    def returncode(self) -> int | None:
        return self._returncode

    async def wait(self) -> int:
        await asyncio.wait({self.task})  # the task's own end, whatever it was; a cancelled waiter still cancels
        return self._returncode if self._returncode is not None else -signal.SIGKILL

    def terminate(self) -> None:
        self.script.close()

    def kill(self) -> None:
        if not self.task.done():
            self.bus.kill()
            self.task.cancel()

    def cpu_s(self) -> float | None:
        return None  # a task in this process: its start is not a process's to measure
