"""The calibration library's rhythm (seed 001): refresh, seasons, drift and new setups, with their reasons."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from obsq.csc.core.errors import ValidationError
from obsq.csc.scheduler.library import Master, due, parse_policy, read_policy

POLICY = read_policy(Path(__file__).resolve().parents[2] / "deploy" / "calibration-policy.yaml")
SETUP = {"detector": "ITL", "binning": "1x1", "readout": "normal", "gain": 1.0, "offset": 10, "temperature_band": -100}
MJD_JAN_1 = 61041.0  # 2026-01-01


def month_of(mjd: float) -> int:
    """Months of 2026 (30.4 days each, enough for these tests)."""
    return int((mjd - MJD_JAN_1) // 30.42) % 12 + 1


def stats(mean: float, median: float, bad: int) -> dict[str, Any]:
    return {"amps": {"C00": {"mean_clip": mean, "p50": median, "n_bad": bad}}}


def master(id_: int, type_: str, mjd: float, *, filter_: str = "", signature: dict[str, Any] = SETUP,
           stat: dict[str, Any] | None = None) -> Master:  # fmt: skip
    return Master(id_, type_, signature, filter_, mjd, stat or stats(100.0, 100.0, 50))


def test_fresh_masters_of_the_setup_in_use_are_not_due() -> None:
    today = MJD_JAN_1 + 20
    masters = [master(1, "bias", today - 30), master(2, "dark", today - 10), master(3, "flat", today - 2,
                                                                                     filter_="SDSSr")]  # fmt: skip
    assert due(POLICY, masters, [(SETUP, "SDSSr")], today, month_of) == []


def test_a_bias_a_year_old_is_due_and_says_so() -> None:
    today = MJD_JAN_1 + 400
    (bias,) = [
        d for d in due(POLICY, [master(4, "bias", MJD_JAN_1)], [(SETUP, "")], today, month_of) if d.type == "bias"
    ]
    assert bias.reason == "#4: refresh: its data are 400 days old, over the 365 days of the policy"


def test_darks_are_due_when_the_season_turns() -> None:
    march, may = MJD_JAN_1 + 70, MJD_JAN_1 + 130
    found = due(POLICY, [master(5, "dark", march)], [(SETUP, "")], may, month_of)
    (dark,) = [d for d in found if d.type == "dark"]
    assert dark.reason == "#5: the season turned: taken in the warm season, now cold"
    assert not [d for d in due(POLICY, [master(5, "dark", march)], [(SETUP, "")], march + 10, month_of)
                if d.type == "dark"]  # fmt: skip


@pytest.mark.parametrize(
    ("new", "metric", "change"),
    [(stats(112.0, 100.0, 50), "mean", "+12%"), (stats(100.0, 88.0, 50), "median", "-12%"),
     (stats(100.0, 100.0, 60), "bad pixels", "+20%")],
)  # fmt: skip
def test_a_drift_over_10_percent_from_the_previous_master_makes_it_due_early(
    new: dict[str, Any], metric: str, change: str
) -> None:
    today = MJD_JAN_1 + 20
    masters = [master(6, "dark", today - 15), master(7, "dark", today - 5, stat=new)]
    (dark,) = [d for d in due(POLICY, masters, [(SETUP, "")], today, month_of) if d.type == "dark"]
    assert dark.reason == f"#7: early: its {metric} drifted {change} from #6 (limit 10%)"
    steady = [master(6, "dark", today - 15), master(7, "dark", today - 5, stat=stats(105.0, 104.0, 54))]
    assert not [d for d in due(POLICY, steady, [(SETUP, "")], today, month_of) if d.type == "dark"]


@pytest.mark.parametrize("change", [{"gain": 2.0}, {"offset": 30}, {"readout": "fast"}, {"temperature_band": -90}])
def test_a_new_gain_offset_mode_or_temperature_needs_new_masters_never_recycled(change: dict[str, Any]) -> None:
    today = MJD_JAN_1 + 20
    masters = [master(1, "bias", today - 3), master(2, "dark", today - 3), master(3, "flat", today - 1,
                                                                                   filter_="SDSSr")]  # fmt: skip
    found = due(POLICY, masters, [({**SETUP, **change}, "SDSSr")], today, month_of)
    assert sorted(d.type for d in found) == ["bias", "dark", "flat"]
    assert all(d.last is None and "a new setup needs new calibrations at once (nothing is recycled)" in d.reason
               for d in found)  # fmt: skip


def test_a_bad_policy_is_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError, match="field 'seasons': months 3 are in no season"):
        parse_policy("seasons: {a: [1, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12]}\ntypes: {bias: {refresh_days: 1}}", "p")
    with pytest.raises(ValidationError, match="field 'types/bias/refresh_day' is not allowed"):
        parse_policy("types: {bias: {refresh_day: 1}}", "p")


def test_calib_due_over_frames_other_software_wrote(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """N.I.N.A.'s and SharpCap's .fit files: each camera setup, with no certified master, is due at once."""
    import json

    from obsq.csc.app.calib import DueOptions, run_due

    from .foreign import Acquisition

    nina = Acquisition("nina", tmp_path / "raw" / "nina")
    nina.take("LIGHT", 120.0, flux=50.0, filter_="Ha")
    nina.take("LIGHT", 120.0, flux=50.0, filter_="OIII")
    Acquisition("sharpcap", tmp_path / "raw" / "sharpcap").take("DARK", 10.0)
    (tmp_path / "raw" / "notes.fits").write_text("not a FITS file")
    assert run_due(DueOptions(tmp_path / "repo", tmp_path / "raw", 30.0, True, None)) == 0
    found = json.loads(capsys.readouterr().out)
    setups = {(d["type"], d["setup"], d["filter"]) for d in found}
    nina_setup = "detector=SBIG STL-1001 3 CCD Camera, binning=1x1, gain=139.0, offset=21.0, temperature_band=-5.0"
    assert ("flat", nina_setup, "Ha") in setups
    assert ("flat", nina_setup, "OIII") in setups
    assert ("bias", nina_setup, "") in setups
    print(setups)
    assert all("a new setup needs new calibrations at once" in d["reason"] for d in found)
    assert run_due(DueOptions(tmp_path / "repo", tmp_path / "raw", 30.0, False, None)) == 0
    assert "(1 file(s) not readable as frames)" in capsys.readouterr().out
