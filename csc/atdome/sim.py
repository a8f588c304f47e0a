"""The simulated dome: the pure DomeModel and ShutterModel as hardware on the scaled clock, with the drift-slip hook.

A motion waits its modelled duration on the clock, or until halted, and then lands the model
at the fraction of its path travelled; in between, `azimuth_deg` and `door_percent` read where
the path has got to. It knows where the dome really points (`true_azimuth_deg`), which only a
simulation can: the service publishes that as `simulationTruth` for the simulated camera.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from obsq.csc.atdome.model import DROPOUT, MAIN, DomeModel, ShutterModel, shortest, wrap
from obsq.csc.clock import Clock


@dataclass(frozen=True)
class _Path:
    """A motion under way: from `start` by `delta` over `duration_s` from clock time `t0`."""

    t0: float
    duration_s: float
    start: float
    delta: float

    def fraction(self, now: float) -> float:
        return 1.0 if self.duration_s <= 0 else min(1.0, max(0.0, (now - self.t0) / self.duration_s))

    def at(self, now: float) -> float:
        return self.start + self.delta * self.fraction(now)


class SimDome:
    """The dome drive, simulated by DomeModel and ShutterModel."""

    device = "simulated"
    doors: tuple[str, ...] = (MAIN, DROPOUT)
    can_home = True

    def __init__(self, clock: Clock, model: DomeModel | None = None) -> None:
        self.clock = clock
        self.model = model or DomeModel()
        self._shutter = ShutterModel()
        self._azimuth_path: _Path | None = None
        self._door_path: tuple[str, _Path] | None = None

    async def configure(
        self, speed_deg_s: float, settle_s: float, drift_per_degree: float, main_door_s: float, dropout_door_s: float
    ) -> None:
        self.model.speed_deg_s = speed_deg_s
        self.model.settle_s = settle_s
        self.model.drift_per_degree = drift_per_degree
        self._shutter.main.travel_s = main_door_s
        self._shutter.dropout.travel_s = dropout_door_s

    async def close(self) -> None:
        """Nothing to let go of."""

    # -- readings ---------------------------------------------------------------------------

    @property
    def shutter(self) -> ShutterModel:
        return self._shutter

    @property
    def azimuth_deg(self) -> float:
        if self._azimuth_path is not None:
            return wrap(self._azimuth_path.at(self.clock.monotonic()))
        return self.model.encoder_deg

    def door_percent(self, door: str) -> float:
        if self._door_path is not None and self._door_path[0] == door:
            return self._door_path[1].at(self.clock.monotonic())
        return self._shutter.door(door).percent

    @property
    def homed(self) -> bool:
        return self.model.homed

    @property
    def true_azimuth_deg(self) -> float | None:
        return self.model.true_deg

    def move_time(self, azimuth_deg: float) -> float:
        return self.model.move_time(azimuth_deg)

    def home_time(self) -> float:
        return self.model.home_time()

    # -- motions ----------------------------------------------------------------------------

    async def _run(self, path: _Path, halt: asyncio.Event) -> float:
        """Wait out `path` (or until `halt`); the fraction of it travelled."""
        try:
            await self.clock.wait_for(halt.wait(), path.duration_s)
        except TimeoutError:
            return 1.0
        return path.fraction(self.clock.monotonic())

    async def move(self, azimuth_deg: float, halt: asyncio.Event, timeout_s: float) -> None:
        start = self.model.encoder_deg
        path = _Path(self.clock.monotonic(), self.model.move_time(azimuth_deg), start, shortest(start, azimuth_deg))
        self._azimuth_path = path
        try:
            fraction = await self._run(path, halt)
        finally:
            self._azimuth_path = None
        self.model.move(azimuth_deg, fraction)

    async def home(self, halt: asyncio.Event, timeout_s: float) -> None:
        start = self.model.encoder_deg
        path = _Path(self.clock.monotonic(), self.model.home_time(), start, shortest(start, 0.0))
        self._azimuth_path = path
        try:
            fraction = await self._run(path, halt)
        finally:
            self._azimuth_path = None
        if fraction >= 1.0:
            self.model.home()
        else:
            self.model.move(0.0, fraction)

    async def move_door(self, door: str, open_: bool, halt: asyncio.Event, timeout_s: float) -> None:
        state = self._shutter.door(door)
        target = 100.0 if open_ else 0.0
        path = _Path(self.clock.monotonic(), state.time_to(open_), state.percent, target - state.percent)
        self._door_path = (door, path)
        try:
            fraction = await self._run(path, halt)
        finally:
            self._door_path = None
        state.move(open_, fraction)

    # -- fault injection ------------------------------------------------------------------

    def inject_drift(self, deg: float) -> None:
        """The encoder slips `deg` degrees during the next move (compose's `dome-drift`)."""
        self.model.inject_drift(deg)
