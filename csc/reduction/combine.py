"""Combining frames: rejection (a mask) and combination as separate steps.

Clipping is centred on the median and scaled by the MAD (1.4826 x median absolute deviation),
iterated until nothing more is rejected; pixels already masked (saturation, defects) stay out.

>>> import numpy as np
>>> stack = np.ones((5, 1, 1), np.float32); stack[2] = 100
>>> mask = clip_mask(stack)
>>> float(mean_combine(stack, mask)[0, 0])
1.0
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float32]
Mask = npt.NDArray[np.bool_]
MAD_TO_SIGMA = 1.4826


def clip_mask(stack: Array, mask: Mask | None = None, *, sigma: float = 3.0, max_iters: int = 10) -> Mask:
    """Mask of rejected values along axis 0 (True = rejected)."""
    rejected = np.zeros(stack.shape, bool) if mask is None else mask.copy()
    for _ in range(max_iters):
        kept = np.ma.masked_array(stack, rejected)
        centre = np.ma.median(kept, axis=0)  # type: ignore[no-untyped-call]
        spread = MAD_TO_SIGMA * np.ma.median(np.ma.abs(kept - centre), axis=0)  # type: ignore[no-untyped-call]
        new = rejected | (np.abs(stack - centre.filled(0)) > sigma * spread.filled(np.inf))
        if (new == rejected).all():
            break
        rejected = new
    return rejected


def mean_combine(stack: Array, mask: Mask) -> Array:
    """Mean of the values not masked, per pixel; 0 where everything is masked."""
    kept = (~mask).sum(axis=0)
    total = np.where(mask, 0, stack).sum(axis=0, dtype=np.float64)
    return np.where(kept > 0, total / np.maximum(kept, 1), 0).astype(np.float32)


def median_combine(stack: Array, mask: Mask) -> Array:
    median = np.ma.median(np.ma.masked_array(stack, mask), axis=0)  # type: ignore[no-untyped-call]
    return np.asarray(median.filled(0), np.float32)


def normalise(frames: list[Array]) -> list[Array]:
    """Flats scaled to mean 1 each (their own clipped mean), before combining."""
    return [frame / np.float32(clipped_stats(frame)[0]) for frame in frames]


def clipped_stats(values: npt.NDArray[np.floating], sigma: float = 3.0, iters: int = 5) -> tuple[float, float]:
    """(mean, std) of `values` after iterated median/MAD-based clipping; NaN and infinite values never count.

    (nan, nan) when no value is finite, and the std is nan with fewer than two values kept.
    """
    data = np.asarray(values, np.float64).ravel()
    keep = np.isfinite(data)
    if not keep.any():
        return math.nan, math.nan
    for _ in range(iters):
        centre = np.median(data[keep])
        spread = MAD_TO_SIGMA * np.median(np.abs(data[keep] - centre))
        new = keep & (np.abs(data - centre) <= sigma * spread)
        if (new == keep).all():
            break
        keep = new
    kept = data[keep]
    return float(kept.mean()), float(kept.std(ddof=1)) if kept.size > 1 else math.nan
