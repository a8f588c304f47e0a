"""Photon transfer curve: pair statistics and the EXPAPPROXIMATION fit (Astier et al. 2019, eq. 16).

For each pair of flats of one exposure time: clipped means mu1, mu2; the symmetric difference
(mu2*I1 - mu1*I2)/mu; its clipped variance corrected for the clipping, halved. The model
C(mu) = (exp(2 a00 mu g) - 1) / (2 a00 g^2) + n / g^2 gives the gain g (e-/ADU), the read
noise sqrt(n) (e-) and a00. The turnoff is found as cp_pipe finds it: the pairs past the
variance's collapse are out before the first fit, which stays below 50,000 e-; then, walking
up from the low-signal end, a pair that leaves the model by more than 5 sigma is dropped, and
one far above the last pair kept ends the curve. Biases are never points: the read noise they
measure (pairs of biases) is held fixed in the fit, and only the flats' pairs make the curve.

A fit that cannot be trusted is a `PtcError` with its reason, never a number: fewer than
MIN_LEVELS exposure levels, a parameter at a bound of the fit, too few points kept, or flats
that never leave the read-noise regime (at the brightest kept pair the shot noise must be
SHOT_DOMINANCE times the read noise variance).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from obsq.csc.reduction.combine import clip_keep

CLIP_SIGMA = 5.5
#: A PTC needs pairs at this many exposure levels at least.
MIN_LEVELS = 4
#: At the brightest kept pair, shot variance / read variance must reach this.
SHOT_DOMINANCE = 10.0
GAIN_BOUNDS = (0.01, 100.0)  # e-/ADU
NOISE_SQ_BOUNDS = (0.0, 1.0e6)  # e-^2
A00_BOUNDS = (-1.0e-4, 0.0)


class PtcError(ValueError):
    """Pairs that cannot give a photon transfer curve; the message says why."""


@dataclass(frozen=True)
class PairPoint:
    """One pair: exposure time, mean (ADU) and variance (ADU^2) of one amplifier."""

    exptime_s: float
    mean: float
    variance: float
    n_pixels: int


@dataclass
class PtcResult:
    """The fit for one amplifier."""

    gain: float
    noise_e: float
    a00: float
    turnoff: float
    points: list[PairPoint] = field(default_factory=list)
    kept: list[bool] = field(default_factory=list)


def _clip(values: npt.NDArray[np.floating], sigma: float = CLIP_SIGMA, iters: int = 3) -> npt.NDArray[np.floating]:
    """The values within `sigma` MAD-sigma of the median, iterated (centre and spread from a sample: `clip_keep`)."""
    return values[clip_keep(values, sigma, iters, cumulative=False, min_spread=1e-12)]


def clipping_variance_factor(k: float) -> float:
    """Variance of a Gaussian truncated at +-k sigma, relative to sigma^2."""
    phi = math.exp(-k * k / 2) / math.sqrt(2 * math.pi)  # the normal density and probability, without scipy
    cdf = math.erf(k / math.sqrt(2))
    return float(1 - 2 * k * phi / cdf)


def pair_point(first: npt.NDArray[np.floating], second: npt.NDArray[np.floating], exptime_s: float) -> PairPoint:
    """The PTC point of one pair of overscan-corrected images of one amplifier."""
    # float32 as read (no float64 copies of a 16-megapixel pair); sums are accumulated in float64
    a, b = np.asarray(first, np.float32).ravel(), np.asarray(second, np.float32).ravel()
    finite = np.isfinite(a) & np.isfinite(b)
    if not finite.all():  # NaN or infinite pixels (masked): the pair's statistics are of the others
        a, b = a[finite], b[finite]
    if a.size < 2:
        raise PtcError("a pair has fewer than 2 pixels finite in both images")
    mu1, mu2 = float(_clip(a).mean(dtype=np.float64)), float(_clip(b).mean(dtype=np.float64))
    mu = 0.5 * (mu1 + mu2)
    # biases (mean 0): the plain difference; else each scaled to the pair's mean level
    diff = a - b if abs(mu) < 1.0 else a * np.float32(mu2 / mu) - b * np.float32(mu1 / mu)
    kept = _clip(diff)
    variance = 0.5 * float(kept.var(ddof=1, dtype=np.float64)) / clipping_variance_factor(CLIP_SIGMA)
    return PairPoint(exptime_s, mu, variance, kept.size)


def model(mu: npt.NDArray[np.float64], a00: float, gain: float, noise_sq: float) -> npt.NDArray[np.float64]:
    """Astier+19 eq. 16, stable as a00 -> 0."""
    x = 2 * a00 * mu * gain
    shot = np.where(np.abs(x) < 1e-9, mu / gain, np.expm1(x) / (2 * a00 * gain * gain) if a00 else mu / gain)
    return shot + noise_sq / gain**2


#: Signal (e-) below which the first fit is made, then extrapolated to find the outliers (cp_pipe's default).
INITIAL_FIT_E = 50_000.0
#: Variance (ADU^2) above which a fall of the variance is the turnoff, and the falls in a row it takes (cp_pipe's
#: minVarPivotSearch and consecutivePointsVarDecreases).
PIVOT_MIN_VARIANCE = 10_000.0
PIVOT_FALLS = 2


def before_variance_falls(mean: npt.NDArray[np.float64], var: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """The pairs (sorted by mean) before the variance first falls PIVOT_FALLS times in a row: past it, saturation.

    cp_pipe's first estimate of the turnoff (`_getInitialGoodPoints`): at the full well the
    pixels stop counting and the variance collapses while the mean still creeps up. Pairs of
    one level (means within 1 %) are one step, at their median variance: their scatter is no
    fall. A fall at low variance (below PIVOT_MIN_VARIANCE ADU^2, noise) is not one; a fall to
    below half the highest variance so far is one at once (a sensor whose pixels all saturate
    together).
    """
    good = np.isfinite(mean) & np.isfinite(var)
    starts = [0, *(int(i) + 1 for i in np.flatnonzero(mean[1:] > 1.01 * mean[:-1]))]
    ends = [*starts[1:], len(mean)]
    level_var = np.array([np.median(var[a:b]) for a, b in zip(starts, ends, strict=True)])
    cut = len(starts)  # the first level past the turnoff
    highest = np.maximum.accumulate(level_var)
    collapsed = np.flatnonzero((level_var[1:] < 0.5 * highest[:-1]) & (highest[:-1] > PIVOT_MIN_VARIANCE))
    if collapsed.size:  # the variance below half its highest so far: every pixel at the full well
        cut = int(collapsed[0]) + 1
    run: list[int] = []
    for i in (int(i) for i in np.flatnonzero(np.diff(level_var) < 0) if level_var[i] > PIVOT_MIN_VARIANCE):
        run = [*run, i] if run and i == run[-1] + 1 else [i]
        if len(run) >= PIVOT_FALLS:
            cut = min(cut, run[0] + 1)
            break
    if cut < len(starts):
        good[starts[cut] :] = False
    return good


#: Walking up the curve, a pair kept after one rejected must lie within this (e-) of the last kept: a wider gap
#: is past the turnoff, and so is everything above it (cp_pipe's maxDeltaInitialPtcOutlierFit).
MAX_JUMP_E = 9_000.0


def _walk_up(
    follows: npt.NDArray[np.bool_], mean: npt.NDArray[np.float64], max_jump_adu: float
) -> npt.NDArray[np.bool_]:
    """The pairs (sorted by mean) that follow the model, walked up from the low-signal end as cp_pipe walks them.

    A pair that leaves the model is dropped alone; one kept after a gap wider than `max_jump_adu`
    above the last kept pair ends the curve there (it and all above are dropped): the turnoff.
    """
    kept = follows.copy()
    last = None
    for i in np.flatnonzero(follows):
        if last is not None and not follows[i - 1] and mean[i] - mean[last] >= max_jump_adu:
            kept[i:] = False
            break
        last = i
    return kept


def _at(value: float, bound: float, scale: float) -> bool:
    """Whether a fitted value sits on a bound (least_squares leaves an active bound exactly or nearly on it)."""
    return abs(value - bound) <= 1e-6 * scale


def fit_ptc(
    points: list[PairPoint], read_noise_adu: float | None = None, max_iterations: int = 3, sigma_cut: float = 5.0
) -> PtcResult:
    """Fit one amplifier's pairs; reject outliers and everything past the turnoff; PtcError if it cannot be trusted.

    With `read_noise_adu` (measured from biases) the noise term is held at it; else it is fitted.
    """
    from scipy import optimize  # here: 1 s of imports that every other reduction command need not pay

    levels = {round(p.exptime_s, 3) for p in points}
    if len(levels) < MIN_LEVELS:
        raise PtcError(f"pairs at {len(levels)} exposure level{'s' * (len(levels) != 1)}; a PTC needs {MIN_LEVELS}")
    ordered = sorted(points, key=lambda p: p.mean)
    mean = np.array([p.mean for p in ordered])
    var = np.array([p.variance for p in ordered])
    npix = np.array([p.n_pixels for p in ordered], float)
    positive = (var > 0) & (mean > 0) & before_variance_falls(mean, var)
    if not positive.any():
        raise PtcError("no pair has a positive mean and variance")
    approx_gain = float(np.clip(np.median(mean[positive] / var[positive]), *GAIN_BOUNDS))  # as cp_pipe estimates it
    # the initial fit stays well below saturation (cp_pipe's maxSignalInitialPtcOutlierFit, 50,000 e-)
    keep = positive & (mean * approx_gain <= INITIAL_FIT_E) & (var * approx_gain <= INITIAL_FIT_E)
    if keep.sum() < MIN_LEVELS:
        keep = positive.copy()
    fixed = read_noise_adu is not None
    params = np.array([-1e-7, approx_gain] + ([] if fixed else [25.0]))
    low = [A00_BOUNDS[0], GAIN_BOUNDS[0]] + ([] if fixed else [NOISE_SQ_BOUNDS[0]])
    high = [A00_BOUNDS[1], GAIN_BOUNDS[1]] + ([] if fixed else [NOISE_SQ_BOUNDS[1]])

    def full(p: npt.NDArray[np.float64]) -> tuple[float, float, float]:
        noise_sq = (read_noise_adu * p[1]) ** 2 if read_noise_adu is not None else p[2]
        return float(p[0]), float(p[1]), float(noise_sq)

    for _ in range(max_iterations):
        sigma = np.sqrt(2.0 / npix) * np.maximum(var, 1e-6)

        def residuals(
            p: npt.NDArray[np.float64], k: npt.NDArray[np.bool_] = keep, s: npt.NDArray[np.float64] = sigma
        ) -> npt.NDArray[np.float64]:
            return np.asarray((var[k] - model(mean[k], *full(p))) / s[k], np.float64)

        params = optimize.least_squares(residuals, params, bounds=(low, high)).x
        deviation = np.abs(var - model(mean, *full(params))) / sigma
        new = _walk_up(positive & (deviation < sigma_cut), mean, MAX_JUMP_E / max(params[1], GAIN_BOUNDS[0]))
        if (new == keep).all():
            break
        keep = new
    a00, gain, noise_sq = full(params)
    _trust(params, fixed=fixed, keep=keep, mean=mean, gain=gain, noise_sq=noise_sq)
    return PtcResult(gain=gain, noise_e=float(math.sqrt(max(noise_sq, 0.0))), a00=a00,
                     turnoff=float(mean[keep].max()), points=ordered, kept=[bool(k) for k in keep])  # fmt: skip


def _trust(
    params: npt.NDArray[np.float64], *, fixed: bool, keep: npt.NDArray[np.bool_], mean: npt.NDArray[np.float64],
    gain: float, noise_sq: float,
) -> None:  # fmt: skip
    """PtcError unless the fit is a measurement: inside its bounds, enough points, the shot-noise regime reached."""
    if any(_at(params[1], bound, bound) for bound in GAIN_BOUNDS):
        raise PtcError(f"the gain fit ended at its bound ({gain:.4g} e-/ADU): the pairs do not constrain it")
    if not fixed and any(_at(params[2], bound, NOISE_SQ_BOUNDS[1]) for bound in NOISE_SQ_BOUNDS):
        raise PtcError(f"the read noise fit ended at its bound ({math.sqrt(noise_sq):.3g} e-): give bias frames")
    if _at(params[0], A00_BOUNDS[0], -A00_BOUNDS[0]):  # (0, the other bound, is a curve without brighter-fatter)
        raise PtcError(f"a00 ended at its bound ({params[0]:.3g}): the curve bends more than brighter-fatter can")
    if keep.sum() < MIN_LEVELS:
        raise PtcError(f"only {int(keep.sum())} pairs follow the model; a PTC needs {MIN_LEVELS}")
    top = float(mean[keep].max())
    shot, read = top / gain, noise_sq / gain**2
    if shot < SHOT_DOMINANCE * read:
        raise PtcError(
            f"the flats never leave the read-noise regime: at the brightest kept pair ({top:.1f} ADU) the shot "
            f"variance is {shot / read if read else math.inf:.1f}× the read variance, below {SHOT_DOMINANCE:g}×"
        )


def pair_up(
    exposures: list[tuple[float, npt.NDArray[np.floating]]],
) -> list[tuple[float, npt.NDArray[np.floating], npt.NDArray[np.floating]]]:
    """Every consecutive pair of exposures of equal time (within 5 ms): 1st and 2nd, 3rd and 4th, …; an odd one out."""
    by_time: dict[float, list[npt.NDArray[np.floating]]] = defaultdict(list)
    for exptime, image in exposures:
        by_time[round(exptime / 0.005) * 0.005].append(image)
    return [
        (t, images[i], images[i + 1]) for t, images in sorted(by_time.items()) for i in range(0, len(images) - 1, 2)
    ]
