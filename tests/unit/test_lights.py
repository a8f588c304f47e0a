"""`obsq reduce lights` (issue 25): a N.I.N.A.-style folder's lights calibrated with its own masters.

The folder is written from first principles, not by obsq's camera: a bias level and read noise,
Poisson dark current with hot pixels, a 1 % pixel response pattern and a light path vignetted
30 % at the corners. The calibrated lights must be flat corner to centre within 1.5 %, free of
hot pixels beyond 5 sigma with `--cosmetic`, and equal to ccdproc's `ccd_process` with the same
masters.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits

from obsq.csc.app.calib import ReduceOptions, run_reduce
from obsq.csc.app.lights import LightsOptions, run_lights
from obsq.csc.ocps.lights import fix_hot_pixels
from obsq.csc.ocps.repository import Repository

SHAPE = (96, 128)
GAIN = 1.5  # e-/ADU
START = datetime.datetime(2026, 11, 30, 19, 0, 0)
Floats = np.ndarray[Any, np.dtype[np.float64]]


class Camera:
    """A CMOS camera as N.I.N.A. saves it: BIAS/DARK/FLAT/LIGHT, GAIN and OFFSET settings, EGAIN, FILTER."""

    def __init__(self, folder: Path, seed: int = 3) -> None:
        self.folder = folder
        self.rng = np.random.default_rng(seed)
        fixed = np.random.default_rng(seed + 1)
        self.response = 1 + 0.01 * fixed.standard_normal(SHAPE)
        y, x = np.indices(SHAPE)
        r2 = ((y - SHAPE[0] / 2) ** 2 + (x - SHAPE[1] / 2) ** 2) / ((SHAPE[0] / 2) ** 2 + (SHAPE[1] / 2) ** 2)
        self.vignetting = 1 - 0.3 * r2
        self.dark = np.full(SHAPE, 0.05)
        self.hot = fixed.choice(SHAPE[0] * SHAPE[1], 40, replace=False)
        self.dark.flat[self.hot] = fixed.uniform(20, 60, 40)
        self.count = 0

    def take(self, kind: str, exptime: float, *, flux: float = 0.0, filter_: str = "L", folder: str = "",
             name: str = "", tint: tuple[float, float, float, float] | None = None) -> Path:  # fmt: skip
        """`tint`: a colour sensor's mosaic (RGGB) seeing light of these R, G, G, B strengths."""
        electrons = np.zeros(SHAPE)
        if kind != "BIAS":
            electrons += self.rng.poisson(self.dark * exptime)
        if flux:
            colour = np.ones(SHAPE)
            if tint is not None:
                for (dy, dx), strength in zip(((0, 0), (0, 1), (1, 0), (1, 1)), tint, strict=True):
                    colour[dy::2, dx::2] = strength
            electrons += self.rng.poisson(flux * exptime * self.response * self.vignetting * colour)
        adu = 500 + (electrons + self.rng.normal(0, 5.0, SHAPE)) / GAIN
        data = np.clip(np.round(adu), 0, 65535).astype(np.uint16)
        header = fits.Header()
        header["IMAGETYP"] = kind
        header["EXPOSURE"] = exptime
        header["DATE-OBS"] = (START + datetime.timedelta(seconds=60 * self.count)).isoformat(timespec="microseconds")
        header["INSTRUME"] = "ZWO ASI1600MM Pro"
        header["GAIN"], header["OFFSET"], header["EGAIN"] = 139, 21, GAIN
        header["CCD-TEMP"], header["SET-TEMP"] = -10.1, -10.0
        header["XBINNING"], header["YBINNING"] = 1, 1
        if kind in ("FLAT", "LIGHT"):
            header["FILTER"] = filter_
        if kind == "LIGHT":
            header["OBJECT"] = "M 31"
        if tint is not None:
            header["BAYERPAT"], header["XBAYROFF"], header["YBAYROFF"] = "RGGB", 0, 0
        self.count += 1
        where = self.folder / (folder or kind.lower())
        where.mkdir(parents=True, exist_ok=True)
        path = where / (name or f"{kind}_{exptime:g}s_{self.count:04d}.fits")
        fits.PrimaryHDU(data, header).writeto(path)
        return path


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The folder, and a repository with its masters built by `obsq reduce`."""
    folder = tmp_path_factory.mktemp("nina")
    camera = Camera(folder)
    for _ in range(15):
        camera.take("BIAS", 0.0)
    for _ in range(10):
        camera.take("DARK", 120.0)
    for _ in range(10):
        camera.take("FLAT", 2.0, flux=12000.0)
    for _ in range(3):
        camera.take("LIGHT", 120.0, flux=20.0)
    camera.take("LIGHT", 120.0, flux=20.0, filter_="Ha", name="ha_0001.fits")
    repo = folder / "repo"
    for kind in ("bias", "dark", "flat"):
        assert run_reduce(ReduceOptions(kind, [str(folder / kind)], repo)) == 0
    return folder, repo


def regions(image: Floats) -> tuple[float, list[float]]:
    """The median of the centre and of each corner (16 x 16 boxes)."""
    h, w = image.shape
    centre = float(np.median(image[h // 2 - 8 : h // 2 + 8, w // 2 - 8 : w // 2 + 8]))
    corners = [float(np.median(image[r : r + 16, c : c + 16])) for r in (0, h - 16) for c in (0, w - 16)]
    return centre, corners


def test_lights_are_flat_and_clean_and_each_is_accounted_for(
    site: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    folder, repo = site
    out = folder / "out"
    code = run_lights(LightsOptions([str(folder / "light")], repo, out, cosmetic=True, json=True))
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 1  # the Ha light has no flat of its filter
    by_name = {Path(r["file"]).name: r for r in rows}
    assert by_name["ha_0001.fits"]["status"] == "not calibrated"
    assert "no usable master flat of filter Ha" in by_name["ha_0001.fits"]["reason"]
    calibrated = [r for r in rows if r["status"] == "calibrated"]
    assert len(calibrated) == 3
    for row in calibrated:
        assert row["steps"][:3] == ["bias", "dark", "flat"]
        with fits.open(row["output"]) as hdul:
            image, header = hdul[0].data.astype(np.float64), hdul[0].header
        assert header["CALSTAT"] == "BDF"
        assert header["OBJECT"] == "M 31"
        assert header["HIERARCH OBSQ FLAT"] == 3
        assert header["HIERARCH OBSQ FLAT CERT"] is False
        centre, corners = regions(image)
        assert max(abs(c / centre - 1) for c in corners) < 0.015, (centre, corners)
        sky = image[np.isfinite(image)]
        median = float(np.median(sky))
        sigma = 1.4826 * float(np.median(np.abs(sky - median)))
        assert np.count_nonzero(np.abs(image - median) > 5 * sigma) <= 1  # Poisson's own tail: at most one


def test_the_same_numbers_as_ccdproc_with_the_same_masters(site: tuple[Path, Path]) -> None:
    ccdproc = pytest.importorskip("ccdproc")
    from astropy import units as u
    from astropy.nddata import CCDData

    folder, repo = site
    out = folder / "plain"
    assert run_lights(LightsOptions([str(folder / "light")], repo, out)) == 1
    products = {p.type: Repository(repo, now=lambda: 0.0).path_of(p) for p in
                Repository(repo, now=lambda: 0.0).products()}  # fmt: skip
    # as a ccdproc user opens them: CCDData.read with no arguments; the dark is ADU at its exposure
    bias, dark, flat = (CCDData.read(products[t]) for t in ("bias", "dark", "flat"))
    assert (bias.unit, dark.unit, flat.unit) == (u.adu, u.adu, u.dimensionless_unscaled)
    assert [fits.getheader(products[t])["IMAGETYP"] for t in ("bias", "dark", "flat")] == [
        "Master Bias", "Master Dark", "Master Flat",
    ]  # fmt: skip
    header = fits.getheader(products["dark"])
    assert (header["EXPTIME"], header["GAIN"], header["OFFSET"], header["XBINNING"]) == (120.0, 139, 21, 1)
    assert (header["CCD-TEMP"], header["SET-TEMP"]) == (pytest.approx(-10.1), -10.0)
    assert 0.02 < header["DARKCUR"] < 0.05  # 0.05 e-/s at 1.5 e-/ADU
    assert products["dark"].name == "master-dark_120s_GAIN139_OFFSET21_T-10C_v1.fits"
    assert products["dark"].with_suffix(".log").read_text().count("DARK_120s_") == 10
    dark.unit = bias.unit = flat.unit = u.adu
    for light_path in sorted((folder / "light").glob("LIGHT_*.fits")):
        light = CCDData(fits.getdata(light_path).astype(np.float64), unit="adu")
        theirs = ccdproc.ccd_process(
            light,
            master_bias=bias,
            dark_frame=dark,
            master_flat=flat,
            data_exposure=120.0 * u.s,
            dark_exposure=120.0 * u.s,
            dark_scale=True,
        )
        ours = fits.getdata(out / f"{light_path.stem}_cal.fits")
        # ccdproc divides by the flat after scaling it to its mean; obsq's master flat is normalised to 1
        scale = float(np.mean(flat.data))
        np.testing.assert_allclose(ours, theirs.data * scale, rtol=2e-5, atol=2e-3)


def test_a_light_in_compressed_fits_comes_out_compressed_with_the_same_numbers(site: tuple[Path, Path]) -> None:
    folder, repo = site
    first = sorted((folder / "light").glob("LIGHT_*.fits"))[0]
    packed = folder / "packed"
    packed.mkdir()
    with fits.open(first) as hdul:
        fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(hdul[0].data, hdul[0].header)]).writeto(
            packed / f"{first.stem}.fits.fz"
        )
    assert run_lights(LightsOptions([str(packed)], repo, folder / "packed-out")) == 0
    assert run_lights(LightsOptions([str(first)], repo, folder / "plain-out")) == 0
    with fits.open(folder / "packed-out" / f"{first.stem}_cal.fits.fz") as hdul:
        assert isinstance(hdul[1], fits.CompImageHDU)
        packed_image = hdul[1].data
    plain_image = fits.getdata(folder / "plain-out" / f"{first.stem}_cal.fits")
    np.testing.assert_array_equal(packed_image, plain_image)  # an integer light packs losslessly, and so does ours
    # a rerun leaves what exists; --force makes it again
    assert run_lights(LightsOptions([str(first)], repo, folder / "plain-out")) == 0


def test_no_repository_is_refused_before_anything_is_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_lights(LightsOptions([str(tmp_path)], tmp_path / "nowhere")) == 2
    assert "no calibration repository" in capsys.readouterr().err
    assert not (tmp_path / "nowhere").exists()


def test_hot_pixels_take_their_same_colour_neighbours() -> None:
    image = np.full((8, 8), 100.0, np.float32)
    image[::2, ::2] = 50.0  # one colour of a mosaic
    dark = np.zeros((8, 8), np.float32)
    dark += np.random.default_rng(1).normal(0, 0.01, (8, 8)).astype(np.float32)
    image[4, 4], dark[4, 4] = 9000.0, 50.0
    assert fix_hot_pixels(image, dark, step=2) == 1
    assert image[4, 4] == 50.0


def channel_medians(image: Floats) -> list[float]:
    """The median of each colour of an RGGB mosaic (R, G, G, B), over the middle half of the image."""
    h, w = image.shape
    middle = image[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4]
    return [float(np.median(middle[dy::2, dx::2])) for dy, dx in ((0, 0), (0, 1), (1, 0), (1, 1))]


def test_a_colour_sensor_s_flat_is_normalised_per_channel_and_the_light_keeps_its_colours(tmp_path: Path) -> None:
    camera = Camera(tmp_path, seed=7)
    lamp, sky = (0.55, 1.0, 1.0, 0.35), (0.9, 1.0, 1.0, 0.7)  # a warm flat lamp; a bluer sky
    for _ in range(9):
        camera.take("BIAS", 0.0, tint=lamp)
    for _ in range(9):
        camera.take("FLAT", 2.0, flux=12000.0, tint=lamp)
    raw = camera.take("LIGHT", 60.0, flux=40.0, tint=sky)
    repo = tmp_path / "repo"
    for kind in ("bias", "flat"):
        assert run_reduce(ReduceOptions(kind, [str(tmp_path / kind)], repo)) == 0
    (flat_path,) = repo.rglob("master-flat_*.fits")
    with fits.open(flat_path) as hdul:
        flat, header = hdul[0].data, hdul[0].header
    assert (header["BAYERPAT"], header["XBAYROFF"], header["YBAYROFF"]) == ("RGGB", 0, 0)
    means = [float(np.mean(flat[dy::2, dx::2])) for dy, dx in ((0, 0), (0, 1), (1, 0), (1, 1))]
    assert means == pytest.approx([1.0] * 4, abs=0.01)  # not the lamp's colour
    assert run_lights(LightsOptions([str(raw)], repo, tmp_path / "out")) == 0  # no dark: said, not refused
    with fits.open(tmp_path / "out" / f"{raw.stem}_cal.fits") as hdul:
        calibrated, header = hdul[0].data.astype(np.float64), hdul[0].header
    assert header["BAYERPAT"] == "RGGB"
    before = np.array(channel_medians(fits.getdata(raw).astype(np.float64) - 500))
    after = np.array(channel_medians(calibrated))
    np.testing.assert_allclose(after / after[1], before / before[1], rtol=0.02)  # the sky's colours, not the lamp's
    np.testing.assert_allclose(after / after[1], np.array(sky) / sky[1], rtol=0.03)
