"""auxtel/track_target.py: slew the auxiliary telescope and its dome to a target and track (BaseTrackTarget v1).

Rubin's configuration (ts_standardscripts BaseTrackTarget, ts_auxtel_standardscripts TrackTarget):
`slew_icrs` (RA hours, Dec degrees, numbers or sexagesimal strings) or `track_azel`, with
`target_name`, `track_for`, `stop_when_done`, `rot_value`/`rot_type`, `slew_timeout` and `ignore`.
On this observatory an ICRS target goes to the mount as it is (ATMCS raDecTarget, ATPtg's
command here), which slews to where it will be and follows it; the dome goes to its azimuth
(`scripts.sky`) meanwhile. An az/el target is slewed to, then the mount tracks the sky from there. What it
does not have is named, never faked: a target found by name or `find_target` (no star catalog),
`slew_planet` and `slew_ephem` (no ephemerides), `offset` and `differential_tracking` at the
slew (use auxtel/offset_atcs.py after it), and a rotator angle (LATISS here has no rotator: `rot_value` must be 0).
"""

from __future__ import annotations

import asyncio
from typing import Any

from obsq.csc.core.errors import ExpectedError
from obsq.scripts.base import BaseScript
from obsq.scripts.sky import altaz, angle_deg

#: Rubin's planets for slew_planet (named in the schema; this observatory has no ephemerides).
PLANETS = ["MERCURY", "VENUS", "MOON", "MARS", "JUPITER", "SATURN", "URANUS", "NEPTUNE", "PLUTO"]
COORDINATE = {"anyOf": [{"type": "number"}, {"type": "string"}]}
TRACKING_ENABLED = 9


class TrackTarget(BaseScript):
    description = "Slew the auxiliary telescope and dome to a target (ICRS or az/el) and track it."

    @classmethod
    def get_schema(cls) -> dict[str, Any]:
        slews = ("slew_icrs", "track_azel", "slew_planet", "slew_ephem")
        return {
            "title": "BaseTrackTarget v1",
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "slew_icrs": {
                    "type": "object", "additionalProperties": False, "required": ["ra", "dec"],
                    "description": "slew to ICRS ra (hour) / dec (deg), numbers or sexagesimal strings",
                    "properties": {
                        "ra": {"anyOf": [{"type": "number", "minimum": 0, "maximum": 24}, {"type": "string"}]},
                        "dec": {"anyOf": [{"type": "number", "minimum": -90, "maximum": 90}, {"type": "string"}]},
                    },
                },
                "track_azel": {
                    "type": "object", "additionalProperties": False, "required": ["az", "el"],
                    "description": "slew to az/el (deg) and start tracking",
                    "properties": {
                        "az": COORDINATE,
                        "el": {"anyOf": [{"type": "number", "minimum": 0, "maximum": 90}, {"type": "string"}]},
                    },
                },
                "slew_planet": {
                    "type": "object", "additionalProperties": False,
                    "description": "slew to a planet (refused here: no ephemerides)",
                    "properties": {"planet_name": {"type": "string", "enum": PLANETS}},
                },
                "slew_ephem": {
                    "type": "object", "additionalProperties": False,
                    "description": "slew to a target from ephemeris data (refused here: no ephemeris service)",
                    "properties": {"ephem_file": {"type": "string"}, "object_name": {"type": "string"}},
                },
                "find_target": {
                    "type": "object", "additionalProperties": False, "required": ["az", "el", "mag_limit"],
                    "description": "find a star near az/el brighter than mag_limit (refused here: no star catalog)",
                    "properties": {"az": {"type": "number"}, "el": {"type": "number"},
                                   "mag_limit": {"type": "number"}, "mag_range": {"type": "number"},
                                   "radius": {"type": "number"}},
                },
                "offset": {
                    "type": "object", "additionalProperties": False,
                    "description": "x/y offset (arcsec) from the pointing (none here: no pointing component)",
                    "properties": {"x": {"type": "number", "default": 0}, "y": {"type": "number", "default": 0}},
                },
                "differential_tracking": {
                    "type": "object", "additionalProperties": False,
                    "description": "dra/ddec rates (none here: no pointing component)",
                    "properties": {"dra": {"type": "number", "default": 0.0},
                                   "ddec": {"type": "number", "default": 0.0}},
                },
                "rot_value": {"type": "number", "default": 0, "description": "rotator position (deg)"},
                "rot_type": {"type": "string", "enum": ["Sky", "SkyAuto", "Parallactic", "PhysicalSky", "Physical"],
                             "default": "SkyAuto", "description": "rotator strategy (no rotator here)"},
                "target_name": {"type": "string", "description": "target name"},
                "track_for": {"type": "number", "minimum": 0, "default": 0,
                              "description": "s to track once in position (0: finish when in position)"},
                "stop_when_done": {"type": "boolean", "default": False,
                                   "description": "stop tracking once track_for has passed"},
                "az_wrap_strategy": {"type": "string", "enum": ["MAXTIMEONTARGET", "NOUNWRAP", "OPTIMIZE"],
                                     "default": "OPTIMIZE", "description": "azimuth wrapping (the mount's limits)"},
                "slew_timeout": {"type": "number", "default": 240.0, "description": "s a slew may take"},
                "ignore": {"type": "array", "items": {"type": "string"},
                           "description": "components left out of the status check, e.g. atdome"},
            },
            "if": {"properties": {name: {"const": None} for name in slews}},
            "then": {"oneOf": [{"required": ["target_name"]}, {"required": ["find_target"]}]},
            "else": {"oneOf": [{"required": [name]} for name in slews]},
        }  # fmt: skip

    async def configure(self, config: dict[str, Any]) -> None:
        missing = {
            "find_target": "find_target needs a star catalog, which this observatory does not have",
            "slew_planet": "slew_planet needs ephemerides, which this observatory does not have",
            "slew_ephem": "slew_ephem needs an ephemeris service, which this observatory does not have",
        }
        for name, reason in missing.items():
            if name in config:
                raise ExpectedError(f"{name}: {reason} (rule: what the observatory has)")
        if "slew_icrs" not in config and "track_azel" not in config:
            name = config.get("target_name", "")
            raise ExpectedError(f"target_name {name!r}: a target by name alone needs a star catalog, which this "
                                "observatory does not have; give slew_icrs or track_azel")  # fmt: skip
        for name, fields in (("offset", ("x", "y")), ("differential_tracking", ("dra", "ddec"))):
            if any(config.get(name, {}).get(f, 0) for f in fields):
                raise ExpectedError(f"{name}: this observatory has no pointing component to apply it (rule: what "
                                    "the observatory has)")  # fmt: skip
        if config["rot_value"]:
            raise ExpectedError(f"rot_value {config['rot_value']:g}: LATISS here has no rotator (rule: 0)")
        if "slew_icrs" in config:
            self.ra_deg = angle_deg(config["slew_icrs"]["ra"], hours=True, field="slew_icrs.ra")
            self.dec_deg = angle_deg(config["slew_icrs"]["dec"], hours=False, field="slew_icrs.dec")
        else:
            self.azel = (angle_deg(config["track_azel"]["az"], hours=False, field="track_azel.az"),
                         angle_deg(config["track_azel"]["el"], hours=False, field="track_azel.el"))  # fmt: skip
        ignored = {name.lower() for name in config.get("ignore", [])}
        self.mount = self.remote("ATMCS")
        self.dome = None if "atdome" in ignored else self.remote("ATDome")

    def set_metadata(self, metadata: dict[str, Any]) -> None:
        metadata["duration"] = 60.0 + self.config["track_for"]

    async def run_script(self) -> None:
        await self.start_remotes()
        await self.assert_enabled(*(r for r in (self.mount, self.dome) if r is not None))
        name = self.config.get("target_name", "")
        timeout = self.config["slew_timeout"] + 60.0
        if "slew_icrs" in self.config:
            azimuth, elevation = altaz(self.ra_deg, self.dec_deg, self.clock.tai())
            where = f"ra {self.config['slew_icrs']['ra']} dec {self.config['slew_icrs']['dec']}"
            await self.checkpoint(f"slew to {name or where}: az {azimuth:.2f} el {elevation:.2f}")
            target = {"ra": self.ra_deg / 15.0, "declination": self.dec_deg, "targetName": name}
            mount = self.mount.command("raDecTarget", target, timeout_s=timeout)
        else:
            (azimuth, elevation), where = self.azel, "az/el"
            await self.checkpoint(f"slew to {name or where}: az {azimuth:.2f} el {elevation:.2f}")
            mount = self.mount.command("moveToPosition", {"azimuth": azimuth, "elevation": elevation},
                                       timeout_s=timeout)  # fmt: skip
        moves = [mount]
        if self.dome is not None:
            moves.append(self.dome.command("moveAzimuth", {"azimuth": azimuth % 360.0}, timeout_s=timeout))
        await asyncio.gather(*moves)
        if "track_azel" in self.config:
            await self.mount.command("startTracking", timeout_s=30)
        if self.config["track_for"] > 0:
            await self.checkpoint(f"tracking for {self.config['track_for']:g} s")
            await self.clock.sleep(self.config["track_for"])
            if self.config["stop_when_done"]:
                await self.mount.command("stopTracking", timeout_s=30)
