"""ATDome service: azimuth moves at the drive's speed, homing, stopping a move, and the drifting encoder."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from obsq.csc.atdome.model import DomeDriver
from obsq.csc.component import BaseCsc, Command
from obsq.csc.core.errors import ExpectedError
from obsq.csc.core.states import State

GOTOPOSITION, HOME, STOP = 2, 3, 1


class ATDomeCsc(BaseCsc):
    """The dome; where its driver knows the true azimuth (a simulation), it publishes `simulationTruth`."""

    def __init__(self, *, driver: DomeDriver, index: int = 0, **kwargs: Any) -> None:
        super().__init__("ATDome", index=index, **kwargs)
        self.driver = driver
        self._stop = asyncio.Event()
        self._moving = False
        self.register_command("moveAzimuth", self._do_move)
        self.register_command("homeAzimuth", self._do_home)
        self.register_command("stopMotion", self._do_stop)

    async def configure(self, config: dict[str, Any]) -> None:
        self.driver.configure(config["azimuth_speed"], config["settle_time"], config["drift_per_degree"])

    async def handle_summary_state(self) -> None:
        if self.summary_state in (State.DISABLED, State.ENABLED):
            await self._publish_position()
        else:
            self._stop.set()  # leaving ENABLED stops a move in progress

    async def _publish_position(self) -> None:
        await self.publish_event(
            "azimuthPosition", {"azimuth": round(self.driver.azimuth_deg, 4), "homed": self.driver.homed}
        )
        truth = self.driver.true_azimuth_deg
        if truth is not None:
            await self.publish_event("simulationTruth", {"azimuth": round(truth, 4)})

    async def _travel(self, duration_s: float) -> float:
        """Wait out a motion of `duration_s`; the fraction of it done (below 1 if stopMotion came)."""
        self._stop.clear()
        self._moving = True
        start = self.clock.monotonic()
        try:
            with contextlib.suppress(TimeoutError):
                await self.clock.wait_for(self._stop.wait(), duration_s)
                return min(1.0, (self.clock.monotonic() - start) / duration_s) if duration_s > 0 else 1.0
            return 1.0
        finally:
            self._moving = False

    async def _do_move(self, command: Command) -> str:
        azimuth = command.data["azimuth"]
        duration = self.driver.move_time(azimuth)
        await command.in_progress(duration + 5, f"moving to {azimuth:g} deg")
        await self.publish_event("azimuthCommandedState", {"azimuth": azimuth, "commandedState": GOTOPOSITION})
        await self.publish_event("azimuthInPosition", {"inPosition": False})
        fraction = await self._travel(duration)
        self.driver.move(azimuth, fraction)
        await self._publish_position()
        if fraction < 1.0:
            at = self.driver.azimuth_deg
            await self.publish_event("azimuthCommandedState", {"azimuth": at, "commandedState": STOP})
            raise ExpectedError(f"the move to {azimuth:g} deg was stopped at {at:.2f} deg")
        await self.publish_event("azimuthInPosition", {"inPosition": True})
        return f"at {azimuth:g} deg"

    async def _do_home(self, command: Command) -> str:
        duration = self.driver.home_time()
        await command.in_progress(duration + 5, "homing")
        await self.publish_event("azimuthCommandedState", {"azimuth": 0.0, "commandedState": HOME})
        await self.publish_event("azimuthInPosition", {"inPosition": False})
        await self.clock.sleep(duration)
        self.driver.home()
        await self.publish_event("azimuthInPosition", {"inPosition": True})
        await self._publish_position()
        return "homed at 0 deg"

    async def _do_stop(self, command: Command) -> str:
        if not self._moving:
            return f"not moving; at {self.driver.azimuth_deg:.2f} deg"
        self._stop.set()
        return "stopping"
