"""The files observers have (issue 25): tile-compressed and gzip'd FITS, XISF, and what obsq does not read.

Each is written as other software writes it (astropy's CompImageHDU, an fpack-style empty primary,
Python's gzip, the `xisf` package with FITS keywords in FITS syntax as PixInsight and N.I.N.A. keep
them) and must read as the same frame, pixel for pixel, as the plain FITS file.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from astropy.io import fits
from xisf import XISF

from obsq.csc.reduction import formats
from obsq.csc.reduction.formats import fits_value, write_like
from obsq.csc.reduction.frames import FrameError, OtherFormatError, open_frame
from obsq.csc.reduction.survey import survey

CARDS: dict[str, Any] = {
    "IMAGETYP": "Bias Frame", "EXPTIME": 0.0, "DATE-OBS": "2026-12-01T10:00:00", "GAIN": 100, "OFFSET": 50,
    "CCD-TEMP": -10.2, "INSTRUME": "ZWO ASI2600MM", "BAYERPAT": "RGGB",
}  # fmt: skip


def pixels(seed: int = 1) -> np.ndarray[Any, np.dtype[np.uint16]]:
    return (1000 + np.random.default_rng(seed).normal(0, 5, (48, 64))).astype(np.uint16)


def header(**changes: Any) -> fits.Header:
    cards = {**CARDS, **changes}
    return fits.Header([(k, v) for k, v in cards.items() if v is not None])


def xisf_keywords(h: fits.Header) -> dict[str, list[dict[str, str]]]:
    """FITS keywords as XISF holds them: the value in FITS syntax ('a string', 12, -10.2)."""
    return {k: [{"value": f"'{v}'" if isinstance(v, str) else str(v), "comment": ""}] for k, v in h.items()}


def write(kind: str, folder: Path, name: str, data: np.ndarray[Any, Any], h: fits.Header) -> Path:
    path = folder / name
    if kind == "fits":
        fits.PrimaryHDU(data, header=h).writeto(path)
    elif kind == "fz":  # astropy (and N.I.N.A.): an empty primary, the image in a compressed extension
        fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data, header=h)]).writeto(path)
    elif kind == "fz-words-in-primary":  # fpack keeps the primary's words in the primary
        fits.HDUList([fits.PrimaryHDU(header=h), fits.CompImageHDU(data)]).writeto(path)
    elif kind == "gz":
        with gzip.open(path, "wb") as out:
            fits.PrimaryHDU(data, header=h).writeto(out)
    elif kind == "xisf":
        XISF.write(str(path), data[:, :, None], creator_app="test", image_metadata={"FITSKeywords": xisf_keywords(h)})
    return path


@pytest.mark.parametrize(
    ("kind", "name", "format_"),
    [("fz", "b.fits.fz", "fits.fz"), ("fz-words-in-primary", "b.fz", "fits.fz"), ("gz", "b.fits.gz", "fits.gz"),
     ("xisf", "b.xisf", "xisf")],
)  # fmt: skip
def test_each_format_reads_as_the_same_frame_as_plain_fits(tmp_path: Path, kind: str, name: str, format_: str) -> None:
    data = pixels()
    plain = open_frame(write("fits", tmp_path, "b.fits", data, header()))
    other = open_frame(write(kind, tmp_path, name, data, header()))
    assert (other.format, other.path) == (format_, tmp_path / name)
    assert other.decoded is not None
    assert (other.imgtype, other.signature, other.filter, other.mjd) == (
        plain.imgtype, plain.signature, plain.filter, plain.mjd,
    )  # fmt: skip
    np.testing.assert_array_equal(other.read(other.planes[0]), plain.read(plain.planes[0]))
    other.unchanged()


def test_a_compressed_camera_file_keeps_its_amplifiers(tmp_path: Path) -> None:
    amps = [fits.CompImageHDU(pixels(i), header=fits.Header([("AMPNAME", f"C0{i}"), ("EXTNAME", f"C0{i}"),
            ("DATASEC", "[1:60,1:48]"), ("BIASSEC", "[61:64,1:48]"), ("GAIN", 1.0)])) for i in range(2)]  # fmt: skip
    path = tmp_path / "camera.fits.fz"
    fits.HDUList([fits.PrimaryHDU(header=header()), *amps]).writeto(path)
    frame = open_frame(path)
    assert [p.name for p in frame.planes] == ["C00", "C01"]
    assert frame.planes[1].overscan is not None
    np.testing.assert_array_equal(frame.read(frame.planes[1]), pixels(1).astype(np.float32))


def test_an_xisf_file_without_keywords_is_read_from_its_properties() -> None:
    meta = {"XISFProperties": {"Instrument:ExposureTime": {"value": 30.0}, "Instrument:Filter:Name": {"value": "L"},
                               "Observation:Time:Start": {"value": "2026-12-01T21:00:00Z"}},
            "FITSKeywords": {"IMAGETYP": [{"value": "'LIGHT'", "comment": ""}]}}  # fmt: skip
    h = formats.xisf_header(meta)
    assert (h["IMAGETYP"], h["EXPTIME"], h["FILTER"], h["DATE-OBS"]) == ("LIGHT", 30.0, "L", "2026-12-01T21:00:00")


def test_a_debayered_xisf_image_is_refused_naming_its_channels(tmp_path: Path) -> None:
    path = tmp_path / "rgb.xisf"
    XISF.write(str(path), np.zeros((8, 8, 3), np.uint16), creator_app="test",
               image_metadata={"FITSKeywords": xisf_keywords(header())})  # fmt: skip
    with pytest.raises(FrameError, match=r"rgb\.xisf: an XISF image of 3 channels .*not a debayered image"):
        open_frame(path)


def test_what_obsq_does_not_read_is_named_and_a_folder_accounts_for_it(tmp_path: Path) -> None:
    (tmp_path / "preview.png").write_bytes(b"\x89PNG\r\n")
    (tmp_path / "b0.fits").write_bytes(b"GARBAGE" * 500)
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(OtherFormatError, match=r"preview\.png: a PNG file, not read: obsq reads FITS"):
        open_frame(tmp_path / "preview.png")
    with pytest.raises(FrameError, match=r"b0\.fits: not a FITS or XISF file"):
        open_frame(tmp_path / "b0.fits")
    for i in range(3):
        write("xisf", tmp_path, f"x{i}.xisf", pixels(i), header(**{"DATE-OBS": f"2026-12-01T10:0{i}:00"}))
    result = survey([str(tmp_path)], "bias")
    reasons = {Path(a.path).name: a.reason for a in result.accounts}
    assert set(reasons) == {"preview.png", "b0.fits", "x0.xisf", "x1.xisf", "x2.xisf"}  # the .txt is no image
    assert reasons["preview.png"].startswith("a PNG file, not read")
    assert reasons["b0.fits"].startswith("unusable: not a FITS or XISF file")
    assert [len(g.frames) for g in result.groups] == [3]


def test_a_gzip_bomb_is_refused_at_the_bound(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write("gz", tmp_path, "big.fits.gz", np.zeros((512, 512), np.uint16), header())
    monkeypatch.setattr(formats, "MAX_INFLATED_BYTES", 100_000)
    with pytest.raises(FrameError, match=r"big\.fits\.gz: inflates to more than 100000 bytes"):
        open_frame(path)


def test_fits_values_as_xisf_stores_them() -> None:
    assert [fits_value(t) for t in ["'Light Frame'", "'O''Neil '", "12", "-10.25", "T", "F", "RGGB"]] == [
        "Light Frame", "O'Neil", 12, -10.25, True, False, "RGGB",
    ]  # fmt: skip


@pytest.mark.parametrize("format_", ["fits", "fits.fz", "fits.gz", "xisf"])
def test_an_image_written_like_its_input_reads_back_the_same(tmp_path: Path, format_: str) -> None:
    data = pixels().astype(np.float32) / 7
    written = write_like(format_, tmp_path / "light_cal", data, header(IMAGETYP="Light Frame", EXPTIME=30.0))
    assert written.name == "light_cal." + ("fits" if format_ == "fits" else format_)
    assert not list(tmp_path.glob(".*partial"))
    frame = open_frame(written)
    assert (frame.format, frame.imgtype, frame.signature["gain"]) == (format_, "OBJECT", 100)
    np.testing.assert_allclose(frame.read(frame.planes[0]), data, rtol=1e-6 if format_ != "fits.fz" else 1e-2)
