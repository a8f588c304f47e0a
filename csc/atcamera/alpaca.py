"""The camera on an ASCOM Alpaca Camera (issue 24): StartExposure, the camera's state, ImageBytes.

Alpaca has no image type: a BIAS is a dark (`Light` false) of the camera's shortest exposure,
a DARK a dark of its time, anything with the shutter open a light. `integrate` starts the
exposure and polls `camerastate` until the camera has stopped exposing; `read_out` polls
`imageready` and downloads the frame (ImageBytes where the server has it). The frame is one
assembled image, no amplifier segments or overscan; its header gets what the camera says of
itself (sensor temperature and set point, gain, offset, e⁻/ADU, binning, readout mode, pixel
size, the sensor's name), each left out where the camera does not implement it. Alpaca gives no
dark time: DARKTIME is the exposure's duration as the camera reports it (LastExposureDuration),
so exposures of one time pair up for the noise measurements whatever the polling's jitter.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from obsq.csc.alpaca.address import AlpacaAddress
from obsq.csc.alpaca.client import CALL_TIMEOUT_S, AlpacaDevice
from obsq.csc.alpaca.pace import Pace
from obsq.csc.alpaca.protocol import AlpacaError
from obsq.csc.atcamera.illumination import Frame, Observatory, ObservatoryState
from obsq.csc.clock import Clock
from obsq.csc.core.errors import DeviceError, DeviceTimeoutError

#: Alpaca's CameraState values.
IDLE, WAITING, EXPOSING, READING, DOWNLOAD, ERROR = range(6)
#: Seconds between two readings of the camera's state (at the device's pace: csc/alpaca/pace.py).
POLL_S = 0.1
#: Seconds past the exposure time for the camera to stop exposing.
INTEGRATION_MARGIN_S = 30.0
#: Seconds for the image to be ready once the exposure has ended (readout, the server's own work).
READOUT_TIMEOUT_S = 120.0
#: The device's values written in the primary header: Alpaca member -> keyword.
DEVICE_KEYWORDS = {
    "ccdtemperature": "CCD-TEMP", "setccdtemperature": "SET-TEMP", "gain": "GAIN", "offset": "OFFSET",
    "electronsperadu": "EGAIN", "binx": "XBINNING", "biny": "YBINNING", "pixelsizex": "XPIXSZ",
    "pixelsizey": "YPIXSZ", "sensorname": "SENSOR",
}  # fmt: skip
#: The image types other software writes (MaxIm DL, N.I.N.A.), for the tools that read IMAGETYP.
IMAGETYP = {"BIAS": "Bias Frame", "DARK": "Dark Frame", "FLAT": "Flat Field"}


class AlpacaCamera:
    """One Alpaca Camera as the camera service's CameraDriver."""

    def __init__(
        self,
        address: AlpacaAddress,
        observatory: Observatory,
        clock: Clock,
        *,
        call_timeout_s: float = CALL_TIMEOUT_S,
        poll_s: float = POLL_S,
    ) -> None:
        self.observatory = observatory
        self.alpaca = AlpacaDevice(address, call_timeout_s=call_timeout_s)
        self.device = str(address)
        self.clock = clock
        self.pace = Pace(clock, poll_s)
        self.poll_s = poll_s
        self.size = (0, 0)
        self.exposure_min_s = 0.0
        self.readout_mode = ""
        self._image_type = ""

    async def configure(self, config: dict[str, Any]) -> None:
        """Connect the camera and read what it is: its size, shortest exposure, readout mode."""
        await self.alpaca.put("connected", Connected=True)
        self.size = (int(await self.alpaca.get("cameraysize")), int(await self.alpaca.get("cameraxsize")))
        self.exposure_min_s = float(await self._optional("exposuremin") or 0.0)
        modes, mode = await self._optional("readoutmodes"), await self._optional("readoutmode")
        in_range = isinstance(modes, list) and isinstance(mode, int) and 0 <= mode < len(modes)
        self.readout_mode = str(modes[mode]) if in_range else ""

    def readout_parameters(self) -> dict[str, Any]:
        rows, cols = self.size
        return {"readRows": rows, "readCols": cols}

    async def integrate(self, exptime_s: float, shutter: bool, image_type: str) -> None:
        self._image_type = image_type
        duration = max(exptime_s, self.exposure_min_s)
        await self._idle()
        await self.alpaca.put("startexposure", Duration=duration, Light=shutter)
        deadline = self.pace.deadline(duration + INTEGRATION_MARGIN_S, real_work=True)
        while True:
            state = await self.alpaca.get("camerastate")
            if state == ERROR:
                raise DeviceError(f"{self.device}: the camera reports an error (CameraState 5) while exposing")
            if state not in (WAITING, EXPOSING):
                break
            if deadline.passed:
                raise DeviceTimeoutError(
                    f"{self.device}: the camera still exposes {duration + INTEGRATION_MARGIN_S:g} s after a"
                    f" {duration:g} s exposure began"
                )
            await self.pace.pause()

    async def read_out(
        self, *, number: int, exptime_s: float, shutter: bool, start_tai: float, state: ObservatoryState
    ) -> Frame:
        deadline = self.pace.deadline(READOUT_TIMEOUT_S, real_work=True)
        while not await self.alpaca.get("imageready"):
            if await self.alpaca.get("camerastate") == ERROR:
                raise DeviceError(f"{self.device}: the camera reports an error (CameraState 5) in its readout")
            if deadline.passed:
                raise DeviceTimeoutError(f"{self.device}: no image ready {READOUT_TIMEOUT_S:g} s after the exposure")
            await self.pace.pause()
        pixels = _as_counts(await self.alpaca.image(), self.device)
        keywords = await self._keywords(self._image_type)
        reported = await self._optional("lastexposureduration")
        is_number = isinstance(reported, int | float) and not isinstance(reported, bool) and reported >= 0
        darktime_s = max(exptime_s, float(reported)) if is_number else exptime_s  # the device's, not a poll's jitter
        return Frame((({"EXTNAME": "IMAGE"}, pixels),), keywords, darktime_s)

    async def close(self) -> None:
        await self.alpaca.close()

    async def _idle(self) -> None:
        """The camera idle before an exposure.

        One left running (a request delivered late, after the device came back) is aborted where
        the camera can, and waited out where it cannot.
        """
        state = await self.alpaca.get("camerastate")
        if state in (IDLE, ERROR):
            return
        try:
            await self.alpaca.put("abortexposure")
        except AlpacaError as exc:
            if exc.number not in (0x400, 0x40B):  # NotImplemented, InvalidOperation: wait it out instead
                raise
        deadline = self.pace.deadline(INTEGRATION_MARGIN_S, real_work=True)
        while (state := await self.alpaca.get("camerastate")) not in (IDLE, ERROR):
            if deadline.passed:
                raise DeviceTimeoutError(f"{self.device}: the camera is still busy (CameraState {state}) after"
                                         f" {INTEGRATION_MARGIN_S:g} s; no exposure was started")  # fmt: skip
            await self.pace.pause()

    async def _keywords(self, image_type: str) -> dict[str, Any]:
        rows, cols = self.size
        keywords: dict[str, Any] = {"DETSIZE": f"[1:{cols},1:{rows}]", "CAMERA": self.device}
        keywords["IMAGETYP"] = IMAGETYP.get(image_type, "Light Frame")
        for member, keyword in DEVICE_KEYWORDS.items():
            value = await self._optional(member)
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                continue
            keywords[keyword] = value[:68] if isinstance(value, str) else value
        if self.readout_mode:
            keywords["READOUTM"] = self.readout_mode[:68]
        return keywords

    async def _optional(self, member: str) -> Any:
        """A value the camera may not have: None where it says NotImplemented or has no value yet."""
        try:
            return await self.alpaca.get(member)
        except AlpacaError as exc:
            if exc.number in (0x400, 0x402):  # NotImplemented, ValueNotSet
                return None
            raise


def _as_counts(image: npt.NDArray[np.generic], device: str) -> npt.NDArray[Any]:
    """The image as unsigned 16-bit counts where it fits (most cameras), else 32-bit integers; numbers only."""
    if image.dtype.kind not in "iuf" or image.ndim not in (2, 3) or 0 in image.shape:
        raise DeviceError(f"{device} GET imagearray: an image of {image.dtype} {image.shape} is not a frame")
    if image.dtype.kind == "f":
        return image.astype(np.float32)
    low, high = int(image.min()), int(image.max())
    return image.astype(np.uint16) if low >= 0 and high <= 65535 else image.astype(np.int32)
