"""The numeric core on frames of known truth from the simulated detector."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from obsq.csc.atcamera.model import GEOMETRIES, DetectorModel
from obsq.csc.reduction.combine import clip_mask, clipped_stats, mean_combine, median_combine
from obsq.csc.reduction.isr import overscan_correct, section
from obsq.csc.reduction.ptc import fit_ptc, pair_point, pair_up
from obsq.csc.reduction.verify import (
    check_flat_level,
    shot_noise_reference,
    verify_bias_or_dark,
    verify_counts,
    verify_flat,
)

PTC_TIMES = [0.25, 1.42, 6.53, 4.23, 30.04, 12.56, 57.75, 8.13, 2.73, 3.40, 1.77, 111.03, 37.35, 0.48, 0.59, 10.10,
             1.14, 0.20, 89.29, 71.81, 0.38, 0.31, 19.43, 2.20, 15.62, 0.92, 0.74, 24.16, 5.25, 46.44]  # fmt: skip


@pytest.fixture(scope="module")
def detector() -> DetectorModel:
    return DetectorModel(GEOMETRIES["small"], seed=3)


def corrected(detector: DetectorModel, raws: list[np.ndarray]) -> list[np.ndarray]:
    g = detector.geometry
    return [overscan_correct(raw, g.datasec(), g.biassec()) for raw in raws]


def test_sections() -> None:
    assert section("[1:256,1:128]") == (slice(0, 128), slice(0, 256))
    with pytest.raises(ValueError, match="not of the form"):
        section("1:256,1:128")


def test_master_bias_noise_falls_as_root_n(detector: DetectorModel) -> None:
    # 20 biases, Rubin's n_bias; median-centred clipping costs ~4-5 % of noise at this N
    n = 20
    frames = [corrected(detector, detector.expose(i, 0.0, 0.0, 0.0)) for i in range(n)]
    for amp, truth in enumerate(detector.amplifiers):
        stack = np.stack([f[amp] for f in frames])
        master = mean_combine(stack, clip_mask(stack))
        expected = truth.read_noise_e / truth.gain_e_per_adu / np.sqrt(n)
        assert clipped_stats(master)[1] == pytest.approx(expected, rel=0.05)
    assert median_combine(stack, clip_mask(stack)).shape == stack.shape[1:]


def test_clipping_rejects_a_cosmic_ray() -> None:
    stack = np.random.default_rng(1).normal(0, 1, (9, 20, 20)).astype(np.float32)
    stack[4, 5, 5] = 500
    assert clip_mask(stack)[4, 5, 5]
    assert abs(mean_combine(stack, clip_mask(stack))[5, 5]) < 2


def test_verification_of_bias_and_flats(detector: DetectorModel) -> None:
    names = [f"C{i:02d}" for i in range(detector.geometry.n_amps)]
    gains = {n: a.gain_e_per_adu for n, a in zip(names, detector.amplifiers, strict=True)}
    noise_adu = {n: a.read_noise_e / a.gain_e_per_adu for n, a in zip(names, detector.amplifiers, strict=True)}
    bias = dict(zip(names, corrected(detector, detector.expose(99, 0.0, 0.0, 0.0)), strict=True))
    assert all(c.passed for c in verify_bias_or_dark(bias, noise_adu, "from the model's truth"))
    halved = {n: v / 2 for n, v in noise_adu.items()}  # a reference half the true noise: NOISE fails
    assert {c.name for c in verify_bias_or_dark(bias, halved, "too low") if not c.passed} == {"NOISE"}
    flats = [corrected(detector, detector.expose(200 + i, 4700.0, 6.0, 8.0)) for i in range(11)]
    masters = [mean_combine(np.stack([f[a] for f in flats[:10]]), np.zeros((10, 256, 256), bool)) for a in range(4)]
    # the exposure corrected with the candidate master: the flat pattern divides out, the level stays
    test = {n: flats[10][a] / (masters[a] / np.float32(masters[a].mean())) for a, n in enumerate(names)}
    reference = {n: shot_noise_reference(noise_adu[n], float(np.mean(test[n])), gains[n]) for n in names}
    checks = verify_flat(test, reference, "from the model's truth")
    assert all(c.passed for c in checks), [c for c in checks if not c.passed]
    assert check_flat_level(27_000, 6.0, "SDSSr_65mm").passed
    assert not check_flat_level(400, 6.0, "SDSSr_65mm").passed


def test_count_verification_names_missing_and_extra() -> None:
    planned = Counter({("FLAT", "SDSSr_65mm", 6.0): 21, ("BIAS", "SDSSr_65mm", 0.0): 4})
    taken = Counter({("FLAT", "SDSSr_65mm", 6.0): 20, ("BIAS", "SDSSr_65mm", 0.0): 5})
    checks = {c.amp: c for c in verify_counts(planned, taken)}
    assert checks["FLAT SDSSr_65mm 6s"].detail == "1 missing"
    assert checks["BIAS SDSSr_65mm 0s"].detail == "1 extra"
    assert not any(c.passed for c in checks.values())


def test_ptc_recovers_gain_noise_and_turnoff(detector: DetectorModel) -> None:
    exposures = []
    number = 1000
    for exptime in [0.0, *PTC_TIMES]:
        for _ in range(2):
            number += 1
            exposures.append((exptime, corrected(detector, detector.expose(number, 4700.0, exptime, exptime))))
    for amp, truth in enumerate(detector.amplifiers):
        pairs = pair_up([(t, images[amp]) for t, images in exposures])
        assert len(pairs) == len(PTC_TIMES) + 1
        (_, *bias), *flats = pairs  # the biases measure the read noise; they are no point of the curve
        read_noise_adu = np.sqrt(pair_point(*bias, 0.0).variance)
        result = fit_ptc([pair_point(a, b, t) for t, a, b in flats], read_noise_adu=read_noise_adu)
        assert result.gain == pytest.approx(truth.gain_e_per_adu, rel=0.02)
        assert result.noise_e == pytest.approx(truth.read_noise_e, rel=0.02)
        # the brightest pixels (vignetting, PRNU) reach the full well while the mean is ~7 % below it,
        # and the turnoff is the last pair kept: between 88 % and 100 % of the saturation level
        assert 0.88 * 123_000 < result.turnoff <= 123_000
        assert not result.kept[-1]  # the saturated pairs are out


@pytest.mark.parametrize(("flux_e_s", "read_noise_known"), [(4_700.0, False), (9_000.0, False), (25_000.0, True)])
def test_ptc_of_rubins_block_295_exposure_list(flux_e_s: float, read_noise_known: bool) -> None:
    """Rubin's BLOCK-295 PTC flats, at SDSSr's rate and brighter: up to half the pairs saturate.

    The turnoff is found as cp_pipe finds it: the pairs past the variance's collapse are out
    before the first fit, the first fit stays below 50,000 e-, and the curve is walked up from
    the low-signal end. At 25,000 e-/s the faintest pair is 5,000 e-, where the read noise no
    longer shows: it is given, as a bias pair would give it.
    """
    detector = DetectorModel(GEOMETRIES["small"], seed=1)
    exposures = []
    for number, exptime in enumerate(t for t in PTC_TIMES for _ in range(2)):
        exposures.append((exptime, corrected(detector, detector.expose(2000 + number, flux_e_s, exptime, exptime))))
    for amp, truth in enumerate(detector.amplifiers):
        pairs = pair_up([(t, images[amp]) for t, images in exposures])
        assert len(pairs) == len(PTC_TIMES)
        noise_adu = truth.read_noise_e / truth.gain_e_per_adu if read_noise_known else None
        result = fit_ptc([pair_point(a, b, t) for t, a, b in pairs], read_noise_adu=noise_adu)
        assert result.gain == pytest.approx(truth.gain_e_per_adu, rel=0.02), (amp, result.gain)
        saturated = [p.mean > 0.999 * 123_000 for p in result.points]
        assert not any(k and s for k, s in zip(result.kept, saturated, strict=True))
        assert result.turnoff < 123_000


def test_the_variance_falling_marks_the_turnoff_but_a_levels_scatter_does_not() -> None:
    from obsq.csc.reduction.ptc import before_variance_falls

    mean = np.array([1e3, 1e4, 3e4, 3.0001e4, 3.0002e4, 6e4, 8e4, 9e4, 9.5e4])
    var = np.array([5e2, 5e3, 1.31e4, 1.297e4, 1.294e4, 2.6e4, 2.5e4, 2.2e4, 2.0e4])  # three pairs at 3e4 scatter
    assert before_variance_falls(mean, var).tolist() == [True] * 6 + [False] * 3  # two falls in a row from 6e4
    collapse = np.array([5e2, 5e3, 1.3e4, 2.6e4, 3.5e4, 40.0, 41.0, 45.0, 44.0])  # every pixel at the full well
    assert before_variance_falls(mean, collapse).tolist() == [True] * 5 + [False] * 4
