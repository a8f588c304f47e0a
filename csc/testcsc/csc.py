"""TestCsc: scalars in, scalars out, a long command and a commanded fault.

It exists to exercise the framework (and as the smallest example of a component):
`setScalars` publishes the `scalars` event, `wait` reports INPROGRESS and takes clock
time, `fault` goes to FAULT; while ENABLED it publishes `scalars` telemetry.
"""

from __future__ import annotations

from typing import Any

from obsq.csc.component import BaseCsc, Command
from obsq.csc.core.states import State


class TestCsc(BaseCsc):
    """The Test component (indexed)."""

    __test__ = False  # not a pytest test class

    def __init__(self, *, index: int = 1, **kwargs: Any) -> None:
        super().__init__("Test", index=index, **kwargs)
        self.scalars: dict[str, Any] = {"int0": 0, "double0": 0.0, "string0": "", "boolean0": False}
        self.telemetry_interval_s = 1.0
        self.register_command("setScalars", self._do_set_scalars)
        self.register_command("wait", self._do_wait, concurrent=True)
        self.register_command("fault", self._do_fault)

    async def configure(self, config: dict[str, Any]) -> None:
        self.scalars.update(string0=config["string0"], int0=config["int0"])
        self.telemetry_interval_s = config["telemetry_interval_s"]

    async def handle_summary_state(self) -> None:
        if self.summary_state == State.ENABLED:
            self.create_task(self._telemetry_loop(), "telemetry")

    async def _telemetry_loop(self) -> None:
        while self.summary_state == State.ENABLED:
            await self.publish_telemetry("scalars", self.scalars)
            await self.clock.sleep(self.telemetry_interval_s)

    async def _do_set_scalars(self, command: Command) -> None:
        self.scalars = dict(command.data)
        await self.publish_event("scalars", self.scalars)

    async def _do_wait(self, command: Command) -> str:
        duration = float(command.data["duration"])
        await command.in_progress(duration, f"waiting {duration:g} s")
        await self.clock.sleep(duration)
        return f"waited {duration:g} s"

    async def _do_fault(self, command: Command) -> None:
        await self.fault(command.data["code"], command.data["report"])
