"""Combining frames from disk in bands of rows, so memory stays bounded whatever N is.

Every frame's file is opened once; a band is read from each file with one `os.pread`, corrected
(overscan, bias, dark scaled by dark time, a per-frame scale), and combined. The only full-size
arrays are the output planes.

The clipped mean is the one of `ccdproc.combine(method='average', sigma_clip=True,
sigma_clip_func=np.ma.median, sigma_clip_dev_func=mad_std)`, iterated as its documentation
suggests (call the clip again until nothing more is rejected), and gives the same decisions:
each pixel's stack is sorted with a sorting network (element-wise minimum/maximum over the
band, exact in float32), the median is read off the middle, and the median absolute deviation
comes from the sorted values without a second sort (the deviations below and above the median
are two sorted runs, and the k-th smallest of two sorted runs is min over i of max(A_i, B_k-i)).
Centre, width and bounds are computed in float64 as astropy does.

A clip keeps an interval of values, so in a sorted stack the kept values are one contiguous run
and a pixel loses a value only if its smallest or largest one is out: the first pass sums every
value, and only those pixels (about a fifth) are revisited — their runs counted, clipped again
in the sorted domain (`iterate_sorted`), and their sums corrected by the few values cut off at
the ends. Pixels holding a masked value (saturated, defect, not finite) take a general masked
path.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

from obsq.csc.reduction.frames import Frame, FrameError, Plane
from obsq.csc.reduction.runs import MAD_STD, clip_runs

Array = npt.NDArray[np.float32]
Mask = npt.NDArray[np.bool_]
#: One band of N inputs: a list of (rows, cols) arrays, or one (N, rows, cols) array read at once.
Rows = Sequence[Array] | npt.NDArray[np.float32]
#: A band's pixels per frame for 20 frames (fewer rows for more frames): the sorting network's arrays stay in cache.
BAND_PIXELS = 1 << 17
#: Values a band holds at most when many frames go by selection: fewer, larger reads (a read costs ~10 us before
#: its first byte) and one sort of each pixel's whole stack; measured best at 10M (1000 x 512^2: 1.6 s against
#: 2.3 s at 2.6M, and 0.35 GB at peak with two threads).
SELECTION_BAND_VALUES = 10_000_000
#: Inputs a sorting network combines at most; more (a dark library of hundreds) go by selection, linear in N.
NETWORK_MAX = 64
#: Pixels per block when a band's stack is turned pixel-major (`pixel_major_sorted`; measured: 16 beats 8-64).
TRANSPOSE_COLUMNS = 16
Progress = Callable[[int, int], None]


@cache
def sorting_network(n: int) -> tuple[tuple[int, int], ...]:
    """Batcher's odd-even merge sort for n inputs (padded to a power of two, pads dropped)."""
    size = 1
    while size < n:
        size *= 2
    pairs: list[tuple[int, int]] = []

    def merge(lo: int, hi: int, r: int) -> None:
        step = r * 2
        if step < hi - lo:
            merge(lo, hi, step)
            merge(lo + r, hi, step)
            pairs.extend((i, i + r) for i in range(lo + r, hi - r, step))
        else:
            pairs.append((lo, lo + r))

    def sort(lo: int, hi: int) -> None:
        if hi - lo >= 1:
            mid = lo + (hi - lo) // 2
            sort(lo, mid)
            sort(mid + 1, hi)
            merge(lo, hi, 1)

    sort(0, size - 1)
    # a pad is +inf: a comparator against it never moves anything
    return tuple((i, j) for i, j in pairs if j < n)


def sort_stack(rows: list[Array]) -> list[Array]:
    """Sort N same-shaped arrays element-wise (rows[0] smallest); the list's arrays are reused."""
    rows = list(rows)
    spare = np.empty_like(rows[0])
    for i, j in sorting_network(len(rows)):
        np.minimum(rows[i], rows[j], out=spare)
        np.maximum(rows[i], rows[j], out=rows[j])
        rows[i], spare = spare, rows[i]
    return rows


def _kth_of_two_runs(
    low: list[npt.NDArray[np.float64]], high: list[npt.NDArray[np.float64]], k: int
) -> npt.NDArray[np.float64]:
    """The k-th smallest (1-based) of the union of two element-wise ascending runs."""
    best: npt.NDArray[np.float64] | None = None
    for i in range(max(0, k - len(high)), min(k, len(low)) + 1):
        if i == 0:
            candidate = high[k - 1]
        elif i == k:
            candidate = low[k - 1]
        else:
            candidate = np.maximum(low[i - 1], high[k - i - 1])
        best = candidate.copy() if best is None else np.minimum(best, candidate, out=best)
    assert best is not None
    return best


def _median_mad_sorted(s: list[Array]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    n, h = len(s), len(s) // 2
    median = s[h].astype(np.float64) if n % 2 else (s[h - 1].astype(np.float64) + s[h]) / 2
    low = [median - s[h - i] for i in range(1, h + 1)]  # deviations below the median, ascending
    high = [s[h - 1 + j] - median for j in range(1, n - h + 1)]  # and above
    if n % 2:
        mad = _kth_of_two_runs(low, high, (n + 1) // 2)
    else:
        mad = (_kth_of_two_runs(low, high, n // 2) + _kth_of_two_runs(low, high, n // 2 + 1)) / 2
    return median, mad


def nan_median_rows(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Median of each row ignoring NaN (NaN where a row has none), as np.nanmedian but vectorised."""
    ordered = np.sort(values, axis=1)  # NaN sorts last
    count = (~np.isnan(values)).sum(axis=1)
    low = np.take_along_axis(ordered, np.maximum(count - 1, 0)[:, None] // 2, axis=1)[:, 0]
    high = np.take_along_axis(ordered, (count // 2)[:, None], axis=1)[:, 0]
    return np.where(count > 0, (low + high) / 2, np.nan)


def iterate_sorted(
    s: npt.NDArray[np.float64], lo: npt.NDArray[np.intp], hi: npt.NDArray[np.intp], sigma: float, iterations: int
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Further clipping passes in the sorted domain: column j's kept values are s[lo[j]:hi[j], j] (s: (n, M)).

    A pass keeps the values within sigma x MAD_STD x MAD of the median, an interval, so the kept
    values of a sorted stack stay one contiguous run. Columns sharing a run (most lost one value
    at one end) are done together at fixed positions, by the first pass's sort-free median and
    MAD; the few others by a partial selection of their deviations. A column whose run did not
    change is done. No sort and no masked arrays, and the decisions of astropy's sigma_clip.
    """
    n = s.shape[0]
    lo, hi = lo.copy(), hi.copy()
    active = np.arange(s.shape[1])
    for _ in range(iterations):
        if not active.size:
            break
        keys = lo[active] * (n + 1) + hi[active]
        order = np.argsort(keys, kind="stable")
        columns, keys = active[order], keys[order]
        block = s[:, columns]  # each run's columns side by side
        first, last = lo[columns], hi[columns]
        new_lo, new_hi = first.copy(), last.copy()
        starts = np.concatenate(([0], np.flatnonzero(np.diff(keys)) + 1, [keys.size]))
        rest = np.ones(keys.size, bool)
        for a, b in itertools.pairwise(starts):
            if b - a < max(512, keys.size // 16):
                continue
            rest[a:b] = False
            run_lo, run_hi = int(first[a]), int(last[a])
            part = block[:, a:b]
            centre, mad = _median_mad_sorted(list(part[run_lo:run_hi]))
            std = mad * MAD_STD
            middle = (run_lo + run_hi) // 2  # below the run's middle only values can fall under, above only over
            new_lo[a:b] = run_lo + (part[run_lo:middle] < centre - std * sigma).sum(axis=0)
            new_hi[a:b] = middle + (part[middle:run_hi] <= centre + std * sigma).sum(axis=0)
        if rest.any():
            new_lo[rest], new_hi[rest], _, _ = clip_runs(block[:, rest].T.copy(), first[rest], last[rest], sigma)
        changed = (new_lo != first) | (new_hi != last)
        lo[columns], hi[columns] = new_lo, new_hi
        active = columns[changed]
    return lo, hi


def _clip_general(values: npt.NDArray[np.float64], invalid: Mask, sigma: float, iterations: int) -> Mask:
    """Rejected values of M stacks of N, shaped (M, N), some values masked already: the plain loop."""
    rejected = invalid.copy()
    for _ in range(iterations):
        kept = np.where(rejected, np.nan, values)
        centre = nan_median_rows(kept)[:, None]
        std = nan_median_rows(np.abs(kept - centre))[:, None] * MAD_STD
        with np.errstate(invalid="ignore"):
            new = rejected | (values < centre - std * sigma) | (values > centre + std * sigma)
        if (new == rejected).all():
            break
        rejected = new
    return rejected


@dataclass
class BandResult:
    """One band combined: the values, how many inputs each pixel kept, how many values were rejected."""

    combined: Array
    n_used: npt.NDArray[np.int16]
    n_rejected: int


def combine_band(
    rows: Rows,
    invalid: Sequence[Mask] | None,
    method: str,
    sigma: float,
    iterations: int,
    *,
    overwrite: bool = False,
) -> BandResult:
    """Combine N corrected arrays of one band: `clipped_mean` or `median`; masked values never count.

    With `overwrite` the rows (float32, the caller's own) are sorted in place instead of copied.
    """
    n = len(rows)
    shape = rows[0].shape
    bad = np.zeros(shape, bool)
    if invalid is not None:
        for mask in invalid:
            bad |= mask
    if n > NETWORK_MAX and method == "clipped_mean" and not bad.any():
        return _clipped_mean_by_selection(rows, sigma, iterations)
    work = (
        [np.where(mask, np.float32(np.inf), r) for r, mask in zip(rows, invalid, strict=True)]
        if invalid
        else list(rows)
    )
    # the sort reuses its arrays: copy the caller's rows unless they may be overwritten (masked ones are fresh)
    s = sort_stack(work if invalid or overwrite else [np.array(r, np.float32, copy=True) for r in work])
    with np.errstate(invalid="ignore"):  # inf - inf where a masked value sits; those pixels are redone below
        median, mad = _median_mad_sorted(s)
    total = np.zeros(shape, np.float64)
    used = np.zeros(shape, np.int16)
    if method == "median":
        combined = median
        used += np.int16(n)
    elif method == "clipped_mean":
        std = mad * MAD_STD
        lower, upper = median - std * sigma, median + std * sigma
        for value in s:  # most pixels keep every value: their sum, and the few others corrected below
            total += value
        used += np.int16(n)
        combined = total / n
        with np.errstate(invalid="ignore"):  # sorted: a value is clipped iff the smallest or the largest is
            clipped = ~bad & ((s[0] < lower) | (s[-1] > upper))
        _further_passes(s, lower, upper, clipped, total, combined, used, sigma, iterations - 1)
    else:
        raise ValueError(f"combine method {method!r} is not one of clipped_mean, median")
    if bad.any():
        where = np.nonzero(bad)
        values = np.stack([r[where] for r in rows], axis=1).astype(np.float64)
        masked = np.stack([m[where] for m in invalid], axis=1) if invalid else np.zeros(values.shape, bool)
        if method == "median":
            rejected = masked
            sub = nan_median_rows(np.where(masked, np.nan, values))
        else:
            rejected = _clip_general(values, masked, sigma, iterations)
            with np.errstate(invalid="ignore", divide="ignore"):
                sub = np.where(rejected, 0.0, values).sum(axis=1) / (~rejected).sum(axis=1)
        combined[where] = sub
        used[where] = (~rejected).sum(axis=1)
    out = np.where(used > 0, combined, 0.0).astype(np.float32)
    return BandResult(out, used, int(n * out.size - used.sum(dtype=np.int64)))


def _clipped_mean_by_selection(rows: Rows, sigma: float, iterations: int) -> BandResult:
    """The clipped mean of many inputs (more than NETWORK_MAX) with no masked value: the network's decisions.

    With hundreds of inputs nearly every pixel loses a value, so every pixel's values are sorted
    at once (np.sort in float32, n log n, where a sorting network grows as n log^2 n), and each
    pass clips the sorted runs by binary searches (`_clip_runs`); a pixel whose run did not change
    is done. A run's sum is the pixel's total less the few values cut off at its ends.
    """
    n, shape = len(rows), rows[0].shape
    stacked = rows.reshape(n, -1) if isinstance(rows, np.ndarray) else np.stack([np.ravel(r) for r in rows])
    ordered = pixel_major_sorted(stacked)
    del stacked
    first = np.zeros(ordered.shape[0], np.intp)
    last = np.full(ordered.shape[0], n, np.intp)
    active = np.arange(ordered.shape[0])
    for _ in range(max(1, iterations)):
        if 2 * active.size > ordered.shape[0]:  # a settled run's pass changes nothing: while most move, all go
            new_first, new_last, _, _ = clip_runs(ordered, first, last, sigma)
            active = np.flatnonzero((new_first != first) | (new_last != last))
            first, last = new_first, new_last
        else:
            new_first, new_last, _, _ = clip_runs(ordered[active], first[active], last[active], sigma)
            changed = (new_first != first[active]) | (new_last != last[active])
            first[active], last[active] = new_first, new_last
            active = active[changed]
        if not active.size:
            break
    kept = ordered.sum(axis=1, dtype=np.float64)
    for i in range(int(first.max())):
        kept -= np.where(i < first, ordered[:, i], 0.0)
    for i in range(int(last.min()), n):
        kept -= np.where(i >= last, ordered[:, i], 0.0)
    count = last - first
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = kept / count
    out = np.where(count > 0, mean, 0.0).astype(np.float32).reshape(shape)
    used = count.astype(np.int16).reshape(shape)
    return BandResult(out, used, int(n * out.size - used.sum(dtype=np.int64)))


def pixel_major_sorted(stacked: Array) -> Array:
    """(n, M) frame-major values to (M, n), each pixel's n values ascending.

    A plain transposing copy touches a new memory page for every value; first the stack is cut into
    (n, TRANSPOSE_COLUMNS) blocks, each contiguous (a copy reading 64-byte runs), and each block is
    turned and sorted in place while it sits in cache (measured 1.7x faster than sorting transposed views).
    """
    n, m = stacked.shape
    width = TRANSPOSE_COLUMNS
    whole = m // width
    ordered = np.empty((m, n), stacked.dtype)
    blocks = np.empty((whole, n, width), stacked.dtype)
    blocks[...] = stacked[:, : whole * width].reshape(n, whole, width).transpose(1, 0, 2)
    for c in range(whole):
        part = ordered[c * width : (c + 1) * width]
        part[...] = blocks[c].T
        part.sort(axis=1)
    if whole * width < m:
        rest = ordered[whole * width :]
        rest[...] = stacked[:, whole * width :].T
        rest.sort(axis=1)
    return ordered


def _further_passes(  # noqa: PLR0917 - the band's arrays, updated in place
    s: list[Array], lower: npt.NDArray[np.float64], upper: npt.NDArray[np.float64], changed: Mask,
    total: npt.NDArray[np.float64], combined: npt.NDArray[np.float64], used: npt.NDArray[np.int16],
    sigma: float, iterations: int,
) -> None:  # fmt: skip
    """The pixels that lost a value in the first pass: their kept run, `iterations` more passes, the run's mean.

    The run is counted against the first pass's bounds and clipped again in the sorted domain;
    its sum is the pixel's `total` less the few values cut off at either end.
    """
    flat = np.flatnonzero(changed)
    if not flat.size:
        return
    n, h = len(s), len(s) // 2
    stack = np.empty((n, flat.size))  # (n, M): each column a pixel's values, ascending
    for i, values in enumerate(s):
        stack[i] = np.take(values, flat)
    # sorted, and lower <= median <= upper: only the lower half can fall below, the upper half above
    lo = (stack[:h] < lower.ravel()[flat]).sum(axis=0)
    hi = n - (stack[h:] > upper.ravel()[flat]).sum(axis=0)
    lo, hi = iterate_sorted(stack, lo, hi, sigma, iterations)
    kept = total.ravel()[flat]
    for i in range(int(lo.max())):
        kept -= np.where(i < lo, stack[i], 0.0)
    for i in range(int(hi.min()), n):
        kept -= np.where(i >= hi, stack[i], 0.0)
    count = hi - lo
    with np.errstate(invalid="ignore", divide="ignore"):
        combined.ravel()[flat] = kept / count
    used.ravel()[flat] = count


@dataclass(frozen=True)
class Input:
    """One frame's part in one plane's combination: raw = (raw - offset - bias - dark*darktime) * scale."""

    frame: Frame
    plane: Plane
    offset: float = 0.0
    scale: float = 1.0
    darktime: float = 0.0


@dataclass(frozen=True)
class Corrections:
    """What is taken off every input (bias, dark per second) and which pixels never count."""

    bias: Array | None = None
    dark_per_s: Array | None = None
    defects: Mask | None = None
    saturation: float | None = None


@dataclass
class PlaneResult:
    """A combined plane, inputs kept per pixel, values rejected, pixels with no good input (set to the median)."""

    data: Array
    n_used: npt.NDArray[np.int16]
    n_rejected: int
    n_bad: int


def _stacked_band(
    inputs: Sequence[Input], corrections: Corrections, band: tuple[int, int], descriptors: dict[Path, int]
) -> tuple[npt.NDArray[np.float32], list[Mask | None]] | None:
    """Rows [r0, r1) of every input's data section, corrected, as one (n, rows, cols) array, and the masks.

    A mask marks the values that never count (not finite, saturated, defects; None: none). The raw
    bytes of all inputs are read into one buffer and converted at once, so a stack of a thousand
    small frames costs a read each, not a dozen array operations each. None when the inputs' raw
    layouts differ (each is then read on its own, as a stack of one).
    """
    first = inputs[0].plane
    layout = (first.dtype, first.bscale, first.bzero, first.raw_shape[1], first.data[1])
    if any((i.plane.dtype, i.plane.bscale, i.plane.bzero, i.plane.raw_shape[1], i.plane.data[1]) != layout
           for i in inputs):  # fmt: skip
        return None
    r0, r1 = band
    n, width, dtype = len(inputs), first.raw_shape[1], np.dtype(first.dtype)
    raw = np.empty((n, (r1 - r0) * width * dtype.itemsize), np.uint8)
    for k, item in enumerate(inputs):
        start = item.plane.data[0].start
        item.frame.read_raw_into(item.plane, (start + r0, start + r1), memoryview(raw[k]),
                                 fd=descriptors[item.frame.path])  # fmt: skip
    values = raw.view(dtype).reshape(n, r1 - r0, width)[:, :, first.data[1]].astype(np.float32)
    del raw
    masks: list[Mask | None] = [None] * n
    with np.errstate(over="ignore", invalid="ignore"):  # float32 overflow: infinite, then masked
        if first.bscale != 1.0:
            values *= np.float32(first.bscale)
        if first.bzero != 0.0:
            values += np.float32(first.bzero)
        totals = values.sum(axis=(1, 2))  # inf - inf in a sum is what this looks for
    for bad in np.flatnonzero(~np.isfinite(totals)):  # NaN or inf somewhere (or a float32 overflow): find them
        masks[bad] = ~np.isfinite(values[bad])
    if corrections.saturation is not None:
        saturated = values >= corrections.saturation
        masks = [saturated[k] | (False if m is None else m) for k, m in enumerate(masks)]
    if corrections.defects is not None:
        masks = [corrections.defects[r0:r1] | (False if m is None else m) for m in masks]
    offsets = np.array([item.offset for item in inputs], np.float32)
    if offsets.any():
        values -= offsets[:, None, None]
    if corrections.bias is not None:
        values -= corrections.bias[r0:r1]
    if corrections.dark_per_s is not None:
        darktimes = np.array([item.darktime for item in inputs], np.float32)
        values -= corrections.dark_per_s[r0:r1] * darktimes[:, None, None]
    scales = np.array([item.scale for item in inputs], np.float32)
    if (scales != 1.0).any():
        values *= scales[:, None, None]
    return values, masks


def _bands(shape: tuple[int, int], n: int, band_pixels: int | None) -> list[tuple[int, int]]:
    width = max(shape[1], 1)
    if band_pixels is None and n > NETWORK_MAX:
        rows_per_band = max(1, SELECTION_BAND_VALUES // (width * n))
    else:
        rows_per_band = max(1, (band_pixels or BAND_PIXELS) // width // max(1, n // 20))
    return [(r, min(r + rows_per_band, shape[0])) for r in range(0, shape[0], rows_per_band)]


def _band_of_all(
    inputs: Sequence[Input], corrections: Corrections, band: tuple[int, int], descriptors: dict[Path, int]
) -> tuple[Rows, list[Mask | None]]:
    """One band of every input, corrected, and their masks: read at once where the inputs' layouts allow."""
    stacked = _stacked_band(inputs, corrections, band, descriptors)
    if stacked is not None:
        return stacked
    rows: list[Array] = []
    invalid: list[Mask | None] = []
    for item in inputs:
        one = _stacked_band([item], corrections, band, descriptors)
        assert one is not None  # a stack of one has one layout
        rows.append(one[0][0])
        invalid.append(one[1][0])
    return rows, invalid


def combine_plane(
    inputs: Sequence[Input],
    corrections: Corrections = Corrections(),
    *,
    method: str = "clipped_mean",
    sigma: float = 3.0,
    iterations: int = 10,
    threads: int = 2,
    band_pixels: int | None = None,
    progress: Progress | None = None,
) -> PlaneResult:
    """Combine one plane of N files band by band; peak memory ~ output + threads x N x band.

    `band_pixels`: a band's pixels per frame for 20 frames; None: BAND_PIXELS for the sorting network,
    SELECTION_BAND_VALUES for more than NETWORK_MAX frames.
    """
    if not inputs:
        raise ValueError("nothing to combine: the input set is empty")
    shape = inputs[0].plane.shape
    for item in inputs:
        if item.plane.shape != shape:
            raise FrameError(
                f"{item.frame.path}: amplifier {item.plane.name} is {item.plane.shape}, the others {shape}"
            )
    for label, array in (
        ("bias", corrections.bias),
        ("dark", corrections.dark_per_s),
        ("defects", corrections.defects),
    ):
        if array is not None and array.shape != shape:
            raise ValueError(f"the {label} for amplifier {inputs[0].plane.name} is {array.shape}, the frames {shape}")
    bands = _bands(shape, len(inputs), band_pixels)
    out = np.empty(shape, np.float32)
    used = np.empty(shape, np.int16)
    descriptors = {item.frame.path: os.open(item.frame.pixels, os.O_RDONLY) for item in inputs}
    rejected = 0
    done = 0
    try:

        def one(band: tuple[int, int]) -> int:
            r0, r1 = band
            rows, invalid = _band_of_all(inputs, corrections, band, descriptors)
            masks = None
            if any(m is not None and m.any() for m in invalid):
                masks = [np.zeros(rows[0].shape, bool) if m is None else m for m in invalid]
            result = combine_band(rows, masks, method, sigma, iterations, overwrite=True)
            out[r0:r1] = result.combined
            used[r0:r1] = result.n_used
            return result.n_rejected

        with ThreadPoolExecutor(max(1, threads)) as pool:
            for count in pool.map(one, bands):
                rejected += count
                done += 1
                if progress is not None:
                    progress(done, len(bands))
    finally:
        for fd in descriptors.values():
            os.close(fd)
    for item in inputs:  # a file replaced under its name (a new inode) while it was combined is not used either
        item.frame.unchanged()
    empty = used == 0
    n_bad = int(empty.sum())
    if n_bad:
        fill_empty(out, empty)
    return PlaneResult(out, used, rejected, n_bad)


def fill_empty(out: Array, empty: Mask) -> None:
    """Pixels no input gave a value (NaN, infinite, saturated or a defect in every one): the median of the others.

    A master never holds NaN; such pixels are counted (`n_bad`). With no pixel given at all they stay 0.
    """
    given = out[~empty]
    out[empty] = np.float32(np.median(given)) if given.size else np.float32(0.0)
