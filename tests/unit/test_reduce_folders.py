"""`obsq reduce` on folders as other acquisition software leaves them: the right masters, every file accounted for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from astropy.io import fits

from obsq.csc.cli import main
from obsq.csc.reduction.frames import ProductError, open_frame

from .foreign import Acquisition, Sensor, ccdproc_master


def reduce(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[dict[str, str]], str]:
    code = main(["reduce", *args, "--json"])
    captured = capsys.readouterr()
    return code, [json.loads(line) for line in captured.out.splitlines() if line.strip()], captured.err


def groups(rows: list[dict[str, str]]) -> dict[str, tuple[str, int]]:
    return {r["group"]: (r["status"], int(r["frames"])) for r in rows if "status" in r}


def files(rows: list[dict[str, str]]) -> dict[str, dict[str, str]]:
    return {Path(r["file"]).relative_to(Path(r["file"]).parents[1]).as_posix(): r for r in rows if "file" in r}


@pytest.fixture
def ccdsoft(tmp_path: Path) -> Path:
    """An SBIG camera under CCDSoft: BIAS/ DARK/ FLAT/ LIGHT/, flats typed 'Light Frame', a ccdproc master in BIAS/."""
    camera = Acquisition("ccdsoft", tmp_path / "night")
    for _ in range(5):
        camera.take("BIAS", 0.0, "BIAS")
    for _ in range(4):
        camera.take("DARK", 60.0, "DARK")
    for _ in range(4):
        camera.take("FLAT", 5.0, "FLAT", flux=4000.0)
    for _ in range(2):
        camera.take("LIGHT", 120.0, "LIGHT", flux=50.0)
    ccdproc_master(tmp_path / "night" / "BIAS" / "master_bias.fits")
    return tmp_path / "night"


def test_a_ccdsoft_night_every_file_accounted_for(ccdsoft: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    repo = str(tmp_path / "repo")
    code, rows, _ = reduce(capsys, "bias", str(ccdsoft), "--repo", repo)
    assert code == 0
    assert groups(rows) == {"bias#1": ("built", 5)}
    account = files(rows)
    assert len(account) == 16  # every file, used or not
    assert all(a["group"] == "bias#1" for k, a in account.items() if k.startswith("BIAS/bias"))
    assert account["BIAS/master_bias.fits"]["reason"].startswith("a processed product with MASK, UNCERT extensions")
    assert {a["reason"] for k, a in account.items() if k.startswith("DARK/")} == {"a dark, not a bias"}
    assert {a["reason"] for k, a in account.items() if k.startswith("LIGHT/")} == {"an object, not a bias"}
    # the flats are 'Light Frame' to the camera software: skipped with the hint, never taken silently
    code, rows, _ = reduce(capsys, "flat", str(ccdsoft / "FLAT"), "--repo", repo)
    assert code == 1
    assert groups(rows) == {}
    hints = {a["hint"] for a in files(rows).values()}
    assert hints == {"its folder suggests a flat: if it is one, give --type flat with it"}
    code, rows, _ = reduce(capsys, "flat", str(ccdsoft / "FLAT"), "--repo", repo, "--type", "flat")
    assert code == 0, rows
    assert groups(rows) == {"flat#1": ("built", 4)}
    code, rows, _ = reduce(capsys, "dark", str(ccdsoft), "--repo", repo)
    assert (code, groups(rows)) == (0, {"dark#1": ("built", 4)})
    (dark,) = Path(repo).rglob("master-dark_*_v1.fits")
    assert dark.parent.name == "none"  # no filter: a readable folder name
    with fits.open(dark) as hdul:
        header = hdul[0].header
        assert (len(hdul), header["AMPNAME"], header["IMAGETYP"]) == (1, "IMAGE", "Master Dark")
    assert (header["INSTRUME"], header["EXPTIME"], header["NCOMBINE"]) == ("SBIG STL-1001 3 CCD Camera", 60.0, 4)
    assert (header["DATE-OBS"], header["DATE-END"]) == ("2026-11-30T19:02:30.000", "2026-11-30T19:04:00.000")
    assert header["SOFTWARE"].startswith("obsq ")
    assert [header[f"INPUT{i:03d}"] for i in range(4)] == [p.name for p in sorted((ccdsoft / "DARK").iterdir())]
    # a rerun builds only what is missing
    code, rows, _ = reduce(capsys, "bias", str(ccdsoft), "--repo", repo)
    assert (code, groups(rows)) == (0, {"bias#1": ("exists", 5)})
    assert len(list(Path(repo).rglob("master-bias*_v*.fits"))) == 1


def test_each_group_on_its_own(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two cameras and a stray pair: the stray group and the dark without a bias are refused, the rest built."""
    big = Acquisition("maxim", tmp_path / "in", Sensor(shape=(64, 64)), instrument="Camera A")
    small = Acquisition("maxim", tmp_path / "in", Sensor(shape=(32, 48), seed=5), instrument="Camera B")
    for _ in range(3):
        big.take("BIAS", 0.0, "a")
        big.take("DARK", 30.0, "a")
        small.take("DARK", 30.0, "b")
    for _ in range(2):
        small.take("BIAS", 0.0, "b")
    repo = str(tmp_path / "repo")
    code, rows, _ = reduce(capsys, "bias", str(tmp_path / "in"), "--repo", repo)
    assert code == 1  # one group was not built
    assert sorted(groups(rows).values()) == [("built", 3), ("refused", 2)]
    refused = next(r for r in rows if r.get("status") == "refused")
    assert refused["detail"] == "2 frames, fewer than the minimum 3 (--min-frames)"
    code, rows, _ = reduce(capsys, "dark", str(tmp_path / "in"), "--repo", repo)
    assert code == 1
    outcome = {r["label"].split()[0] + " " + r["label"].split()[1]: (r["status"], r["detail"]) for r in rows
               if "status" in r}  # fmt: skip
    assert outcome["Camera A"][0] == "built"
    assert outcome["Camera B"] == ("refused", outcome["Camera B"][1])
    assert "no matching master bias" in outcome["Camera B"][1]
    code, rows, _ = reduce(capsys, "bias", str(tmp_path / "in" / "b"), "--repo", repo, "--min-frames", "2")
    assert (code, sorted(groups(rows).values())) == (0, [("built", 2)])


def test_files_named_one_by_one_must_go_together(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    camera = Acquisition("nina", tmp_path / "in")
    biases = [str(camera.take("BIAS", 0.0)) for _ in range(3)]
    flat = str(camera.take("FLAT", 2.0, flux=5000.0, filter_="L"))
    other = Acquisition("nina", tmp_path / "in", Sensor(shape=(32, 32)), instrument="ZWO ASI294MM Pro")
    odd = str(other.take("BIAS", 0.0))
    repo = tmp_path / "repo"
    code, _, err = reduce(capsys, "bias", flat, "--repo", str(repo))  # only files of another kind: refused
    assert code == 2
    assert f"{flat}: is a FLAT, not a BIAS" in err
    assert "nothing was built" in err
    code, _, err = reduce(capsys, "bias", *biases, odd, "--repo", str(repo))
    assert code == 2
    assert "cannot make one bias" in err
    assert "layout: IMAGE:32x32 vs IMAGE:64x64" in err
    master = str(ccdproc_master(tmp_path / "master.fits"))
    code, _, err = reduce(capsys, "bias", *biases, master, "--repo", str(repo))
    assert code == 2
    assert "a processed product with MASK, UNCERT extensions, not a raw frame" in err
    assert not list(repo.rglob("*.fits"))  # nothing half-written
    code, rows, _ = reduce(capsys, "bias", *biases, flat, "--repo", str(repo))  # a glob does what its folder does
    assert (code, groups(rows)) == (0, {"bias#1": ("built", 3)})
    assert {r["reason"] for r in rows if r.get("file") == flat} == {"a flat, not a bias"}


def test_header_conventions_of_other_programs(tmp_path: Path) -> None:
    nina = open_frame(Acquisition("nina", tmp_path).take("FLAT", 2.0, flux=1000.0, filter_="Ha"))
    assert (nina.imgtype, nina.filter, nina.planes[0].gain, nina.signature["gain"]) == ("FLAT", "Ha", 2.3, 139)
    asiair = open_frame(Acquisition("asiair", tmp_path, Sensor(bits=8, bias_adu=10, gain=0.25)).take("BIAS", 0.0))
    assert (asiair.imgtype, asiair.planes[0].dtype, asiair.planes[0].gain) == (
        "BIAS",
        ">u1",
        None,
    )  # GAIN=120: a setting
    maxim = Acquisition("maxim", tmp_path)
    with pytest.raises(ProductError, match="a calibrated frame \\(CALSTAT='BDF'\\)"):
        open_frame(maxim.take("LIGHT", 60.0, flux=10.0, CALSTAT="BDF"))
    assert open_frame(maxim.take("FLAT", 1.0, flux=9000.0)).imgtype == "FLAT"
    sharpcap = Acquisition("sharpcap", tmp_path / "capture")
    frame = sharpcap.take("DARK", 10.0, "darks")
    with pytest.raises(Exception, match="no image type"):
        open_frame(frame)
    assert open_frame(frame, imgtype="DARK").mjd > 61000  # seven fractional digits of DATE-OBS


def test_sharpcap_folders_hint_and_type(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    camera = Acquisition("sharpcap", tmp_path / "capture", Sensor(bits=8, bias_adu=12, gain=0.5))
    for _ in range(4):
        camera.take("BIAS", 0.0, "Bias")
    repo = str(tmp_path / "repo")
    code, rows, _ = reduce(capsys, "bias", str(tmp_path / "capture"), "--repo", repo)
    assert code == 1
    (hint,) = {a["hint"] for a in files(rows).values()}
    assert hint == "its folder suggests a bias: if it is one, give --type bias with it"
    code, rows, _ = reduce(capsys, "bias", str(tmp_path / "capture" / "Bias"), "--repo", repo, "--type", "bias")
    assert (code, groups(rows)) == (0, {"bias#1": ("built", 4)})


def test_the_table_and_the_account_in_words(ccdsoft: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert main(["reduce", "bias", str(ccdsoft), "--repo", str(tmp_path / "repo")]) == 0
    out = capsys.readouterr().out
    assert "GROUP   FRAMES  OUTCOME  WHAT" in out
    assert "bias#1  5       built    SBIG STL-1001 3 CCD Camera 64x64 bin 1x1 -4.9 C 2026-11-30" in out  # as measured
    assert "files: 16, 5 used, 11 not used" in out
    assert f"not used: {ccdsoft / 'DARK'}/ " in out
    assert ": a dark, not a bias" in out


def test_the_command_line_default_is_the_surveys() -> None:
    from obsq.csc.cli.reduce import DEFAULT_MIN_FRAMES as CLI_DEFAULT
    from obsq.csc.reduction.survey import DEFAULT_MIN_FRAMES

    assert CLI_DEFAULT == DEFAULT_MIN_FRAMES


def test_verification_without_noise_headers(ccdsoft: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    """CCDSoft writes EGAIN but no RDNOISE: the noise is measured from pairs; darks carry their shot noise."""
    repo = str(tmp_path / "repo")
    for kind, folder, extra in (("bias", ccdsoft / "BIAS", []), ("dark", ccdsoft / "DARK", []),
                                ("flat", ccdsoft / "FLAT", ["--type", "flat"])):  # fmt: skip
        code, rows, _ = reduce(capsys, kind, str(folder), "--repo", repo, "--verify", *extra)
        (group,) = [r for r in rows if "status" in r]
        assert (code, group["status"]) == (0, "built"), group
        verification = group["result"]["verification"]  # type: ignore[index]
        assert verification["verdict"] == "passed"
        assert verification["noise_reference"] == "measured from 2 pairs of the inputs"
    assert verification["gains"]["IMAGE"].startswith("measured 2.")  # the flats' gain, from their pairs
    assert "header 2.3" in verification["gains"]["IMAGE"]


def test_a_header_that_disagrees_with_the_measurement_is_said_and_does_not_fail_a_sound_master(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    camera = Acquisition("maxim", tmp_path / "night", Sensor(gain=2.3))
    for _ in range(4):
        camera.take("BIAS", 0.0, "bias")
    for _ in range(4):
        camera.take("FLAT", 3.0, "flat", flux=5000.0, EGAIN=4.6)  # the header says twice the true gain
    repo = str(tmp_path / "repo")
    assert reduce(capsys, "bias", str(tmp_path / "night" / "bias"), "--repo", repo)[0] == 0
    code, rows, _ = reduce(capsys, "flat", str(tmp_path / "night" / "flat"), "--repo", repo, "--verify")
    (group,) = [r for r in rows if "status" in r]
    assert (code, group["status"]) == (0, "built")
    assert "verification passed" in group["detail"]
    assert (
        "the header disagrees with the measurement (reported, not failed): GAIN IMAGE: header 4.6 e-/ADU, "
        "measured 2." in group["detail"]
    )


def test_a_file_given_twice_is_one_input(ccdsoft: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = sorted((ccdsoft / "BIAS").glob("bias_*.fit"))[0]
    code, rows, _ = reduce(capsys, "bias", str(ccdsoft / "BIAS"), str(first), "--repo", str(tmp_path / "repo"))
    assert (code, groups(rows)) == (0, {"bias#1": ("built", 5)})


def test_counts_mean_one_thing_and_hints_never_contradict_the_header(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    camera = Acquisition("maxim", tmp_path / "night")
    for _ in range(4):
        camera.take("FLAT", 3.0, "FLAT", flux=5000.0)
    bias = camera.take("BIAS", 0.0, "FLAT")  # a real bias filed among the flats
    code, rows, _ = reduce(capsys, "flat", str(tmp_path / "night"), "--repo", str(tmp_path / "repo"))
    assert (code, groups(rows)) == (1, {"flat#1": ("refused", 4)})  # no master bias
    accounts = {Path(r["file"]).name: r for r in rows if "file" in r}
    assert all(a["reason"].startswith("flat#1 was refused: no matching master bias") for n, a in accounts.items()
               if n != bias.name)  # fmt: skip
    assert (accounts[bias.name]["reason"], accounts[bias.name]["hint"]) == ("a bias, not a flat", "")
    assert main(["reduce", "flat", str(tmp_path / "night"), "--repo", str(tmp_path / "repo")]) == 1
    assert "files: 5, 0 used, 5 not used" in capsys.readouterr().out
