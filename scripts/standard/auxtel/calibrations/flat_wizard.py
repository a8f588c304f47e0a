"""auxtel/calibrations/flat_wizard.py: find each filter's flat exposure for a target level (seed 004's Flat Wizard).

For each filter: test flats, each measured from its file (the median of every amplifier's
imaging area less its overscan median, averaged), a model of level against exposure time
refitted after each (csc/reduction/flatwizard.py) until a flat lands within the tolerance of
the target — a fraction of the full well above the bias. The trained exposure is recorded per
filter, grating, gain, offset and binning in `DATA/flats/trained.json` (the table that flats
by cadence use) and reported. A filter whose light cannot reach the target (lamp off, dome
misaligned) fails the script, naming the filter and what was measured.
"""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from obsq.csc.clock import TAI_MINUS_UTC_S
from obsq.csc.core.errors import ExpectedError
from obsq.csc.reduction.flatwizard import FlatWizardError, Search, next_exposure
from obsq.csc.reduction.frames import open_frame
from obsq.scripts.base import BLOCK_SCRIPT_PROPERTIES, BaseScript
from obsq.scripts.latiss import NAME_OR_SLOT, READOUT_TIME_S, SHUTTER_TIME_S, Latiss, fill_metadata


def measure(path: str) -> tuple[float, float, dict[str, Any]]:
    """(level ADU above bias, full well ADU above bias, signature) of a flat file."""
    frame = open_frame(path)
    levels, wells = [], []
    for plane in frame.planes:
        raw = frame.read(plane)
        bias = float(np.median(raw[plane.overscan])) if plane.overscan else 0.0
        levels.append(float(np.median(raw[plane.data])) - bias)
        if plane.saturation is not None:
            wells.append(plane.saturation - bias)
    if not wells:
        raise ExpectedError(f"{path}: no SATURATE in its headers: the full well is not known")
    return sum(levels) / len(levels), min(wells), frame.signature


def record(path: str, key: str, entry: dict[str, Any]) -> Path:
    """Add `entry` under `key` to the trained table beside the raws (DATA/flats/trained.json), atomically."""
    table = Path(path).resolve().parents[2] / "flats" / "trained.json"
    table.parent.mkdir(parents=True, exist_ok=True)
    trained = json.loads(table.read_text()) if table.is_file() else {}
    trained[key] = entry
    temporary = table.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps(trained, indent=2, sort_keys=True))
    temporary.replace(table)
    return table


class FlatWizard(BaseScript):
    description = "Find each filter's flat exposure for a target fraction of the full well, and record it."

    @classmethod
    def get_schema(cls) -> dict[str, Any]:
        number = {"type": "number", "exclusiveMinimum": 0}
        return {
            "title": "FlatWizard v1",
            "type": "object",
            "additionalProperties": False,
            "required": ["filters"],
            "properties": {
                "filters": {"type": "array", "minItems": 1, "items": {"type": "string"}, "description": "by name"},
                "grating": {**NAME_OR_SLOT, "description": "grating (disperser) name or slot (1-3); none: leave it"},
                "target_fraction": {**number, "maximum": 0.95, "default": 0.5,
                                    "description": "of the full well, above the bias"},
                "tolerance": {**number, "maximum": 0.5, "default": 0.05, "description": "relative to the target"},
                "min_exposure": {**number, "default": 0.5, "description": "s"},
                "max_exposure": {**number, "default": 60.0, "description": "s"},
                "first_exposure": {**number, "default": 2.0, "description": "s, the first test flat"},
                "max_tries": {"type": "integer", "minimum": 2, "maximum": 20, "default": 8,
                              "description": "test exposures per filter before giving up"},
                **BLOCK_SCRIPT_PROPERTIES,
            },
        }  # fmt: skip

    async def configure(self, config: dict[str, Any]) -> None:
        if config["min_exposure"] >= config["max_exposure"]:
            raise ExpectedError("min_exposure must be below max_exposure")
        if not config["min_exposure"] <= config["first_exposure"] <= config["max_exposure"]:
            raise ExpectedError("first_exposure must be within [min_exposure, max_exposure]")
        self.latiss = Latiss(self)
        self.trained: dict[str, dict[str, Any]] = {}

    def set_metadata(self, metadata: dict[str, Any]) -> None:
        n = len(self.config["filters"]) * 3  # about three test flats each
        shown = {**self.config, "filter": ",".join(self.config["filters"])}
        fill_metadata(metadata, shown, duration_s=n * (self.config["first_exposure"] * 3 + READOUT_TIME_S +
                                                             2 * SHUTTER_TIME_S + 10), nimages=n)  # fmt: skip

    async def run_script(self) -> None:
        await self.start_remotes()
        await self.assert_enabled(*self.latiss.remotes)
        for i, filter_ in enumerate(self.config["filters"]):
            await self.progress(i, len(self.config["filters"]))
            await self.checkpoint(f"Training {filter_}")
            await self.latiss.setup_instrument(filter_, self.config["grating"])
            try:
                await self._train(filter_)
            except FlatWizardError as exc:
                raise ExpectedError(f"{filter_}: {exc}") from None
        await self.progress(len(self.config["filters"]), len(self.config["filters"]))

    async def _train(self, filter_: str) -> None:
        config = self.config
        exposure: float | None = config["first_exposure"]
        points: list[tuple[float, float]] = []
        search: Search | None = None
        while exposure is not None:
            if len(points) >= config["max_tries"]:
                raise ExpectedError(f"{filter_}: not within {config['tolerance']:.0%} of the target after "
                                    f"{len(points)} test flats: {points}")  # fmt: skip
            obsid = await self.latiss.take_for(self, "FLAT", round(exposure, 3))
            path = self.latiss.path_of(obsid)
            level, well, signature = await self.clock.to_thread(measure, path)
            if search is None:
                search = Search(config["target_fraction"] * well, config["tolerance"], config["min_exposure"],
                                config["max_exposure"])  # fmt: skip
            points.append((round(exposure, 3), level))
            self.log.info("test_flat", filter=filter_, exptime=round(exposure, 3), level=round(level),
                          target=round(search.target_adu), obsid=obsid)  # fmt: skip
            exposure = next_exposure(search, points)
        assert search is not None
        t, level = points[-1]
        grating = self.latiss.grating_name
        key = f"{filter_}~{grating}"
        entry = {"filter": filter_, "grating": grating, "exposure_s": t, "level_adu": round(level, 1),
                 "target_adu": round(search.target_adu, 1), "tries": len(points),
                 "gain": str(signature.get("gain", "")), "offset": str(signature.get("offset", "")),
                 "binning": str(signature.get("binning", "")),
                 "trained": datetime.datetime.fromtimestamp(self.clock.tai() - TAI_MINUS_UTC_S,
                                                            tz=datetime.UTC).isoformat()}  # fmt: skip
        table = await self.clock.to_thread(record, path, key, entry)
        self.trained[key] = entry
        await self.checkpoint(f"{filter_}: {t:g} s gives {level:.0f} ADU (target {search.target_adu:.0f})")
        self.log.info("flat_trained", table=str(table), **entry)
