"""LATISS as scripts use it: set up the instrument, take one image at a time."""

from __future__ import annotations

from typing import Any

from obsq.csc.component import Remote
from obsq.csc.core.errors import ExpectedError
from obsq.csc.core.images import SHUTTER_CLOSED_TYPES
from obsq.scripts.base import BaseScript

READOUT_TIME_S = 2.0
SHUTTER_TIME_S = 1.0
#: s to set up LATISS for an image (Rubin's estimate in set_metadata).
RECONFIGURE_S = 3.0
#: ATMCS atMountState TRACKINGENABLED.
TRACKING_ENABLED = 9
#: make_latiss_calibrations's script_mode: the image types it takes, in order (a master of each with
#: generate_calibrations).
CALIBRATION_MODES = {
    "BIAS": ["BIAS"], "DARK": ["DARK"], "BIAS_DARK": ["BIAS", "DARK"], "BIAS_DARK_FLAT": ["BIAS", "DARK", "FLAT"],
}  # fmt: skip
#: Schema of a filter or grating option: a name, a slot number, or null for "leave as is".
NAME_OR_SLOT: dict[str, Any] = {
    "anyOf": [
        {"type": "string"},
        {"type": "integer", "minimum": 1, "maximum": 3},
        {"type": "null"},
    ],  # slots 1-3 (Rubin)
    "default": None,
}


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def sequence_visits(config: dict[str, Any]) -> list[tuple[Any, float, Any]]:
    """(filter, exposure time, grating) of each image of Rubin's filter/grating/exposure_time sequences.

    A filter or grating sequence has one value for every image or one per image (ExpectedError otherwise).
    """
    times = _as_list(config["exposure_time_sequence"])
    n = len(times)
    filters, gratings = _as_list(config["filter_sequence"]), _as_list(config["grating_sequence"])
    for name, values in (("filter_sequence", filters), ("grating_sequence", gratings)):
        if len(values) not in (1, n):
            raise ExpectedError(f"{name}: {len(values)} values for {n} exposures (rule: one, or one per exposure)")
    return [(filters[i % len(filters)], float(times[i]), gratings[i % len(gratings)]) for i in range(n)]


async def take_sequence(
    script: BaseScript, latiss: Latiss, mount: Remote, visits: list[tuple[Any, float, Any]]
) -> None:
    """OBJECT images of a target the mount tracks, each set up in turn; ExpectedError if the mount does not track."""
    state = (await mount.event("atMountState").aget(timeout_s=15))["state"]
    if state != TRACKING_ENABLED:
        raise ExpectedError("ATMCS is not tracking: a sequence is taken of a target the telescope tracks "
                            "(auxtel/track_target.py first)")  # fmt: skip
    n = len(visits)
    for i, (filter_, exptime, grating) in enumerate(visits, start=1):
        await script.checkpoint(f"exposure {i} of {n}: {exptime:g} s {filter_}~{grating}")
        await latiss.setup_instrument(filter_, grating)
        if (await mount.event("atMountState").aget(timeout_s=15))["state"] != TRACKING_ENABLED:
            raise ExpectedError(f"ATMCS stopped tracking before exposure {i} of {n}")
        await latiss.take_for(script, "OBJECT", exptime)
        await script.progress(i, n)


def fill_metadata(metadata: dict[str, Any], config: dict[str, Any], *, duration_s: float, nimages: int) -> None:
    """The metadata every LATISS script reports: duration, images, instrument, survey, filter~grating."""
    metadata.update(
        duration=duration_s,
        nimages=nimages,
        instrument="LATISS",
        survey=config.get("program", ""),
        filters=f"{config['filter'] or ''}~{config['grating'] or ''}",
    )


class Latiss:
    """The camera and the spectrograph, through a script's remotes."""

    def __init__(self, script: BaseScript) -> None:
        self.camera: Remote = script.remote("ATCamera")
        self.spectrograph: Remote = script.remote("ATSpectrograph")
        self.files: dict[str, str] = {}
        self.camera.event("largeFileObjectAvailable").callback = self._on_file

    def _on_file(self, envelope: Any) -> None:
        url = envelope.data["url"]
        self.files[envelope.data["id"]] = url.removeprefix("file://")

    def path_of(self, obsid: str) -> str:
        """The raw file of an image this script took (from the camera's largeFileObjectAvailable)."""
        try:
            return self.files[obsid]
        except KeyError:
            raise ExpectedError(f"ATCamera announced no file for {obsid}") from None

    @property
    def filter_name(self) -> str:
        """The filter in the beam, as the spectrograph reports it (and the camera records it)."""
        data = self.spectrograph.event("reportedFilterPosition").get()
        return str(data["name"]) if data else "UNKNOWN"

    @property
    def grating_name(self) -> str:
        """The grating in the beam, as the spectrograph reports it."""
        data = self.spectrograph.event("reportedDisperserPosition").get()
        return str(data["name"]) if data else "UNKNOWN"

    @property
    def remotes(self) -> tuple[Remote, Remote]:
        return self.camera, self.spectrograph

    async def setup_instrument(self, filter_: str | int | None, grating: str | int | None) -> None:
        """Move the wheels where asked (None = leave as is), by name or slot; an unknown name fails with the list."""
        for command, field, target in (("changeFilter", "filter", filter_), ("changeDisperser", "disperser", grating)):
            if target is not None:
                data = {field: target} if isinstance(target, int) else {"name": target}
                await self.spectrograph.command(command, data, timeout_s=120)

    async def take_image(
        self, image_type: str, exptime_s: float, *, group_id: str, program: str = "", reason: str = "", note: str = ""
    ) -> str:
        """Take one image; return its OBSID."""
        ack = await self.camera.command(
            "takeImages",
            {
                "numImages": 1,
                "expTime": 0.0 if image_type == "BIAS" else exptime_s,
                "shutter": image_type not in SHUTTER_CLOSED_TYPES,
                "imageType": image_type,
                "groupId": group_id,
                "program": program,
                "reason": reason,
                "note": note,
            },
            timeout_s=exptime_s + READOUT_TIME_S + 120,
        )
        return ack.result.split(": ", 1)[-1]

    async def take_for(self, script: BaseScript, image_type: str, exptime_s: float) -> str:
        """Take one image labelled with the script's group id and its program, reason and note."""
        config = script.config  # Rubin's null program or reason is an empty one in the headers
        return await self.take_image(
            image_type, exptime_s, group_id=script.group_id, program=config.get("program") or "",
            reason=config.get("reason") or "", note=config.get("note") or "",
        )  # fmt: skip
