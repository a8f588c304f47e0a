"""The dome azimuth drive, pure: slews at a fixed speed; its encoder drifts with use.

Invariants: `encoder_deg` is what the drive believes; `true_deg` = encoder + drift is where
the dome (and its flat screen) really points. Every degree travelled adds
`drift_per_degree` to the drift (the LATISS procedure: "constant use … can result in a loss
of a couple of degrees of positioning in its encoder"); homing drives to the home switch
(true azimuth 0) and zeroes the drift; a move stopped part way arrives at that fraction of
its path. `sim.py` makes it the simulated drive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


def wrap(deg: float) -> float:
    """An azimuth in [0, 360)."""
    return deg % 360.0


def shortest(from_deg: float, to_deg: float) -> float:
    """Signed shortest rotation (deg) from one azimuth to another, in (-180, 180]."""
    delta = (to_deg - from_deg) % 360.0
    return delta - 360.0 if delta > 180.0 else delta


@dataclass
class DomeModel:
    """Dome azimuth with encoder drift."""

    speed_deg_s: float = 4.0
    settle_s: float = 2.0
    drift_per_degree: float = 0.005
    encoder_deg: float = 0.0
    drift_deg: float = 0.0
    homed: bool = False
    pending_slip_deg: float = 0.0

    @property
    def true_deg(self) -> float:
        return wrap(self.encoder_deg + self.drift_deg)

    def move_time(self, azimuth_deg: float) -> float:
        distance = abs(shortest(self.encoder_deg, azimuth_deg))
        return distance / self.speed_deg_s + (self.settle_s if distance else 0.0)

    def move(self, azimuth_deg: float, fraction: float = 1.0) -> None:
        """Travel `fraction` (0..1) of the way to `azimuth_deg` by the encoder; drift grows with the distance."""
        distance = shortest(self.encoder_deg, azimuth_deg) * min(1.0, max(0.0, fraction))
        self.drift_deg += self.drift_per_degree * abs(distance) + self.pending_slip_deg
        self.pending_slip_deg = 0.0
        self.encoder_deg = wrap(self.encoder_deg + distance)

    def home_time(self) -> float:
        return abs(shortest(self.true_deg, 0.0)) / self.speed_deg_s + self.settle_s

    def home(self) -> None:
        """At the home switch: really at 0, encoder reset, drift gone."""
        self.encoder_deg = 0.0
        self.drift_deg = 0.0
        self.homed = True

    def inject_drift(self, deg: float) -> None:
        """Fault injection: the encoder slips `deg` degrees during the next move.

        Homing first does not help: the dome ends that move misaligned, as in the LATISS
        procedure's misalignment contingency.
        """
        self.pending_slip_deg += deg


class DomeDriver(Protocol):
    """The dome drive as the service uses it (sim.py simulates it)."""

    @property
    def azimuth_deg(self) -> float:
        """Where the encoder says the dome points."""
        ...

    @property
    def homed(self) -> bool: ...

    @property
    def true_azimuth_deg(self) -> float | None:
        """Where the dome really points, if the driver can know (only a simulation can)."""
        ...

    def configure(self, speed_deg_s: float, settle_s: float, drift_per_degree: float) -> None: ...

    def move_time(self, azimuth_deg: float) -> float: ...

    def move(self, azimuth_deg: float, fraction: float = 1.0) -> None:
        """Arrive (`fraction` 1) or stop part way (`fraction` < 1) on the way to `azimuth_deg`."""
        ...

    def home_time(self) -> float: ...

    def home(self) -> None: ...
