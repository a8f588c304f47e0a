"""`obsq weekly` end to end: BLOCK-309, BLOCK-295 and BLOCK-310 on real processes over Mosquitto."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import psycopg
import pytest

from obsq.csc.bus.brokers import mosquitto_path
from obsq.csc.scriptqueue.blocks import block_folders, read_block

from .conftest import REQUIRE_MOSQUITTO

#: CI installs Chromium; elsewhere the browser check runs when it is there
REQUIRE_CHROMIUM = os.environ.get("OBSQ_REQUIRE_CHROMIUM") == "1"

pytestmark = [pytest.mark.system, pytest.mark.timeout(400)]  # each runs the whole weekly (~80-100 s)


def planned_images() -> Counter[tuple[str, str, str, float]]:
    """What BLOCK-295 asks for: per (type, filter, grating, exposure time), discards included."""
    data, _ = read_block("BLOCK-295", block_folders())
    planned: Counter[tuple[str, str, str, float]] = Counter()
    for script in data["scripts"]:
        p = script["parameters"]
        if script["name"].endswith("make_latiss_calibrations.py"):
            for kind in ("bias", "dark", "flat"):
                n = p.get(f"n_{kind}", 20 if kind != "dark" else 22) + p.get(f"n_discard_{kind}", 1)
                exptime = 0.0 if kind == "bias" else float(p[f"exp_times_{kind}"])
                planned[(kind.upper(), p["filter"], p["grating"], exptime)] += n
        else:
            for exptime in p["exp_times"]:
                planned[(p["image_type"], p["filter"], p["grating"], float(exptime))] += 1
    return planned


def test_weekly_runs_every_block_and_takes_exactly_the_planned_images(tmp_path: Path) -> None:
    if mosquitto_path() is None and not REQUIRE_MOSQUITTO:
        pytest.skip("mosquitto not installed: obsq weekly would use the embedded broker")
    result = subprocess.run(
        [sys.executable, "-m", "obsq.csc.cli", "weekly", "--data", str(tmp_path), "--speed", "600"],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (run,) = tmp_path.glob("weekly-*")
    summary = json.loads((run / "weekly-summary.json").read_text())
    assert [s["state"] for s in summary["scripts"]] == ["DONE"] * 13
    assert [s["block"] for s in summary["scripts"]] == ["BLOCK-309"] * 4 + ["BLOCK-295"] * 6 + ["BLOCK-310"] * 3
    assert summary["lamp"] == {"summaryState": "STANDBY", "lamp": "OFF"}
    db = sqlite3.connect(run / "registry.sqlite3")
    taken = Counter(db.execute("SELECT imgtype, filter, grating, exptime FROM acquired_images").fetchall())
    (first_mjd,) = db.execute("SELECT MIN(mjd_obs) FROM acquired_images").fetchone()
    db.close()
    assert taken == planned_images()
    assert sum(taken.values()) == 205
    assert "all scripts DONE" in result.stdout
    assert "images 205/205" in result.stdout
    results = summary["calibration"]
    assert results["passed"], results["failures"][:5]
    certified = {(m["type"], m["filter"]) for m in results["masters"] if m["certified"]}
    assert certified >= {("bias", ""), ("dark", ""), ("flat", "SDSSr_65mm~empty_1"), ("flat", "empty_1~SDSSy_65mm")}
    # certified from the day of the run for a week (BLOCK-295's certify_validity_days: 7), not 1950-2050
    ranges = {tuple(r) for m in results["masters"] if m["certified"] for r in m["certified"]}
    assert len(ranges) == 1
    ((begin, end),) = ranges
    assert end - begin == 7
    assert begin <= first_mjd < begin + 1  # the day of the run (UTC, on the simulated clock)
    assert set(results["verification"]) == {"counts", "flat_level", "verify_bias", "verify_dark", "verify_flat"}
    for amp in results["ptc"]["amps"].values():  # the simulator's truth is the nominal gain in the headers
        assert abs(amp["gain_ratio"] - 1) <= 0.02
    report = Path(summary["report"])
    assert json.loads((report.parent / "results.json").read_text())["passed"]
    if shutil.which("chromium") or REQUIRE_CHROMIUM:
        loaded = images_loaded_in_chromium(report)
        assert loaded["ptc"] == 1
        assert loaded["previews"] == len(results["masters"])
        assert loaded["broken"] == 0


HARNESS = """<!doctype html><html><body><iframe id="r" src="REPORT" width="1200" height="900"></iframe>
<pre id="out">pending</pre><script>
document.getElementById("r").onload = () => {
  const doc = document.getElementById("r").contentDocument, imgs = [...doc.images];
  const ok = i => i.complete && i.naturalWidth > 0;
  document.getElementById("out").textContent = JSON.stringify({
    ptc: imgs.filter(i => i.id === "ptc-plot" && ok(i)).length,
    previews: imgs.filter(i => i.classList.contains("preview") && ok(i)).length,
    broken: imgs.filter(i => !ok(i)).length, title: doc.title});
};
</script></body></html>"""


def images_loaded_in_chromium(report: Path) -> dict[str, int]:
    """Open the report in headless Chromium and count the images it actually decoded."""
    harness = report.parent / "harness.html"
    harness.write_text(HARNESS.replace("REPORT", report.name))
    result = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
         "--virtual-time-budget=10000", "--dump-dom", harness.as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    match = re.search(r'<pre id="out">(.*?)</pre>', result.stdout, re.S)
    assert match, result.stdout[-2000:]
    return dict(json.loads(html.unescape(match.group(1))))


def test_weekly_with_a_drifting_dome_fails_and_names_the_flats(tmp_path: Path) -> None:
    if mosquitto_path() is None and not REQUIRE_MOSQUITTO:
        pytest.skip("mosquitto not installed: obsq weekly would use the embedded broker")
    result = subprocess.run(
        [sys.executable, "-m", "obsq.csc.cli", "weekly", "--data", str(tmp_path), "--speed", "600",
         "--inject", "dome-drift"],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode != 0, result.stdout[-3000:]
    (run,) = tmp_path.glob("weekly-*")
    summary = json.loads((run / "weekly-summary.json").read_text())
    failures = summary["calibration"]["failures"]
    level = [f for f in failures if f["name"] == "FLAT_LEVEL"]
    assert level, failures
    assert "misaligned" in level[0]["detail"]
    # the SDSSr flat set stopped after its first kept flat, which count verification names
    assert any(
        f["name"] == "COUNT" and f["amp"].startswith("FLAT SDSSr") and "missing" in f["detail"] for f in failures
    )
    assert "FAILED flat_level FLAT_LEVEL" in result.stdout
    # no master is made of the misaligned SDSSr flat, so none is certified
    assert not [m for m in summary["calibration"]["masters"] if m["filter"].startswith("SDSSr")]
    assert "calibration FAILED" in result.stdout
    # the PTC of the misaligned flats measures a gain, but never reaches the turnoff: not a PASS
    ptc = summary["calibration"]["ptc"]
    assert ptc is not None
    assert not ptc["covers_range"]
    assert "the PTC flats stop below the turnoff" in result.stdout
    # the recovery, at the end of the output and in the report
    tail = result.stdout[result.stdout.index("calibration FAILED") :]
    assert "1. home the dome: obsq queue add auxtel/atdome/home_dome.py" in tail
    assert "2. run the setup again" in tail
    assert "3. take the calibrations again: obsq queue add-block BLOCK-295" in tail
    page = Path(summary["report"]).read_text()
    assert "<h2 id='recovery'>Recovery</h2>" in page
    assert "obsq queue add-block BLOCK-309" in page


def test_weekly_with_its_registries_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    """The same weekly with every registry in a PostgreSQL database: images, jobs, queue, masters."""
    if mosquitto_path() is None and not REQUIRE_MOSQUITTO:
        pytest.skip("mosquitto not installed: obsq weekly would use the embedded broker")
    result = subprocess.run(
        [sys.executable, "-m", "obsq.csc.cli", "weekly", "--data", str(tmp_path), "--speed", "600",
         "--database", postgres_url],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (run,) = tmp_path.glob("weekly-*")
    assert not list(run.rglob("registry.sqlite3"))
    assert not list(run.rglob("jobs.sqlite3"))
    assert not list(run.rglob("ScriptQueue-2.sqlite3"))
    with psycopg.connect(postgres_url) as db:
        taken = Counter(db.execute("SELECT imgtype, filter, grating, exptime FROM acquired_images").fetchall())
        certified = db.execute("SELECT COUNT(*) FROM certifications").fetchone()
        jobs = dict(db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall())
        history = db.execute("SELECT COUNT(*) FROM queue_items WHERE queue = 'ScriptQueue:2'").fetchone()
    assert taken == planned_images()
    assert certified is not None
    assert certified[0] >= 4
    assert set(jobs) == {"DONE"}, jobs
    assert history is not None
    assert history[0] >= 13
    summary = json.loads((run / "weekly-summary.json").read_text())
    assert summary["calibration"]["passed"]
    assert sum(i["count"] for i in summary["images"]) == 205
    again = subprocess.run(
        [sys.executable, "-m", "obsq.csc.cli", "weekly", "--data", str(tmp_path), "--database", postgres_url],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert again.returncode == 2
    assert "holds 205 acquired images already" in again.stderr


RUBIN_BLOCKS = Path(__file__).resolve().parents[1] / "data" / "rubin-auxtel-blocks"  # Rubin's files, as they are


def test_rubins_three_blocks_give_a_ptc_from_their_daily_ptc_flats(tmp_path: Path) -> None:
    """Rubin's own block files, verbatim: every script DONE, the PTC from the flats its BLOCK-295 asks for."""
    if not RUBIN_BLOCKS.is_dir():
        pytest.skip("the reference Rubin blocks are not beside this checkout")
    if mosquitto_path() is None and not REQUIRE_MOSQUITTO:
        pytest.skip("mosquitto not installed: obsq weekly would use the embedded broker")
    files = [str(next(RUBIN_BLOCKS.glob(f"block-{n}-*.json"))) for n in (309, 295, 310)]
    result = subprocess.run(
        [sys.executable, "-m", "obsq.csc.cli", "weekly", "--data", str(tmp_path), "--speed", "600",
         "--blocks", ",".join(files)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (run,) = tmp_path.glob("weekly-*")
    summary = json.loads((run / "weekly-summary.json").read_text())
    assert [s["state"] for s in summary["scripts"]] == ["DONE"] * 10
    ptc = summary["calibration"]["ptc"]
    assert ptc["n_inputs"] == 60  # Rubin tags them daily_PTC: found by what the block asks for
    assert all(a["gain_ok"] for a in ptc["amps"].values())
    assert all(abs(a["gain_ratio"] - 1.0) < 0.02 for a in ptc["amps"].values()), ptc["amps"]  # the 2 %
    (note,) = summary["processing"]
    assert note.startswith("BLOCK-295 asks for no processing")
    assert "processing: BLOCK-295 asks for no processing" in result.stdout
