"""`obsq script run` as an engineer uses it: one script with a YAML file, on the simulated observatory."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .conftest import run_cli

pytestmark = [pytest.mark.system, pytest.mark.timeout(300)]


def test_a_flat_with_the_lamp_off_is_said_each_state_once_and_where_the_images_went(tmp_path: Path) -> None:
    config = tmp_path / "flat.yaml"
    config.write_text("image_type: FLAT\nexp_times: [2, 2]\nfilter: SDSSr_65mm\n")
    data = tmp_path / "data"
    result = run_cli("script", "run", "auxtel/take_image_latiss.py", "--sim", "--speed", "600",
                     "--config", str(config), "--data", str(data), timeout=240)  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    lines = result.stdout.splitlines()
    states = [line for line in lines if line.startswith("Script:")]
    assert len(states) == len(set(states)), states  # each state (and checkpoint) once
    assert [s.split()[1] for s in states][:3] == ["UNCONFIGURED", "CONFIGURED", "RUNNING"]
    assert states[-1].split()[1] == "DONE"
    assert "script_state" not in result.stdout + result.stderr  # the script's own log lines are in its log file
    # the lamp is off (the simulated observatory leaves ATWhiteLight in STANDBY): each flat is said to be dark
    warnings = [line for line in lines if "flat_without_light" in line]
    assert 1 <= len(warnings) <= 2  # one a flat (the last may come after the script's end on a busy machine)
    assert "is the lamp on with its shutter open" in warnings[0]
    (where,) = [line for line in lines if line.startswith("images: ")]
    assert re.fullmatch(rf"images: 2 in {re.escape(str(data))}/raw/\d{{8}}: AT_O_\d{{8}}_000001\.fits … "
                        r"AT_O_\d{8}_000002\.fits", where)  # fmt: skip
    (log,) = [line for line in lines if line.startswith("log: ")]
    assert Path(log.removeprefix("log: ")).is_file()
