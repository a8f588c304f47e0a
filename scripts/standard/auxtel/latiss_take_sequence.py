"""auxtel/latiss_take_sequence.py: a sequence of LATISS images while the telescope tracks (LatissTakeSequence).

Rubin's configuration (ts_auxtel_standardscripts LatissTakeSequence): `program` and `reason`
required; `filter_sequence`, `grating_sequence` and `exposure_time_sequence`, each a list or one
value for every image; `ra`, `dec`, `rot_sky` for the queue's metadata only. As Rubin's, the
sequence needs the mount tracking (an OBJECT image of a target), and each image is set up
(filter, grating) and taken in turn. `do_check_ataos_corrections`: this observatory has no
ATAOS, which the script says in its log rather than pretend to check.
"""

from __future__ import annotations

from typing import Any

from obsq.scripts.base import BaseScript
from obsq.scripts.latiss import READOUT_TIME_S, RECONFIGURE_S, Latiss, sequence_visits, take_sequence
from obsq.scripts.sky import angle_deg


class LatissTakeSequence(BaseScript):
    description = "Take a sequence of LATISS images (filter, grating, exposure each) while the telescope tracks."

    @classmethod
    def get_schema(cls) -> dict[str, Any]:
        names = {"anyOf": [{"type": "array", "minItems": 1, "items": {"type": "string"}}, {"type": "string"}],
                 "default": "empty_1"}  # fmt: skip
        return {
            "title": "LatissAcquireAndTakeSequence v1",
            "type": "object",
            "required": ["program", "reason"],
            "properties": {
                "program": {"type": "string", "description": "program this dataset belongs to"},
                "reason": {"type": "string", "description": "reason for taking the data"},
                "filter_sequence": {**names, "description": "filters, one for every image or one per image"},
                "grating_sequence": {**names, "description": "gratings, one for every image or one per image"},
                "exposure_time_sequence": {
                    "anyOf": [
                        {"type": "array", "minItems": 1, "items": {"type": "number", "minimum": 0}},
                        {"type": "number", "minimum": 0},
                    ],
                    "default": 2.0,
                    "description": "exposure times (s), one per image",
                },
                "do_check_ataos_corrections": {
                    "type": "boolean",
                    "default": True,
                    "description": "check ATAOS corrections (none here: said in the log)",
                },
                "ra": {
                    "anyOf": [{"type": "number", "minimum": 0, "maximum": 24}, {"type": "string"}],
                    "description": "ICRS RA (hour), for the queue's metadata only",
                },
                "dec": {
                    "anyOf": [{"type": "number", "minimum": -90, "maximum": 90}, {"type": "string"}],
                    "description": "ICRS Dec (deg), for the queue's metadata only",
                },
                "rot_sky": {"type": "number", "description": "sky position angle (deg), metadata only"},
            },
        }

    async def configure(self, config: dict[str, Any]) -> None:
        self.visits = sequence_visits(config)
        self.position = None
        if "ra" in config and "dec" in config:
            self.position = [angle_deg(config["ra"], hours=True, field="ra"),
                             angle_deg(config["dec"], hours=False, field="dec")]  # fmt: skip
        self.latiss = Latiss(self)
        self.mount = self.remote("ATMCS")

    def set_metadata(self, metadata: dict[str, Any]) -> None:
        metadata["duration"] = sum(RECONFIGURE_S + t + READOUT_TIME_S for _, t, _ in self.visits)
        metadata["nimages"] = len(self.visits)
        metadata["instrument"] = "LATISS"
        metadata["survey"] = self.config["program"]
        metadata["filters"] = ",".join(sorted({f"{f}~{g}" for f, _, g in self.visits}))
        if self.position is not None:
            metadata["position"] = self.position
        if "rot_sky" in self.config:
            metadata["cameraAngle"] = self.config["rot_sky"]

    async def run_script(self) -> None:
        await self.start_remotes()
        await self.assert_enabled(*self.latiss.remotes, self.mount)
        if self.config["do_check_ataos_corrections"]:
            self.log.warning("ataos_not_checked", reason="this observatory has no ATAOS: corrections not checked")
        await take_sequence(self, self.latiss, self.mount, self.visits)
