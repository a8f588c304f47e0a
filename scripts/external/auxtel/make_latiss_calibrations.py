"""auxtel/make_latiss_calibrations.py: the BIAS/DARK/FLAT sets of the LATISS weekly calibrations.

Takes, per image type of `script_mode`, `n_<type> + n_discard_<type>` images one at a time
(the first `n_discard_<type>` are discarded from processing). The processing switches
(`generate_calibrations`, `do_verify`, certification) are accepted; they need the reduction
service (OCPS:1), and until it runs in this build the script reports that and skips them.
"""

from __future__ import annotations

from typing import Any

from obsq.csc.core.errors import ExpectedError
from obsq.scripts.base import BaseScript
from obsq.scripts.latiss import NAME_OR_SLOT, READOUT_TIME_S, SHUTTER_TIME_S, Latiss, fill_metadata

MODES = {"BIAS": ["BIAS"], "DARK": ["DARK"], "BIAS_DARK": ["BIAS", "DARK"], "BIAS_DARK_FLAT": ["BIAS", "DARK", "FLAT"]}
DEFAULT_DARK_TIMES = [5, 5, 5, 5, 5, 15, 15] + [30] * 16
PLURAL = {"BIAS": "biases", "DARK": "darks", "FLAT": "flats"}


def _count(default: int, minimum: int) -> dict[str, Any]:
    return {"anyOf": [{"type": "integer", "minimum": minimum}, {"type": "null"}], "default": default}


def _times(default: Any) -> dict[str, Any]:
    return {
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
        text = {"type": "string"}
        properties: dict[str, Any] = {
            "script_mode": {"type": "string", "enum": list(MODES)},
            "n_bias": _count(20, 1), "n_discard_bias": _count(1, 0),
            "n_dark": _count(22, 1), "n_discard_dark": _count(1, 0), "exp_times_dark": _times(DEFAULT_DARK_TIMES),
            "n_flat": _count(20, 1), "n_discard_flat": _count(1, 0), "exp_times_flat": _times(5),
            "wait_between_exposures": {"type": "number", "minimum": 0, "default": 0},
            "generate_calibrations": {"type": "boolean", "default": False},
            "do_verify": {"type": "boolean", "default": True},
            "do_defects": {"type": "boolean", "default": False},
            "do_ptc": {"type": "boolean", "default": False},
            "do_gain_from_flat_pairs": {"type": "boolean", "default": True},
            "number_verification_tests_threshold_bias": {"type": "integer", "default": 8},
            "number_verification_tests_threshold_dark": {"type": "integer", "default": 8},
            "number_verification_tests_threshold_flat": {"type": "integer", "default": 8},
            "n_processes": {"type": "integer", "minimum": 1, "default": 8},
            "certify_calib_begin_date": {"type": "string", "default": "1950-01-01"},
            "certify_calib_end_date": {"type": "string", "default": "2050-01-01"},
            "oods_timeout": {"type": "integer", "default": 120},
            "background_task_timeout": {"type": "integer", "default": 30},
            "filter": NAME_OR_SLOT,
            "grating": NAME_OR_SLOT,
            "calib_collection": {"type": "string", "default": "LATISS/calib/daily"},
            "repo": {"type": "string", "default": "/repo/LATISS/butler+sasquatch.yaml"},
            "note": text, "program": text, "reason": text,
        }  # fmt: skip
        for kind in ("bias", "dark", "flat", "defects", "ptc"):
            properties[f"config_options_{kind}"] = {"type": "string", "default": " "}
        for kind in ("bias", "verify_bias", "dark", "verify_dark", "flat", "verify_flat", "defects", "ptc"):
            properties[f"input_collections_{kind}"] = {"type": "string", "default": "LATISS/calib"}
        return {
            "title": "MakeLatissCalibrations v1",
            "type": "object",
            "additionalProperties": False,
            "required": ["script_mode"],
            "properties": properties,
        }

    async def configure(self, config: dict[str, Any]) -> None:
        self.plan: list[tuple[str, list[float], int]] = []
        for image_type in MODES[config["script_mode"]]:
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

    def set_metadata(self, metadata: dict[str, Any]) -> None:
        images = [t for _, times, _ in self.plan for t in times]
        duration = sum(images) + len(images) * (READOUT_TIME_S + 2 * SHUTTER_TIME_S)
        fill_metadata(metadata, self.config, duration_s=duration, nimages=len(images))

    async def run_script(self) -> None:
        await self.start_remotes()
        await self.assert_enabled(*self.latiss.remotes)
        await self.checkpoint("Setup instrument.")
        await self.latiss.setup_instrument(self.config["filter"], self.config["grating"])
        total = sum(len(times) for _, times, _ in self.plan)
        done = 0
        for image_type, times, discard in self.plan:
            await self.checkpoint(f"Taking {len(times)} {PLURAL[image_type]}.")
            taken = []
            for exptime in times:
                taken.append(await self.latiss.take_for(self, image_type, exptime))
                done += 1
                await self.progress(done, total)
                if self.config["wait_between_exposures"]:
                    await self.clock.sleep(self.config["wait_between_exposures"])
            kept = taken[discard:]
            await self.checkpoint(f"Images taken: {kept}; type: {image_type}")
            self._process(image_type, kept)
        await self.checkpoint("Data-taking part completed.")

    def _process(self, image_type: str, exposures: list[str]) -> None:
        wanted = [s for s in ("generate_calibrations", "do_verify") if self.config[s]]
        if wanted:
            self.log.warning(
                "no_reduction_service",
                image_type=image_type,
                exposures=len(exposures),
                skipped=",".join(wanted),
                reason="no reduction service (OCPS:1) is enabled in this build; processing and certification skipped",
            )
