"""Bad files never give a traceback nor hang the reducer (issue 23): NaN/Inf, 10,000 HDUs, a file rewritten mid-read.

Every file is written here in tmp_path with astropy; time is an injected clock; a file is rewritten
through a seam of the reader (between its two looks at the file), never by racing it.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from astropy.io import fits

from obsq.csc.app.calib import Outcome, ProgressBar, ReduceOptions, _build_without_bad_files, run_reduce
from obsq.csc.atcamera.fits import amplifier_header, build_hdus
from obsq.csc.atcamera.model import DetectorModel, Geometry
from obsq.csc.cli import main
from obsq.csc.clock import utc_now_unix
from obsq.csc.ocps.repository import Repository
from obsq.csc.reduction import ptc
from obsq.csc.reduction.combine import clipped_stats
from obsq.csc.reduction.frames import (
    MAX_FILE_PIXELS,
    MAX_HDUS,
    MAX_NAME,
    MAX_READ_S,
    BadFileError,
    FrameError,
    ReadBudget,
    nonfinite_pixels,
    open_frame,
    read_headers,
    safe_name,
    scan_nonfinite,
    signature_key,
)
from obsq.csc.reduction.isr import overscan_correct
from obsq.csc.reduction.stack import Input, combine_plane
from obsq.csc.reduction.survey import nonfinite_refusal, survey

Floats = npt.NDArray[np.float64]


def bias(path: Path, minute: int, *, data: Floats | None = None, dtype: type = np.float32, **cards: Any) -> Path:
    """A plain 64x64 bias from any camera (floating point unless told), its pixels given or drawn."""
    if data is None:
        data = 1000 + np.random.default_rng(minute).normal(0, 5, (64, 64))
    header = fits.Header({"IMAGETYP": "Bias Frame", "EXPTIME": 0.0, "DATE-OBS": f"2026-12-01T10:{minute:02d}:00"})
    for key, value in cards.items():
        header[key] = value
    fits.PrimaryHDU(data.astype(dtype), header).writeto(path, overwrite=True)
    return path


def add_card(path: Path, key: str, value: float) -> None:
    """A card put into the primary header's text as it is (astropy leaves BSCALE out, or rescales the data)."""
    data = path.read_bytes()
    end = data.index(b"END" + b" " * 77)
    path.write_bytes(data[:end] + fits.Card(key, value).image.encode() + data[end : end + 2800] + data[end + 2880 :])


def with_bad_pixels(minute: int, nan: int = 0, inf: int = 0, ninf: int = 0) -> Floats:
    data = 1000 + np.random.default_rng(minute).normal(0, 5, (64, 64))
    flat = data.reshape(-1)
    flat[:nan] = np.nan
    flat[nan : nan + inf] = np.inf
    flat[nan + inf : nan + inf + ninf] = -np.inf
    return data


#: A LATISS-like camera file in small: 16 amplifiers (2 x 8), 16x16 pixels and an 8-column overscan each.
SIXTEEN = Geometry("sixteen", rows=2, cols=8, nx=16, ny=16, serial_overscan=8, parallel_overscan=4)


def camera_file(path: Path, number: int, change: Callable[[int, Floats], None] | None = None) -> Path:
    """A 17-HDU camera file (primary + 16 amplifiers); `change(amp, pixels)` may spoil an amplifier's floats."""
    detector = DetectorModel(SIXTEEN, seed=3)
    raws = detector.expose(number, 0.0, 0.0, 0.0)
    amps = []
    for amp, raw in enumerate(raws):
        pixels = raw.astype(np.float64)
        if change is not None:
            change(amp, pixels)
        amps.append((amplifier_header(detector, amp), pixels.astype(np.float32)))
    primary = {"IMGTYPE": "BIAS", "EXPTIME": 0.0, "DARKTIME": 0.0, "FILTER": "empty",
               "MJD-OBS": 61000.5 + number / 1440, "DETECTOR": "sixteen", "INSTRUME": "LATISS"}  # fmt: skip
    build_hdus(primary, amps).writeto(path)
    return path


def many_hdus(path: Path, count: int) -> Path:
    """A bias followed by `count` tiny image extensions (1x1 float, NaN), appended as raw FITS blocks (fast)."""
    bias(path, 59)
    cards = [fits.Card("XTENSION", "IMAGE"), fits.Card("BITPIX", -32), fits.Card("NAXIS", 2), fits.Card("NAXIS1", 1),
             fits.Card("NAXIS2", 1), fits.Card("PCOUNT", 0), fits.Card("GCOUNT", 1)]  # fmt: skip
    header = ("".join(c.image for c in cards) + "END".ljust(80)).ljust(2880).encode()
    data = np.array([np.nan], ">f4").tobytes().ljust(2880, b"\0")
    with path.open("ab") as out:
        out.write((header + data) * count)
    return path


class Ticks:
    """A clock that moves `step` seconds each time it is looked at."""

    def __init__(self, step: float) -> None:
        self.step, self.t, self.looks = step, 0.0, 0

    def __call__(self) -> float:
        self.looks += 1
        self.t += self.step
        return self.t


# --- NaN and infinite pixels --------------------------------------------------------------------------------------


def test_non_finite_pixels_are_counted_per_amplifier_and_region(tmp_path: Path) -> None:
    path = bias(tmp_path / "b.fits", 0, data=with_bad_pixels(0, nan=10, inf=3, ninf=2))
    frame = open_frame(path)
    (scan,) = scan_nonfinite(frame)
    assert (scan.data_pixels, scan.data_bad, scan.raw_bad) == (4096, 15, 15)
    assert nonfinite_pixels(frame) == 15
    assert nonfinite_refusal([scan]) == ""  # masked, not refused
    doubles = open_frame(bias(tmp_path / "d.fits", 1, data=with_bad_pixels(1, nan=7), dtype=np.float64))
    assert nonfinite_pixels(doubles) == 7


def test_integers_hold_no_nan_unless_bscale_carries_them_past_float32(tmp_path: Path) -> None:
    plain = open_frame(bias(tmp_path / "int.fits", 0, dtype=np.int16))
    assert nonfinite_pixels(plain) == 0
    scaled = bias(tmp_path / "scaled.fits", 1, dtype=np.int16)
    add_card(scaled, "BSCALE", 1e38)
    frame = open_frame(scaled)
    assert nonfinite_pixels(frame) == 4096  # every pixel 1e41: past float32, infinite
    assert "4096 of the 4096 pixels are NaN or infinite (rule: at most 50% in each amplifier" in nonfinite_refusal(
        scan_nonfinite(frame)
    )


def test_a_frame_mostly_non_finite_is_refused_with_the_rule(tmp_path: Path) -> None:
    frame = open_frame(bias(tmp_path / "b.fits", 0, data=with_bad_pixels(0, nan=2049)))
    reason = nonfinite_refusal(scan_nonfinite(frame))
    assert reason == (
        "2049 of the 4096 pixels are NaN or infinite (rule: at most 50% in each amplifier; fewer are masked)"
    )
    half = open_frame(bias(tmp_path / "half.fits", 1, data=with_bad_pixels(1, nan=2048)))
    assert nonfinite_refusal(scan_nonfinite(half)) == ""


def test_one_spoiled_amplifier_of_sixteen_refuses_the_camera_file_by_amplifier(tmp_path: Path) -> None:
    def spoil(amp: int, pixels: Floats) -> None:
        if amp == 5:
            pixels[:, :16] = np.nan  # its whole data section: 1/16 of the file, all of the amplifier

    def no_overscan(amp: int, pixels: Floats) -> None:
        if amp == 2:
            pixels[:, 16:] = np.inf

    good = open_frame(camera_file(tmp_path / "good.fits", 1))
    assert len(good.planes) == 16
    assert nonfinite_refusal(scan_nonfinite(good)) == ""
    spoiled = open_frame(camera_file(tmp_path / "spoiled.fits", 2, spoil))
    assert nonfinite_refusal(scan_nonfinite(spoiled)).startswith(
        "256 of the 256 pixels of amplifier C05 are NaN or infinite (rule: at most 50% in each amplifier"
    )
    blind = open_frame(camera_file(tmp_path / "blind.fits", 3, no_overscan))
    assert nonfinite_refusal(scan_nonfinite(blind)).startswith(
        "every one of the 128 overscan pixels of amplifier C02 is NaN or infinite (rule: the overscan needs finite"
    )


def test_masters_hold_no_nan_and_a_pixel_bad_everywhere_gets_the_median(tmp_path: Path) -> None:
    paths = []
    for minute in range(5):
        data = with_bad_pixels(minute, nan=minute * 7, inf=minute)  # a different few in each
        data[10, 10] = np.nan  # and these bad in every input
        data[20, 30] = np.inf if minute % 2 else -np.inf
        paths.append(bias(tmp_path / f"b{minute}.fits", minute, data=data))
    frames = [open_frame(p) for p in paths]
    for method in ("clipped_mean", "median"):
        result = combine_plane([Input(f, f.planes[0]) for f in frames], method=method, iterations=3)
        assert np.isfinite(result.data).all()
        assert result.n_bad == 2
        median = np.median(np.delete(result.data.ravel(), [10 * 64 + 10, 20 * 64 + 30]))
        assert result.data[10, 10] == result.data[20, 30] == pytest.approx(median)
        assert result.n_used[0, 5] == 1  # NaN in b1..b4: b0 alone gives it
        assert 995 < float(np.median(result.data)) < 1005


def test_statistics_leave_non_finite_values_out() -> None:
    values = np.array([1.0, 2.0, 3.0, np.nan, np.inf, -np.inf, 2.0])
    assert clipped_stats(values)[0] == pytest.approx(2.0)
    mean, sigma = clipped_stats(np.full(10, np.nan))
    assert np.isnan(mean)  # no finite value: nan, never a warning nor an error
    assert np.isnan(sigma)
    raw = np.full((4, 6), 100.0)
    raw[:, :4] += 10
    raw[0, 4] = np.nan
    raw[1, 4:] = np.inf
    assert overscan_correct(raw, "[1:4,1:4]", "[5:6,1:4]").tolist()[0] == [10.0] * 4
    assert overscan_correct(raw, "[1:4,1:4]", "[5:6,1:4]", per_row=True)[1].tolist() == [10.0] * 4
    rng = np.random.default_rng(4)
    a, b = 5000 + rng.normal(0, 50, (64, 64)), 5000 + rng.normal(0, 50, (64, 64))
    a[:3] = np.nan
    b[5] = np.inf
    point = ptc.pair_point(a, b, 1.0)
    assert point.n_pixels > 3500
    assert np.isfinite(point.variance)


# --- the bound on header-data units ------------------------------------------------------------------------------


def test_a_file_of_ten_thousand_hdus_is_refused_after_the_bound(tmp_path: Path) -> None:
    path = many_hdus(tmp_path / "many.fits", 10_000)
    looks = Ticks(0.0)
    with pytest.raises(FrameError, match=f"many.fits: holds more than {MAX_HDUS} header-data units \\(rule: at most"):
        read_headers(path, now=looks)
    assert looks.looks < 2 * MAX_HDUS + 10  # one look a block: the rest of the 10,000 never read
    assert len(read_headers(many_hdus(tmp_path / "few.fits", 20))[0]) == 21
    assert len(open_frame(camera_file(tmp_path / "latiss.fits", 1)).planes) == 16  # a camera's 17 HDUs are fine


def test_headers_that_say_wrong_sizes_are_named(tmp_path: Path) -> None:
    good = bias(tmp_path / "good.fits", 0).read_bytes()
    negative = tmp_path / "negative.fits"
    negative.write_bytes(good.replace(b"NAXIS1  =                   64", b"NAXIS1  =                  -64"))
    with pytest.raises(FrameError, match=r"negative\.fits: not a readable FITS file \(header 0: NAXIS1=-64 is not"):
        read_headers(negative)
    huge = tmp_path / "huge.fits"
    huge.write_bytes(good.replace(b"NAXIS1  =                   64", f"NAXIS1  = {99999999999:>20}".encode()))
    with pytest.raises(FrameError, match=r"huge\.fits: truncated: header-data unit 0 needs 25599999999744 bytes"):
        read_headers(huge)
    (tmp_path / "empty.fits").write_bytes(b"")
    with pytest.raises(FrameError, match=r"empty\.fits: not a readable FITS file \(it is empty\)"):
        read_headers(tmp_path / "empty.fits")
    (tmp_path / "text.fits").write_bytes(b"x" * 2880)
    with pytest.raises(FrameError, match=r"text\.fits: not a FITS file"):
        read_headers(tmp_path / "text.fits")


def test_bad_header_values_are_named_not_raised(tmp_path: Path) -> None:
    cases = {
        "mjd.fits": ({"MJD-OBS": "abc"}, "header MJD-OBS='abc' is not a number"),
        "bscale.fits": ({}, "has BSCALE=0"),
        "binning.fits": ({"XBINNING": 1e300}, "header XBINNING=1e+300 is not a binning (rule: a whole number 1 to 64)"),
        "date.fits": ({"DATE-OBS": "2026-13-45T99:00:00"}, "DATE-OBS='2026-13-45T99:00:00' is not an ISO date"),
        "exptime.fits": ({"EXPTIME": "nan"}, "header EXPTIME='nan' is not finite"),
        "gain.fits": ({"EGAIN": -1.0}, "image IMAGE: gain -1 e-/ADU (rule: a conversion gain is above 0)"),
        "noise.fits": ({"RDNOISE": -3.0}, "image IMAGE: read noise -3 e- (rule: a read noise is 0 or more)"),
        "sections.fits": ({"BIASSEC": "[61:64]"}, "image IMAGE: BIASSEC: section '[61:64]' is not of the form"),
    }
    for name, (cards, message) in cases.items():
        path = bias(tmp_path / name, 0, **cards)
        if name == "bscale.fits":
            add_card(path, "BSCALE", 0)
        with pytest.raises(FrameError) as caught:
            open_frame(path)
        assert str(caught.value).startswith(f"{path}: ")
        assert message in str(caught.value)
    unparsable = bias(tmp_path / "card.fits", 0)
    text = unparsable.read_bytes()
    unparsable.write_bytes(text.replace(b"EXPTIME =                  0.0", b"EXPTIME =                0.0.0"))
    with pytest.raises(FrameError, match=r"card\.fits: a header card cannot be parsed: Unparsable card \(EXPTIME\)"):
        open_frame(unparsable)


def test_a_camera_of_many_amplifiers_gets_a_folder_name_the_file_system_takes() -> None:
    latiss = {"detector": "latiss", "layout": ";".join(f"C{a:02d}:509x2000" for a in range(16)), "binning": "1x1",
              "readout": "", "temperature_band": -95.0}  # fmt: skip
    name = safe_name(signature_key(latiss))
    assert len(name) == MAX_NAME  # 273 characters before: the master's folder could not be made
    assert name.startswith("binning_1x1_detector_latiss_layout_C00_509x2000_C01_509x2000")
    other = safe_name(signature_key(latiss | {"temperature_band": -90.0}))
    assert other != name  # the ends differ only past the cut: the digest tells them apart
    assert safe_name("SDSSr_65mm~empty_1") == "SDSSr_65mm_empty_1"  # short names as they were


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.fits")
    with pytest.raises(FrameError, match=r"pipe\.fits: not a regular file"):
        open_frame(tmp_path / "pipe.fits")


def test_a_file_of_too_many_pixels_is_refused_unread(tmp_path: Path) -> None:
    header = fits.Header({"SIMPLE": True, "BITPIX": 8, "NAXIS": 2, "NAXIS1": 1 << 15, "NAXIS2": (1 << 13) + 1,
                          "IMAGETYP": "BIAS", "EXPTIME": 0.0, "MJD-OBS": 61000.0})  # fmt: skip
    path = tmp_path / "vast.fits"
    with path.open("wb") as out:  # 268 MB of data, a sparse file: nothing written but the header
        out.write(header.tostring().encode())
        out.truncate(2880 + -(-(1 << 15) * ((1 << 13) + 1) // 2880) * 2880)
    with pytest.raises(FrameError, match=f"vast.fits: holds {(1 << 15) * ((1 << 13) + 1)} pixels \\(rule: at most "
                       f"{MAX_FILE_PIXELS} a file\\)"):  # fmt: skip
        open_frame(path)


# --- the bound on time -------------------------------------------------------------------------------------------


def test_a_file_whose_headers_take_too_long_is_refused(tmp_path: Path) -> None:
    path = many_hdus(tmp_path / "slow.fits", 5)
    with pytest.raises(BadFileError, match=r"slow\.fits: reading it took more than 30 s \(at byte 20160 of its "):
        read_headers(path, now=Ticks(16.0))  # 16 s of work between looks: past 30 s at the third block
    assert len(read_headers(path, now=Ticks(MAX_READ_S / 20))[0]) == 6  # 12 looks x 1.5 s: within the bound


def test_the_time_bound_covers_the_scan_of_the_pixels(tmp_path: Path) -> None:
    path = bias(tmp_path / "slow.fits", 0, data=with_bad_pixels(0, nan=3))
    clock = Ticks(0.0)
    budget = ReadBudget(path, clock)
    frame = open_frame(path, budget=budget)  # the headers: in time
    clock.step = MAX_READ_S + 1  # and the disk slows down
    with pytest.raises(BadFileError, match=r"slow\.fits: reading it took more than 30 s \(its pixels, amplifier IMAGE"):
        scan_nonfinite(frame, budget)


# --- files that change while they are read ------------------------------------------------------------------------


def rewrite_in_place(path: Path) -> None:
    """Another program writes the file again, same size, same inode (as `cp other.fits path` does)."""
    data = path.read_bytes()
    index = data.index(b"EXPTIME")
    with path.open("r+b") as out:
        out.write(data[:index] + b"EXPTIME =                  1.0" + data[index + 30 :])
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))


def replace_by_rename(path: Path) -> None:
    """Another program writes a new file and renames it over this one (a new inode, same size)."""
    other = path.with_name("other.tmp")
    other.write_bytes(path.read_bytes())
    os.replace(other, path)


def append(path: Path) -> None:
    """Another program adds an extension to the file."""
    cards = [fits.Card("XTENSION", "IMAGE"), fits.Card("BITPIX", 8), fits.Card("NAXIS", 0)]
    with path.open("ab") as out:
        out.write(("".join(c.image for c in cards) + "END".ljust(80)).ljust(2880).encode())


@pytest.mark.parametrize("change", [rewrite_in_place, replace_by_rename, append])
def test_a_file_changed_while_its_headers_are_read_is_refused(tmp_path: Path, change: Callable[[Path], None]) -> None:
    path = bias(tmp_path / "moving.fits", 0)
    with pytest.raises(BadFileError, match=r"moving\.fits: changed while it was read \(its size, modification time"):
        open_frame(path, after_read=change)  # the seam: between the reading and the second look at the file
    assert open_frame(path).exptime >= 0  # as it is now, read whole, it is a frame


def test_a_file_changed_while_its_pixels_are_combined_is_refused(tmp_path: Path) -> None:
    paths = [bias(tmp_path / f"b{i}.fits", i) for i in range(4)]
    frames = [open_frame(p) for p in paths]
    inputs = [Input(f, f.planes[0]) for f in frames]
    bands = itertools.count()

    def rewrite_after_first_band(_done: int, _total: int) -> None:  # the combine's seam: between two bands
        if next(bands) == 0:
            rewrite_in_place(paths[2])

    with pytest.raises(BadFileError, match=r"b2\.fits: changed while it was read") as caught:
        combine_plane(inputs, band_pixels=64 * 8, threads=1, progress=rewrite_after_first_band)
    assert caught.value.path == paths[2]
    frames = [open_frame(p) for p in paths]
    done = itertools.count()

    def replace_after_last_band(finished: int, total: int) -> None:
        if finished == total and next(done) == 0:
            replace_by_rename(paths[1])

    with pytest.raises(BadFileError, match=r"b1\.fits: changed while it was read"):
        combine_plane([Input(f, f.planes[0]) for f in frames], threads=1, progress=replace_after_last_band)


def test_a_file_changed_between_the_survey_and_its_combine_is_left_out_and_named(tmp_path: Path) -> None:
    folder = tmp_path / "night"
    folder.mkdir()
    paths = [bias(folder / f"b{i}.fits", i) for i in range(5)]
    plan = survey([str(folder)], "bias")
    rewrite_in_place(paths[3])
    options = ReduceOptions("bias", [str(folder)], tmp_path / "repo")
    accounts = {a.path: a for a in plan.accounts}
    outcome = Outcome(plan.groups[0], "pending", "")
    repo = Repository(tmp_path / "repo", now=utc_now_unix)
    _build_without_bad_files(repo, outcome, options, None, ProgressBar(enabled=False), accounts)
    assert outcome.status == "built", outcome.detail
    assert outcome.result is not None
    assert outcome.result["n_inputs"] == 4
    assert accounts[str(paths[3])].reason.startswith("unusable: changed while it was read")
    assert accounts[str(paths[3])].unusable
    rewrite_in_place(paths[0])
    rewrite_in_place(paths[1])
    outcome = Outcome(plan.groups[0], "pending", "")
    _build_without_bad_files(repo, outcome, options, None, ProgressBar(enabled=False), accounts)
    assert outcome.status == "failed"
    assert "was changed while it was read" in outcome.detail
    assert outcome.detail.endswith("2 frames left, fewer than the minimum 3 (--min-frames)")


# --- the command ----------------------------------------------------------------------------------------------------


def test_reduce_names_every_bad_file_and_builds_from_the_good(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    folder = tmp_path / "night"
    folder.mkdir()
    for minute in range(4):
        bias(folder / f"good{minute}.fits", minute)
    bias(folder / "some_nan.fits", 10, data=with_bad_pixels(10, nan=40, inf=1))
    bias(folder / "all_nan.fits", 11, data=np.full((64, 64), np.nan))
    many_hdus(folder / "many.fits", 2 * MAX_HDUS)
    code = run_reduce(ReduceOptions("bias", [str(folder)], tmp_path / "repo", verify=True))
    out = capsys.readouterr().out
    assert code == 1, out  # every group built, but files were refused
    assert "bias#1  5       built" in out
    assert "verification passed" in out
    assert "masked: some_nan.fits: 41 non-finite pixels masked (NaN or infinite)" in out
    assert "all_nan.fits: unusable: 4096 of the 4096 pixels are NaN or infinite (rule: at most 50%" in out
    assert f"many.fits: unusable: holds more than {MAX_HDUS} header-data units (rule: at most {MAX_HDUS}" in out
    (master,) = (tmp_path / "repo" / "calib" / "bias").glob("*/*/master-bias*_v1.fits")
    with fits.open(master) as hdul:
        assert np.isfinite(hdul[0].data).all()
    good_only = tmp_path / "good"
    good_only.mkdir()
    for minute in range(4):
        bias(good_only / f"good{minute}.fits", minute)
    assert run_reduce(ReduceOptions("bias", [str(good_only)], tmp_path / "repo2")) == 0


def test_a_failure_not_foreseen_fails_its_group_by_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "night"
    folder.mkdir()
    for minute in range(3):
        bias(folder / f"b{minute}.fits", minute)
    repo = tmp_path / "repo"
    (repo / "calib").mkdir(parents=True)
    (repo / "calib" / "bias").write_bytes(b"")  # a file where the product's folder must go
    code = run_reduce(ReduceOptions("bias", [str(folder)], repo))
    out = capsys.readouterr().out
    assert code == 1
    assert "bias#1  3       failed" in out, out
    assert "Traceback" not in out


def test_a_ptc_of_flats_with_nan_pixels_is_built_and_its_json_is_strict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "ptc"
    folder.mkdir()
    rng = np.random.default_rng(2)
    minute = itertools.count()
    for exptime in (1, 2, 4, 8, 16, 32):
        for k in range(2):
            data = rng.poisson(1500 * exptime, (64, 64)) / 2.0 + 1000 + rng.normal(0, 5, (64, 64))
            data[k, :5] = np.nan
            bias(folder / f"f{exptime}_{k}.fits", next(minute), data=data, IMAGETYP="Flat Field",
                 EXPTIME=float(exptime), SATURATE=60000.0)  # fmt: skip
    for k in range(2):
        bias(folder / f"b{k}.fits", next(minute), data=with_bad_pixels(20 + k, inf=1))
    code = main(["reduce", "ptc", str(folder), "--repo", str(tmp_path / "repo"), "--json"])
    lines = capsys.readouterr().out.splitlines()

    def no_nan(word: str) -> None:
        raise AssertionError(f"{word} in a JSON line")

    rows = [json.loads(line, parse_constant=no_nan) for line in lines]
    assert code == 0
    (group,) = [r for r in rows if "status" in r]
    assert group["status"] == "built"
    assert 1.9 < group["result"]["amps"]["IMAGE"]["gain"] < 2.1  # 2 e-/ADU: the flats' NaN left out of the pairs
    assert {Path(r["file"]).name: r["masked"] for r in rows if "file" in r}["f4_1.fits"] == 5
