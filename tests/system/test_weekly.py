"""`obsq weekly` end to end: BLOCK-309, BLOCK-295 and BLOCK-310 on real processes over Mosquitto."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from obsq.csc.bus.brokers import mosquitto_path
from obsq.csc.scriptqueue.blocks import block_folders, read_block

from .conftest import REQUIRE_MOSQUITTO

pytestmark = pytest.mark.system


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
    db.close()
    assert taken == planned_images()
    assert sum(taken.values()) == 205
    assert "all scripts DONE" in result.stdout
    assert "images 205/205" in result.stdout
