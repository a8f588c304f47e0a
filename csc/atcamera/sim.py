"""The simulated camera: the detector model, the light it sees, and a readout-failure hook.

`BusObservatory` reads the simulated observatory's state off the bus (lamp, lamp shutter,
filter and disperser, the dome's true azimuth, the mount) — the simulated world the camera
looks at. Unit tests give a `StaticObservatory` instead.
"""

from __future__ import annotations

from dataclasses import replace

from obsq.csc.atcamera.illumination import Observatory, ObservatoryState
from obsq.csc.atcamera.model import GEOMETRIES, DetectorModel
from obsq.csc.bus.base import Bus
from obsq.csc.clock import Clock
from obsq.csc.component import Remote
from obsq.csc.core.errors import ExpectedError


class StaticObservatory:
    """A fixed state (tests, benchmarks)."""

    def __init__(self, state: ObservatoryState) -> None:
        self.state = state

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    def snapshot(self, now_tai: float) -> ObservatoryState:
        return replace(self.state, now_tai=now_tai)


class BusObservatory:
    """The simulated observatory's state, read from its components' events."""

    def __init__(self, bus: Bus, clock: Clock, root: str, identity: str = "ATCamera") -> None:
        self.remotes = {
            name: Remote(bus, name, clock=clock, root=root, identity=identity)
            for name in ("ATWhiteLight", "ATSpectrograph", "ATDome", "ATMCS")
        }

    async def start(self) -> None:
        for remote in self.remotes.values():
            await remote.start()

    async def close(self) -> None:
        for remote in self.remotes.values():
            await remote.close()

    def snapshot(self, now_tai: float) -> ObservatoryState:
        lamp = self.remotes["ATWhiteLight"].event("lampState").get()
        shutter = self.remotes["ATWhiteLight"].event("shutterState").get()
        spectrograph = self.remotes["ATSpectrograph"]
        filter_ = spectrograph.event("reportedFilterPosition").get()
        disperser = spectrograph.event("reportedDisperserPosition").get()
        dome = self.remotes["ATDome"].event("simulationTruth").get()
        mount = self.remotes["ATMCS"].event("mountPosition").get()
        return ObservatoryState(
            now_tai=now_tai,
            lamp_basic_state=lamp.get("basicState"),
            lamp_power_w=lamp.get("setPower", 0.0),
            lamp_warmup_end_tai=lamp.get("warmupEndTime", 0.0),
            lamp_shutter=shutter.get("actualState"),
            filter=filter_.get("name") or None,
            disperser=disperser.get("name") or None,
            dome_azimuth_true=dome.get("azimuth"),
            mount_azimuth=mount.get("azimuth"),
            mount_elevation=mount.get("elevation"),
        )


class SimCamera:
    """The camera hardware, simulated: a detector model and the observatory it looks at."""

    def __init__(self, observatory: Observatory) -> None:
        self.observatory = observatory
        self.detector = DetectorModel(GEOMETRIES["small"])
        self._failing_readouts = 0

    def configure(self, detector: str, seed: int) -> None:
        if (self.detector.geometry.name, self.detector.seed) != (detector, seed):
            self.detector = DetectorModel(GEOMETRIES[detector], seed=seed)

    def check_readout(self) -> None:
        """Raise if this readout is made to fail (fault injection)."""
        if self._failing_readouts > 0:
            self._failing_readouts -= 1
            raise ExpectedError("readout failed: the camera controller reported a readout error")

    def fail_next_readouts(self, count: int = 1) -> None:
        """Fault injection: the next `count` readouts fail."""
        self._failing_readouts = count
