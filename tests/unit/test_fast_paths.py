"""The reducer's fast paths give what the plain ones give: header cards, sorted-run clipping, batched reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from obsq.csc.reduction.cards import parse_cards
from obsq.csc.reduction.combine import clipped_stats, clipped_stats_many
from obsq.csc.reduction.frames import open_frame, scan_nonfinite
from obsq.csc.reduction.runs import count_below
from obsq.csc.reduction.stack import Input, combine_plane, pixel_major_sorted


def _cards(*lines: str) -> str:
    return "".join(line.ljust(80) for line in (*lines, "END"))


def test_plain_cards_read_as_astropy_reads_them() -> None:
    header = fits.Header()
    header["SIMPLE"] = True
    header["BITPIX"] = -32
    header["NAXIS"] = 0
    header["IMAGETYP"] = ("Bias Frame", "MaxIm DL: the type / with a slash")
    header["OBJECT"] = "it's a 'quoted' name"
    header["LEAD"] = "  spaces before  "
    header["EMPTY"] = ""
    header["EXPTIME"] = 1.5e-3
    header["GAIN"] = 139
    header["BIG"] = 12345678901234567890
    header["FLAG"] = False
    header["DUP"] = 1
    header.append(("DUP", 2))  # a repeated keyword: astropy answers with the first
    header["COMMENT"] = "a comment = with an equals sign"
    header["HISTORY"] = "made by a test"
    text = header.tostring()
    cards = parse_cards(text)
    astropy = fits.Header.fromstring(text)
    assert cards is not None
    for word in ("SIMPLE", "BITPIX", "IMAGETYP", "OBJECT", "LEAD", "EMPTY", "EXPTIME", "GAIN", "BIG", "FLAG", "DUP"):
        assert cards[word] == astropy[word], word
        assert type(cards[word]) is type(astropy[word]), word
        assert cards.comments[word] == astropy.comments[word], word
    assert "imagetyp" in cards
    assert cards.get("MISSING", 7) == 7
    assert "COMMENT" not in cards
    real = parse_cards(_cards("EXPTIME =                1.0D3", "RATE    =                 -.5E-2 / per s"))
    assert real is not None
    assert (real["EXPTIME"], real["RATE"]) == (1000.0, -0.005)


@pytest.mark.parametrize(
    "card",
    [
        "HIERARCH ESO DET CHIP = 'x'",  # HIERARCH: astropy's
        "STRING  = 'never ends",  # unterminated
        "CPLX    = (1.0, 2.0)",  # complex
        "UNDEF   =",  # undefined value
        "BAD     = 1.2.3",  # not a number
        "NOSPACE ='abc'",  # the value indicator out of place
        "lower   = 1",  # a keyword outside the standard's characters
        "LONG    = 'abc&'",
    ],
)
def test_a_card_astropy_must_read_hands_the_header_over(card: str) -> None:
    text = _cards("SIMPLE  =                    T", card)
    if card.startswith("LONG"):
        text = _cards("SIMPLE  =                    T", card, "CONTINUE  'def'")
    assert parse_cards(text) is None


def test_count_below_is_searchsorted_row_by_row() -> None:
    rng = np.random.default_rng(1)
    rows = np.sort(rng.integers(0, 20, (300, 37)).astype(np.float32), axis=1)  # many ties
    limits = rng.uniform(-2, 22, 300)
    limits[:20] = rows[:20, 5]  # exactly on a value
    below = count_below(rows, limits)
    upto = count_below(rows, limits, inclusive=True)
    for r in range(300):
        assert below[r] == np.searchsorted(rows[r], limits[r], side="left")
        assert upto[r] == np.searchsorted(rows[r], limits[r], side="right")


def test_pixel_major_sort_of_any_width() -> None:
    rng = np.random.default_rng(2)
    for m in (16, 37, 5):
        stacked = rng.normal(0, 1, (70, m)).astype(np.float32)
        np.testing.assert_array_equal(pixel_major_sorted(stacked), np.sort(stacked.T, axis=1))


def test_batched_clipped_stats_equal_one_by_one() -> None:
    rng = np.random.default_rng(3)
    arrays = []
    for i in range(40):
        a = rng.normal(i, 1 + i % 7, 20_000).astype(np.float32)
        a[rng.integers(0, a.size, 30)] += rng.uniform(10, 1000, 30).astype(np.float32)
        if i % 13 == 0:
            a[:100] = np.nan
        if i % 17 == 0:
            a[5], a[6] = np.inf, -np.inf
        arrays.append(a)
    arrays += [np.full(100, np.nan, np.float32), np.ones(50, np.float32), np.arange(1000.0), np.zeros(0, np.float32)]
    one_by_one = [clipped_stats(a, sample_size=1 << 12) for a in arrays]
    batched = clipped_stats_many(arrays, sample_size=1 << 12)
    np.testing.assert_allclose(np.array(batched), np.array(one_by_one), rtol=1e-12, equal_nan=True)


def _write(path: Path, data: np.ndarray, **words: object) -> Path:
    header = fits.Header({"IMAGETYP": "BIAS", "EXPTIME": 0.0, "MJD-OBS": 61000.0, **words})
    fits.PrimaryHDU(data, header).writeto(path)
    return path


def test_a_stack_of_mixed_layouts_combines_as_one_of_a_single_layout(tmp_path: Path) -> None:
    """Frames read at once (one layout) and one by one (an int16 frame among floats) give the same master."""
    rng = np.random.default_rng(4)
    values = [np.round(rng.normal(1000, 8, (40, 30))).astype(np.float32) for _ in range(70)]
    floats = [_write(tmp_path / f"f{i}.fits", v) for i, v in enumerate(values)]
    mixed = list(floats)
    words = {"IMAGETYP": "BIAS", "EXPTIME": 0.0, "MJD-OBS": 61000.0}
    scaled = fits.PrimaryHDU((values[3] - 32768).astype(np.int16), fits.Header(words))
    scaled.header["BZERO"] = 32768
    scaled.writeto(tmp_path / "i3.fits")
    mixed[3] = tmp_path / "i3.fits"
    results = []
    for paths in (floats, mixed):
        frames = [open_frame(p) for p in paths]
        results.append(combine_plane([Input(f, f.planes[0]) for f in frames], iterations=3, threads=1))
    np.testing.assert_array_equal(results[0].data, results[1].data)
    np.testing.assert_array_equal(results[0].n_used, results[1].n_used)


def test_nan_in_stored_floats_is_counted_as_before(tmp_path: Path) -> None:
    data = np.ones((50, 40), np.float32)
    data[3, 4] = np.nan
    data[10, 1] = np.inf
    big_endian = _write(tmp_path / "be.fits", data)
    scans = scan_nonfinite(open_frame(big_endian))
    assert [(s.raw_bad, s.data_bad) for s in scans] == [(2, 2)]
    clean = _write(tmp_path / "clean.fits", np.ones((50, 40), np.float64))
    assert [s.raw_bad for s in scan_nonfinite(open_frame(clean))] == [0]


def test_a_stepped_read_is_the_same_from_one_span_or_row_by_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from obsq.csc.reduction import frames as frames_module

    data = np.arange(60 * 24, dtype=np.float32).reshape(60, 24)
    frame = open_frame(_write(tmp_path / "rows.fits", data))
    wanted = range(3, 58, 5)
    one_span = frame.read(frame.planes[0], wanted)
    monkeypatch.setattr(frames_module, "SPAN_READ_BYTES", 0)
    row_by_row = frame.read(frame.planes[0], wanted)
    np.testing.assert_array_equal(one_span, data[3:58:5])
    np.testing.assert_array_equal(row_by_row, data[3:58:5])
