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

from obsq.csc.reduction.runs import clip_runs, count_below

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


def clipped_stats_many(
    arrays: list[npt.NDArray[np.floating]], sigma: float = 3.0, iters: int = 5, *, sample_size: int = CLIP_SAMPLE
) -> list[tuple[float, float]]:
    """`clipped_stats` of many arrays at once (a thousand frames' checks): the same bounds, sorted samples.

    Each array's sample (the values `clip_keep` takes) is sorted, all in one array, and clipped as
    runs (`runs.clip_runs`): the passes cost a few binary searches over all samples together, not
    a dozen array operations per array. The statistics are, as there, of every value of each array
    within its bounds.
    """
    results: list[tuple[float, float]] = [(math.nan, math.nan)] * len(arrays)
    by_length: dict[int, list[int]] = {}
    data = [np.asarray(a).ravel() for a in arrays]
    data = [d if d.dtype.kind == "f" else d.astype(np.float64) for d in data]
    samples = [d[:: max(1, d.size // sample_size)] for d in data]
    for index, sample in enumerate(samples):
        by_length.setdefault(sample.size, []).append(index)
    for size, members in by_length.items():
        if not size:
            continue
        rows = np.stack([samples[i].astype(np.float64) for i in members])
        rows.sort(axis=1)  # NaN last
        low, high = _sorted_bounds(rows, sigma, iters)
        for row, index in enumerate(members):
            if np.isfinite(low[row]) or np.isfinite(high[row]):
                results[index] = _stats_within(data[index], float(low[row]), float(high[row]))
    return results


def _sorted_bounds(
    rows: npt.NDArray[np.float64], sigma: float, iters: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Each sorted row's clipping bounds, every pass's intersected (as `clip_keep`); NaN: no finite value."""
    big = np.finfo(np.float64).max
    first = count_below(rows, np.full(rows.shape[0], -big))  # -inf sorts first
    last = count_below(rows, np.full(rows.shape[0], big), inclusive=True)  # +inf and NaN last
    low = np.where(last > first, -np.inf, np.nan)
    high = np.where(last > first, np.inf, np.nan)
    active = np.flatnonzero(last > first)
    for _ in range(iters):
        if not active.size:
            break
        # a settled row's pass changes nothing but its bounds' repeat: while most rows move, no copy is made
        subset = rows if active.size == rows.shape[0] else rows[active]
        new_first, new_last, lower, upper = clip_runs(subset, first[active], last[active], sigma, MAD_TO_SIGMA)
        low[active] = np.maximum(low[active], lower)
        high[active] = np.minimum(high[active], upper)
        changed = (new_first != first[active]) | (new_last != last[active])
        first[active], last[active] = new_first, new_last
        active = active[changed]
    return low, high


def _stats_within(data: npt.NDArray[np.floating], low: float, high: float) -> tuple[float, float]:
    kind = data.dtype.type
    mask = data >= kind(low)
    mask &= data <= kind(high)
    kept = data[mask]
    if not kept.size:
        return math.nan, math.nan
    mean = float(kept.mean(dtype=np.float64))
    return mean, float(kept.std(ddof=1, dtype=np.float64)) if kept.size > 1 else math.nan
