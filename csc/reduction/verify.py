"""Verification, cp_verify style, per amplifier, and verification of what was taken.

Thresholds (DMTN-101 / cp_verify): bias and dark |mean| below the clipped sigma; clipped sigma
not above the nominal read noise by more than 5 %; flats' clipped sigma not above sqrt(mean) in
electrons; amplifier means within 5 % of each other; a flat level check (a 6 s SDSSr flat
below 10,000 ADU means the dome and the screen are misaligned).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from obsq.csc.reduction.combine import clipped_stats

MISALIGNED_FLAT_ADU = 10_000.0


@dataclass(frozen=True)
class Check:
    """One test on one amplifier (or on the set)."""

    name: str
    amp: str
    passed: bool
    value: float
    limit: float
    detail: str = ""


def verify_bias_or_dark(
    amps: dict[str, npt.NDArray[np.floating]], gains: dict[str, float], read_noise_e: dict[str, float]
) -> list[Check]:
    """On corrected bias or dark exposures (ADU): mean ~ 0 and noise at the read noise."""
    checks = []
    for amp, data in amps.items():
        mean, sigma = clipped_stats(data)
        checks.append(Check("MEAN", amp, abs(mean) < sigma, abs(mean), sigma, "|mean| < clipped sigma"))
        noise_e, nominal = sigma * gains[amp], read_noise_e[amp]
        excess = (noise_e - nominal) / nominal
        checks.append(Check("NOISE", amp, excess <= 0.05, excess, 0.05, "(sigma - read noise) / read noise"))
    return checks


def verify_flat(amps: dict[str, npt.NDArray[np.floating]], gains: dict[str, float]) -> list[Check]:
    """On bias-corrected flats (ADU): Poisson-limited noise, and amplifiers agreeing within 5 %."""
    checks = []
    means = {}
    for amp, data in amps.items():
        mean, sigma = clipped_stats(data)
        means[amp] = mean
        signal_e, noise_e = mean * gains[amp], sigma * gains[amp]
        checks.append(
            Check(
                "NOISE",
                amp,
                noise_e <= np.sqrt(max(signal_e, 0)) * 1.05,
                noise_e,
                float(np.sqrt(max(signal_e, 0))),
                "sigma <= sqrt(mean) e-",
            )
        )
    overall = float(np.mean(list(means.values())))
    spread = (max(means.values()) - min(means.values())) / overall if overall else np.inf
    checks.append(Check("AMP_SPREAD", "all", spread <= 0.05, float(spread), 0.05, "amplifier means within 5 %"))
    return checks


def check_flat_level(mean_adu: float, exptime_s: float, filter_: str) -> Check:
    """The misalignment check of the LATISS procedure, for 6 s SDSSr flats."""
    applies = filter_.startswith("SDSSr") and abs(exptime_s - 6.0) < 0.01
    passed = not applies or mean_adu >= MISALIGNED_FLAT_ADU
    detail = "dome and screen aligned" if passed else "below 10,000 ADU: dome and white light misaligned"
    return Check("FLAT_LEVEL", "all", passed, mean_adu, MISALIGNED_FLAT_ADU, detail)


def verify_counts(planned: Counter[tuple[str, str, float]], taken: Counter[tuple[str, str, float]]) -> list[Check]:
    """Every (type, filter, exposure time) received as often as asked; missing or extra named."""
    checks = []
    for key in sorted(set(planned) | set(taken), key=str):
        want, got = planned.get(key, 0), taken.get(key, 0)
        label = f"{key[0]} {key[1]} {key[2]:g}s"
        detail = "ok" if want == got else f"{want - got} missing" if got < want else f"{got - want} extra"
        checks.append(Check("COUNT", label, want == got, got, want, detail))
    return checks
