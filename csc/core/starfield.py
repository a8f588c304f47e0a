"""The simulated sky's stars, pure: a synthetic catalogue, and the image a field of it makes on the detector.

The catalogue is the same for every run: the sky is cut in cells of CELL_DEG (in RA, widened by
1/cos(dec) so each cell covers the same area) and each cell holds a Poisson number of stars,
STARS_PER_CELL on average, of magnitude uniform in MAG_RANGE, all drawn from a generator seeded
by the cell. A field of LATISS's small simulated detector (49" across) holds about six.

The named stars Rubin's AuxTel blocks observe are in it too, at the positions the blocks give
(NAMED_STARS): their magnitudes are assumptions, not measurements — V 7 for the Henry Draper
stars (a catalogue that reaches about V 9) and V 12 for the white dwarfs — bright enough that
acquisition finds the target, as it does on the sky.

On the detector (no rotator here) columns run with azimuth on the sky and rows with elevation,
at LATISS's plate scale; the field's centre is where the mount really points. A star is a
Gaussian of FWHM_ARCSEC; ZERO_POINT_E_S electrons/s come from a magnitude 0 star through
SDSSr_65mm (AuxTel's 1.2 m with the camera's throughput), scaled by the filter and grating.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

#: LATISS's plate scale (arcsec/pixel) and the seeing here (FWHM, arcsec).
PLATE_SCALE_ARCSEC = 0.0957
FWHM_ARCSEC = 1.1
#: e-/s from a magnitude 0 star through SDSSr_65mm, empty disperser.
ZERO_POINT_E_S = 3.0e9
CELL_DEG = 0.01
STARS_PER_CELL = 3.0
MAG_RANGE = (12.0, 17.0)


#: name: (ICRS RA, Dec in degrees, V magnitude assumed), from Rubin's BLOCK-T40 and BLOCK-T359 files.
NAMED_STARS: dict[str, tuple[float, float, float]] = {
    "HD104304": (180.1852504, -10.4461297, 7.0),
    "HD120052": (206.8557967, -17.8598383, 7.0),
    "HD34816": (79.8938429, -13.1767694, 7.0),
    "HD57167": (130.1565467, -46.6487401, 7.0),  # Rubin's file gives HD74180's position
    "HD77020": (134.4814946, -48.5729092, 7.0),
    "HD89736": (155.0696479, -47.6990903, 7.0),
    "HD92055": (159.3886375, -13.3845425, 7.0),
    "WD_0621-376": (95.8025, -37.6911111, 12.0),
    "WD_0859-039": (135.5720833, -4.1154167, 12.0),
}


@dataclass(frozen=True)
class Stars:
    """Catalogue stars: ICRS ra, dec (deg) and magnitude, as arrays."""

    ra: npt.NDArray[np.float64]
    dec: npt.NDArray[np.float64]
    mag: npt.NDArray[np.float64]


def _cell_stars(i_dec: int, i_ra: int, ra_width: float) -> list[tuple[float, float, float]]:
    rng = np.random.default_rng([i_dec + 100_000, i_ra + 100_000, 7])
    n = int(rng.poisson(STARS_PER_CELL))
    return [
        ((i_ra + rng.random()) * ra_width % 360.0, (i_dec + rng.random()) * CELL_DEG, float(rng.uniform(*MAG_RANGE)))
        for _ in range(n)
    ]


def catalogue(ra_deg: float, dec_deg: float, radius_deg: float) -> Stars:
    """The catalogue's stars within a box of `radius_deg` around the position (a few cells)."""
    found: list[tuple[float, float, float]] = []
    for i_dec in range(
        math.floor((dec_deg - radius_deg) / CELL_DEG), math.floor((dec_deg + radius_deg) / CELL_DEG) + 1
    ):
        centre = (i_dec + 0.5) * CELL_DEG
        if abs(centre) > 90.0:
            continue
        ra_width = 360.0 / max(1, math.floor(360.0 * math.cos(math.radians(centre)) / CELL_DEG))
        reach = radius_deg / max(math.cos(math.radians(min(abs(dec_deg) + radius_deg, 89.9))), 1e-3)
        for i_ra in range(math.floor((ra_deg - reach) / ra_width), math.floor((ra_deg + reach) / ra_width) + 1):
            found += _cell_stars(i_dec, i_ra % round(360.0 / ra_width), ra_width)
    reach = radius_deg / max(math.cos(math.radians(min(abs(dec_deg) + radius_deg, 89.9))), 1e-3)
    found += [
        (ra, dec, mag)
        for ra, dec, mag in NAMED_STARS.values()
        if abs(dec - dec_deg) <= radius_deg and abs((ra - ra_deg + 180.0) % 360.0 - 180.0) <= reach
    ]
    ra, dec, mag = (np.array(v, dtype=np.float64) for v in zip(*found, strict=True)) if found else (np.zeros(0),) * 3
    return Stars(ra, dec, mag)


def render(
    shape: tuple[int, int], x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], e_s: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """e-/s per pixel of stars at pixel positions (x column, y row), each a Gaussian of the seeing."""
    image = np.zeros(shape)
    sigma = FWHM_ARCSEC / PLATE_SCALE_ARCSEC / 2.3548
    half = math.ceil(5 * sigma)
    ny, nx = shape
    for cx, cy, flux in zip(x, y, e_s, strict=True):
        x0, x1 = max(0, math.floor(cx) - half), min(nx, math.floor(cx) + half + 1)
        y0, y1 = max(0, math.floor(cy) - half), min(ny, math.floor(cy) + half + 1)
        if x0 >= x1 or y0 >= y1:
            continue
        gx = np.exp(-0.5 * ((np.arange(x0, x1) + 0.5 - cx) / sigma) ** 2)
        gy = np.exp(-0.5 * ((np.arange(y0, y1) + 0.5 - cy) / sigma) ** 2)
        image[y0:y1, x0:x1] += flux / (2 * math.pi * sigma**2) * np.outer(gy, gx)
    return image


def star_e_s(mag: npt.NDArray[np.float64], throughput: float) -> npt.NDArray[np.float64]:
    """e-/s of stars of these magnitudes, through elements `throughput` times SDSSr_65mm's."""
    return ZERO_POINT_E_S * throughput * 10.0 ** (-0.4 * mag)
