"""The banded combine from files: same answer as ccdproc and astropy, masks, and bad files."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.stats import mad_std, sigma_clip

from obsq.csc.reduction import stack
from obsq.csc.reduction.frames import FrameError, open_frame
from obsq.csc.reduction.stack import Corrections, Input, combine_band, combine_plane, nan_median_rows, sort_stack


def write_biases(folder: Path, n: int, size: int, seed: int = 5) -> list[Path]:
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        data = rng.normal(1000, 8, (size, size)).astype(np.float32)
        hits = rng.integers(0, size, (2, size // 8))
        data[hits[0], hits[1]] += rng.uniform(200, 20000, size // 8).astype(np.float32)
        header = fits.Header({"IMAGETYP": "Bias Frame", "EXPTIME": 0.0, "MJD-OBS": 61000.0 + i / 1440})
        path = folder / f"bias{i:02d}.fits"
        fits.PrimaryHDU(data, header).writeto(path)
        paths.append(path)
    return paths


def inputs(paths: list[Path]) -> list[Input]:
    frames = [open_frame(p) for p in paths]
    return [Input(f, f.planes[0]) for f in frames]


def test_sorting_network_sorts_any_n() -> None:
    rng = np.random.default_rng(0)
    for n in (1, 2, 3, 7, 20, 33):
        rows = [rng.normal(size=50).astype(np.float32) for _ in range(n)]
        expected = np.sort(np.stack(rows), axis=0)
        assert np.array_equal(np.stack(sort_stack(rows)), expected)


def test_nan_median_rows_matches_numpy() -> None:
    values = np.random.default_rng(1).normal(size=(200, 8))
    values[values > 1.2] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        np.testing.assert_array_equal(nan_median_rows(values), np.nanmedian(values, axis=1))


def test_clipped_mean_equals_ccdproc(tmp_path: Path) -> None:
    ccdproc = pytest.importorskip("ccdproc")
    from astropy.nddata import CCDData

    paths = write_biases(tmp_path, 15, 256)
    ours = combine_plane(inputs(paths), iterations=1, band_pixels=4096)
    ccds = [CCDData(fits.getdata(p), unit="adu") for p in paths]
    reference = ccdproc.combine(ccds, method="average", sigma_clip=True, sigma_clip_func=np.ma.median,
                                sigma_clip_dev_func=mad_std)  # fmt: skip
    np.testing.assert_allclose(ours.data, reference.data, rtol=2e-7, atol=0)
    assert ours.n_rejected > 15 * 256 // 8  # the cosmic rays at least


def test_iterated_clip_equals_astropy_sigma_clip(tmp_path: Path) -> None:
    paths = write_biases(tmp_path, 12, 128, seed=9)
    stack = np.stack([fits.getdata(p).astype(np.float64) for p in paths])
    for iterations in (2, 5):
        ours = combine_plane(inputs(paths), iterations=iterations, threads=1)
        clipped = sigma_clip(stack, sigma=3, maxiters=iterations, axis=0, cenfunc=np.nanmedian,
                             stdfunc=lambda a, axis=None: mad_std(a, axis=axis, ignore_nan=True))  # fmt: skip
        np.testing.assert_allclose(ours.data, clipped.mean(axis=0), rtol=2e-7, atol=0)


@pytest.mark.parametrize("n", [65, 100])
def test_many_inputs_go_by_selection_with_the_network_s_decisions(n: int) -> None:
    rng = np.random.default_rng(n)
    rows = [rng.normal(1000, 8, (6, 40)).astype(np.float32) for _ in range(n)]
    for row in rows[::7]:
        row[rng.integers(0, 6), rng.integers(0, 40)] += np.float32(rng.uniform(200, 20000))
    for iterations in (1, 3):
        by_selection = combine_band(rows, None, "clipped_mean", 3.0, iterations)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(stack, "NETWORK_MAX", 1000)
            by_network = combine_band(rows, None, "clipped_mean", 3.0, iterations)
        np.testing.assert_array_equal(by_selection.n_used, by_network.n_used)
        np.testing.assert_allclose(by_selection.combined, by_network.combined, rtol=1e-7, atol=0)
        assert by_selection.n_rejected == by_network.n_rejected > 0
        reference = sigma_clip(np.stack(rows).astype(np.float64), sigma=3, maxiters=iterations, axis=0,
                               cenfunc=np.nanmedian,
                               stdfunc=lambda a, axis=None: mad_std(a, axis=axis, ignore_nan=True))  # fmt: skip
        np.testing.assert_allclose(by_selection.combined, reference.mean(axis=0), rtol=2e-7, atol=0)


def test_saturated_and_defect_pixels_never_count(tmp_path: Path) -> None:
    paths = write_biases(tmp_path, 5, 64)
    for path in paths[:2]:
        with fits.open(path, mode="update") as hdul:
            hdul[0].data[10, 10] = 60000.0
    defects = np.zeros((64, 64), bool)
    defects[3, :] = True
    result = combine_plane(inputs(paths), Corrections(saturation=50000.0, defects=defects), method="median")
    stack = np.stack([fits.getdata(p) for p in paths])
    assert result.data[10, 10] == pytest.approx(np.median(stack[2:, 10, 10]))
    assert result.n_used[10, 10] == 3
    assert (result.data[3] == np.float32(np.median(np.delete(result.data, 3, axis=0)))).all()  # no input: the median
    assert result.n_bad == 64


def test_bad_files_are_named(tmp_path: Path) -> None:
    good = write_biases(tmp_path, 1, 64)[0]
    truncated = tmp_path / "truncated.fits"
    truncated.write_bytes(good.read_bytes()[:-4000])
    with pytest.raises(FrameError, match=r"truncated\.fits: truncated"):
        open_frame(truncated)
    corrupt = tmp_path / "corrupt.fits"
    corrupt.write_bytes(b"SIMPLE  = nonsense" + bytes(2880 - 18))
    with pytest.raises(FrameError, match=r"corrupt\.fits: not a readable FITS file"):
        open_frame(corrupt)
    untyped = tmp_path / "untyped.fits"
    fits.PrimaryHDU(np.zeros((4, 4), np.float32), fits.Header({"EXPTIME": 1.0, "MJD-OBS": 1.0})).writeto(untyped)
    with pytest.raises(FrameError, match=r"untyped\.fits: no image type"):
        open_frame(untyped)
    with pytest.raises(ValueError, match="input set is empty"):
        combine_plane([])


def test_foreign_headers_give_a_signature(tmp_path: Path) -> None:
    header = fits.Header({"IMAGETYP": "Flat Field", "EXPOSURE": 2.5, "FILTER": "Ha", "GAIN": 120, "OFFSET": 30,
                          "XBINNING": 2, "YBINNING": 2, "CCD-TEMP": -9.2, "DATE-OBS": "2026-11-20T18:00:00",
                          "INSTRUME": "ZWO ASI2600MM Pro"})  # fmt: skip
    path = tmp_path / "flat.fits"
    fits.PrimaryHDU(np.zeros((8, 8), np.uint16), header).writeto(path)
    frame = open_frame(path)
    assert (frame.imgtype, frame.exptime, frame.filter) == ("FLAT", 2.5, "Ha")
    assert frame.signature == {"detector": "ZWO ASI2600MM Pro", "layout": "IMAGE:8x8", "binning": "2x2", "readout": "",
                               "gain": 120.0, "offset": 30.0, "temperature_band": -10.0}  # fmt: skip
    assert frame.read(frame.planes[0]).dtype == np.float32
