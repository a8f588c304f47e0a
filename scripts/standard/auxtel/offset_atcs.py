"""auxtel/offset_atcs.py: offset the auxiliary telescope (OffsetATCS v1).

Rubin's configuration (ts_standardscripts BaseOffsetTCS): exactly one of `offset_azel` (az, el
arcsec), `offset_radec` (ra, dec arcsec), `offset_xy` (camera x, y arcsec), `offset_rot`,
`offset_pa` (position angle from North through East, radius arcsec) or `reset_offsets`; with
`relative` (add to the offsets in place, else replace them) and `absorb` (keep them across
slews). Here the offsets are the mount's (ATMCS offsetAzEl/resetOffsets: Rubin's ATPtg commands
on this observatory's mount). x/y are azimuth/elevation on LATISS here, which has no rotator:
`offset_rot` is refused by name. An RA/Dec or position-angle offset is turned into azimuth and
elevation where the telescope points, and added to the offsets in place, as Rubin's.
"""

from __future__ import annotations

from typing import Any

from obsq.csc.core.errors import ExpectedError
from obsq.scripts.acquisition import Pointing, pa_offset
from obsq.scripts.base import BaseScript

ARCSEC = {"type": "number", "units": "arcsec"}
KINDS = ("offset_azel", "offset_radec", "offset_xy", "offset_rot", "offset_pa", "reset_offsets")


def _pair(a: str, b: str, what: str) -> dict[str, Any]:
    properties = {name: {**ARCSEC, "description": f"offset in {name}"} for name in (a, b)}
    return {"type": "object", "description": what, "required": [a, b], "properties": properties}


class OffsetATCS(BaseScript):
    description = "Offset the auxiliary telescope (az/el, RA/Dec, camera x/y, position angle) or reset its offsets."

    @classmethod
    def get_schema(cls) -> dict[str, Any]:
        return {
            "title": "OffsetATCS v1",
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "offset_azel": _pair("az", "el", "offset in local az/el coordinates"),
                "offset_radec": _pair("ra", "dec", "offset in RA and Dec"),
                "offset_xy": _pair("x", "y", "offset in the detector's x/y plane"),
                "offset_rot": {"type": "object", "required": ["rot"], "description": "rotator offset (none here)",
                               "properties": {"rot": {"type": "number", "units": "deg"}}},
                "offset_pa": {"type": "object", "required": ["angle", "radius"], "additionalProperties": False,
                              "description": "offset by a position angle and radius from the target",
                              "properties": {"angle": {"type": "number", "units": "deg",
                                                       "description": "position angle, from North through East"},
                                             "radius": {**ARCSEC, "description": "radial offset"}}},
                "reset_offsets": {"type": "object", "required": ["reset_absorbed", "reset_non_absorbed"],
                                  "description": "reset offsets",
                                  "properties": {"reset_absorbed": {"type": "boolean"},
                                                 "reset_non_absorbed": {"type": "boolean"}}},
                "relative": {"type": "boolean", "default": True,
                             "description": "add to the offsets in place (else replace them)"},
                "absorb": {"type": "boolean", "default": False, "description": "keep the offset across slews"},
            },
            "oneOf": [{"required": [kind]} for kind in KINDS],
        }  # fmt: skip

    async def configure(self, config: dict[str, Any]) -> None:
        if "offset_rot" in config:
            raise ExpectedError("offset_rot: LATISS here has no rotator to offset (rule: what the observatory has)")
        self.mount = self.remote("ATMCS")
        self.pointing = Pointing(self.mount)

    def set_metadata(self, metadata: dict[str, Any]) -> None:
        metadata["duration"] = 10.0

    async def run_script(self) -> None:
        await self.start_remotes()
        await self.assert_enabled(self.mount)
        config, pointing = self.config, self.pointing
        relative, absorb = config["relative"], config["absorb"]
        if "offset_azel" in config:
            await self.checkpoint(f"offset azel: {config['offset_azel']}")
            await pointing.offset_azel(config["offset_azel"]["az"], config["offset_azel"]["el"],
                                       relative=relative, absorb=absorb)  # fmt: skip
        elif "offset_xy" in config:
            await self.checkpoint(f"offset xy: {config['offset_xy']}")
            await pointing.offset_xy(config["offset_xy"]["x"], config["offset_xy"]["y"],
                                     relative=relative, absorb=absorb)  # fmt: skip
        elif "offset_radec" in config:
            await self.checkpoint(f"offset radec: {config['offset_radec']}")
            await pointing.offset_radec(config["offset_radec"]["ra"], config["offset_radec"]["dec"], self.clock.tai())
        elif "offset_pa" in config:
            await self.checkpoint(f"offset pa: {config['offset_pa']}")
            ra, dec = pa_offset(config["offset_pa"]["angle"], config["offset_pa"]["radius"])
            await pointing.offset_radec(ra, dec, self.clock.tai())
        else:
            reset = config["reset_offsets"]
            await self.checkpoint(f"reset offsets: {reset}")
            await pointing.reset(absorbed=reset["reset_absorbed"], non_absorbed=reset["reset_non_absorbed"])
        offsets = await self.mount.event("pointingOffsets").aget(timeout_s=15)
        self.log.info("offsets", **offsets)
