"""ATCamera service: takeImages as integrate -> read out -> write the file -> record it.

A sequence begins with notReadyToTakeImage and ends with readyToTakeImage. Each exposure
publishes, as Rubin's camera does: startIntegration, startShutterOpen and endShutterOpen (with
the shutter), awaits the driver's integration (the simulator waits the exposure time on the
clock; a device is polled), startShutterClose and endShutterClose, endTakeImage, startReadout
and imageReadoutParameters; awaits the driver's frame (the simulator's pixels are made in a
worker thread, a device's are downloaded), then writes the FITS file
atomically under `{data}/raw/{DAYOBS}/{OBSID}.fits` and records it in
`{data}/registry.sqlite3` (or the site's database); endReadout, imageStored,
largeFileObjectAvailable and endOfImageTelemetry follow once the file is in place.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from obsq.csc import __version__
from obsq.csc.acquired import AcquiredImage, AcquiredImages
from obsq.csc.atcamera.fits import build_hdus, write_atomic
from obsq.csc.atcamera.illumination import CameraDriver, Frame, ObservatoryState
from obsq.csc.clock import TAI_MINUS_UTC_S, day_obs, perf_counter
from obsq.csc.component import BaseCsc, Command
from obsq.csc.core.errors import DeviceError, ExpectedError
from obsq.csc.core.images import IMAGE_TYPES
from obsq.csc.core.states import State

#: Fault code of a failed readout.
READOUT_ERROR = 1
#: Fault code of a camera device that refused, failed or did not answer.
CAMERA_DEVICE_FAILED = 2
#: Rubin's ATCamera.CCDType of LATISS's sensor.
CCD_TYPE_ITL = 2

UNIX_EPOCH_MJD = 40587.0


@dataclass(frozen=True)
class ExposureRequest:
    """One exposure of a takeImages command."""

    image_type: str
    exptime_s: float
    shutter: bool
    group_id: str
    program: str
    reason: str
    note: str
    #: Rubin's keyValueMap as given, with the image type, group id, program and reason in effect.
    additional: tuple[tuple[str, str], ...] = ()

    def additional_fields(self) -> dict[str, str]:
        r"""Rubin's additionalKeys/additionalValues: ':'-delimited, a ':' inside one written '\:'."""

        def join(items: list[str]) -> str:
            return ":".join(item.replace(":", "\\:") for item in items)

        return {"additionalKeys": join([k for k, _ in self.additional]),
                "additionalValues": join([v for _, v in self.additional])}  # fmt: skip


def parse_key_value_map(text: str) -> dict[str, str]:
    """Rubin's keyValueMap, `imageType: FLAT, groupId: 2026-12-02T10:00:00.000, reason: x`, as a dict."""
    found: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, colon, value = part.partition(":")
        if not colon or not key.strip():
            raise ExpectedError(f"takeImages: keyValueMap entry {part[:80]!r} is not 'key: value' (rule: keyValueMap)")
        found[key.strip()] = value.strip()
    return found


def check_request(data: dict[str, Any]) -> ExposureRequest:
    """The rules of image types; ExpectedError names the broken one.

    Rubin's clients give imageType, groupId, reason and program in keyValueMap and the note as
    obsNote; obsq's own fields say the same. A field wins over keyValueMap.
    """
    extra = parse_key_value_map(data.get("keyValueMap", ""))
    kind = (data.get("imageType") or extra.get("imageType", "")).upper()
    if not kind:
        raise ExpectedError("takeImages: no image type: give imageType, or 'imageType: FLAT' in keyValueMap")
    if kind not in IMAGE_TYPES:
        raise ExpectedError(f"takeImages: image type {kind!r} is not one of {', '.join(IMAGE_TYPES)}")
    exptime, shutter = data["expTime"], data["shutter"]
    if kind == "BIAS" and (exptime != 0 or shutter):
        raise ExpectedError(
            f"a BIAS needs expTime 0 and the shutter closed (got expTime {exptime:g}, shutter {shutter})"
        )
    if kind == "DARK" and shutter:
        raise ExpectedError("a DARK needs the shutter closed (shutter=false)")
    if kind not in ("BIAS", "DARK") and (exptime <= 0 or not shutter):
        raise ExpectedError(
            f"a {kind} needs expTime > 0 and the shutter open (got expTime {exptime:g}, shutter {shutter})"
        )

    def field(name: str) -> str:
        return str(data.get(name) or extra.get(name, ""))[:64]

    note = data.get("note") or data.get("obsNote", "")
    labels = {"imageType": kind, "groupId": field("groupId"), "program": field("program"), "reason": field("reason")}
    additional = {**extra, **{key: value for key, value in labels.items() if value}}
    return ExposureRequest(
        kind, exptime, shutter, labels["groupId"], labels["program"], labels["reason"], note,
        tuple(additional.items()),
    )  # fmt: skip


def tai_to_utc(tai: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(tai - TAI_MINUS_UTC_S, tz=datetime.UTC)


@dataclass(frozen=True)
class Exposure:
    """One exposure being taken: what was asked, its name and when it began."""

    request: ExposureRequest
    obsid: str
    dayobs: int
    seqnum: int
    start_tai: float
    darktime_s: float = 0.0


def primary_header(exposure: Exposure, state: ObservatoryState, camera: dict[str, Any]) -> dict[str, Any]:
    """The exposure's keywords, then what the camera says of itself (`Frame.keywords`).

    The camera's keywords may not replace the exposure's, except ORIGIN (a simulated camera says so).
    """
    request = exposure.request
    start = tai_to_utc(exposure.start_tai)
    exposure_keywords = {
        "TELESCOP": "AuxTel",
        "INSTRUME": "LATISS",
        "ORIGIN": f"obsq {__version__}",
        "OBSID": exposure.obsid,
        "DAYOBS": exposure.dayobs,
        "SEQNUM": exposure.seqnum,
        "IMGTYPE": request.image_type,
        "EXPTIME": request.exptime_s,
        "DARKTIME": round(exposure.darktime_s, 6),
        "SHUTTER": "OPEN" if request.shutter else "CLOSED",
        "FILTER": state.filter or "UNKNOWN",
        "GRATING": state.disperser or "UNKNOWN",
        "DATE-OBS": start.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3],
        "MJD-OBS": round((exposure.start_tai - TAI_MINUS_UTC_S) / 86400.0 + UNIX_EPOCH_MJD, 8),
        "GROUPID": request.group_id,
        "PROGRAM": request.program,
        "REASON": request.reason,
        "OBSNOTE": request.note,
    }
    own = {key: value for key, value in camera.items() if key not in exposure_keywords or key == "ORIGIN"}
    return exposure_keywords | own


class ATCameraCsc(BaseCsc):
    """The LATISS camera."""

    def __init__(
        self, *, driver: CameraDriver, data_dir: Path, index: int = 0, registry: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__("ATCamera", index=index, **kwargs)
        self.driver = driver
        self.data_dir = Path(data_dir).absolute()
        #: the acquired-images registry: a path or the site's database URL
        self.registry_target = registry or str(self.data_dir / "registry.sqlite3")
        self.registry: AcquiredImages | None = None
        self.readout_time_s = 2.0
        self._observing = False
        self.register_command("takeImages", self._do_take_images)

    device_fault_codes = frozenset({CAMERA_DEVICE_FAILED})

    def devices(self) -> str:
        return self.driver.device

    async def configure(self, config: dict[str, Any]) -> None:
        try:
            await self.driver.configure(config)
        except DeviceError as exc:
            await self.fault(CAMERA_DEVICE_FAILED, f"the camera could not be reached: {exc}")
            raise ExpectedError(f"the camera could not be reached: {exc}") from None
        self.readout_time_s = config["readout_time"]

    async def handle_summary_state(self) -> None:
        if self.summary_state in (State.DISABLED, State.ENABLED):
            if self.registry is None:
                self.registry = await self.clock.to_thread(AcquiredImages, self.registry_target)
            if not self._observing:
                await self.driver.observatory.start()
                self._observing = True
            if self.summary_state == State.ENABLED:
                await self._mark("readyToTakeImage")
        elif self._observing and self.summary_state == State.STANDBY:
            await self.driver.observatory.close()
            self._observing = False

    async def _do_take_images(self, command: Command) -> str:
        request = check_request(command.data)
        count = command.data["numImages"]
        per_image = request.exptime_s + self.readout_time_s + 10.0
        await command.in_progress(count * per_image, f"taking {count} {request.image_type}")
        await self._mark("notReadyToTakeImage")
        try:
            names = [await self._take_one(command, request, index, count) for index in range(1, count + 1)]
        finally:
            await self._mark("readyToTakeImage")
        return f"took {count} {request.image_type}: {names[0]}" + (f" .. {names[-1]}" if count > 1 else "")

    async def _mark(self, event: str) -> None:
        """One of Rubin's camera events that carry only the time of the transition."""
        await self.publish_event(event, {"timestampTransition": self.clock.tai()}, force=True)

    def _image_fields(self, exposure: Exposure, index: int, count: int) -> dict[str, Any]:
        """The fields Rubin's camera gives every event about one image of a sequence."""
        return {
            "imageName": exposure.obsid, "imageIndex": index, "imagesInSequence": count,
            "imageSource": "AT", "imageController": "O", "imageDate": str(exposure.dayobs),
            "imageNumber": exposure.seqnum, "timestampAcquisitionStart": exposure.start_tai,
            **exposure.request.additional_fields(),
        }  # fmt: skip

    async def _take_one(self, command: Command, request: ExposureRequest, index: int, count: int) -> str:
        assert self.registry is not None
        dayobs = day_obs(self.clock.tai())
        async with self.keep_alive(command, lambda: f"numbering image {index} of {count} (the registry)"):
            seqnum = await self.clock.to_thread(self.registry.next_seqnum, dayobs)  # waits out a database outage
        start = self.clock.tai()
        exposure = Exposure(request, f"AT_O_{dayobs}_{seqnum:06d}", dayobs, seqnum, start)
        obsid = exposure.obsid
        fields = self._image_fields(exposure, index, count)
        await self.publish_event(
            "startIntegration",
            {**fields, "exposureTime": request.exptime_s, "imageType": request.image_type,
             "groupId": request.group_id, "mode": "NORMAL", "timeout": request.exptime_s + self.readout_time_s},
        )  # fmt: skip
        state = self.driver.observatory.snapshot(start + request.exptime_s / 2)  # the light at mid-exposure
        if request.shutter:
            await self._mark("startShutterOpen")
            await self._mark("endShutterOpen")
        number = exposure.seqnum + 1_000_000 * (exposure.dayobs % 10_000)  # unique per exposure: a simulator's seed
        try:
            await self.driver.integrate(request.exptime_s, request.shutter, request.image_type)
            if request.shutter:
                await self._mark("startShutterClose")
                await self._mark("endShutterClose")
            end_tai = self.clock.tai()
            await self._mark("endTakeImage")
            await self.publish_event(
                "startReadout", {**fields, "exposureTime": request.exptime_s, "timestampStartOfReadout": end_tai}
            )
            await self.publish_event("imageReadoutParameters", self._readout_parameters(obsid))
            async with self.keep_alive(command, lambda: f"reading out {obsid} ({index} of {count})"):  # real time
                frame = await self.driver.read_out(number=number, exptime_s=request.exptime_s,
                                                   shutter=request.shutter, start_tai=start, state=state)  # fmt: skip
        except DeviceError as exc:
            await self.fault(CAMERA_DEVICE_FAILED, f"{obsid}: {exc}")
            raise ExpectedError(f"{obsid}: {exc}") from None
        except ExpectedError as exc:
            await self.fault(READOUT_ERROR, f"{obsid}: {exc}")
            raise
        exposure = replace(exposure, darktime_s=frame.darktime_s)
        t0 = perf_counter()
        async with self.keep_alive(command, lambda: f"writing {obsid} ({index} of {count})"):  # real time: a file
            image = await self.clock.to_thread(self._write, exposure, state, frame)
        write_ms = (perf_counter() - t0) * 1e3
        await self.publish_event(
            "endReadout",
            {**fields, "requestedExposureTime": request.exptime_s, "timestampEndOfReadout": self.clock.tai()},
        )
        await self.publish_event("imageStored", {"imageName": obsid, "timestampImageStored": self.clock.tai()})
        await self.publish_event(
            "largeFileObjectAvailable",
            {"url": f"file://{image.path}", "generator": "ATCamera", "version": 1, "byteSize": image.byte_size,
             "checkSum": image.md5, "mimeType": "image/fits", "id": obsid},
        )  # fmt: skip
        await self.publish_event("endOfImageTelemetry", {
            **fields, "exposureTime": request.exptime_s, "imageTag": "", "emulatedImage": "",
            "timestampDateObs": start, "timestampDateEnd": end_tai,
            "measuredShutterOpenTime": request.exptime_s if request.shutter else 0.0,
            "darkTime": exposure.darktime_s,
        })  # fmt: skip
        self.log.info(
            "image_written", obsid=obsid, imgtype=request.image_type, exptime=request.exptime_s,
            write_ms=round(write_ms, 1),
        )  # fmt: skip
        return obsid

    def _readout_parameters(self, obsid: str) -> dict[str, Any]:
        """Rubin's imageReadoutParameters for the one CCD of LATISS, with the geometry the camera gives."""
        return {
            "imageName": obsid, "ccdLocation": "R00S00", "raftBay": "R00", "ccdSlot": "S00", "ccdType": CCD_TYPE_ITL,
            "readRows": 0, "readCols": 0, "readCols2": 0, "overRows": 0, "overCols": 0,
            "preRows": 0, "preCols": 0, "postCols": 0, "underCols": 0, "daqFolder": "raw", "daqAnnotation": "",
        } | self.driver.readout_parameters()  # fmt: skip

    def _write(self, exposure: Exposure, state: ObservatoryState, frame: Frame) -> AcquiredImage:
        """Write the frame's file, record it (runs in a worker thread)."""
        assert self.registry is not None
        request = exposure.request
        header = primary_header(exposure, state, frame.keywords)
        hdus = build_hdus(header, list(frame.extensions))
        written = write_atomic(self.data_dir / "raw" / str(exposure.dayobs) / f"{exposure.obsid}.fits", hdus)
        image = AcquiredImage(
            obsid=exposure.obsid, dayobs=exposure.dayobs, seqnum=exposure.seqnum, path=str(written.path),
            imgtype=request.image_type, exptime=request.exptime_s, darktime=exposure.darktime_s,
            filter=header["FILTER"], grating=header["GRATING"], groupid=request.group_id, program=request.program,
            reason=request.reason, note=request.note, date_obs=header["DATE-OBS"], mjd_obs=header["MJD-OBS"],
            byte_size=written.byte_size, md5=written.md5,
        )  # fmt: skip
        self.registry.record(image)
        return image

    async def _publish_goodbye(self) -> None:
        await self.driver.close()
        await super()._publish_goodbye()
