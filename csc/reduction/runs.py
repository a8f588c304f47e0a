"""Clipping sorted runs: each row's values ascending, the kept ones a run [first, last) of them.

A median/MAD clip keeps an interval of values, so in a sorted row the kept values stay one
contiguous run pass after pass, and every count a pass needs is a binary search. The combine
(`stack`) clips each pixel's stack this way; the checks (`combine.clipped_stats_many`) each
frame's sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

MAD_STD = 1.482602218505602  # astropy.stats.mad_std


def count_below(
    rows: npt.NDArray[np.floating], limit: npt.NDArray[np.float64], *, inclusive: bool = False
) -> npt.NDArray[np.intp]:
    """How many of each ascending row's values are below `limit` (or equal, with `inclusive`).

    A branch-free binary search over all rows at once: log2(n) steps of one gather each, where a
    comparison of every value would touch the whole (M, n) block.
    """
    m, n = rows.shape
    flat = rows.ravel()
    base = np.arange(m) * n - 1  # flat index of row r's value at position p (from 1) is base[r] + p
    count = np.zeros(m, np.intp)
    step = 1 << max(0, n.bit_length() - 1)
    while step:
        candidate = count + step
        fits = candidate <= n
        value = flat[base + np.minimum(candidate, n)]
        take = fits & ((value <= limit) if inclusive else (value < limit))
        count = np.where(take, candidate, count)
        step >>= 1
    return count


def clip_runs(
    rows: npt.NDArray[np.floating],
    first: npt.NDArray[np.intp],
    last: npt.NDArray[np.intp],
    sigma: float,
    mad_to_sigma: float = MAD_STD,
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """One clipping pass over rows (each ascending) whose kept values are runs [first, last).

    The median is read off the run, the MAD found by a binary search over the deviations, and the
    values within sigma x mad_to_sigma x MAD of the median kept. Every count is a binary search
    (`count_below`), so a pass costs O(M log n), not O(M n). Returns the new runs and the bounds.
    """
    m = last - first
    rows = np.ascontiguousarray(rows)
    flat = rows.ravel()
    base = np.arange(rows.shape[0]) * rows.shape[1]
    centre = (flat[base + first + (m - 1) // 2].astype(np.float64) + flat[base + first + m // 2]) / 2
    split = np.clip(count_below(rows, centre), first, last)  # the run's values below the centre end here
    runs = Deviations(flat, base, rows.shape[1], centre, split, split - first, last - split)
    kth, following = runs.kth_and_next((m + 1) // 2)  # the median deviation: one value of an odd run, two of an even
    mad = np.where(m % 2 == 1, kth, (kth + following) / 2)
    std = mad * mad_to_sigma
    lower, upper = centre - std * sigma, centre + std * sigma
    new_first = np.maximum(first, count_below(rows, lower))
    new_last = np.minimum(last, count_below(rows, upper, inclusive=True))
    return new_first, new_last, lower, upper


@dataclass(frozen=True)
class Deviations:
    """Each row's deviations from its centre as two ascending runs: below (going down from `split`) and above.

    `kth_and_next` finds the k-th smallest of their union by a binary search on how many come from below,
    all rows at once: O(log n) steps over the rows, no sort and no partition. The rows are given
    raveled (`flat`, row r starting at `base[r]`, `n` values each).
    """

    flat: npt.NDArray[np.floating]
    base: npt.NDArray[np.intp]
    n: int
    centre: npt.NDArray[np.float64]
    split: npt.NDArray[np.intp]
    n_below: npt.NDArray[np.intp]
    n_above: npt.NDArray[np.intp]

    def _below(self, i: npt.NDArray[np.intp]) -> npt.NDArray[np.float64]:
        """The i-th smallest deviation below the centre (i from 0)."""
        return np.asarray(self.centre - self.flat[self.base + np.clip(self.split - 1 - i, 0, self.n - 1)], np.float64)

    def _above(self, j: npt.NDArray[np.intp]) -> npt.NDArray[np.float64]:
        return np.asarray(self.flat[self.base + np.clip(self.split + j, 0, self.n - 1)] - self.centre, np.float64)

    def kth_and_next(self, k: npt.NDArray[np.intp]) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """The k-th and (k+1)-th smallest (from 1) deviations of each row's run (inf where there is no k+1-th)."""
        lo, kth = self._search(k)
        below = np.where(lo < self.n_below, self._below(lo), np.inf)  # the k smallest are lo below and k - lo above:
        above = np.where(k - lo < self.n_above, self._above(k - lo), np.inf)  # the next is the nearer of the two after
        return kth, np.minimum(below, above)

    def _search(self, k: npt.NDArray[np.intp]) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float64]]:
        """How many of the k smallest deviations lie below the centre, and the k-th smallest."""
        lo, hi = np.maximum(0, k - self.n_above), np.minimum(k, self.n_below)
        while (active := lo < hi).any():  # the fewest taken from below such that below[i] >= above[k - i - 1]
            mid = (lo + hi) // 2
            enough = self._below(mid) >= self._above(k - mid - 1)
            hi = np.where(active & enough, mid, hi)
            lo = np.where(active & ~enough, mid + 1, lo)
        last_below = np.where(lo > 0, self._below(lo - 1), -np.inf)
        last_above = np.where(k - lo > 0, self._above(k - lo - 1), -np.inf)
        return lo, np.maximum(last_below, last_above)
