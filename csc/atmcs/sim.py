"""The simulated mount: the pure MountModel as hardware, on the scaled clock."""

from __future__ import annotations

from obsq.csc.atmcs.model import MountModel
from obsq.csc.clock import Clock


class SimMount(MountModel):
    """The mount's axes, simulated by MountModel (limits, speeds, settling); a slew sleeps its time."""

    device = "simulated"

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.clock = clock

    async def configure(
        self,
        azimuth_limits: tuple[float, float],
        elevation_limits: tuple[float, float],
        azimuth_speed: float,
        elevation_speed: float,
        settle_s: float,
    ) -> None:
        self.set_axes(azimuth_limits, elevation_limits, azimuth_speed, elevation_speed, settle_s)

    async def slew(self, azimuth: float, elevation: float, timeout_s: float) -> None:
        await self.clock.sleep(self.slew_time(azimuth, elevation))
        self.arrive(azimuth, elevation)

    async def set_tracking(self, on: bool) -> None:
        self.tracking = on

    async def close(self) -> None:
        """Nothing to let go of."""
