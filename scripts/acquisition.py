"""Finding a star in an image and putting it where it is wanted: what acquisition and pointing scripts share.

An image is read from the file the camera announced (as Rubin's scripts read it from the
butler), each amplifier's overscan median taken off and placed at its DETSEC, in electrons.
The brightest star is the highest peak of the image smoothed over a seeing disc, if it stands
DETECTION_SIGMA robust standard deviations above the background; its centroid is the
background-free first moment within CENTROID_RADIUS_PX.

On LATISS here (no rotator) the detector's columns run with azimuth on the sky and its rows
with elevation, so an x/y offset is an azimuth/elevation offset (`offset_xy`).
"""

from __future__ import annotations

import math
import re

import numpy as np
import numpy.typing as npt

from obsq.csc.component import Remote
from obsq.csc.core.errors import ExpectedError
from obsq.csc.core.starfield import PLATE_SCALE_ARCSEC
from obsq.csc.reduction.frames import open_frame

DETECTION_SIGMA = 10.0
SMOOTH_PX = 5
CENTROID_RADIUS_PX = 15
_SECTION = re.compile(r"^\[(\d+):(\d+),(\d+):(\d+)\]$")


def assembled(path: str) -> npt.NDArray[np.float64]:
    """The image of a raw file in electrons above the bias, its amplifiers placed where DETSEC says."""
    from astropy.io import fits

    frame = open_frame(path)
    with fits.open(frame.pixels) as hdus:  # the planes are the file's images, in order
        detsecs = [str(hdu.header.get("DETSEC", "")) for hdu in hdus if hdu.header.get("NAXIS", 0) >= 2]
    if len(detsecs) != len(frame.planes):
        detsecs = [""] * len(frame.planes)
    pieces = []
    for plane, detsec in zip(frame.planes, detsecs, strict=True):
        raw = frame.read(plane).astype(np.float64)
        bias = float(np.median(raw[plane.overscan])) if plane.overscan else 0.0
        pieces.append((detsec, (raw[plane.data] - bias) * (plane.gain or 1.0)))
    if len(pieces) == 1:
        return pieces[0][1]
    placed = []
    for detsec, data in pieces:
        match = _SECTION.match(detsec.replace(" ", ""))
        if match is None:
            raise ExpectedError(f"{path}: an amplifier has no DETSEC ({detsec!r}): its place is not known")
        x1, x2, y1, y2 = (int(v) for v in match.groups())
        flipped = data[:: -1 if y1 > y2 else 1, :: -1 if x1 > x2 else 1]
        placed.append((min(y1, y2) - 1, min(x1, x2) - 1, flipped))
    ny = max(y + d.shape[0] for y, _, d in placed)
    nx = max(x + d.shape[1] for _, x, d in placed)
    image = np.zeros((ny, nx))
    for y, x, data in placed:
        image[y : y + data.shape[0], x : x + data.shape[1]] = data
    return image


def median_electrons(path: str) -> float:
    """An image's level: each amplifier's median less its overscan median, times its gain, averaged (electrons)."""
    frame = open_frame(path)
    levels = []
    for plane in frame.planes:
        raw = frame.read(plane)
        bias = float(np.median(raw[plane.overscan])) if plane.overscan else 0.0
        levels.append((float(np.median(raw[plane.data])) - bias) * (plane.gain or 1.0))
    return sum(levels) / len(levels)


def _smoothed(image: npt.NDArray[np.float64], size: int) -> npt.NDArray[np.float64]:
    """Box mean over size x size pixels (valid region, shifted to the centre), by cumulative sums."""
    sums = np.pad(image, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    box = sums[size:, size:] - sums[:-size, size:] - sums[size:, :-size] + sums[:-size, :-size]
    out = np.zeros_like(image)
    half = size // 2
    out[half : half + box.shape[0], half : half + box.shape[1]] = box / size**2
    return out


def brightest_star(image: npt.NDArray[np.float64]) -> tuple[float, float] | None:
    """(x, y) in pixels (0-based, pixel centres at .5) of the brightest star, or None if nothing stands out."""
    background = float(np.median(image))
    sigma = 1.4826 * float(np.median(np.abs(image - background)))
    smooth = _smoothed(image - background, SMOOTH_PX)
    iy, ix = np.unravel_index(int(np.argmax(smooth)), smooth.shape)
    if smooth[iy, ix] < DETECTION_SIGMA * max(sigma, 1.0) / SMOOTH_PX:
        return None
    r = CENTROID_RADIUS_PX
    y0, y1, x0, x1 = max(0, iy - r), min(image.shape[0], iy + r + 1), max(0, ix - r), min(image.shape[1], ix + r + 1)
    cut = np.clip(image[y0:y1, x0:x1] - background, 0.0, None)
    total = float(cut.sum())
    ys, xs = np.mgrid[y0:y1, x0:x1]
    return float((xs * cut).sum() / total) + 0.5, float((ys * cut).sum() / total) + 0.5


def offset_to_centre(path: str) -> tuple[float, float] | None:
    """The x/y offset (arcsec) that brings the brightest star of an image to the detector's centre."""
    image = assembled(path)
    star = brightest_star(image)
    if star is None:
        return None
    ny, nx = image.shape
    return (star[0] - nx / 2) * PLATE_SCALE_ARCSEC, (star[1] - ny / 2) * PLATE_SCALE_ARCSEC


class Pointing:
    """Offsets of the telescope through the mount (ATMCS offsetAzEl/resetOffsets, ATPtg's commands here)."""

    def __init__(self, mount: Remote) -> None:
        self.mount = mount

    async def offset_azel(self, az: float, el: float, *, relative: bool = True, absorb: bool = False) -> None:
        await self.mount.command("offsetAzEl", {"az": az, "el": el, "relative": relative, "absorb": absorb},
                                 timeout_s=120)  # fmt: skip

    async def offset_xy(self, x: float, y: float, *, relative: bool = True, absorb: bool = False) -> None:
        """Camera x/y (arcsec): azimuth on the sky and elevation on LATISS here (no rotator)."""
        await self.offset_azel(x, y, relative=relative, absorb=absorb)

    async def offset_radec(self, ra: float, dec: float, tai: float) -> None:
        """An offset in RA (on the sky) and Dec (arcsec), turned into az/el where the mount points at `tai`."""
        from obsq.scripts.sky import altaz, radec

        where = await self.mount.event("mountPosition").aget(timeout_s=15)
        azimuth, elevation = where["azimuth"], where["elevation"]
        ra0, dec0 = radec(azimuth, elevation, tai)
        moved = altaz(ra0 + ra / 3600.0 / max(math.cos(math.radians(dec0)), 1e-6), dec0 + dec / 3600.0, tai)
        d_az = ((moved[0] - azimuth + 180.0) % 360.0 - 180.0) * math.cos(math.radians(elevation)) * 3600.0
        await self.offset_azel(d_az, (moved[1] - elevation) * 3600.0)

    async def reset(self, *, absorbed: bool = True, non_absorbed: bool = True) -> None:
        await self.mount.command("resetOffsets", {"absorbed": absorbed, "nonAbsorbed": non_absorbed}, timeout_s=120)


def pa_offset(angle_deg: float, radius_arcsec: float) -> tuple[float, float]:
    """(RA on the sky, Dec) offsets in arcsec of a position angle (from North through East) and radius."""
    angle = math.radians(angle_deg)
    return radius_arcsec * math.sin(angle), radius_arcsec * math.cos(angle)
