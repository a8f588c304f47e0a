"""The simulated camera: the detector model, the light it sees, and a readout-failure hook.

`BusObservatory` reads the simulated observatory's state off the bus (lamp, lamp shutter,
filter and disperser, the dome's true azimuth and main door, where the mount really points):
the simulated world the camera looks at; `star_scene` puts the catalogue's stars there. Unit tests
give a `StaticObservatory` instead.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from obsq.csc import __version__
from obsq.csc.atcamera.fits import amplifier_header
from obsq.csc.atcamera.illumination import (
    Frame,
    Observatory,
    ObservatoryState,
    flat_flux_e_s,
    sky_flux_e_s,
    sky_throughput,
)
from obsq.csc.atcamera.model import GEOMETRIES, Array, DetectorModel
from obsq.csc.bus.base import Bus
from obsq.csc.clock import Clock
from obsq.csc.component import Remote
from obsq.csc.core.errors import ExpectedError
from obsq.csc.core.sky import altaz, altaz_many, radec, sun_azel
from obsq.csc.core.starfield import PLATE_SCALE_ARCSEC, catalogue, render, star_e_s

#: ATDome mainDoorState OPENED (Rubin's ShutterDoorState).
DOOR_OPENED = 2


def light_e_s(state: ObservatoryState, lamp_warmup_s: float) -> float:
    """Electrons/s/pixel on the detector: the lamp on the screen and, through an open dome, the sky (Sun computed)."""
    if state.dome_open and state.sun_elevation is None:
        state = replace(state, sun_elevation=sun_azel(state.now_tai)[1])
    return flat_flux_e_s(state, lamp_warmup_s) + sky_flux_e_s(state)


def star_scene(state: ObservatoryState, shape: tuple[int, int]) -> Array | None:
    """e-/s per pixel of the catalogue's stars where the mount really points, seen through the open dome."""
    throughput = sky_throughput(state)
    if throughput == 0.0 or state.pointing is None:
        return None
    azimuth, elevation, tracking, ra, dec = state.pointing
    if tracking:
        azimuth, elevation = altaz(ra, dec, state.now_tai)
    else:
        ra, dec = radec(azimuth, elevation, state.now_tai)
    ny, nx = shape
    stars = catalogue(ra, dec, math.hypot(nx, ny) * PLATE_SCALE_ARCSEC / 3600.0)
    if not len(stars.mag):
        return None
    star_az, star_el = altaz_many(stars.ra, stars.dec, state.now_tai)
    scale = 3600.0 / PLATE_SCALE_ARCSEC
    x = nx / 2 + ((star_az - azimuth + 180.0) % 360.0 - 180.0) * math.cos(math.radians(elevation)) * scale
    y = ny / 2 + (star_el - elevation) * scale
    return render(shape, x, y, star_e_s(stars.mag, throughput))


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
        door = self.remotes["ATDome"].event("mainDoorState").get()
        truth = self.remotes["ATMCS"].event("simulationTruth").get()
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
            dome_open=door.get("state") == DOOR_OPENED,
            pointing=(truth["azimuth"], truth["elevation"], truth["tracking"], truth["ra"], truth["declination"])
            if truth
            else None,
        )


class SimCamera:
    """The camera hardware, simulated: a detector model and the observatory it looks at, on the scaled clock."""

    device = "simulated"

    def __init__(self, observatory: Observatory, clock: Clock) -> None:
        self.observatory = observatory
        self.clock = clock
        self.detector = DetectorModel(GEOMETRIES["small"])
        self.readout_time_s = 2.0
        self.lamp_warmup_s = 900.0
        self._failing_readouts = 0

    async def configure(self, config: dict[str, Any]) -> None:
        detector, seed = config["detector"], config["seed"]
        if (self.detector.geometry.name, self.detector.seed) != (detector, seed):
            self.detector = await self.clock.to_thread(DetectorModel, GEOMETRIES[detector], seed)
        self.readout_time_s = config["readout_time"]
        self.lamp_warmup_s = config["lamp_warmup"]

    def readout_parameters(self) -> dict[str, Any]:
        geometry = self.detector.geometry
        return {"readRows": geometry.ny, "readCols": geometry.nx, "overRows": geometry.parallel_overscan,
                "overCols": geometry.serial_overscan}  # fmt: skip

    async def integrate(self, exptime_s: float, shutter: bool, image_type: str) -> None:
        await self.clock.sleep(exptime_s)

    async def read_out(
        self, *, number: int, exptime_s: float, shutter: bool, start_tai: float, state: ObservatoryState
    ) -> Frame:
        await self.clock.sleep(self.readout_time_s)
        self._check_readout()
        darktime_s = self.clock.tai() - start_tai
        detector = self.detector
        flux, stars = 0.0, None
        if shutter:
            flux = await self.clock.to_thread(light_e_s, state, self.lamp_warmup_s)
            stars = await self.clock.to_thread(star_scene, state, detector.geometry.detector_shape)
        raws = await self.clock.to_thread(detector.expose, number, flux, exptime_s, darktime_s, stars)
        ny, nx = detector.geometry.detector_shape
        keywords = {
            "ORIGIN": f"obsq {__version__} (simulated)", "DETSIZE": f"[1:{nx},1:{ny}]", "CCD-TEMP": -95.0,
            "DETECTOR": detector.geometry.name, "NAMPS": detector.geometry.n_amps, "SIMULATE": True,
        }  # fmt: skip
        extensions = tuple((amplifier_header(detector, i), raw) for i, raw in enumerate(raws))
        return Frame(extensions, keywords, darktime_s)

    async def close(self) -> None:
        """Nothing to let go of."""

    def _check_readout(self) -> None:
        """Raise if this readout is made to fail (fault injection)."""
        if self._failing_readouts > 0:
            self._failing_readouts -= 1
            raise ExpectedError("readout failed: the camera controller reported a readout error")

    def fail_next_readouts(self, count: int = 1) -> None:
        """Fault injection: the next `count` readouts fail."""
        self._failing_readouts = count
