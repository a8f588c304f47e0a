"""Photon transfer curve: pair statistics and the EXPAPPROXIMATION fit (Astier et al. 2019, eq. 16).

For each pair of flats of one exposure time: clipped means mu1, mu2; the symmetric difference
(mu2*I1 - mu1*I2)/mu; its clipped variance corrected for the clipping, halved. The model
C(mu) = (exp(2 a00 mu g) - 1) / (2 a00 g^2) + n / g^2 gives the gain g (e-/ADU), the read
noise sqrt(n) (e-) and a00. Points that leave the model by more than 5 sigma are rejected,
and the turnoff is the highest mean still kept. A pair of biases (mean 0) pins the noise.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy import optimize, stats

from obsq.csc.reduction.combine import MAD_TO_SIGMA

CLIP_SIGMA = 5.5


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


def _clip(values: npt.NDArray[np.float64], sigma: float = CLIP_SIGMA, iters: int = 3) -> npt.NDArray[np.float64]:
    keep = np.ones(values.shape, bool)
    for _ in range(iters):
        centre = np.median(values[keep])
        spread = MAD_TO_SIGMA * np.median(np.abs(values[keep] - centre))
        new = np.abs(values - centre) <= sigma * max(spread, 1e-12)
        if (new == keep).all():
            break
        keep = new
    return values[keep]


def clipping_variance_factor(k: float) -> float:
    """Variance of a Gaussian truncated at +-k sigma, relative to sigma^2."""
    phi, cdf = stats.norm.pdf(k), stats.norm.cdf(k) - stats.norm.cdf(-k)
    return float(1 - 2 * k * phi / cdf)


def pair_point(first: npt.NDArray[np.floating], second: npt.NDArray[np.floating], exptime_s: float) -> PairPoint:
    """The PTC point of one pair of overscan-corrected images of one amplifier."""
    a, b = np.asarray(first, np.float64).ravel(), np.asarray(second, np.float64).ravel()
    mu1, mu2 = float(_clip(a).mean()), float(_clip(b).mean())
    mu = 0.5 * (mu1 + mu2)
    diff = a - b if abs(mu) < 1.0 else (mu2 * a - mu1 * b) / mu  # biases (mean 0): the plain difference
    kept = _clip(diff)
    variance = 0.5 * float(kept.var(ddof=1)) / clipping_variance_factor(CLIP_SIGMA)
    return PairPoint(exptime_s, mu, variance, kept.size)


def model(mu: npt.NDArray[np.float64], a00: float, gain: float, noise_sq: float) -> npt.NDArray[np.float64]:
    """Astier+19 eq. 16, stable as a00 -> 0."""
    x = 2 * a00 * mu * gain
    shot = np.where(np.abs(x) < 1e-9, mu / gain, np.expm1(x) / (2 * a00 * gain * gain) if a00 else mu / gain)
    return shot + noise_sq / gain**2


def fit_ptc(points: list[PairPoint], max_iterations: int = 3, sigma_cut: float = 5.0) -> PtcResult:
    """Fit one amplifier's pairs; reject outliers and everything past the turnoff."""
    ordered = sorted(points, key=lambda p: p.mean)
    mean = np.array([p.mean for p in ordered])
    var = np.array([p.variance for p in ordered])
    npix = np.array([p.n_pixels for p in ordered], float)
    positive = var > 0
    approx_gain = float(np.median(mean[positive & (mean > 100)] / var[positive & (mean > 100)]))
    keep = positive & (mean * approx_gain < 50_000)  # the initial fit stays well below saturation
    params = np.array([-1e-7, approx_gain, 25.0])
    for _ in range(max_iterations):
        sigma = np.sqrt(2.0 / npix) * np.maximum(var, 1.0)

        def residuals(
            p: npt.NDArray[np.float64], k: npt.NDArray[np.bool_] = keep, s: npt.NDArray[np.float64] = sigma
        ) -> npt.NDArray[np.float64]:
            return np.asarray((var[k] - model(mean[k], p[0], p[1], p[2])) / s[k], np.float64)

        params = optimize.least_squares(residuals, params, bounds=([-1e-4, 0.1, 0.0], [0.0, 10.0, 2000.0])).x
        deviation = np.abs(var - model(mean, *params)) / sigma
        new = positive & (deviation < sigma_cut)
        first_bad = next((i for i in range(len(new)) if not new[i] and mean[i] > 0), len(new))
        new[first_bad:] = False  # past the first point that leaves the model: saturation
        if (new == keep).all():
            break
        keep = new
    kept = [bool(k) for k in keep]
    turnoff = float(mean[keep].max()) if keep.any() else math.nan
    return PtcResult(gain=float(params[1]), noise_e=float(math.sqrt(max(params[2], 0.0))), a00=float(params[0]),
                     turnoff=turnoff, points=ordered, kept=kept)  # fmt: skip


def pair_up(
    exposures: list[tuple[float, npt.NDArray[np.floating]]],
) -> list[tuple[float, npt.NDArray[np.floating], npt.NDArray[np.floating]]]:
    """Consecutive exposures of equal exposure time (within 5 ms) as pairs; odd ones left out."""
    by_time: dict[float, list[npt.NDArray[np.floating]]] = defaultdict(list)
    for exptime, image in exposures:
        by_time[round(exptime / 0.005) * 0.005].append(image)
    return [(t, images[0], images[1]) for t, images in sorted(by_time.items()) if len(images) >= 2]
