"""A filter or disperser wheel, pure: named slots, change times, and a stuck-wheel fault.

Invariants: the wheel is either at rest in a slot or moving towards one until `arrives`;
a stuck wheel (injected with `stick()`) never arrives. Times are passed in (TAI seconds).
`sim.py` makes two of them the simulated spectrograph.
"""

from __future__ import annotations

from typing import Protocol

from obsq.csc.core.errors import ExpectedError


class Wheel:
    """One wheel of named slots."""

    def __init__(self, kind: str, names: list[str], seconds_per_slot: float, settle_s: float) -> None:
        if len(set(names)) != len(names):
            raise ValueError(f"{kind} wheel: slot names must be unique, got {names}")
        self.kind = kind
        self.names = list(names)
        self.seconds_per_slot = seconds_per_slot
        self.settle_s = settle_s
        self.slot = 0
        self.target = 0
        self.arrives = 0.0
        self._stuck = False

    def slot_of(self, name: str) -> int:
        """The slot holding `name`; ExpectedError naming the installed ones otherwise."""
        try:
            return self.names.index(name)
        except ValueError:
            raise ExpectedError(f"unknown {self.kind} {name!r}; installed: {', '.join(self.names)}") from None

    def start_move(self, name: str, now: float) -> float:
        """Start moving to `name`; return when it should be in position."""
        target = self.slot_of(name)
        steps = abs(target - self.slot) if self.in_position(now) else len(self.names)
        self.target = target
        self.arrives = now + steps * self.seconds_per_slot + (self.settle_s if steps else 0.0)
        return self.arrives

    def in_position(self, now: float) -> bool:
        if self._stuck and self.target != self.slot:
            return False
        if now >= self.arrives:
            self.slot = self.target
            return True
        return False

    def position(self, now: float) -> tuple[int, str]:
        """(slot, name) at rest, or (-1, '') while moving."""
        return (self.slot, self.names[self.slot]) if self.in_position(now) else (-1, "")

    def stick(self) -> None:
        """Fault injection: the next move never arrives (a stuck wheel)."""
        self._stuck = True


class WheelDriver(Protocol):
    """One wheel as the service uses it: awaited, whatever drives it (the Wheel model, a real device).

    `move` returns when the wheel reports it is in position, and raises DeviceTimeoutError if it
    is not within `timeout_s` (the driver's clock: simulated for the simulator, real for a
    device), DeviceError if the device refuses or fails. `position` is the last one known.
    """

    kind: str
    #: What drives it, for messages: "simulated", or the device's address.
    device: str

    @property
    def names(self) -> list[str]: ...

    def slot_of(self, name: str) -> int: ...

    async def move(self, name: str, timeout_s: float) -> None: ...

    def position(self) -> tuple[int, str]:
        """(slot, name) at rest, (-1, '') while moving."""
        ...


class SpectrographDriver(Protocol):
    """The filter and disperser wheels as the service uses them (sim.py simulates them; alpaca.py drives devices)."""

    @property
    def filter_wheel(self) -> WheelDriver: ...

    @property
    def disperser_wheel(self) -> WheelDriver: ...

    async def configure(
        self, filters: list[str], dispersers: list[str], seconds_per_slot: float, settle_s: float
    ) -> None:
        """Connect, and install the named slots where the wheel is simulated (a real wheel names its own)."""
        ...

    async def close(self) -> None:
        """Let go of the devices (the service is leaving)."""
        ...
