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


#: Values a clipping's centre and spread are estimated from at most: a larger array gives a strided sample
#: (its median and MAD are then within ~0.5 % of sigma of the whole's); the mask is the whole array's.
CLIP_SAMPLE = 1 << 16


def clip_keep(
    values: npt.NDArray[np.floating], sigma: float = 3.0, iters: int = 5, *, cumulative: bool = True,
    min_spread: float = 0.0, sample_size: int = CLIP_SAMPLE,
) -> Mask:  # fmt: skip
    """The values kept by iterated median/MAD clipping (a mask of `values` raveled); non-finite never kept.

    Centre and spread come from a strided sample of at most `sample_size` values, on float64 copies
    of that sample only; the mask applies every iteration's bounds (`cumulative`, rejected values
    stay out) or only the last one's to the whole array, in its own precision (no float64 copy).
    On CLIP_SAMPLE values or fewer, the sample is the array: the same as clipping it all.
    """
    data = np.asarray(values).ravel()
    step = max(1, data.size // sample_size)
    sample = np.asarray(data[::step], np.float64)
    finite = np.isfinite(sample)
    keep = finite
    bounds: list[tuple[float, float]] = []
    for _ in range(iters):
        if not keep.any():
            break
        kept = sample[keep]
        centre = float(np.median(kept))
        width = sigma * max(MAD_TO_SIGMA * float(np.median(np.abs(kept - centre))), min_spread)
        bounds.append((centre, width))
        new = (keep if cumulative else finite) & (np.abs(sample - centre) <= width)
        if (new == keep).all():
            break
        keep = new
    if not bounds:
        return np.zeros(data.shape, bool)
    # every bound kept is an interval, and so is their intersection: one pass of two comparisons (NaN fails both)
    used = bounds if cumulative else bounds[-1:]
    low, high = max(c - w for c, w in used), min(c + w for c, w in used)
    kind = data.dtype.type if data.dtype.kind == "f" else float  # bounds in the array's precision: no upcast copy
    mask = data >= kind(low)
    mask &= data <= kind(high)
    return mask


def clipped_stats(
    values: npt.NDArray[np.floating], sigma: float = 3.0, iters: int = 5, *, sample_size: int = CLIP_SAMPLE
) -> tuple[float, float]:
    """(mean, std) of `values` after iterated median/MAD-based clipping; NaN and infinite values never count.

    (nan, nan) when no value is finite, and the std is nan with fewer than two values kept. The
    clipping's centre and spread come from at most CLIP_SAMPLE values (`clip_keep`); the mean and
    std are of every value kept, accumulated in float64.
    """
    data = np.asarray(values).ravel()
    if data.dtype.kind != "f":
        data = data.astype(np.float64)
    kept = data[clip_keep(data, sigma, iters, sample_size=sample_size)]
    if not kept.size:
        return math.nan, math.nan
    mean = float(kept.mean(dtype=np.float64))
    return mean, float(kept.std(ddof=1, dtype=np.float64)) if kept.size > 1 else math.nan
