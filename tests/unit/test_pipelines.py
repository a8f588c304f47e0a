"""Pipelines and the calibration repository on FITS files written from the simulated detector."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from obsq.csc.atcamera.fits import amplifier_header, build_hdus
from obsq.csc.atcamera.model import GEOMETRIES, DetectorModel
from obsq.csc.clock import utc_now_unix
from obsq.csc.ocps import catalog
from obsq.csc.ocps.pipelines import PipelineError
from obsq.csc.ocps.repository import Repository, RepositoryError, compile_filter

FLUX = 4700.0


@pytest.fixture(scope="module")
def detector() -> DetectorModel:
    return DetectorModel(GEOMETRIES["small"], seed=11)


class Camera:
    def __init__(self, detector: DetectorModel, folder: Path) -> None:
        self.detector, self.folder, self.number = detector, folder, 0

    def take(self, imgtype: str, exptime: float, filter_: str = "SDSSr_65mm", flux: float = FLUX) -> str:
        self.number += 1
        raws = self.detector.expose(self.number, flux if imgtype == "FLAT" else 0.0, exptime, exptime)
        primary = {"IMGTYPE": imgtype, "EXPTIME": exptime, "DARKTIME": exptime, "FILTER": filter_,
                   "MJD-OBS": 61000.5 + self.number / 1440, "DETECTOR": "small", "CCD-TEMP": -95.0}  # fmt: skip
        amps = [(amplifier_header(self.detector, i), raw) for i, raw in enumerate(raws)]
        path = self.folder / f"raw_{self.number:04d}.fits"
        build_hdus(primary, amps).writeto(path)
        return str(path)


@pytest.fixture
def camera(detector: DetectorModel, tmp_path: Path) -> Camera:
    (tmp_path / "raw").mkdir()
    return Camera(detector, tmp_path / "raw")


def test_masters_verified_certified_and_found(camera: Camera, tmp_path: Path) -> None:
    repo = Repository(tmp_path / "repo", now=utc_now_unix)
    biases = [camera.take("BIAS", 0.0) for _ in range(8)]
    darks = [camera.take("DARK", 30.0) for _ in range(5)]
    flats = [camera.take("FLAT", 6.0) for _ in range(8)]
    bias = catalog.run("cpBias", repo, {"inputs": biases})
    assert catalog.run("cpVerifyBias", repo, {"product": bias["product"], "inputs": biases})["verdict"] == "passed"
    dark = catalog.run("cpDark", repo, {"inputs": darks})
    assert dark["masters_used"]["bias"]["id"] == bias["product"]
    assert catalog.run("cpVerifyDark", repo, {"product": dark["product"], "inputs": darks})["verdict"] == "passed"
    flat = catalog.run("cpFlat", repo, {"inputs": flats})
    result = catalog.run("cpVerifyFlat", repo, {"product": flat["product"], "inputs": flats})
    assert result["verdict"] == "passed", result
    with fits.open(flat["path"]) as hdul:
        assert abs(np.mean([h.data.mean() for h in hdul[1:]]) - 1) < 0.02  # normalised
        assert hdul[0].header["NCOMBINE"] == 8
    # lookup before certification: the nearest, flagged; after: certified and valid
    frame_signature = repo.product(flat["product"]).signature
    found = repo.find("flat", frame_signature, 61001.0, "SDSSr_65mm")
    assert not found.certified
    assert "nearest in time" in found.note
    catalog.run("certify", repo, {"product": flat["product"], "begin_mjd": 61000.0, "end_mjd": 61010.0})
    assert repo.find("flat", frame_signature, 61001.0, "SDSSr_65mm").certified
    with pytest.raises(RepositoryError, match="no flat \\(SDSSg_65mm\\)"):
        repo.find("flat", frame_signature, 61001.0, "SDSSg_65mm")
    # a rebuild of the same inputs is refused, --force makes version 2 and leaves version 1 alone
    with pytest.raises(RepositoryError, match="exists already as product"):
        catalog.run("cpFlat", repo, {"inputs": flats})
    again = catalog.run("cpFlat", repo, {"inputs": flats, "force": True})
    assert again["version"] == 2
    assert Path(flat["path"]).exists()
    # an overlapping certification is refused, then superseded with force, with history
    with pytest.raises(RepositoryError, match="overlaps product"):
        repo.certify(again["product"], 61005.0, 61020.0)
    actions = repo.certify(again["product"], 61005.0, 61020.0, force=True)
    assert any("superseded" in a for a in actions)
    assert repo.product(flat["product"]).certified == [(61000.0, 61005.0)]
    assert [p.id for p in repo.products(where='type == "flat" and version > 1')] == [again["product"]]


def test_a_job_run_again_after_its_worker_died_returns_what_it_had_made(camera: Camera, tmp_path: Path) -> None:
    """A rerun (`rerun`, set by the worker on a job's second run) is idempotent: same inputs, same product."""
    repo = Repository(tmp_path / "repo", now=utc_now_unix)
    biases = [camera.take("BIAS", 0.0) for _ in range(4)]
    bias = catalog.run("cpBias", repo, {"inputs": biases})  # the first run wrote it, then its worker died
    again = catalog.run("cpBias", repo, {"inputs": biases, "rerun": True})
    assert (again["product"], again["version"]) == (bias["product"], 1)
    verify = {"product": bias["product"], "inputs": biases}
    catalog.run("cpVerifyBias", repo, verify, job="ocps-000002")
    first = len(repo.checks())
    catalog.run("cpVerifyBias", repo, verify | {"rerun": True}, job="ocps-000002")
    assert len(repo.checks()) == first > 0  # the rerun's checks replace the first run's
    certify = {"product": bias["product"], "begin_mjd": 61000.0, "end_mjd": 61010.0}
    catalog.run("certify", repo, certify)
    assert "already" in catalog.run("certify", repo, certify | {"rerun": True})["actions"][0]
    assert repo.product(bias["product"]).certified == [(61000.0, 61010.0)]
    with pytest.raises(RepositoryError, match="exists already as product"):  # not a rerun: refused as before
        catalog.run("cpBias", repo, {"inputs": biases})


def test_bad_requests_are_named_and_write_nothing(camera: Camera, tmp_path: Path) -> None:
    repo = Repository(tmp_path / "repo", now=utc_now_unix)
    flats = [camera.take("FLAT", 6.0) for _ in range(3)]
    with pytest.raises(PipelineError, match="no matching master bias for flats of signature"):
        catalog.run("cpFlat", repo, {"inputs": flats})
    with pytest.raises(PipelineError, match="input set is empty"):
        catalog.run("cpBias", repo, {"inputs": []})
    biases = [camera.take("BIAS", 0.0) for _ in range(3)]
    other = tmp_path / "other.fits"
    with fits.open(biases[0]) as hdul:
        hdul[0].header["DETECTOR"] = "latiss"
        hdul.writeto(other)
    with pytest.raises(PipelineError, match=re.escape(f"mixed signatures in one request: {other}")):
        catalog.run("cpBias", repo, {"inputs": [*biases, str(other)]})
    broken = tmp_path / "broken.fits"
    broken.write_bytes(Path(biases[0]).read_bytes()[:5000])
    with pytest.raises(PipelineError, match=re.escape(f"{broken}: truncated")):
        catalog.run("cpBias", repo, {"inputs": [*biases, str(broken)]})
    with pytest.raises(PipelineError, match="is a FLAT, not a BIAS"):
        catalog.run("cpBias", repo, {"inputs": [*biases, flats[0]]})
    assert repo.products() == []
    assert not (repo.root / "calib").exists() or not any(p.is_file() for p in (repo.root / "calib").rglob("*"))


def test_misaligned_flat_is_flagged(camera: Camera, tmp_path: Path) -> None:
    repo = Repository(tmp_path / "repo", now=utc_now_unix)
    good = catalog.run("cpFlatLevel", repo, {"inputs": [camera.take("FLAT", 6.0)]})
    assert good["passed"]
    dim = catalog.run("cpFlatLevel", repo, {"inputs": [camera.take("FLAT", 6.0, flux=FLUX / 4)]})
    assert not dim["passed"]
    assert "misaligned" in dim["detail"]


def test_ptc_pipeline_gain_within_2_percent(camera: Camera, detector: DetectorModel, tmp_path: Path) -> None:
    repo = Repository(tmp_path / "repo", now=utc_now_unix)
    times = [0.0, 0.3, 0.6, 1.2, 2.5, 5.0, 8.0, 12.0, 18.0, 25.0, 32.0]
    inputs = [camera.take("BIAS" if t == 0 else "FLAT", t) for t in times for _ in range(2)]
    result = catalog.run("cpPtc", repo, {"inputs": inputs})
    for index, truth in enumerate(detector.amplifiers):
        amp = result["amps"][f"C{index:02d}"]
        assert amp["gain"] == pytest.approx(truth.gain_e_per_adu, rel=0.02)
        assert amp["noise_e"] == pytest.approx(truth.read_noise_e, rel=0.02)
    assert Path(result["plot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_filter_expressions_are_checked() -> None:
    assert compile_filter('type == "flat" and version in [1, 2]')({"type": "flat", "version": 2})
    with pytest.raises(RepositoryError, match="Call is not allowed"):
        compile_filter("__import__('os')")
    with pytest.raises(RepositoryError, match=r"invalid syntax|was never closed"):
        compile_filter("type == (")


def test_reduce_and_calib_commands(camera: Camera, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from obsq.csc.cli import main

    for _ in range(4):
        camera.take("BIAS", 0.0)
    repo = str(tmp_path / "repo")
    assert main(["reduce", "bias", str(camera.folder), "--repo", repo, "--verify"]) == 0
    assert "verification passed" in capsys.readouterr().out
    assert main(["reduce", "flat", str(camera.folder), "--repo", repo]) == 1
    out = capsys.readouterr().out
    assert "no flat groups: nothing to build" in out
    assert "raw_0004.fits: a bias, not a flat" in out
    assert main(["calib", "--repo", repo, "certify", "1", "--begin", "61000", "--end", "60000"]) == 1
    assert "end must be after begin" in capsys.readouterr().err
    assert main(["calib", "--repo", repo, "certify", "1", "--begin", "61000", "--end", "62000"]) == 0
    assert main(["calib", "--repo", repo, "list", "--filter-expr", "certified and type == 'bias'"]) == 0
    assert "[61000.000, 62000.000)" in capsys.readouterr().out
    assert main(["calib", "--repo", repo, "show", "1"]) == 0
    shown = capsys.readouterr().out
    assert '"software": "obsq' in shown
    assert '"action": "certify"' in shown
    # dates wherever an MJD is taken, the folder options after the action too
    assert main(["calib", "certify", "1", "--begin", "2026-11-30", "--end", "2026-12-07T00:00", "--repo", repo,
                 "--force"]) == 0  # fmt: skip
    assert "[61374.0, 61381.0)" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["calib", "certify", "1", "--begin", "2026-13-01", "--end", "61381", "--repo", repo])
    assert "'2026-13-01' is neither an MJD nor a date" in capsys.readouterr().err


def test_calib_reads_the_data_folder_every_command_uses_and_says_what_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from obsq.csc.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["calib", "list"]) == 1  # obsq-data/repo, as obsq up and obsq reduce keep it: not there
    assert "no calibration repository at obsq-data/repo" in capsys.readouterr().err
    assert not (tmp_path / "obsq-data").exists()  # looked for, never made
    assert main(["calib", "due"]) == 1
    assert "no raw frames folder at obsq-data/raw, so nothing can be judged due" in capsys.readouterr().err
    (tmp_path / "obsq-data" / "raw").mkdir(parents=True)
    assert main(["calib", "due"]) == 0
    out, err = capsys.readouterr()
    assert "no calibration repository at obsq-data/repo yet: no master" in err
    assert "no raw frames of the last 30 days under obsq-data/raw: no setup in use" in out
    assert not (tmp_path / "obsq-data" / "repo").exists()
