"""Verification, cp_verify style, per amplifier, and verification of what was taken.

Thresholds (DMTN-101 / cp_verify): bias and dark |mean| below the clipped sigma; each corrected
exposure's clipped sigma not above its noise reference by more than 5 % — the read noise for a
bias, read noise and dark shot noise for a dark, read and photon shot noise for a flat, measured
from pairs of the inputs (their difference holds only the noise) or modelled from header
values; header values (read noise, gain) within 10 % of what is measured; amplifier means within
5 % of each other; a flat level check (a 6 s SDSSr flat below 10,000 ADU means the dome and the
screen are misaligned).
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


#: A corrected exposure may be this much noisier than its reference before NOISE fails.
NOISE_TOLERANCE = 0.05
#: A header value (read noise, gain) and its measurement must agree this well.
HEADER_TOLERANCE = 0.10
#: Values a check's clipping bounds are estimated from (`clipped_stats`): its centre within ~1 % of sigma,
#: far inside the checks' 5 %; the statistics themselves are of every value kept.
CHECK_SAMPLE = 1 << 14
#: The checks of a header value against its measurement: reported, never failing a master (`check_header`).
HEADER_CHECKS = frozenset({"READ_NOISE", "DARK_NOISE", "GAIN"})


Stats = tuple[float, float]


def verify_bias_or_dark(
    amps: dict[str, npt.NDArray[np.floating]], reference_adu: dict[str, float], source: str
) -> list[Check]:
    """On corrected bias or dark exposures (ADU): mean ~ 0, and noise at the reference (ADU).

    The reference is what one exposure's noise should be: for a bias the read noise, for a dark
    the read noise and the dark current's shot noise together — measured from pairs of the
    inputs, or modelled from header values; `source` says which.
    """
    return bias_or_dark_checks(_stats(amps), reference_adu, source)


def bias_or_dark_checks(stats: dict[str, Stats], reference_adu: dict[str, float], source: str) -> list[Check]:
    """`verify_bias_or_dark` from each amplifier's clipped (mean, sigma), computed already."""
    checks = []
    for amp, (mean, sigma) in stats.items():
        checks.append(Check("MEAN", amp, abs(mean) < sigma, abs(mean), sigma, "|mean| < clipped sigma"))
        reference = reference_adu[amp]
        excess = (sigma - reference) / reference
        checks.append(Check("NOISE", amp, excess <= NOISE_TOLERANCE, excess, NOISE_TOLERANCE,
                            f"(sigma - reference) / reference; reference {reference:.3f} ADU {source}"))  # fmt: skip
    return checks


def verify_flat(amps: dict[str, npt.NDArray[np.floating]], reference_adu: dict[str, float], source: str) -> list[Check]:
    """On flat-corrected flats (ADU): noise at the reference (shot and read noise), amplifiers within 5 %."""
    return flat_checks(_stats(amps), reference_adu, source)


def flat_checks(stats: dict[str, Stats], reference_adu: dict[str, float], source: str) -> list[Check]:
    """`verify_flat` from each amplifier's clipped (mean, sigma), computed already."""
    checks = []
    means = {}
    for amp, (mean, sigma) in stats.items():
        means[amp] = mean
        reference = reference_adu[amp]
        excess = (sigma - reference) / reference
        checks.append(Check("NOISE", amp, excess <= NOISE_TOLERANCE, excess, NOISE_TOLERANCE,
                            f"(sigma - reference) / reference; reference {reference:.3f} ADU {source}"))  # fmt: skip
    overall = float(np.mean(list(means.values())))
    spread = (max(means.values()) - min(means.values())) / overall if overall else np.inf
    checks.append(Check("AMP_SPREAD", "all", spread <= 0.05, float(spread), 0.05, "amplifier means within 5 %"))
    return checks


def _stats(amps: dict[str, npt.NDArray[np.floating]]) -> dict[str, Stats]:
    return {amp: clipped_stats(data, sample_size=CHECK_SAMPLE) for amp, data in amps.items()}


def check_header(name: str, amp: str, header: float, measured: float, unit: str) -> Check:
    """A header value against its measurement, within HEADER_TOLERANCE (HEADER_CHECKS: said, never failing)."""
    difference = abs(measured - header) / abs(header) if header else np.inf
    return Check(name, amp, bool(difference <= HEADER_TOLERANCE), float(difference), HEADER_TOLERANCE,
                 f"header {header:.4g} {unit}, measured {measured:.4g} {unit}")  # fmt: skip


def shot_noise_reference(read_noise_adu: float, signal_adu: float, gain: float) -> float:
    """One exposure's expected noise (ADU): read noise and the shot noise of `signal_adu` at `gain` e-/ADU."""
    return float(np.sqrt(read_noise_adu**2 + max(signal_adu, 0.0) / gain))


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
