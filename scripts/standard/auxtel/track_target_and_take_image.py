"""auxtel/track_target_and_take_image.py: track a Scheduler target and take its images (TrackTargetAndTakeImage v1).

Rubin's configuration (ts_standardscripts BaseTrackTargetAndTakeImage, AuxTel's): the target as
the Scheduler fills it (`targetid`, `ra`, `dec`, `rot_sky`, `name`, `obs_time`, `num_exp`,
`exp_times`, `band_filter`, `estimated_slew_time`), the filter's name made of `filter_prefix`,
`band_filter` and `filter_suffix` (SDSS + r + _65mm), and the `grating`. The telescope tracks
the target (ATMCS raDecTarget) and the dome goes with it while LATISS is set up; then one OBJECT
image for each exposure time. LATISS here has no rotator (`rot_sky` is recorded, not applied)
and no camera playlists (`camera_playlist` is refused by name).
"""

from __future__ import annotations

import asyncio
from typing import Any

from obsq.csc.core.errors import ExpectedError
from obsq.scripts.base import BaseScript
from obsq.scripts.latiss import READOUT_TIME_S, Latiss
from obsq.scripts.sky import altaz, angle_deg

COORDINATE_RA = {"anyOf": [{"type": "number", "minimum": 0, "maximum": 24}, {"type": "string"}]}
COORDINATE_DEC = {"anyOf": [{"type": "number", "minimum": -90, "maximum": 90}, {"type": "string"}]}
NAMES = {"anyOf": [{"type": "array", "minItems": 1, "items": {"type": "string"}}, {"type": "string"}]}


class TrackTargetAndTakeImage(BaseScript):
    description = "Track a target (as the Scheduler gives it) and take its LATISS images."

    @classmethod
    def get_schema(cls) -> dict[str, Any]:
        return {
            "title": "TrackTargetAndTakeImage v1",
            "type": "object",
            "additionalProperties": False,
            "required": ["grating", "ra", "dec", "rot_sky", "name", "obs_time", "num_exp", "exp_times", "band_filter"],
            "properties": {
                "grating": {**NAMES, "description": "grating(s) for the observation"},
                "filter_prefix": {"type": "string", "default": "", "description": "prefix to the filter's name"},
                "filter_suffix": {"type": "string", "default": "", "description": "suffix to the filter's name"},
                "targetid": {"type": "integer", "description": "the Scheduler's target id"},
                "ra": {**COORDINATE_RA, "description": "ICRS RA (hour)"},
                "dec": {**COORDINATE_DEC, "description": "ICRS Dec (deg)"},
                "rot_sky": {"type": "number", "units": "deg", "description": "sky position angle (no rotator here)"},
                "name": {"type": "string", "description": "target name"},
                "obs_time": {"type": "number", "description": "the Scheduler's observation time (MJD)"},
                "estimated_slew_time": {"type": "number", "default": 0, "units": "s",
                                        "description": "the Scheduler's slew estimate"},
                "az_wrap_strategy": {"type": "string", "enum": ["MAXTIMEONTARGET", "NOUNWRAP", "OPTIMIZE"],
                                     "default": "OPTIMIZE", "description": "azimuth wrapping (the mount's limits)"},
                "num_exp": {"type": "integer", "description": "number of exposures"},
                "exp_times": {"type": "array", "minItems": 1, "items": {"type": "number", "minimum": 0},
                              "description": "exposure time (s) of each image"},
                "band_filter": {**NAMES, "description": "band(s), e.g. r"},
                "reason": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None,
                           "description": "reason for the observation"},
                "program": {"type": "string", "default": "", "description": "program"},
                "note": {"type": "string", "description": "note for the headers"},
                "camera_playlist": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None,
                                    "description": "camera playlist (none here)"},
                "ignore": {"type": "array", "items": {"type": "string"}, "default": [],
                           "description": "components left out of the status check"},
            },
        }  # fmt: skip

    async def configure(self, config: dict[str, Any]) -> None:
        if config["camera_playlist"] is not None:
            raise ExpectedError("camera_playlist: this camera plays no playlists (rule: null)")
        if config["num_exp"] != len(config["exp_times"]):
            raise ExpectedError(f"num_exp {config['num_exp']} but exp_times has {len(config['exp_times'])} values")
        bands = config["band_filter"] if isinstance(config["band_filter"], list) else [config["band_filter"]]
        gratings = config["grating"] if isinstance(config["grating"], list) else [config["grating"]]
        n = config["num_exp"]
        for name, values in (("band_filter", bands), ("grating", gratings)):
            if len(values) not in (1, n):
                raise ExpectedError(f"{name}: {len(values)} values for {n} exposures (rule: one, or one per exposure)")
        prefix, suffix = config["filter_prefix"], config["filter_suffix"]
        self.visits = [(f"{prefix}{bands[i % len(bands)]}{suffix}", float(t), gratings[i % len(gratings)])
                       for i, t in enumerate(config["exp_times"])]  # fmt: skip
        self.ra = angle_deg(config["ra"], hours=True, field="ra")
        self.dec = angle_deg(config["dec"], hours=False, field="dec")
        self.latiss = Latiss(self)
        self.mount = self.remote("ATMCS")
        ignored = {name.lower() for name in config["ignore"]}
        self.dome = None if "atdome" in ignored else self.remote("ATDome")

    def set_metadata(self, metadata: dict[str, Any]) -> None:
        metadata.update(
            duration=self.config["estimated_slew_time"] + sum(t + READOUT_TIME_S for _, t, _ in self.visits),
            nimages=len(self.visits), instrument="LATISS", survey=self.config["program"],
            filters=",".join(sorted({f"{f}~{g}" for f, _, g in self.visits})), position=[self.ra, self.dec],
            cameraAngle=self.config["rot_sky"],
        )  # fmt: skip

    async def run_script(self) -> None:
        await self.start_remotes()
        await self.assert_enabled(*self.latiss.remotes, self.mount, *((self.dome,) if self.dome else ()))
        name = self.config["name"]
        await self.checkpoint(f"[{name}; ra={self.config['ra']}, dec={self.config['dec']}]::track and set up")
        azimuth, _ = altaz(self.ra, self.dec, self.clock.tai())
        target = {"ra": self.ra / 15.0, "declination": self.dec, "targetName": name}
        moves = [self.mount.command("raDecTarget", target, timeout_s=400),
                 self.latiss.setup_instrument(self.visits[0][0], self.visits[0][2])]  # fmt: skip
        if self.dome is not None:
            moves.append(self.dome.command("moveAzimuth", {"azimuth": azimuth % 360.0}, timeout_s=400))
        await asyncio.gather(*moves)
        await self.checkpoint(f"[{name}]::take data")
        n = len(self.visits)
        for i, (filter_, exptime, grating) in enumerate(self.visits, start=1):
            await self.latiss.setup_instrument(filter_, grating)
            await self.latiss.take_for(self, "OBJECT", exptime)
            await self.progress(i, n)
