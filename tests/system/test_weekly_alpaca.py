"""The whole weekly through ASCOM Alpaca (issue 24): `obsq weekly --alpaca`, as a user runs it.

Every hardware component drives obsq's own served devices (`obsq alpaca serve`, a process of the
run's) over HTTP with its Alpaca driver: the frames are one assembled image with the camera's
own keywords, verification passes and the PTC recovers the camera's gain. A fault injected in
the served devices is found through the protocol alone: a drifted dome by the flats' level, a
dead lamp by its calibrator never getting ready. Every run ends with the lamp off.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from astropy.io import fits

from obsq.csc.bus.brokers import mosquitto_path

from .conftest import REQUIRE_MOSQUITTO

pytestmark = [pytest.mark.system, pytest.mark.timeout(600)]


@pytest.fixture(autouse=True)
def _needs_mosquitto() -> None:
    if mosquitto_path() is None and not REQUIRE_MOSQUITTO:
        pytest.skip("mosquitto not installed: obsq weekly would use the embedded broker")


def weekly(data: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any], Path]:
    argv = [sys.executable, "-m", "obsq.csc.cli", "weekly", "--alpaca", "--data", str(data), "--speed", "600", *extra]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=540, check=False)
    (run,) = data.glob("weekly-*")
    return result, json.loads((run / "weekly-summary.json").read_text()), run


def test_the_weekly_runs_through_alpaca_and_the_ptc_finds_the_camera_s_gain(tmp_path: Path) -> None:
    result, summary, run = weekly(tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "the hardware behind ASCOM Alpaca at http://127.0.0.1:" in result.stdout
    assert all(s["state"] == "DONE" for s in summary["scripts"]), summary["scripts"]
    assert summary["lamp"]["lamp"] == "OFF"
    calibration = summary["calibration"]
    assert calibration["passed"], calibration["failures"]
    (ptc,) = calibration["ptc"]["amps"].values()  # one image: one amplifier
    assert ptc["gain_ok"]
    assert ptc["gain"] == pytest.approx(ptc["nominal_gain"], rel=0.01)  # the device's ElectronsPerADU
    assert 5.0 < ptc["noise_e"] < 9.0
    raws = sorted((run / "raw").rglob("*.fits"))
    assert len(raws) == 205
    with fits.open(raws[-1]) as hdus:
        assert hdus[0].header["CAMERA"].startswith("alpaca://127.0.0.1:")
        assert hdus[0].header["EGAIN"] == pytest.approx(ptc["nominal_gain"])
        assert hdus[0].header["IMAGETYP"] == "Flat Field"
        assert hdus[1].data.shape == (512, 512)  # an assembled frame: no overscan
    for member in ("ATCamera", "ATDome", "ATWhiteLight", "ATMCS", "ATSpectrograph"):
        assert "running on" in (run / "logs" / f"{member}.log").read_text()
    assert "obsq alpaca: camera/0" in (run / "logs" / "alpaca.log").read_text()


def test_a_drifted_dome_is_found_through_the_protocol_by_the_flats(tmp_path: Path) -> None:
    result, summary, _ = weekly(tmp_path, "--inject", "dome-drift")
    assert result.returncode == 1, result.stdout[-3000:]
    level = [f for f in summary["calibration"]["failures"] if f["name"] == "FLAT_LEVEL"]
    assert level, summary["calibration"]["failures"]
    assert "misaligned" in level[0]["detail"]
    assert "1. home the dome: obsq queue add auxtel/atdome/home_dome.py" in result.stdout
    assert summary["lamp"]["lamp"] == "OFF"


def test_a_dead_lamp_is_found_through_the_protocol_and_the_run_ends_dark(tmp_path: Path) -> None:
    result, summary, _ = weekly(tmp_path, "--inject", "lamp-no-strike")
    assert result.returncode == 1, result.stdout[-3000:]
    failed = {s["block"]: s for s in summary["scripts"] if s["state"] == "FAILED"}
    assert "the lamp did not strike in 3 attempts" in json.dumps(failed["BLOCK-309"]), failed
    assert summary["lamp"]["lamp"] != "ON"
    assert not list(tmp_path.rglob("raw/**/*.fits"))  # no flat was taken in the dark


def test_a_fault_the_served_devices_cannot_show_is_refused_at_the_door(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "obsq.csc.cli", "weekly", "--alpaca", "--data", str(tmp_path), "--inject",
         "chiller-alarm"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert "--inject chiller-alarm: not a fault the served Alpaca devices can show" in result.stderr
