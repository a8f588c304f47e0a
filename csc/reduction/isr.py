"""Instrument signature removal: overscan, trim, bias, dark and flat corrections.

>>> import numpy as np
>>> raw = np.full((4, 6), 100.0); raw[:, :4] += 10
>>> overscan_correct(raw, "[1:4,1:4]", "[5:6,1:4]").tolist()[0]
[10.0, 10.0, 10.0, 10.0]
"""

from __future__ import annotations

import re

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float32]
_SECTION = re.compile(r"^\[(\d+):(\d+),(\d+):(\d+)\]$")


def section(text: str) -> tuple[slice, slice]:
    """A FITS section `[x1:x2,y1:y2]` (1-based, inclusive) as numpy (rows, cols) slices."""
    match = _SECTION.match(text.replace(" ", ""))
    if not match:
        raise ValueError(f"section {text!r} is not of the form [x1:x2,y1:y2]")
    x1, x2, y1, y2 = (int(v) for v in match.groups())
    if x2 < x1 or y2 < y1 or x1 < 1 or y1 < 1:
        raise ValueError(f"section {text!r} is empty or starts below 1")
    return slice(y1 - 1, y2), slice(x1 - 1, x2)


def overscan_correct(raw: npt.NDArray[np.generic], datasec: str, biassec: str, *, per_row: bool = False) -> Array:
    """Subtract the serial overscan's median (one value, or one per row) and trim to the data section.

    A median per row follows row-to-row bias jumps but adds the noise of a median of only
    the overscan's width to every row; without such jumps one value is the better estimate.
    NaN and infinite overscan pixels are left out of the median (a row with none finite: the
    median of the whole overscan; an overscan with none: 0).
    """
    data = raw[section(datasec)].astype(np.float32)
    overscan = raw[section(biassec)].astype(np.float64)
    finite = np.isfinite(overscan)
    whole = float(np.median(overscan[finite])) if finite.any() else 0.0
    if not per_row:
        return data - np.float32(whole)
    rows = np.full((overscan.shape[0], 1), whole)
    for index in np.flatnonzero(finite.any(axis=1)):
        rows[index, 0] = np.median(overscan[index][finite[index]])
    return data - rows.astype(np.float32)


def subtract_bias(image: Array, bias: Array) -> Array:
    return image - bias


def subtract_dark(image: Array, dark_per_s: Array, darktime_s: float) -> Array:
    """Subtract a dark-current image (ADU/s) scaled by the exposure's dark time."""
    return image - dark_per_s * np.float32(darktime_s)


def divide_flat(image: Array, flat: Array) -> Array:
    """Divide by a normalised flat (mean 1); pixels where the flat is not positive are set to 0."""
    safe = np.where(flat > 0, flat, np.float32(1))
    return np.where(flat > 0, image / safe, np.float32(0)).astype(np.float32)
