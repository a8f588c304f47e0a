"""take_image_latiss.py: a sequence of LATISS images (LatissTakeImage v2)."""

from __future__ import annotations

from typing import Any

from obsq.csc.core.errors import ExpectedError, ObsqError
from obsq.csc.core.images import IMAGE_TYPES
from obsq.scripts.base import BLOCK_SCRIPT_PROPERTIES, BaseScript
from obsq.scripts.latiss import NAME_OR_SLOT, READOUT_TIME_S, SHUTTER_TIME_S, Latiss, fill_metadata

#: Image types lit by the lamp or the sky, and the level (e-) below which one has no light to speak of.
LIT_TYPES = ("FLAT", "SFLAT", "DFLAT")
NO_LIGHT_E = 100.0


class LatissTakeImage(BaseScript):
    description = "Take a sequence of LATISS images, after setting up the filter and grating."

    @classmethod
    def get_schema(cls) -> dict[str, Any]:
        return {
            "title": "LatissTakeImage v2",
            "type": "object",
            "additionalProperties": False,
            "required": ["image_type"],
            "properties": {
                "nimages": {
                    "anyOf": [{"type": "integer", "minimum": 1}, {"type": "null"}],
                    "default": None,
                    "description": "images to take (none: one per exp_times value, else 1)",
                },
                "exp_times": {
                    "description": "exposure time (s) of every image, or one per image",
                    "anyOf": [
                        {"type": "number", "minimum": 0},
                        {"type": "array", "minItems": 1, "items": {"type": "number", "minimum": 0}},
                    ],
                    "default": 0,
                },
                "image_type": {"type": "string", "enum": list(IMAGE_TYPES), "description": "Rubin's image type"},
                **BLOCK_SCRIPT_PROPERTIES,
                "note": {"type": "string", "description": "free text written into each image's header"},
                "slew_time": {
                    "type": "number",
                    "minimum": 0,
                    "default": 0,
                    "description": "s of slew before the first image, for the duration estimate",
                },
                "sleep_between_exposures": {
                    "type": "number",
                    "minimum": 0,
                    "default": 0,
                    "description": "s to wait between two exposures",
                },
                "filter": {**NAME_OR_SLOT, "description": "filter name or slot (1-3); none: leave it where it is"},
                "grating": {**NAME_OR_SLOT, "description": "grating (disperser) name or slot (1-3); none: leave it"},
                "linear_stage": {
                    "anyOf": [{"type": "number"}, {"type": "null"}],
                    "default": None,
                    "description": "linear stage position; LATISS here has none: a value is refused",
                },
                "visit_metadata": {
                    "type": "object",
                    "description": "where the visit points, for the queue's metadata only (Rubin's): ra (h), dec (deg)",
                    "properties": {
                        "ra": {"anyOf": [{"type": "number", "minimum": 0, "maximum": 24}, {"type": "string"}]},
                        "dec": {"anyOf": [{"type": "number", "minimum": -90, "maximum": 90}, {"type": "string"}]},
                        "rot_sky": {"type": "number"},
                    },
                    "required": ["ra", "dec", "rot_sky"],
                },
                "ignore": {
                    "type": "array",
                    "items": {"type": "string"},
                    "default": [],
                    "description": "components to leave out of the status check (Rubin's), e.g. atdome",
                },
            },
        }

    async def configure(self, config: dict[str, Any]) -> None:
        exp_times = config["exp_times"]
        nimages = config["nimages"]
        if isinstance(exp_times, list):
            if nimages is not None and nimages != len(exp_times):
                raise ExpectedError(f"nimages={nimages} but exp_times has {len(exp_times)} values")
            self.exp_times = [float(t) for t in exp_times]
        else:
            self.exp_times = [float(exp_times)] * (nimages or 1)
        if config["image_type"] == "BIAS" and any(self.exp_times):
            raise ExpectedError("exp_times: a BIAS has exposure time 0")
        if config["linear_stage"] is not None:
            raise ExpectedError("linear_stage: this LATISS has no linear stage to move (rule: hardware present)")
        self.latiss = Latiss(self)

    async def _check_light(self, obsid: str) -> None:
        """A flat with no light above the bias is said at once (lamp, shutter, screen), never silently kept."""
        from obsq.scripts.acquisition import median_electrons  # numpy only for a flat: scripts start light

        try:
            level = await self.clock.to_thread(median_electrons, self.latiss.path_of(obsid))
        except (OSError, ValueError, ObsqError) as exc:  # another host's file, or not one to read: not judged
            self.log.info("flat_level_not_checked", obsid=obsid, reason=str(exc)[:200])
            return
        if level < NO_LIGHT_E:
            self.log.warning("flat_without_light", obsid=obsid, level_e=round(level, 1),
                             reason=f"a {self.config['image_type']} with no light (median {level:.0f} e- above the "
                                    "bias): is the lamp on with its shutter open, the dome and telescope at the "
                                    "screen?")  # fmt: skip

    def set_metadata(self, metadata: dict[str, Any]) -> None:
        n = len(self.exp_times)
        per_image = (
            sum(self.exp_times) / n + self.config["sleep_between_exposures"] + READOUT_TIME_S + 2 * SHUTTER_TIME_S
        )
        fill_metadata(metadata, self.config, duration_s=self.config["slew_time"] + per_image * n, nimages=n)

    async def run_script(self) -> None:
        await self.start_remotes()
        await self.assert_enabled(*self.latiss.remotes)
        await self.checkpoint("setup instrument")
        await self.latiss.setup_instrument(self.config["filter"], self.config["grating"])
        n = len(self.exp_times)
        for i, exptime in enumerate(self.exp_times, start=1):
            await self.checkpoint(f"exposure {i} of {n}")
            obsid = await self.latiss.take_for(self, self.config["image_type"], exptime)
            if self.config["image_type"] in LIT_TYPES and exptime > 0:
                await self._check_light(obsid)
            await self.progress(i, n)
            if self.config["sleep_between_exposures"]:
                await self.clock.sleep(self.config["sleep_between_exposures"])
