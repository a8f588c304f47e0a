"""auxtel/latiss_take_twilight_flats.py: sky flats in twilight with LATISS (TakeTwilightFlatsLatiss v1).

Rubin's configuration and procedure (ts_externalscripts BaseTakeTwilightFlats): the Sun must be
between `min_sun_elevation` and `max_sun_elevation`; the telescope points `distance_from_sun`
in azimuth from the Sun at `target_el` (or at `target_az` with `point_directly`), tracking or
not, the dome with it; a `min_exp_time` flat measures the sky, and each next exposure is scaled
to `target_sky_counts` electrons (the median of the last image, bias removed, times the gain),
clipped to `max_exp_time`. While the Sun sets and the sky is still too bright for the shortest
exposure, the script waits 30 s and measures again; as it rises, it stops. `dither` arcsec in
azimuth between flats. Short exposures (< 2 s) are repeated four times at once, as Rubin's. Then
Rubin's 40 darks of 15 s.

The flats are SFLAT images. The dome must be open (its main door): with it shut the sky gives
no light and the script says so. Rubin queries a blank-field catalogue (Vizier) for the field;
this observatory has no catalogue and no network, so the field is the computed position itself,
said in the log.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from obsq.csc.core.errors import ExpectedError
from obsq.csc.core.sky import radec, sun_azel
from obsq.scripts.acquisition import Pointing, median_electrons
from obsq.scripts.base import BLOCK_SCRIPT_PROPERTIES, BaseScript
from obsq.scripts.latiss import NAME_OR_SLOT, READOUT_TIME_S, Latiss

DOOR_OPENED = 2
#: Rubin's: no sky flat closer to the Sun in azimuth than this (deg).
MIN_SUN_DISTANCE_DEG = 60.0
#: Rubin's: s to wait for a setting Sun's sky to fade; exposures shorter than this are repeated.
FADE_WAIT_S = 30.0
REPEAT_BELOW_S = 2.0
REPEATS = 4
DARKS, DARK_EXPTIME_S = 40, 15.0
TRACKING_ENABLED = 9


def next_exposure(config: dict[str, Any], counts: float, exptime: float) -> float:
    """Rubin's get_new_exptime: the time that gives the target counts, or a short one the sky allows.

    >>> next_exposure({"target_sky_counts": 15000, "max_counts": 60000, "min_exp_time": 1.0}, 30000.0, 2.0)
    1.0
    >>> next_exposure({"target_sky_counts": 15000, "max_counts": 60000, "min_exp_time": 1.0}, 60000.0, 1.0)
    0.25
    """
    if counts <= 0:
        return float("inf")
    new = float(config["target_sky_counts"]) * exptime / counts
    shortest = float(config["min_exp_time"])
    if new < shortest and float(config["max_counts"]) * exptime / counts > shortest:
        return round(shortest * 1.01, 2)
    return round(new, 2)


class TakeTwilightFlatsLatiss(BaseScript):
    description = "Take twilight sky flats with LATISS, each exposure scaled to the sky's fading brightness."

    @classmethod
    def get_schema(cls) -> dict[str, Any]:
        nullable_count = {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "null"}]}
        return {
            "title": "TakeTwilightFlatsLatiss v1",
            "type": "object",
            "additionalProperties": False,
            "required": ["filter"],
            "properties": {
                "filter": {**NAME_OR_SLOT, "description": "filter name or slot"},
                "grating": {**NAME_OR_SLOT, "default": "empty_1", "description": "grating; null: not changed"},
                "target_sky_counts": {**nullable_count, "default": 15000,
                                      "description": "target median electrons of a flat"},
                "max_counts": {"type": "integer", "minimum": 0, "default": 60000,
                               "description": "largest median electrons tolerable in a flat"},
                "n_flat": {**nullable_count, "default": 20, "description": "flats to take"},
                "dither": {"type": "number", "default": 0.0, "units": "arcsec",
                           "description": "azimuth offset between flats"},
                "max_exp_time": {"type": "number", "default": 30.0, "units": "s",
                                 "description": "longest exposure allowed"},
                "min_exp_time": {"type": "number", "minimum": 0.1, "default": 1.0, "units": "s",
                                 "description": "shortest exposure allowed"},
                "min_sun_elevation": {"type": "number", "default": -18.0, "units": "deg",
                                      "description": "lowest Sun at which flats are taken"},
                "max_sun_elevation": {"type": "number", "default": 0.0, "units": "deg",
                                      "description": "highest Sun at which flats are taken"},
                "distance_from_sun": {"type": "number", "minimum": -180.0, "maximum": 180.0, "default": 179.0,
                                      "units": "deg", "description": "azimuth from the Sun's"},
                "target_el": {"type": "number", "minimum": 0.0, "maximum": 90.0, "default": 45.0, "units": "deg",
                              "description": "elevation of the flat field"},
                "target_az": {"type": "number", "default": 90, "units": "deg",
                              "description": "azimuth of the field with point_directly"},
                "point_directly": {"type": "boolean", "default": False,
                                   "description": "point at target_az/target_el, not relative to the Sun"},
                "tracking": {"type": "boolean", "default": True,
                             "description": "track the sky (else hold az/el)"},
                "rotator_angle": {"type": "number", "default": 0, "units": "deg",
                                  "description": "rotator angle (LATISS here has no rotator: 0)"},
                "ignore": {"type": "array", "items": {"type": "string"}, "default": [],
                           "description": "components left out of the status check"},
                **BLOCK_SCRIPT_PROPERTIES,
                "note": {"type": "string", "description": "free text written into each image's header"},
            },
        }  # fmt: skip

    async def configure(self, config: dict[str, Any]) -> None:
        if config["rotator_angle"]:
            raise ExpectedError(f"rotator_angle {config['rotator_angle']:g}: LATISS here has no rotator (rule: 0)")
        if config["target_sky_counts"] is None or config["n_flat"] is None:
            raise ExpectedError("target_sky_counts and n_flat: a number is needed here (rule: Rubin's null asks for "
                                "an estimate from its consolidated database, which this site lacks)")  # fmt: skip
        if not config["point_directly"] and abs(config["distance_from_sun"]) < MIN_SUN_DISTANCE_DEG:
            raise ExpectedError(f"distance_from_sun {config['distance_from_sun']:g}: less than "
                                f"{MIN_SUN_DISTANCE_DEG:g} deg from the Sun (rule: Rubin's)")  # fmt: skip
        self.latiss = Latiss(self)
        self.mount = self.remote("ATMCS")
        self.pointing = Pointing(self.mount)
        ignored = {name.lower() for name in config["ignore"]}
        self.dome = None if "atdome" in ignored else self.remote("ATDome")

    def set_metadata(self, metadata: dict[str, Any]) -> None:
        config = self.config
        metadata.update(
            duration=config["n_flat"] * (config["max_exp_time"] + READOUT_TIME_S)
            + DARKS * (DARK_EXPTIME_S + READOUT_TIME_S),
            nimages=config["n_flat"] + DARKS,
            instrument="LATISS",
            survey=config.get("program", ""),
            filters=f"{config['filter'] or ''}~{config['grating'] or ''}",
        )

    def _sun(self) -> tuple[float, float]:
        """(azimuth, elevation) of the Sun now, after checking it is where flats may be taken."""
        azimuth, elevation = sun_azel(self.clock.tai())
        low, high = self.config["min_sun_elevation"], self.config["max_sun_elevation"]
        if not low <= elevation <= high:
            raise ExpectedError(f"the Sun is at elevation {elevation:.2f} deg, outside {low:g} to {high:g} deg "
                                "for twilight flats")  # fmt: skip
        return azimuth, elevation

    async def _point(self) -> None:
        sun_az, sun_el = await self.clock.to_thread(self._sun)
        self.setting = sun_az > 180.0
        config = self.config
        if config["point_directly"]:
            if abs((sun_az - config["target_az"] % 360 + 180) % 360 - 180) < MIN_SUN_DISTANCE_DEG:
                raise ExpectedError(f"target_az {config['target_az']:g}: within {MIN_SUN_DISTANCE_DEG:g} deg "
                                    f"of the Sun's azimuth {sun_az:.1f}")  # fmt: skip
            azimuth = float(config["target_az"]) % 360
        else:
            azimuth = (sun_az + config["distance_from_sun"]) % 360
        elevation = float(config["target_el"])
        ra, dec = await self.clock.to_thread(radec, azimuth, elevation, self.clock.tai())
        self.log.info("twilight_field", sun_azimuth=round(sun_az, 2), sun_elevation=round(sun_el, 2),
                      sun="setting" if self.setting else "rising", azimuth=round(azimuth, 2), elevation=elevation,
                      ra=round(ra, 4), dec=round(dec, 4),
                      note="no blank-field catalogue here: the field is the computed position")  # fmt: skip
        moves: list[Awaitable[Any]] = [
            self.mount.command("moveToPosition", {"azimuth": azimuth, "elevation": elevation}, timeout_s=400),
            self.latiss.setup_instrument(config["filter"], config["grating"]),
        ]
        if self.dome is not None:
            moves.append(self.dome.command("moveAzimuth", {"azimuth": azimuth}, timeout_s=400))
        await asyncio.gather(*moves)
        if config["tracking"]:
            await self.mount.command("startTracking", timeout_s=30)

    async def _flat(self, exptime: float) -> float:
        """Take one sky flat; its median electrons."""
        obsid = await self.latiss.take_for(self, "SFLAT", exptime)
        counts = await self.clock.to_thread(median_electrons, self.latiss.path_of(obsid))
        self.log.info("sky_flat", obsid=obsid, exptime=exptime, counts=round(counts))
        return counts

    async def _dither(self) -> None:
        """Rubin's dither: a relative azimuth offset before each flat (the mount keeps tracking)."""
        if self.config["dither"]:
            await self.pointing.offset_azel(self.config["dither"], 0.0, relative=True)

    async def run_script(self) -> None:
        await self.start_remotes()
        remotes = (*self.latiss.remotes, self.mount, *((self.dome,) if self.dome else ()))
        await self.assert_enabled(*remotes)
        if self.dome is not None:
            door = await self.dome.event("mainDoorState").aget(timeout_s=15)
            if door is None or door["state"] != DOOR_OPENED:
                raise ExpectedError("ATDome: the main door is not open, so the sky cannot light a flat "
                                    "(open the dome first)")  # fmt: skip
        await self.checkpoint("point away from the Sun")
        await self._point()
        config = self.config
        exptime = config["min_exp_time"]
        counts = await self._flat(exptime)
        taken, n = 0, config["n_flat"]
        while taken < n:
            exptime = next_exposure(config, counts, exptime)
            if exptime > config["max_exp_time"]:
                self.log.warning("sky_too_faint", exptime=exptime, max_exp_time=config["max_exp_time"])
                exptime = config["max_exp_time"]
            if exptime < config["min_exp_time"]:
                if not self.setting:
                    self.log.warning("sky_too_bright", exptime=exptime, reason="the Sun is rising: stopping")
                    break
                while exptime < config["min_exp_time"]:
                    self.log.info("sky_too_bright", exptime=exptime, wait_s=FADE_WAIT_S)
                    await self.clock.sleep(FADE_WAIT_S)
                    await self.clock.to_thread(self._sun)
                    counts = await self._flat(config["min_exp_time"])
                    exptime = next_exposure(config, counts, config["min_exp_time"])
            repeats = REPEATS + 1 if exptime < REPEAT_BELOW_S and self.setting else 1
            for _ in range(repeats):
                await self.checkpoint(f"flat {taken + 1} of {n}: {exptime:g} s")
                await self._dither()
                counts = await self._flat(exptime)
                taken += 1
                await self.progress(taken, n)
                await self.clock.to_thread(self._sun)
        await self.checkpoint(f"{DARKS} darks of {DARK_EXPTIME_S:g} s")
        if self.config["tracking"]:
            await self.mount.command("stopTracking", timeout_s=30)
        for _ in range(DARKS):
            await self.latiss.take_for(self, "DARK", DARK_EXPTIME_S)
