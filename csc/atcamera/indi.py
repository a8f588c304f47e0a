"""The camera on an INDI CCD (issue 24): INDI's standard CCD properties and the image as a FITS BLOB.

INDI has image types (CCD_FRAME_TYPE: FRAME_LIGHT, FRAME_BIAS, FRAME_DARK, FRAME_FLAT): each
exposure sets its type, then CCD_EXPOSURE. The driver answers Busy while it exposes and reads
out, sends the image as the BLOB CCD1 (a FITS file, base64 in the XML stream; obsq asks for
BLOBs with enableBLOB), then Ok; Alert with a message if it fails. The image is the BLOB's
primary HDU; the keywords INDI's own FITS header carries about the camera (CCD-TEMP, GAIN,
OFFSET, binning, pixel size, INSTRUME as the sensor) go in the primary header.
"""

from __future__ import annotations

import base64
import binascii
import io
from typing import Any

import numpy as np
from astropy.io import fits

from obsq.csc.atcamera.illumination import Frame, Observatory, ObservatoryState
from obsq.csc.core.errors import DeviceError
from obsq.csc.indi.client import IndiConnection, alert

EXPOSURE, EXPOSURE_VALUE, FRAME_TYPE, BLOB, FRAME = (
    "CCD_EXPOSURE",
    "CCD_EXPOSURE_VALUE",
    "CCD_FRAME_TYPE",
    "CCD1",
    "CCD_FRAME",
)
#: obsq's image types as INDI's frame types (the rest are lights).
FRAME_TYPES = {"BIAS": "FRAME_BIAS", "DARK": "FRAME_DARK", "FLAT": "FRAME_FLAT"}
#: Real seconds for the device to define its properties and to connect.
CONNECT_WAIT_S = 15.0
#: Real seconds past the exposure time for the image to arrive (readout, the transfer).
READOUT_TIMEOUT_S = 120.0
#: Keywords of INDI's own FITS header kept: theirs -> obsq's.
INDI_KEYWORDS = {"CCD-TEMP": "CCD-TEMP", "GAIN": "GAIN", "OFFSET": "OFFSET", "XBINNING": "XBINNING",
                 "YBINNING": "YBINNING", "XPIXSZ": "XPIXSZ", "YPIXSZ": "YPIXSZ", "INSTRUME": "SENSOR"}  # fmt: skip


class IndiCamera:
    """One INDI CCD as the camera service's CameraDriver."""

    def __init__(self, connection: IndiConnection, device: str, observatory: Observatory) -> None:
        self.observatory = observatory
        self.link = connection
        self.name_on_server = device
        self.device = f"{connection.where}/{device}"
        self.size = (0, 0)
        self._image_type = ""
        self._blobs_before = 0
        self._integration_end_tai = 0.0

    async def configure(self, config: dict[str, Any]) -> None:
        link, device = self.link, self.name_on_server
        await link.connect_device(device, CONNECT_WAIT_S, EXPOSURE, FRAME_TYPE, BLOB)
        await link.receive_blobs(device)
        frame = link.vector(device, FRAME)
        if frame is not None and {"WIDTH", "HEIGHT"} <= frame.values.keys():
            self.size = (round(frame.number("HEIGHT")), round(frame.number("WIDTH")))

    def readout_parameters(self) -> dict[str, Any]:
        rows, cols = self.size
        return {"readRows": rows, "readCols": cols}

    async def integrate(self, exptime_s: float, shutter: bool, image_type: str) -> None:
        link, device = self.link, self.name_on_server
        self._image_type = image_type
        kind = FRAME_TYPES.get(image_type, "FRAME_LIGHT")
        await link.send(device, FRAME_TYPE, "Switch", {k: k == kind for k in ("FRAME_LIGHT", *FRAME_TYPES.values())})
        exposure = link.vector(device, EXPOSURE)
        if exposure is None:
            raise DeviceError(f"{self.device}: the device has no {EXPOSURE} (disconnected?)")
        minimum = float(exposure.attributes.get(EXPOSURE_VALUE, {}).get("min", "0") or 0)
        self._blobs_before = link.generations[(device, BLOB)]
        exposure.state = "Busy"  # until the driver answers this request
        await link.send(device, EXPOSURE, "Number", {EXPOSURE_VALUE: max(exptime_s, minimum)})
        # INDI counts the exposure down while Busy; the image follows it: the integration is over when
        # the count reaches 0, the property leaves Busy, or the image is already here
        await link.wait_until(
            lambda: exposure.state != "Busy" or link.generations[(device, BLOB)] > self._blobs_before
            or _left(exposure) <= 0.0,
            max(exptime_s, minimum) + READOUT_TIMEOUT_S, f"{device}'s {max(exptime_s, minimum):g} s exposure",
        )  # fmt: skip
        if exposure.state == "Alert":
            raise alert(link, exposure, "exposing")
        self._integration_end_tai = link.clock.tai()

    async def read_out(
        self, *, number: int, exptime_s: float, shutter: bool, start_tai: float, state: ObservatoryState
    ) -> Frame:
        link, device = self.link, self.name_on_server
        exposure = link.vector(device, EXPOSURE)
        await link.wait_until(
            lambda: link.generations[(device, BLOB)] > self._blobs_before
            or (exposure is not None and exposure.state == "Alert"),
            READOUT_TIMEOUT_S, f"{device}'s image ({BLOB})",
        )  # fmt: skip
        if (
            exposure is not None
            and exposure.state == "Alert"
            and link.generations[(device, BLOB)] == self._blobs_before
        ):
            raise alert(link, exposure, "reading out")
        blob = link.vector(device, BLOB)
        assert blob is not None
        pixels, keywords = _image(blob.values, blob.attributes, self.device)
        keywords |= {"CAMERA": self.device, "DETSIZE": f"[1:{pixels.shape[-1]},1:{pixels.shape[-2]}]"}
        darktime_s = max(exptime_s, self._integration_end_tai - start_tai)
        return Frame((({"EXTNAME": "IMAGE"}, pixels),), keywords, darktime_s)

    async def close(self) -> None:
        await self.link.close()


def _left(exposure: Any) -> float:
    try:
        return float(exposure.number(EXPOSURE_VALUE))
    except (KeyError, ValueError):
        return 1.0


def _image(values: dict[str, str], attributes: dict[str, dict[str, str]], device: str) -> tuple[Any, dict[str, Any]]:
    """The image in a CCD1 BLOB and the camera's keywords from its FITS header; DeviceError if it is not one."""
    if not values:
        raise DeviceError(f"{device}: the image BLOB {BLOB} is empty")
    name, text = next(iter(values.items()))
    form = attributes.get(name, {}).get("format", "")
    if form not in (".fits", "fits"):
        raise DeviceError(
            f"{device}: the image came as {form or 'an unnamed format'!r}; obsq reads .fits (the default)"
        )
    try:
        raw = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DeviceError(f"{device}: the image BLOB is not base64 ({exc})") from None
    try:
        with fits.open(io.BytesIO(raw), memmap=False) as hdus:
            hdu = next((h for h in hdus if h.data is not None and h.data.ndim in (2, 3)), None)
            if hdu is None:
                raise DeviceError(f"{device}: the image's FITS file holds no 2-D image")
            data = np.array(hdu.data)
            header = hdus[0].header
            keywords = {ours: header[theirs] for theirs, ours in INDI_KEYWORDS.items() if theirs in header}
    except (OSError, ValueError) as exc:
        raise DeviceError(f"{device}: the image is not a FITS file astropy reads ({exc})") from None
    if data.dtype.kind in "iu" and data.min() >= 0 and data.max() <= 65535:
        data = data.astype(np.uint16)
    return data, {k: v for k, v in keywords.items() if isinstance(v, int | float | str) and not isinstance(v, bool)}
