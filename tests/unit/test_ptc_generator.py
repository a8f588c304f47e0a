"""The PTC on frames from a generator written from first principles, not the project's camera model.

Poisson electrons, Gaussian read noise, a gain and a bias level, single-HDU 16-bit files with
BZERO and no overscan, as MaxIm DL writes them; biases beside the flats. At several gains the PTC
gives the gain and the read noise within 2 %; frames that cannot give a PTC are refused with
the reason, never a number.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from obsq.csc.cli import main
from obsq.csc.clock import utc_now_unix
from obsq.csc.ocps.pipelines import PipelineError, run_ptc
from obsq.csc.ocps.repository import Repository

from .foreign import Acquisition, Sensor


def night(folder: Path, gain: float, *, levels: int = 14, top_adu: float = 90_000.0, biases: int = 4,
          flats_per_level: int = 2) -> tuple[list[str], list[str], Sensor]:  # fmt: skip
    """Biases, then pairs of flats at `levels` exposure times whose means rise geometrically to `top_adu`."""
    sensor = Sensor(gain=gain, read_noise_e=12.0, bias_adu=1000.0, shape=(128, 128), seed=int(gain * 100))
    camera = Acquisition("maxim", folder, sensor)
    bias = [str(camera.take("BIAS", 0.0, "BIAS")) for _ in range(biases)]
    flux = 1000.0 * gain  # e-/s: 1000 ADU per second
    flats = []
    for exptime in np.geomspace(0.15, top_adu / 1000.0, levels):
        flats += [str(camera.take("FLAT", round(float(exptime), 3), "FLAT", flux=flux)) for _ in range(flats_per_level)]
    return flats, bias, sensor


@pytest.mark.parametrize("gain", [0.8, 2.3, 6.0])
def test_gain_and_read_noise_within_2_percent(tmp_path: Path, gain: float) -> None:
    flats, bias, sensor = night(tmp_path / "in", gain)
    repo = Repository(tmp_path / "repo", now=utc_now_unix)
    result = run_ptc(repo, {"inputs": flats, "bias": bias})
    (amp,) = result["amps"].values()
    assert amp["gain"] == pytest.approx(gain, rel=0.02)
    assert amp["noise_e"] == pytest.approx(sensor.read_noise_e, rel=0.02)
    assert amp["read_noise_from"] == "bias pairs"
    assert amp["n_pairs"] == 14  # every pair of each level; the biases are no points
    assert amp["turnoff_reached"]  # the top levels saturate the 16-bit ADC
    assert result["covers_range"]
    assert result["bias"] == "the mean of 4 bias frames"


def test_every_pair_at_each_level_counts(tmp_path: Path) -> None:
    flats, bias, _ = night(tmp_path / "in", 2.3, levels=5, flats_per_level=6, top_adu=30_000.0)
    result = run_ptc(Repository(tmp_path / "repo", now=utc_now_unix), {"inputs": [*flats, *bias]})
    (amp,) = result["amps"].values()
    assert amp["n_pairs"] == 15  # six flats at each of five levels: three pairs each
    assert amp["gain"] == pytest.approx(2.3, rel=0.02)
    assert not result["covers_range"]  # 30,000 ADU is under half of what the ADC can hold, and no turnoff
    assert "below the turnoff" in result["range"]


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        ({"levels": 3}, "pairs at 3 exposure levels; a PTC needs 4"),
        ({"top_adu": 40.0}, "the flats never leave the read-noise regime"),
        ({"biases": 0}, "no overscan, and no bias frames or master bias of its signature"),
        ({"flats_per_level": 1}, "pairs at 0 exposure levels"),
    ],
)
def test_frames_that_cannot_give_a_ptc_are_refused(tmp_path: Path, setup: dict[str, float], reason: str) -> None:
    flats, bias, _ = night(tmp_path / "in", 2.3, **setup)  # type: ignore[arg-type]
    repo = Repository(tmp_path / "repo", now=utc_now_unix)
    with pytest.raises(PipelineError, match=reason):
        run_ptc(repo, {"inputs": flats, "bias": bias})
    assert repo.products() == []  # nothing recorded


def test_reduce_ptc_groups_by_filter_and_uses_biases_as_bias(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    sensor = Sensor(gain=1.7, read_noise_e=9.0, shape=(96, 96), seed=7)
    camera = Acquisition("nina", tmp_path / "in", sensor, instrument="ZWO ASI1600MM Pro")
    for _ in range(4):
        camera.take("BIAS", 0.0, "bias")
    for filter_, flux in (("R", 1700.0), ("G", 2500.0)):
        for exptime in np.geomspace(0.2, 60.0, 8):
            for _ in range(2):
                camera.take("FLAT", round(float(exptime), 3), f"flat_{filter_}", flux=flux, filter_=filter_)
    code = main(["reduce", "ptc", str(tmp_path / "in"), "--repo", str(tmp_path / "repo")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.count("ptc product") == 2  # one per filter
    assert "ptc#1  16" in out
    assert "ptc#2  16" in out
    assert "(bias: the mean of 4 bias frames)" in out
    gains = [float(g) for g in re.findall(r"g=([0-9.]+) e-/ADU", out)]
    assert gains == pytest.approx([1.7, 1.7], rel=0.02)
