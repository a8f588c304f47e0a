"""`obsq bench reduce` (issue 25): both cases run on the same files, each in its own process, and are compared."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from obsq.csc.cli import main


def test_the_whole_command_and_ccdproc_are_measured_in_one_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("ccdproc")
    out = tmp_path / "results.json"
    assert main(["bench", "reduce", "--frames", "4", "--size", "64", "--dir", str(tmp_path), "--repeat", "2",
                 "--json", str(out)]) == 0  # fmt: skip
    results = json.loads(out.read_text())
    assert set(results["cases"]) == {"obsq", "ccdproc"}
    assert len(results["cases"]["obsq"]["runs"]) == 2
    assert results["speedup_vs_ccdproc"] == pytest.approx(
        results["cases"]["ccdproc"]["seconds"] / results["cases"]["obsq"]["seconds"]
    )
    assert "obsq is " in capsys.readouterr().out
