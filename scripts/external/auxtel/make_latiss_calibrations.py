"""auxtel/make_latiss_calibrations.py: the BIAS/DARK/FLAT sets of the LATISS weekly calibrations.

Takes, per image type of `script_mode`, `n_<type> + n_discard_<type>` images one at a time
(the first `n_discard_<type>` are discarded from processing). With `generate_calibrations`
the reduction service (OCPS:1) builds each master in the background while the next image type
is taken (as Rubin does); with `do_verify` it is verified on the exposures (cp_verify), and a
master whose failed checks do not exceed `number_verification_tests_threshold_<type>` is
certified for [certify_calib_begin_date, certify_calib_end_date), superseding the master
certified before it. Verification failures are results, reported and logged; they do not fail
the script. A set whose master could not be built (its job failed, on its own retries too) fails
the script at its end, naming the set, once every other set has been taken and processed. Two
checks do act: the first flat of a set is checked for level (a 6 s SDSSr flat
under 10,000 ADU means the dome and the white-light screen are misaligned), which stops that
flat set; and at the end the images received are counted against the images asked for.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from obsq.csc.core.errors import ExpectedError
from obsq.scripts.base import BLOCK_SCRIPT_PROPERTIES, BaseScript
from obsq.scripts.latiss import CALIBRATION_MODES, NAME_OR_SLOT, READOUT_TIME_S, SHUTTER_TIME_S, Latiss, fill_metadata
from obsq.scripts.ocps import JobFailedError, Ocps, date_to_mjd

#: MJD of 1970-01-01: a TAI unix time's days counted from it (the seconds TAI is ahead do not move a day's start much)
MJD_AT_UNIX_EPOCH = 40_587.0

DEFAULT_DARK_TIMES = [5, 5, 5, 5, 5, 15, 15] + [30] * 16
PLURAL = {"BIAS": "biases", "DARK": "darks", "FLAT": "flats"}
#: Biases handed to the flat-level check (their mean level is the bias of a camera without overscan).
MAX_LEVEL_BIASES = 5


def _count(default: int, minimum: int, description: str) -> dict[str, Any]:
    return {"anyOf": [{"type": "integer", "minimum": minimum}, {"type": "null"}], "default": default,
            "description": description}  # fmt: skip


def _times(default: Any, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "anyOf": [
            {"type": "number", "minimum": 0},
            {"type": "array", "minItems": 1, "items": {"type": "number", "minimum": 0}},
        ],
        "default": default,
    }


class MakeLatissCalibrations(BaseScript):
    description = "Take BIAS, DARK and FLAT sets with LATISS (weekly calibrations)."

    @classmethod
    def get_schema(cls) -> dict[str, Any]:
        properties: dict[str, Any] = {
            "script_mode": {"type": "string", "enum": list(CALIBRATION_MODES),
                            "description": "the image types to take, in order"},
            "n_bias": _count(20, 1, "biases to keep"),
            "n_discard_bias": _count(1, 0, "biases taken first and thrown away (the detector settles)"),
            "n_dark": _count(22, 1, "darks to keep"),
            "n_discard_dark": _count(1, 0, "darks taken first and thrown away"),
            "exp_times_dark": _times(DEFAULT_DARK_TIMES, "dark exposure time (s), or one per dark"),
            "n_flat": _count(20, 1, "flats to keep"),
            "n_discard_flat": _count(1, 0, "flats taken first and thrown away"),
            "exp_times_flat": _times(5, "flat exposure time (s), or one per flat"),
            "wait_between_exposures": {"type": "number", "minimum": 0, "default": 0,
                                       "description": "s to wait between two exposures"},
            "generate_calibrations": {"type": "boolean", "default": False,
                                      "description": "build a master from each set (OCPS:1) as it is taken"},
            "do_verify": {"type": "boolean", "default": True, "description": "verify each master built"},
            "do_defects": {"type": "boolean", "default": False,
                           "description": "build defects (refused: this reduction service has no defects pipeline)"},
            "do_ptc": {"type": "boolean", "default": False,
                       "description": "build a photon transfer curve from the flats (pairs needed)"},
            "do_gain_from_flat_pairs": {"type": "boolean", "default": True,
                                        "description": "measure the gain from pairs of flats"},
            "number_verification_tests_threshold_bias": {"type": "integer", "default": 8,
                "description": "failed verification tests a bias may have and still be certified"},
            "number_verification_tests_threshold_dark": {"type": "integer", "default": 8,
                "description": "failed verification tests a dark may have and still be certified"},
            "number_verification_tests_threshold_flat": {"type": "integer", "default": 8,
                "description": "failed verification tests a flat may have and still be certified"},
            "n_processes": {"type": "integer", "minimum": 1, "default": 8,
                            "description": "processes the reduction may use (Rubin's; OCPS:1 decides here)"},
            "certify_calib_begin_date": {"type": "string", "default": "1950-01-01",
                                         "description": "first day (YYYY-MM-DD) the certified masters are valid"},
            "certify_calib_end_date": {"type": "string", "default": "2050-01-01",
                                       "description": "day (YYYY-MM-DD) the certified masters stop being valid"},
            "certify_validity_days": {
                "anyOf": [{"type": "number", "exclusiveMinimum": 0}, {"type": "null"}], "default": None,
                "units": "d", "description": "obsq: certify the masters from the day of the run (UTC) for this many "
                "days, the site's cadence, in place of certify_calib_begin/end_date (null: those dates, Rubin's)"},
            "oods_timeout": {"type": "integer", "default": 120,
                             "description": "s to wait for an image to be ingested before building from it"},
            "background_task_timeout": {"type": "integer", "default": 30,
                                        "description": "s to wait for the last reductions after the last image"},
            "filter": {**NAME_OR_SLOT, "description": "filter name or slot (1-3); none: leave it where it is"},
            "grating": {**NAME_OR_SLOT, "description": "grating (disperser) name or slot (1-3); none: leave it"},
            "calib_collection": {"type": "string", "default": "LATISS/calib/daily",
                                 "description": "the collection certified masters go to (Rubin's name)"},
            "repo": {"type": "string", "default": "/repo/LATISS/butler+sasquatch.yaml",
                     "description": "Rubin's Butler repository (the reduction service keeps its own here)"},
            "note": {"type": "string", "description": "free text written into each image's header"},
        }  # fmt: skip
        properties.update(BLOCK_SCRIPT_PROPERTIES)
        for kind in ("bias", "dark", "flat", "defects", "ptc"):
            properties[f"config_options_{kind}"] = {
                "type": "string", "default": " ", "description": f"pipeline options for the {kind} (Rubin's, passed on)"
            }  # fmt: skip
        for kind in ("bias", "verify_bias", "dark", "verify_dark", "flat", "verify_flat", "defects", "ptc"):
            properties[f"input_collections_{kind}"] = {
                "type": "string", "default": "LATISS/calib",
                "description": f"collections the {kind.replace('_', ' ')} step reads (Rubin's, passed on)",
            }  # fmt: skip
        return {
            "title": "MakeLatissCalibrations v1",
            "type": "object",
            "additionalProperties": False,
            "required": ["script_mode"],
            "properties": properties,
        }

    async def configure(self, config: dict[str, Any]) -> None:
        self.plan: list[tuple[str, list[float], int]] = []
        for image_type in CALIBRATION_MODES[config["script_mode"]]:
            key = image_type.lower()
            n, discard = config[f"n_{key}"] or 0, config[f"n_discard_{key}"] or 0
            total = n + discard
            if image_type == "BIAS":
                times = [0.0] * total
            else:
                given = config[f"exp_times_{key}"]
                if isinstance(given, list):
                    if len(given) != total:
                        raise ExpectedError(
                            f"exp_times_{key} has {len(given)} values but n_{key} + n_discard_{key} = {total}"
                        )
                    times = [float(t) for t in given]
                else:
                    times = [float(given)] * total
            self.plan.append((image_type, times, discard))
        self.latiss = Latiss(self)
        self.certify_range = (date_to_mjd(config["certify_calib_begin_date"]),
                              date_to_mjd(config["certify_calib_end_date"]))  # fmt: skip
        if self.certify_range[1] <= self.certify_range[0]:
            raise ExpectedError("certify_calib_end_date must be after certify_calib_begin_date")
        self.ocps: Ocps | None = Ocps(self.remote("OCPS:1"))
        self.results: list[str] = []
        #: the sets whose master could not be built, each with why
        self.unbuilt: list[str] = []

    def set_metadata(self, metadata: dict[str, Any]) -> None:
        images = [t for _, times, _ in self.plan for t in times]
        duration = sum(images) + len(images) * (READOUT_TIME_S + 2 * SHUTTER_TIME_S)
        fill_metadata(metadata, self.config, duration_s=duration, nimages=len(images))

    async def run_script(self) -> None:
        await self.start_remotes()
        await self.assert_enabled(*self.latiss.remotes)
        days = self.config["certify_validity_days"]
        if days is not None:  # from the day of the run: the dates the masters mean something for
            today = math.floor(self.clock.tai() / 86400.0 + MJD_AT_UNIX_EPOCH)
            self.certify_range = (float(today), float(today) + float(days))
            self.log.info("certify_validity", begin_mjd=self.certify_range[0], end_mjd=self.certify_range[1],
                          days=days, reason="certify_validity_days: from the day of the run")  # fmt: skip
        await self._check_reduction_service()
        await self.checkpoint("Setup instrument.")
        await self.latiss.setup_instrument(self.config["filter"], self.config["grating"])
        total = sum(len(times) for _, times, _ in self.plan)
        done = 0
        background: asyncio.Task[None] | None = None
        biases: list[str] = []  # the set's kept biases: the flat-level check's bias where there is no overscan
        for image_type, times, discard in self.plan:
            await self.checkpoint(f"Taking {len(times)} {PLURAL[image_type]}.")
            taken: list[str] = []
            stopped = False  # by the flat-level check: such flats are not made into a master
            for exptime in times:
                taken.append(await self.latiss.take_for(self, image_type, exptime))
                done += 1
                await self.progress(done, total)
                first_kept = image_type == "FLAT" and len(taken) == discard + 1
                if first_kept and self.ocps is not None and not await self._flat_level_ok(taken[-1], biases):
                    stopped = True
                    break
                if self.config["wait_between_exposures"]:
                    await self.clock.sleep(self.config["wait_between_exposures"])
            kept = [self.latiss.path_of(obsid) for obsid in taken[discard:]]
            if image_type == "BIAS":
                biases = kept[:MAX_LEVEL_BIASES]
            await self.checkpoint(f"Images taken: {taken[discard:]}; type: {image_type}")
            if kept and not stopped and self.config["generate_calibrations"]:
                background = asyncio.create_task(self._process(image_type, kept, after=background))
        await self.checkpoint("Data-taking part completed.")
        if background is not None:
            await self.checkpoint("Waiting for the reduction of the last image type.")
            await background
        if self.ocps is not None:
            await self._count_check()
        if self.unbuilt:
            raise ExpectedError(f"no master for {len(self.unbuilt)} of the sets taken: {'; '.join(self.unbuilt)}")

    async def _check_reduction_service(self) -> None:
        """OCPS:1 must be ENABLED to process; without processing its checks are skipped if it is not."""
        assert self.ocps is not None
        try:
            await self.assert_enabled(self.ocps.remote, timeout_s=3.0)
        except ExpectedError as exc:
            if self.config["generate_calibrations"]:
                raise ExpectedError(f"generate_calibrations needs the reduction service: {exc}") from None
            self.log.warning("no_reduction_service", reason=str(exc), skipped="flat-level and count checks")
            self.ocps = None

    def _report(self, line: str, *, failed: bool = False) -> None:
        self.results.append(line)
        (self.log.warning if failed else self.log.info)("calibration_result", result=line)

    async def _flat_level_ok(self, obsid: str, biases: list[str]) -> bool:
        """The misalignment check on the first kept flat (the set's biases for a camera without overscan)."""
        assert self.ocps is not None
        job = {"inputs": [self.latiss.path_of(obsid)]} | ({"biases": biases} if biases else {})
        result = await self.ocps.run("cpFlatLevel", job, timeout_s=300)
        if result["passed"]:
            return True
        self._report(f"FLAT set stopped after {obsid}: level {result['levels'][0]:.0f} ADU, {result['detail']}; "
                     "home the dome and run BLOCK-309 (setup) again", failed=True)  # fmt: skip
        await self.checkpoint(f"Flats stopped: {result['detail']}")
        return False

    async def _process(self, image_type: str, inputs: list[str], *, after: asyncio.Task[None] | None) -> None:
        """Build, verify and certify one master; the previous type's processing first (a dark needs the bias)."""
        if after is not None:
            await after
        assert self.ocps is not None
        kind = image_type.lower()
        try:
            built = await self.ocps.run(f"cp{kind.capitalize()}", {"inputs": inputs, "force": True})
        except JobFailedError as exc:
            self.unbuilt.append(f"{image_type} ({len(inputs)} exposures): {exc}")
            self._report(f"{image_type} master not built: {exc}", failed=True)
            return
        self._report(f"{image_type} master built: product {built['product']} from {len(inputs)} exposures")
        if not self.config["do_verify"]:
            return
        try:
            verdict = await self.ocps.run(f"cpVerify{kind.capitalize()}", {
                "product": built["product"], "inputs": inputs,
                "max_failures": self.config[f"number_verification_tests_threshold_{kind}"]})  # fmt: skip
            passed = verdict["verdict"] == "passed"
            counts = f"{verdict['n_failed']} of {verdict['n_checks']} checks failed"
            line = f"{image_type} master {built['product']} verification {verdict['verdict']} ({counts})"
            self._report(line, failed=not passed)
            if passed:
                await self.ocps.run("certify", {"product": built["product"], "begin_mjd": self.certify_range[0],
                                                "end_mjd": self.certify_range[1], "force": True})  # fmt: skip
                self._report(f"{image_type} master {built['product']} certified")
        except JobFailedError as exc:
            self._report(f"{image_type} processing failed: {exc}", failed=True)

    async def _count_check(self) -> None:
        """Count what the camera wrote for this script's group id against what was asked for."""
        assert self.ocps is not None
        planned: list[dict[str, Any]] = []
        for image_type, times, _ in self.plan:
            counts: dict[float, int] = {}
            for t in times:
                counts[t] = counts.get(t, 0) + 1
            planned += [{"imgtype": image_type, "filter": self.latiss.filter_name, "exptime": t, "count": n}
                        for t, n in counts.items()]  # fmt: skip
        result = await self.ocps.run("cpVerifyCounts", {"planned": planned, "groupid": self.group_id}, timeout_s=300)
        if result["passed"]:
            self._report(f"counts: all {sum(p['count'] for p in planned)} images received")
        else:
            self._report(f"counts: {result['detail']}", failed=True)
