"""auxtel/correct_pointing.py: correct the auxiliary telescope's pointing on a star (CorrectPointing v1).

Rubin's configuration and procedure (ts_externalscripts CorrectPointing): find a star near
`az`/`el`, slew to it, reset the offsets, set the filter (grating empty_1), then centre the
brightest source: take an image, offset by what separates the source from the detector's
centre, again, until it is within 1 arcsec (at most `max_iters` images). The offsets that
centred it are then absorbed into the pointing origin, so that every later slew carries the
correction (here: ATMCS offsetAzEl with absorb, the mount's absorbed offsets).

This observatory has no HD catalogue: the star is the brightest of the simulated sky's own
catalogue within FIND_RADIUS_DEG of az/el, whose stars are fainter than Rubin's `mag_limit` and
`mag_range` ask for (said in the log); `radius` and `catalog_name` are logged. There is no
ATAOS: `reset_aos_offsets` is logged.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from obsq.csc.core.errors import ExpectedError
from obsq.csc.core.sky import radec
from obsq.csc.core.starfield import catalogue
from obsq.scripts.acquisition import Pointing, offset_to_centre
from obsq.scripts.base import BaseScript
from obsq.scripts.latiss import READOUT_TIME_S, Latiss

#: Rubin's: centred within this (arcsec).
TOLERANCE_ARCSEC = 1.0
EXPOSURE_S = 5.0
#: The simulated catalogue is searched within this of az/el (deg): a few of its cells.
FIND_RADIUS_DEG = 0.03


class CorrectPointing(BaseScript):
    description = "Correct the telescope's pointing: centre a star near az/el and absorb the offsets."

    @classmethod
    def get_schema(cls) -> dict[str, Any]:
        return {
            "title": "CorrectPointing v1",
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "az": {"type": "number", "default": 90.0, "units": "deg", "description": "azimuth to find a target"},
                "el": {"type": "number", "default": 60.0, "units": "deg", "description": "elevation to find a target"},
                "mag_limit": {"type": "number", "default": 6.0, "description": "brightest V magnitude"},
                "mag_range": {"type": "number", "default": 4.0, "description": "faintest is mag_limit + mag_range"},
                "radius": {"type": "number", "default": 5.0, "units": "deg", "description": "cone search radius"},
                "catalog_name": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": "HD_cwfs_stars",
                                 "description": "star catalogue (none here: the simulated sky's own)"},
                "reset_aos_offsets": {"type": "boolean", "default": True,
                                      "description": "reset the hexapod x/y offsets (no ATAOS here)"},
                "filter": {"type": "string", "default": "empty_1", "description": "filter"},
                "max_iters": {"type": "number", "default": 5, "minimum": 0, "description": "images at most"},
            },
        }  # fmt: skip

    async def configure(self, config: dict[str, Any]) -> None:
        self.latiss = Latiss(self)
        self.mount = self.remote("ATMCS")
        self.dome = self.remote("ATDome")
        self.pointing = Pointing(self.mount)

    def set_metadata(self, metadata: dict[str, Any]) -> None:
        metadata["duration"] = 120.0 + self.config["max_iters"] * (EXPOSURE_S + READOUT_TIME_S + 10.0)

    def _find_star(self) -> tuple[float, float, float]:
        """(ra, dec, magnitude) of the brightest catalogue star near az/el now."""
        ra, dec = radec(self.config["az"], self.config["el"], self.clock.tai())
        stars = catalogue(ra, dec, FIND_RADIUS_DEG)
        if not len(stars.mag):
            raise ExpectedError(f"no star found near azimuth={self.config['az']:g}, elevation={self.config['el']:g}")
        i = int(np.argmin(stars.mag))
        return float(stars.ra[i]), float(stars.dec[i]), float(stars.mag[i])

    async def _centre(self) -> float:
        """Take an image, offset the brightest source to the centre; how far it was (arcsec)."""
        obsid = await self.latiss.take_image("ACQ", EXPOSURE_S, group_id=self.group_id, reason="correct_pointing")
        offset = await self.clock.to_thread(offset_to_centre, self.latiss.path_of(obsid))
        if offset is None:
            raise ExpectedError(f"{obsid}: no source found to centre")
        distance = math.hypot(*offset)
        self.log.info("centring", obsid=obsid, dx=round(offset[0], 2), dy=round(offset[1], 2),
                      distance_arcsec=round(distance, 2))  # fmt: skip
        if distance >= TOLERANCE_ARCSEC:
            await self.pointing.offset_xy(*offset, relative=True)
        return distance

    async def run_script(self) -> None:
        await self.start_remotes()
        await self.assert_enabled(*self.latiss.remotes, self.mount, self.dome)
        config = self.config
        ra, dec, mag = await self.clock.to_thread(self._find_star)
        self.log.warning("no_star_catalogue", catalog_name=config["catalog_name"], magnitude=round(mag, 2),
                         mag_limit=config["mag_limit"], mag_range=config["mag_range"], radius=config["radius"],
                         reason=f"no HD catalogue here: the brightest star of the simulated sky within "
                                f"{FIND_RADIUS_DEG:g} deg of az/el")  # fmt: skip
        if config["reset_aos_offsets"]:
            self.log.info("aos_offsets_not_reset", reason="this observatory has no ATAOS")
        await self.checkpoint(f"slew to the star at ra {ra:.4f} dec {dec:.4f} (mag {mag:.1f})")
        await self.pointing.reset()
        await self.mount.command("raDecTarget", {"ra": ra / 15.0, "declination": dec, "targetName": "pointing star"},
                                 timeout_s=400)  # fmt: skip
        where = await self.mount.event("mountPosition").aget(timeout_s=15)
        await self.dome.command("moveAzimuth", {"azimuth": where["azimuth"] % 360.0}, timeout_s=400)
        await self.latiss.setup_instrument(config["filter"], "empty_1")
        tries = int(config["max_iters"])
        await self.checkpoint(f"correcting pointing with at most {tries} iterations")
        distance = await self._centre()
        success = tries == 0
        for _ in range(tries):
            if distance < TOLERANCE_ARCSEC:
                success = True
                break
            distance = await self._centre()
        if not success:
            raise ExpectedError(f"failed to correct pointing after {tries} attempts ({distance:.2f} arcsec off)")
        offsets = await self.mount.event("pointingOffsets").aget(timeout_s=15)
        await self.pointing.reset(absorbed=False, non_absorbed=True)
        await self.pointing.offset_azel(offsets["azimuth"], offsets["elevation"], relative=True, absorb=True)
        absorbed = await self.mount.event("pointingOffsets").aget(timeout_s=15)
        self.log.info("pointing_corrected", absorbed_azimuth=absorbed["absorbedAzimuth"],
                      absorbed_elevation=absorbed["absorbedElevation"])  # fmt: skip
