"""ATMCS service: slews within limits at the axes' speeds, tracking on/off."""

from __future__ import annotations

from typing import Any

from obsq.csc.atmcs.model import MountDriver
from obsq.csc.component import BaseCsc, Command
from obsq.csc.core.states import State

TRACKING_DISABLED, TRACKING_ENABLED = 8, 9


class ATMCSCsc(BaseCsc):
    """The auxiliary telescope mount."""

    def __init__(self, *, driver: MountDriver, index: int = 0, **kwargs: Any) -> None:
        super().__init__("ATMCS", index=index, **kwargs)
        self.driver = driver
        self.register_command("moveToPosition", self._do_move)
        self.register_command("startTracking", self._do_start_tracking)
        self.register_command("stopTracking", self._do_stop_tracking)

    async def configure(self, config: dict[str, Any]) -> None:
        (az_low, az_high), (el_low, el_high) = config["azimuth_limits"], config["elevation_limits"]
        self.driver.configure(
            (az_low, az_high),
            (el_low, el_high),
            config["azimuth_speed"],
            config["elevation_speed"],
            config["settle_time"],
        )

    async def handle_summary_state(self) -> None:
        if self.summary_state in (State.DISABLED, State.ENABLED):
            await self._publish()
        elif self.driver.tracking:
            self.driver.tracking = False
            await self._publish()

    async def _publish(self) -> None:
        await self.publish_event("mountPosition", {"azimuth": self.driver.azimuth, "elevation": self.driver.elevation})
        await self.publish_event(
            "atMountState", {"state": TRACKING_ENABLED if self.driver.tracking else TRACKING_DISABLED}
        )

    async def _do_move(self, command: Command) -> str:
        azimuth, elevation = command.data["azimuth"], command.data["elevation"]
        duration = self.driver.slew_time(azimuth, elevation)
        await command.in_progress(duration + 5, f"slewing to az {azimuth:g} el {elevation:g}")
        await self.publish_event("target", {"azimuth": azimuth, "elevation": elevation})
        await self.publish_event("allAxesInPosition", {"inPosition": False})
        await self.clock.sleep(duration)
        self.driver.arrive(azimuth, elevation)
        await self.publish_event("allAxesInPosition", {"inPosition": True})
        await self._publish()
        return f"at az {azimuth:g} el {elevation:g}"

    async def _do_start_tracking(self, command: Command) -> None:
        self.driver.tracking = True
        await self._publish()

    async def _do_stop_tracking(self, command: Command) -> None:
        self.driver.tracking = False
        await self._publish()
