"""The dome, pure: an azimuth drive whose encoder drifts with use, and a two-door shutter.

Azimuth invariants: `encoder_deg` is what the drive believes; `true_deg` = encoder + drift is where
the dome (and its flat screen) really points. Every degree travelled adds
`drift_per_degree` to the drift (the LATISS procedure: "constant use … can result in a loss
of a couple of degrees of positioning in its encoder"); homing drives to the home switch
(true azimuth 0) and zeroes the drift; a move stopped part way arrives at that fraction of
its path.

Shutter: a main door and a dropout door, each with its opening percentage and full-travel time.
Their sequencing is Rubin's ATDome's: opening the shutter opens the main door, then the dropout
door; closing closes the dropout door, then the main door; the dropout door moves only with the
main door fully open, and the main door closes only with the dropout door fully closed or fully
open. `sim.py` makes both the simulated hardware.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Protocol

from obsq.csc.core.enums import AzimuthCommandedState, AzimuthState, DoorCommandedState, DoorState
from obsq.csc.core.errors import ExpectedError

__all__ = ["AzimuthCommandedState", "AzimuthState", "DoorCommandedState", "DoorState"]

MAIN, DROPOUT = "main", "dropout"
#: Rubin's mock controller's encoder counts per turn (ATDome settingsAppliedDomeController).
ENCODER_COUNTS_PER_360 = 4018143232


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


@dataclass
class Door:
    """One shutter door: how far open (0-100 %) and how long a full travel takes."""

    travel_s: float
    percent: float = 0.0

    @property
    def state(self) -> DoorState:
        """The state at rest (OPENING/CLOSING are the service's to say)."""
        if self.percent <= 0.0:
            return DoorState.CLOSED
        return DoorState.OPENED if self.percent >= 100.0 else DoorState.PARTIALLYOPENED

    def time_to(self, open_: bool) -> float:
        return abs((100.0 if open_ else 0.0) - self.percent) / 100.0 * self.travel_s

    def move(self, open_: bool, fraction: float = 1.0) -> None:
        target = 100.0 if open_ else 0.0
        self.percent += (target - self.percent) * min(1.0, max(0.0, fraction))
        if abs(self.percent - target) < 1e-9:
            self.percent = target


@dataclass
class ShutterModel:
    """The main and dropout doors (closed at start-up, as Rubin's simulator)."""

    main: Door = field(default_factory=lambda: Door(travel_s=75.0))
    dropout: Door = field(default_factory=lambda: Door(travel_s=40.0))

    def door(self, name: str) -> Door:
        return self.main if name == MAIN else self.dropout

    def plan(self, action: str, open_: bool = True) -> list[tuple[str, bool]]:
        """The door moves (door, open) that `action` makes, in order; ExpectedError if the rules forbid it.

        `action` is "shutter" (both doors, `open_` says which way), "main" or "dropout".
        """
        if action == "shutter":
            steps = [(MAIN, True), (DROPOUT, True)] if open_ else [(DROPOUT, False), (MAIN, False)]
        elif action == DROPOUT:
            if self.main.state != DoorState.OPENED:
                raise ExpectedError("Cannot move the dropout door until the main door is fully open.")
            steps = [(DROPOUT, open_)]
        elif action == MAIN:
            if not open_ and self.dropout.state not in (DoorState.CLOSED, DoorState.OPENED):
                raise ExpectedError("Cannot close the main door until the dropout door is fully closed or fully open.")
            steps = [(MAIN, open_)]
        else:
            raise ValueError(f"unknown shutter action {action!r}")
        return [(door, way) for door, way in steps if self.door(door).time_to(way) > 0.0]

    @property
    def in_position(self) -> bool:
        """Both doors at rest fully open or fully closed."""
        return all(d.state in (DoorState.OPENED, DoorState.CLOSED) for d in (self.main, self.dropout))


class DomeDriver(Protocol):
    """The dome drive as the service awaits it (sim.py simulates it; alpaca.py drives an Alpaca Dome).

    A motion method returns when the device has arrived, or, once `halt` is set, when it has
    stopped where it was (the caller then reads where). It raises DeviceError (DeviceTimeoutError
    after `timeout_s` of real motion) when the device fails, refuses or does not arrive.
    """

    #: Where the device is, for messages and `obsq csc list` ("simulated" for the simulator).
    device: str
    #: The shutter doors the device has: (MAIN, DROPOUT) for Rubin's dome, (MAIN,) for one shutter.
    doors: tuple[str, ...]
    #: Can the device find its home switch? If not, it keeps its own azimuth and is homed from the start.
    can_home: bool

    @property
    def azimuth_deg(self) -> float:
        """Where the encoder says the dome points, now (in motion too)."""
        ...

    @property
    def homed(self) -> bool: ...

    @property
    def true_azimuth_deg(self) -> float | None:
        """Where the dome really points, if the driver can know (only a simulation can)."""
        ...

    @property
    def shutter(self) -> ShutterModel:
        """The doors at rest: where each is and the rules of moving them."""
        ...

    def door_percent(self, door: str) -> float:
        """How far open `door` is, now (in motion too)."""
        ...

    async def configure(
        self, speed_deg_s: float, settle_s: float, drift_per_degree: float, main_door_s: float, dropout_door_s: float
    ) -> None:
        """Take the configured speeds (estimates for a real device) and connect; DeviceError if it cannot."""
        ...

    def move_time(self, azimuth_deg: float) -> float: ...

    def home_time(self) -> float: ...

    async def move(self, azimuth_deg: float, halt: asyncio.Event, timeout_s: float) -> None: ...

    async def home(self, halt: asyncio.Event, timeout_s: float) -> None: ...

    async def move_door(self, door: str, open_: bool, halt: asyncio.Event, timeout_s: float) -> None: ...

    async def close(self) -> None:
        """Let go of the device (the component is leaving)."""
        ...
