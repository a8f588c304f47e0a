"""ATDome service: azimuth moves at the drive's speed, homing, and the drifting encoder."""

from __future__ import annotations

from typing import Any

from obsq.csc.atdome.model import DomeModel
from obsq.csc.component import BaseCsc, Command
from obsq.csc.core.states import State

GOTOPOSITION, HOME = 2, 3


class ATDomeCsc(BaseCsc):
    """The dome; in simulation it also publishes `simulationTruth` for the simulated camera."""

    def __init__(self, *, model: DomeModel | None = None, index: int = 0, **kwargs: Any) -> None:
        super().__init__("ATDome", index=index, **kwargs)
        self.model = model or DomeModel()
        self.register_command("moveAzimuth", self._do_move)
        self.register_command("homeAzimuth", self._do_home)
        self.register_command("stopMotion", self._do_stop)

    async def configure(self, config: dict[str, Any]) -> None:
        self.model.speed_deg_s = config["azimuth_speed"]
        self.model.settle_s = config["settle_time"]
        self.model.drift_per_degree = config["drift_per_degree"]

    async def handle_summary_state(self) -> None:
        if self.summary_state in (State.DISABLED, State.ENABLED):
            await self._publish_position()

    async def _publish_position(self) -> None:
        await self.publish_event(
            "azimuthPosition", {"azimuth": round(self.model.encoder_deg, 4), "homed": self.model.homed}
        )
        if self.simulation_mode:
            await self.publish_event("simulationTruth", {"azimuth": round(self.model.true_deg, 4)})

    async def _do_move(self, command: Command) -> str:
        azimuth = command.data["azimuth"]
        duration = self.model.move_time(azimuth)
        await command.in_progress(duration + 5, f"moving to {azimuth:g} deg")
        await self.publish_event("azimuthCommandedState", {"azimuth": azimuth, "commandedState": GOTOPOSITION})
        await self.publish_event("azimuthInPosition", {"inPosition": False})
        await self.clock.sleep(duration)
        self.model.move(azimuth)
        await self.publish_event("azimuthInPosition", {"inPosition": True})
        await self._publish_position()
        return f"at {azimuth:g} deg"

    async def _do_home(self, command: Command) -> str:
        duration = self.model.home_time()
        await command.in_progress(duration + 5, "homing")
        await self.publish_event("azimuthCommandedState", {"azimuth": 0.0, "commandedState": HOME})
        await self.publish_event("azimuthInPosition", {"inPosition": False})
        await self.clock.sleep(duration)
        self.model.home()
        await self.publish_event("azimuthInPosition", {"inPosition": True})
        await self._publish_position()
        return "homed at 0 deg"

    async def _do_stop(self, command: Command) -> str:
        return "stopped"
