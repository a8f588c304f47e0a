"""What light reaches the detector, pure: the lamp on the screen, and the sky through the open dome.

The lamp: lamp x shutter x filter/grating x alignment of dome and mount with the screen. The sky
(`sky_flux_e_s`): twilight or night sky at the Sun's elevation (`obsq.csc.core.sky`) through the
filter and grating, when the main door is open and the dome's slit is before the telescope.

The LATISS procedure's numbers set the scale: a 6 s SDSSr_65mm flat at the default lamp
power, dome and screen aligned, gives about 27,000 ADU; once the dome is misaligned by more
than 1.5 deg the same flat falls below 10,000 ADU; saturation (~123,000 ADU) comes near 25 s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy.typing as npt

from obsq.csc.core.sky import twilight_e_s

#: Electrons/s/pixel through each filter (empty disperser) at the reference lamp power.
FILTER_RATES_E_S = {
    "empty_1": 25_000.0,
    "SDSSr_65mm": 4_700.0,
    "SDSSg_65mm": 4_000.0,
    "SDSSz_65mm": 9_000.0,
    "BG40_65mm_1": 6_000.0,
    "OG550_65mm_1": 8_000.0,
}
#: Throughput of what sits in the disperser wheel (SDSSy_65mm is a filter mounted there).
DISPERSER_THROUGHPUT = {
    "empty_1": 1.0,
    "SDSSy_65mm": 0.036,
    "holo4_003": 0.3,
    "ronchi170lpmm": 0.4,
    "blue300lpmm_qn1": 0.4,
}
UNKNOWN_ELEMENT_THROUGHPUT = 0.5
REFERENCE_POWER_W = 900.0

FLAT_DOME_AZIMUTH = 3.0
FLAT_MOUNT_AZIMUTH = 188.7
FLAT_MOUNT_ELEVATION = 39.0

#: The dome's slit lets the whole beam through within SLIT_FULL_DEG of the telescope's azimuth.
SLIT_FULL_DEG, SLIT_EDGE_DEG = 2.0, 4.0

LAMP_LIT_STATES = (2, 4)  # ON, WARMUP
SHUTTER_OPEN = 2


@dataclass(frozen=True)
class ObservatoryState:
    """What the camera's light depends on, as seen at one instant (None = unknown/not running)."""

    now_tai: float
    lamp_basic_state: int | None = None
    lamp_power_w: float = 0.0
    lamp_warmup_end_tai: float = 0.0
    lamp_shutter: int | None = None
    filter: str | None = None
    disperser: str | None = None
    dome_azimuth_true: float | None = None
    mount_azimuth: float | None = None
    mount_elevation: float | None = None
    #: The dome's main door fully open (ATDome mainDoorState OPENED).
    dome_open: bool = False
    #: The Sun's elevation (deg) at this instant; None when the dome is closed (not needed, not computed).
    sun_elevation: float | None = None
    #: Where a simulated mount really points (ATMCS simulationTruth): az, el (deg), tracking, and the ICRS
    #: ra, dec (deg) it follows while tracking.
    pointing: tuple[float, float, bool, float, float] | None = None


def alignment_factor(error_deg: float, full_deg: float, edge_deg: float) -> float:
    """1 within `full_deg`; falling to 0.3 at `edge_deg`; then exponentially to nothing.

    >>> alignment_factor(0.5, 1.0, 1.5), alignment_factor(1.5, 1.0, 1.5)
    (1.0, 0.3)
    """
    if error_deg <= full_deg:
        return 1.0
    if error_deg <= edge_deg:
        return 1.0 - 0.7 * (error_deg - full_deg) / (edge_deg - full_deg)
    return 0.3 * math.exp(-(error_deg - edge_deg) / 0.5)


def angle_error(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


def lamp_fraction(state: ObservatoryState, warmup_s: float) -> float:
    """Lamp output relative to a warm lamp: 0 when off, ramping 0 -> 1 through the warm-up."""
    if state.lamp_basic_state not in LAMP_LIT_STATES or state.lamp_power_w <= 0:
        return 0.0
    if warmup_s <= 0 or state.now_tai >= state.lamp_warmup_end_tai:
        return 1.0
    elapsed = warmup_s - (state.lamp_warmup_end_tai - state.now_tai)
    return min(1.0, max(0.0, elapsed / warmup_s))


def element_throughput(state: ObservatoryState) -> float:
    """Electrons/s/pixel through the filter and disperser in the beam, relative to SDSSr_65mm, empty disperser."""
    if state.filter is None or state.disperser is None:
        return 0.0
    rate = FILTER_RATES_E_S.get(state.filter, FILTER_RATES_E_S["empty_1"] * UNKNOWN_ELEMENT_THROUGHPUT)
    rate *= DISPERSER_THROUGHPUT.get(state.disperser, UNKNOWN_ELEMENT_THROUGHPUT)
    return rate / FILTER_RATES_E_S["SDSSr_65mm"]


def sky_throughput(state: ObservatoryState) -> float:
    """The sky's light reaching the detector relative to an open dome and SDSSr_65mm: 0 with the door shut."""
    if not state.dome_open or state.mount_elevation is None:
        return 0.0
    if state.dome_azimuth_true is None or state.mount_azimuth is None:
        return 0.0
    slit = alignment_factor(angle_error(state.dome_azimuth_true, state.mount_azimuth), SLIT_FULL_DEG, SLIT_EDGE_DEG)
    return element_throughput(state) * slit


def sky_flux_e_s(state: ObservatoryState) -> float:
    """Electrons/s/pixel the sky puts on the detector: none with the door shut or the slit away from the telescope."""
    if state.sun_elevation is None:
        return 0.0
    return twilight_e_s(state.sun_elevation) * sky_throughput(state)


def flat_flux_e_s(state: ObservatoryState, warmup_s: float = 900.0) -> float:
    """Electrons/s/pixel (before the flat pattern) the lamp puts on the detector right now."""
    if state.lamp_shutter != SHUTTER_OPEN:
        return 0.0
    fraction = lamp_fraction(state, warmup_s)
    if fraction == 0.0 or state.filter is None or state.disperser is None:
        return 0.0
    rate = element_throughput(state) * FILTER_RATES_E_S["SDSSr_65mm"]
    rate *= fraction * state.lamp_power_w / REFERENCE_POWER_W
    if state.dome_azimuth_true is None or state.mount_azimuth is None or state.mount_elevation is None:
        return 0.0
    dome_error = angle_error(state.dome_azimuth_true, FLAT_DOME_AZIMUTH)
    mount_error = max(
        angle_error(state.mount_azimuth, FLAT_MOUNT_AZIMUTH), abs(state.mount_elevation - FLAT_MOUNT_ELEVATION)
    )
    return rate * alignment_factor(dome_error, 1.0, 1.5) * alignment_factor(mount_error, 0.2, 0.5)


class Observatory(Protocol):
    """Where the camera learns what light reaches it."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def snapshot(self, now_tai: float) -> ObservatoryState: ...


@dataclass(frozen=True)
class Frame:
    """What a camera read out: its extensions (header, pixels) and the keywords it knows of itself.

    The simulated camera gives one extension per amplifier with its overscan; a real camera
    gives one assembled image. `keywords` go in the primary header (DETSIZE, CCD-TEMP, the
    device's gain, offset, readout mode, binning…); `darktime_s` is from the exposure's start
    to the end of its readout.
    """

    extensions: tuple[tuple[dict[str, Any], npt.NDArray[Any]], ...]
    keywords: dict[str, Any]
    darktime_s: float


class CameraDriver(Protocol):
    """The camera hardware as the service uses it: awaited (sim.py simulates it; alpaca.py drives a device).

    `integrate` returns when the exposure has ended (the shutter closed); `read_out` when the
    pixels are in memory. Either raises DeviceError (the camera refused, failed or did not
    answer) or ExpectedError (a readout the camera reported failed).
    """

    observatory: Observatory
    #: What drives it, for messages and deviceConnection: "simulated", or the device's address.
    device: str

    async def configure(self, config: dict[str, Any]) -> None:
        """Apply the camera configuration (the simulator's detector; a device connects)."""
        ...

    def readout_parameters(self) -> dict[str, Any]:
        """Rubin's imageReadoutParameters geometry fields (readRows, readCols, overRows, overCols…)."""
        ...

    async def integrate(self, exptime_s: float, shutter: bool, image_type: str) -> None: ...

    async def read_out(self, *, number: int, exptime_s: float, shutter: bool, start_tai: float,
                       state: ObservatoryState) -> Frame:  # fmt: skip
        """The frame of the exposure that began at `start_tai` (`number` seeds a simulator's noise)."""
        ...

    async def close(self) -> None: ...
