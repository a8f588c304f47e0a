"""The mount, pure: azimuth/elevation limits and slew times (`sim.py` makes it the simulated mount).

Invariants: the mount is always within its limits; a slew outside them is refused with the
axis, the value and the limits; slew time is the slower axis at its speed plus settling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from obsq.csc.core.errors import ExpectedError


@dataclass
class MountModel:
    """Alt-az mount axes."""

    azimuth_limits: tuple[float, float] = (-270.0, 270.0)
    elevation_limits: tuple[float, float] = (5.0, 90.0)
    azimuth_speed: float = 4.0
    elevation_speed: float = 2.0
    settle_s: float = 3.0
    azimuth: float = 0.0
    elevation: float = 80.0
    tracking: bool = False

    def set_axes(
        self,
        azimuth_limits: tuple[float, float],
        elevation_limits: tuple[float, float],
        azimuth_speed: float,
        elevation_speed: float,
        settle_s: float,
    ) -> None:
        """The configuration's limits, speeds and settling."""
        self.azimuth_limits, self.elevation_limits = azimuth_limits, elevation_limits
        self.azimuth_speed, self.elevation_speed, self.settle_s = azimuth_speed, elevation_speed, settle_s

    def check(self, azimuth: float, elevation: float) -> None:
        for axis, value, (low, high) in (
            ("azimuth", azimuth, self.azimuth_limits),
            ("elevation", elevation, self.elevation_limits),
        ):
            if not low <= value <= high:
                raise ExpectedError(f"{axis} {value:g} deg is beyond the limits {low:g} to {high:g} deg")

    def slew_time(self, azimuth: float, elevation: float) -> float:
        self.check(azimuth, elevation)
        moving = max(
            abs(azimuth - self.azimuth) / self.azimuth_speed, abs(elevation - self.elevation) / self.elevation_speed
        )
        return moving + (self.settle_s if moving else 0.0)

    def arrive(self, azimuth: float, elevation: float) -> None:
        self.azimuth, self.elevation = azimuth, elevation


class MountDriver(Protocol):
    """The mount's axes as the service uses them: awaited (sim.py simulates them; alpaca.py drives a device).

    The limits stay in obsq: `slew_time` refuses a position beyond them (ExpectedError naming the
    axis) and estimates the slew from the configured speeds; `slew` returns when the mount
    reports it has arrived, DeviceTimeoutError if not within `timeout_s`, DeviceError if it
    refuses or fails. `azimuth`, `elevation` and `tracking` are the last known.
    """

    device: str

    @property
    def azimuth(self) -> float: ...

    @property
    def elevation(self) -> float: ...

    @property
    def tracking(self) -> bool: ...

    async def configure(
        self,
        azimuth_limits: tuple[float, float],
        elevation_limits: tuple[float, float],
        azimuth_speed: float,
        elevation_speed: float,
        settle_s: float,
    ) -> None: ...

    def slew_time(self, azimuth: float, elevation: float) -> float:
        """Seconds to reach the position; ExpectedError naming the axis if it is beyond the limits."""
        ...

    async def slew(self, azimuth: float, elevation: float, timeout_s: float) -> None: ...

    async def set_tracking(self, on: bool) -> None: ...

    async def close(self) -> None: ...
