"""auxtel/calibrations/run_calibration_sequence.py: an ATCalsys calibration sequence taken with LATISS.

Rubin's script (ts_auxtel_standardscripts RunCalibrationSequence, a BaseBlockScript) takes one
configuration, `sequence_name`, a label of the ATCalsys sequences (`atcalsys.yaml` beside this
file: Rubin's sequences scan_g, scan_r, at_whitelight_r, ptc_1..3). As Rubin's ATCalsys does, the
spectrograph is set to the sequence's filter and grating, and one FLAT is taken for each exposure
time at each wavelength: one wavelength for white light, `wavelength ± wavelength_width/2` in
steps of `wavelength_resolution` for a monochromatic scan, each taken again without a filter.
The white lamp must be lit (BLOCK-309 first): a FLAT with no light is refused here, not taken.

This observatory has no ATMonochromator, fibre spectrograph or electrometer: a scan's wavelength
is not set (the flats are white light, their wavelength recorded as the step's), and neither
the spectra nor the charge are taken. The log says so once a run, never pretends otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from obsq.csc.core.errors import ExpectedError
from obsq.csc.core.yamltext import load_yaml
from obsq.scripts.base import BLOCK_SCRIPT_PROPERTIES, BaseScript
from obsq.scripts.latiss import READOUT_TIME_S, SHUTTER_TIME_S, Latiss

SEQUENCES_FILE = Path(__file__).with_name("atcalsys.yaml")
#: Rubin's defaults for a sequence's fields (ts_observatory_control atcalsys_schema.yaml).
DEFAULTS: dict[str, Any] = {
    "calib_type": "WhiteLight", "atspec_filter": "SDSSr_65mm", "atspec_grating": "empty_1", "wavelength": 500.0,
    "wavelength_width": 0.0, "wavelength_resolution": 5.0, "monochromator_grating": None, "exit_slit": 7.0,
    "entrance_slit": 7.0, "use_fiberspectrograph": True, "use_electrometer": True,
}  # fmt: skip
#: s to change the filter between a scan's filtered and unfiltered flats (for the duration estimate).
FILTER_CHANGE_S = 6.0
LAMP_LIT = (2, 4)  # ATWhiteLight lampState: ON, WARMUP
SHUTTER_OPEN = 2


def read_sequences(path: Path = SEQUENCES_FILE) -> dict[str, dict[str, Any]]:
    """The sequences by name, each with Rubin's defaults filled in."""
    loaded = load_yaml(path.read_text(), path.name)
    return {name: DEFAULTS | dict(fields) for name, fields in loaded.items()}


def wavelengths(sequence: dict[str, Any]) -> list[float]:
    """The wavelengths (nm) a sequence takes its exposure times at, as Rubin's ATCalsys computes them."""
    if sequence["calib_type"] != "Mono":
        return [float(sequence["wavelength"])]
    start = float(sequence["wavelength"]) - float(sequence["wavelength_width"]) / 2.0
    end = float(sequence["wavelength"]) + float(sequence["wavelength_width"]) / 2.0
    step = float(sequence["wavelength_resolution"])
    return [float(w) for w in np.arange(start, end + step, step)]


class RunCalibrationSequence(BaseScript):
    description = "Run an ATCalsys calibration sequence (flats at each wavelength and exposure time) with LATISS."

    @classmethod
    def get_schema(cls) -> dict[str, Any]:
        return {
            "title": "LatissTakeFlats v1",
            "type": "object",
            "additionalProperties": False,
            "required": ["sequence_name"],
            "properties": {
                "sequence_name": {
                    "type": "string",
                    "description": "a sequence of the ATCalsys configuration: " + ", ".join(read_sequences()),
                },
                **BLOCK_SCRIPT_PROPERTIES,
                "note": {"type": "string", "description": "free text written into each image's header"},
            },
        }

    async def configure(self, config: dict[str, Any]) -> None:
        sequences = read_sequences()
        name = config["sequence_name"]
        if name not in sequences:
            raise ExpectedError(f"sequence_name {name!r} is not a sequence of the ATCalsys configuration "
                                f"(rule: one of {', '.join(sequences)})")  # fmt: skip
        self.sequence = sequences[name]
        mono = self.sequence["calib_type"] == "Mono"
        self.steps = [
            (wavelength, exptime, filter_)
            for wavelength in wavelengths(self.sequence)
            for exptime in self.sequence["exposure_times"]
            for filter_ in ([self.sequence["atspec_filter"], "empty_1"] if mono else [self.sequence["atspec_filter"]])
        ]
        self.latiss = Latiss(self)
        self.lamp = self.remote("ATWhiteLight")

    def set_metadata(self, metadata: dict[str, Any]) -> None:
        per_image = READOUT_TIME_S + 2 * SHUTTER_TIME_S
        changes = FILTER_CHANGE_S * len(self.steps) if self.sequence["calib_type"] == "Mono" else 0.0
        metadata.update(
            duration=sum(exptime + per_image for _, exptime, _ in self.steps) + changes,
            nimages=len(self.steps),
            instrument="LATISS",
            survey=self.config.get("program", ""),
            filters=f"{self.sequence['atspec_filter']}~{self.sequence['atspec_grating']}",
        )

    def _say_what_is_missing(self) -> None:
        sequence = self.sequence
        if sequence["monochromator_grating"] is not None:
            self.log.warning("no_monochromator", grating=sequence["monochromator_grating"],
                             reason="this observatory has no ATMonochromator: the wavelength of each step is "
                                    "recorded, not set; the flats are white light")  # fmt: skip
        for flag, device in (("use_fiberspectrograph", "fibre spectrograph"), ("use_electrometer", "electrometer")):
            if sequence[flag]:
                self.log.warning("not_taken", device=device,
                                 reason=f"this observatory has no {device}: its data are not taken")  # fmt: skip

    async def _assert_lit(self) -> None:
        lamp = await self.lamp.event("lampState").aget(timeout_s=15)
        shutter = await self.lamp.event("shutterState").aget(timeout_s=15)
        lit = lamp is not None and lamp["basicState"] in LAMP_LIT
        if not lit or shutter is None or shutter["actualState"] != SHUTTER_OPEN:
            raise ExpectedError("ATWhiteLight: the lamp is not lit with its shutter open, so a flat would have no "
                                "light (set up the calibration system first: BLOCK-309)")  # fmt: skip

    async def run_script(self) -> None:
        await self.start_remotes()
        await self.assert_enabled(*self.latiss.remotes, self.lamp)
        await self._assert_lit()
        self._say_what_is_missing()
        name, grating = self.config["sequence_name"], self.sequence["atspec_grating"]
        summary: list[dict[str, Any]] = []
        n = len(self.steps)
        for i, (wavelength, exptime, filter_) in enumerate(self.steps, start=1):
            await self.checkpoint(f"{name} {i} of {n}: {exptime:g} s {filter_} at {wavelength:g} nm")
            await self.latiss.setup_instrument(filter_, grating)
            obsid = await self.latiss.take_for(self, "FLAT", exptime)
            summary.append({"wavelength": wavelength, "exptime": exptime, "filter": filter_, "obsid": obsid})
            await self.progress(i, n)
        self.log.info("sequence_summary", sequence_name=name, images=len(summary),
                      first=summary[0]["obsid"], last=summary[-1]["obsid"])  # fmt: skip
