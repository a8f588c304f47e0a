"""auxtel/latiss_acquire_and_take_sequence.py: acquire a star, then take a sequence (LatissAcquireAndTakeSequence v1).

Rubin's configuration and procedure (ts_externalscripts LatissAcquireAndTakeSequence):
- `do_acquire`: slew to `object_ra`/`object_dec` and track, the acquisition filter and grating
  set meanwhile; then up to `max_acq_iter` times: take an ACQ image of `acq_exposure_time`,
  find the brightest star, and if it is farther than `target_pointing_tolerance` arcsec from
  where it is wanted, offset the telescope by that much (x/y, relative). When it is within the
  tolerance the acquisition has succeeded; otherwise it fails after the last try.
  `max_acq_iter` 0: a blind acquisition, nothing measured. `target_pointing_verification`: one
  more ACQ image after success, as Rubin's.
- `do_take_sequence`: the filter/grating/exposure sequences as OBJECT images while tracking.

Here the star is wanted at the detector's centre: Rubin's per-grating "sweet spots" and the
blind offset to them (`do_blind_offset`) are positions on the real LATISS detector, which the
simulated one is not, said in the log. What the observatory does not have is refused by name:
a target by `object_name` alone (no SIMBAD), a rotator angle, the ATAOS focus offset
(`manual_focus_offset`); `do_pointing_model` is logged, with no pointing-model service to add
the point to.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from obsq.csc.core.errors import ExpectedError
from obsq.scripts.acquisition import Pointing, offset_to_centre
from obsq.scripts.base import BaseScript
from obsq.scripts.latiss import READOUT_TIME_S, RECONFIGURE_S, Latiss, sequence_visits, take_sequence
from obsq.scripts.sky import altaz, angle_deg

SLEW_TIMEOUT_S = 240.0
#: s a slew is taken to last, for the duration estimate.
SLEW_ESTIMATE_S = 60.0


class LatissAcquireAndTakeSequence(BaseScript):
    description = "Acquire a star with LATISS (slew, centre it from images) and take a sequence of images of it."

    @classmethod
    def get_schema(cls) -> dict[str, Any]:
        names = {"anyOf": [{"type": "array", "minItems": 1, "items": {"type": "string"}}, {"type": "string"}],
                 "default": "empty_1"}  # fmt: skip
        nullable_text = {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None}
        return {
            "title": "LatissAcquireAndTakeSequence v1",
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "do_acquire": {"type": "boolean", "default": False, "description": "acquire the target"},
                "do_take_sequence": {"type": "boolean", "default": False, "description": "take the sequence"},
                "object_name": {"type": "string", "description": "object name, for the headers"},
                "object_ra": {**nullable_text, "description": "ICRS RA, sexagesimal hours"},
                "object_dec": {**nullable_text, "description": "ICRS Dec, sexagesimal degrees"},
                "manual_focus_offset": {"type": "number", "default": 0.0, "units": "mm",
                                        "description": "ATAOS focus offset after the slew (none here: 0)"},
                "acq_filter": {"type": "string", "default": "FELH0600", "description": "acquisition filter"},
                "acq_grating": {"type": "string", "default": "empty_1", "description": "acquisition grating"},
                "acq_exposure_time": {"type": "number", "default": 2.0, "units": "s",
                                      "description": "acquisition exposure time"},
                "max_acq_iter": {"type": "number", "default": 3, "description": "acquisition images at most"},
                "target_pointing_tolerance": {"type": "number", "default": 5, "units": "arcsec",
                                              "description": "distance from the wanted position that is good enough"},
                "target_pointing_verification": {"type": "boolean", "default": True,
                                                 "description": "one more image after the acquisition"},
                "filter_sequence": {**names, "description": "filters of the sequence"},
                "grating_sequence": {**names, "description": "gratings of the sequence"},
                "exposure_time_sequence": {
                    "anyOf": [{"type": "array", "minItems": 1, "items": {"type": "number"}}, {"type": "number"}],
                    "default": 2.0, "description": "exposure times (s) of the sequence"},
                "time_on_target": {"anyOf": [{"type": "null"}, {"type": "number"}], "default": None, "units": "s",
                                   "description": "time on target for the cable wrap (the mount's limits here)"},
                "do_pointing_model": {"type": "boolean", "default": False,
                                      "description": "add the point to the pointing model (logged here)"},
                "do_blind_offset": {"type": "boolean", "default": True,
                                    "description": "offset blindly to the grating's sweet spot (the centre here)"},
                "rot_value": {"type": "number", "default": 0, "units": "deg", "description": "rotator angle"},
                "rot_type": {"type": "string", "enum": ["Sky", "SkyAuto", "Parallactic", "PhysicalSky", "Physical"],
                             "default": "Parallactic", "description": "rotator strategy (no rotator here)"},
                "reason": {**nullable_text, "description": "reason for taking the data"},
                "program": {**nullable_text, "description": "program this dataset belongs to"},
            },
        }  # fmt: skip

    async def configure(self, config: dict[str, Any]) -> None:
        if config["rot_value"]:
            raise ExpectedError(f"rot_value {config['rot_value']:g}: LATISS here has no rotator (rule: 0)")
        if config["manual_focus_offset"]:
            raise ExpectedError("manual_focus_offset: this observatory has no ATAOS to offset the focus (rule: 0)")
        if config["do_acquire"]:
            if not (config["object_ra"] and config["object_dec"]):
                name = config.get("object_name", "")
                raise ExpectedError(f"object_name {name!r}: a target by name alone needs SIMBAD, which this "
                                    "observatory does not reach; give object_ra and object_dec")  # fmt: skip
            self.ra = angle_deg(config["object_ra"], hours=True, field="object_ra")
            self.dec = angle_deg(config["object_dec"], hours=False, field="object_dec")
        self.visits = sequence_visits(config) if config["do_take_sequence"] else []
        # the camera's headers take strings: Rubin's null program/reason is an empty one
        self.program, self.reason = config["program"] or "", config["reason"] or ""
        self.latiss = Latiss(self)
        self.mount = self.remote("ATMCS")
        self.dome = self.remote("ATDome")
        self.pointing = Pointing(self.mount)

    @property
    def image_labels(self) -> dict[str, str]:
        return {"program": self.program, "reason": self.reason}

    def set_metadata(self, metadata: dict[str, Any]) -> None:
        config = self.config
        acquisition = 0.0
        if config["do_acquire"]:
            per_image = config["acq_exposure_time"] + READOUT_TIME_S
            acquisition = SLEW_ESTIMATE_S + config["max_acq_iter"] * (per_image + 10.0)
        sequence = sum(RECONFIGURE_S + t + READOUT_TIME_S for _, t, _ in self.visits)
        filters = ",".join(sorted({f"{f}~{g}" for f, _, g in self.visits}))
        metadata.update(duration=acquisition + sequence, nimages=len(self.visits), instrument="LATISS",
                        survey=self.program, filters=filters)  # fmt: skip
        if config["do_acquire"]:
            metadata["position"] = [self.ra, self.dec]

    async def _acq_image(self) -> tuple[str, tuple[float, float] | None]:
        obsid = await self.latiss.take_image("ACQ", self.config["acq_exposure_time"], group_id=self.group_id,
                                             **self.image_labels)  # fmt: skip
        return obsid, await self.clock.to_thread(offset_to_centre, self.latiss.path_of(obsid))

    async def _slew(self) -> None:
        azimuth, elevation = altaz(self.ra, self.dec, self.clock.tai())
        name = self.config.get("object_name", "")
        await self.checkpoint(f"slew to {name}: az {azimuth:.2f} el {elevation:.2f}")
        timeout = SLEW_TIMEOUT_S + 60.0
        target = {"ra": self.ra / 15.0, "declination": self.dec, "targetName": name}
        await asyncio.gather(
            self.mount.command("raDecTarget", target, timeout_s=timeout),
            self.dome.command("moveAzimuth", {"azimuth": azimuth % 360.0}, timeout_s=timeout),
            self.latiss.setup_instrument(self.config["acq_filter"], self.config["acq_grating"]),
        )

    async def acquire(self) -> None:
        config = self.config
        if config["do_blind_offset"]:
            self.log.info("blind_offset_not_applied",
                          reason="Rubin's sweet spots are positions on the real LATISS detector; here the star is "
                                 "centred on the simulated one")  # fmt: skip
        await self._slew()
        tolerance, tries = config["target_pointing_tolerance"], int(config["max_acq_iter"])
        success = tries == 0
        for attempt in range(1, tries + 1):
            await self.checkpoint(f"acquisition image {attempt} of at most {tries}")
            obsid, offset = await self._acq_image()
            if offset is None:
                raise ExpectedError(f"{obsid}: no star found in the acquisition image (centroid finding failed)")
            error = math.hypot(*offset)
            self.log.info("acquisition", obsid=obsid, dx=round(offset[0], 2), dy=round(offset[1], 2),
                          error_arcsec=round(error, 2), tolerance=tolerance)  # fmt: skip
            if error < tolerance:
                success = True
                break
            await self.pointing.offset_xy(*offset, relative=True)
        if not success:
            raise ExpectedError(f"the star is not within {tolerance:g} arcsec of its place after {tries} "
                                "acquisition images")  # fmt: skip
        if tries and config["target_pointing_verification"]:
            obsid, offset = await self._acq_image()
            if offset is not None:
                self.log.info("acquisition_verified", obsid=obsid, error_arcsec=round(math.hypot(*offset), 2))
        if config["do_pointing_model"]:
            self.log.warning("pointing_model_point_not_added",
                             reason="this observatory has no pointing-model service to add the point to")  # fmt: skip

    async def run_script(self) -> None:
        await self.start_remotes()
        needed = (*self.latiss.remotes, self.mount, *((self.dome,) if self.config["do_acquire"] else ()))
        await self.assert_enabled(*needed)
        if self.config["do_acquire"]:
            await self.acquire()
        if self.config["do_take_sequence"]:
            await self.checkpoint("take the sequence")
            await take_sequence(self, self.latiss, self.mount, self.visits)
