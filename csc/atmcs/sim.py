"""The simulated mount: the pure MountModel as hardware."""

from __future__ import annotations

from obsq.csc.atmcs.model import MountModel


class SimMount(MountModel):
    """The mount's axes, simulated by MountModel (limits, speeds, settling)."""

    def configure(
        self,
        azimuth_limits: tuple[float, float],
        elevation_limits: tuple[float, float],
        azimuth_speed: float,
        elevation_speed: float,
        settle_s: float,
    ) -> None:
        self.azimuth_limits, self.elevation_limits = azimuth_limits, elevation_limits
        self.azimuth_speed, self.elevation_speed, self.settle_s = azimuth_speed, elevation_speed, settle_s
