"""`obsq bench weekly` after a failed run: why it failed, in words, and where its folder and logs are kept."""

from __future__ import annotations

from pathlib import Path

from obsq.csc.bench.weekly import failure_report

RUN = Path("/data/bench/weekly-20261207T140000")
SCRIPTS = [
    {"index": 100001, "block": "BLOCK-309", "path": "auxtel/enable_latiss.py", "state": "DONE", "reason": ""},
    {"index": 100002, "block": "BLOCK-295", "path": "auxtel/take_image_latiss.py", "state": "FAILED",
     "reason": "ATCamera:\n  takeImages rejected: not ENABLED"},
    {"index": 100003, "block": "BLOCK-310", "path": "auxtel/standby_latiss.py", "state": "TERMINATED", "reason": ""},
]  # fmt: skip


def test_a_failed_script_is_named_with_its_reason_and_log_and_the_folder_is_kept() -> None:
    summary = {
        "outcome": "FAILED: not every script is DONE",
        "scripts": SCRIPTS,
        "file": str(RUN / "weekly-summary.json"),
    }
    text = "\n".join(failure_report(summary, ["obsq weekly: observatory ready after 9.1 s"], RUN, RUN.parent))
    assert "the summary's outcome: FAILED: not every script is DONE" in text
    assert "scripts not DONE (2 of 3)" in text
    assert "100001" not in text
    assert (f"100002 BLOCK-295 auxtel/take_image_latiss.py: FAILED — ATCamera: takeImages rejected: not ENABLED; "
            f"log {RUN / 'logs' / 'scripts' / '100002.log'}") in text  # fmt: skip
    assert "100003 BLOCK-310 auxtel/standby_latiss.py: TERMINATED — no reason given" in text
    assert "observatory ready after 9.1 s" in text
    assert f"kept: {RUN}\n" in text
    assert f"summary: {RUN / 'weekly-summary.json'}" in text
    assert f"logs: {RUN / 'logs'} (components)" in text


def test_failed_checks_jobs_and_ptc_are_listed_when_every_script_is_done() -> None:
    failures = [
        {"kind": "bias", "name": "NOISE", "amp": f"C1{i}", "exposure": 7, "value": 9.5, "limit_value": 8.0,
         "detail": "read noise above the limit"}
        for i in range(12)
    ]  # fmt: skip
    summary = {
        "outcome": "all scripts DONE",
        "scripts": SCRIPTS[:1],
        "report": str(RUN / "report" / "report.html"),
        "calibration": {
            "passed": False,
            "failures": failures,
            "jobs": {"total": 25, "failed": [{"id": 17, "pipeline": "cp_flat", "result": "no inputs"}]},
            "ptc": {"amps": {"C10": {"gain_ok": False}, "C11": {"gain_ok": True}}, "covers_range": False},
            "recovery": ["home the dome"],
        },
    }
    text = "\n".join(failure_report(summary, [], RUN, RUN.parent))
    assert "the summary's outcome: all scripts DONE" in text
    assert "calibration: FAILED" in text
    assert "failed checks (12):" in text
    assert "bias NOISE (amp C10, exposure 7): 9.5 (limit 8.0) — read noise above the limit" in text
    assert "… and 2 more (in the report)" in text
    assert "failed reduction jobs (1 of 25):" in text
    assert "job 17 cp_flat: no inputs" in text
    assert "PTC: gain off nominal in 1 amplifier(s): C10" in text
    assert "PTC: the flats do not cover the range" in text
    assert "recovery: home the dome" in text
    assert f"report: {RUN / 'report' / 'report.html'}" in text


def test_a_run_that_ended_before_its_summary_says_so_and_shows_its_last_lines() -> None:
    lines = [f"line {i}" for i in range(20)] + ["obsq weekly: timed out after 1800 s"]
    text = "\n".join(failure_report({}, lines, None, Path("/tmp/obsq-bench-weekly-x")))
    assert "the run ended before its summary" in text
    assert "obsq weekly: timed out after 1800 s" in text
    assert "line 0\n" not in text  # only the last few
    assert "kept: /tmp/obsq-bench-weekly-x" in text


async def test_a_failed_run_keeps_its_temporary_folder_and_says_why(tmp_path, monkeypatch, capsys) -> None:
    import obsq.csc.bench.weekly as bench

    async def failing_weekly(options, view) -> int:  # what run_weekly leaves after a failed script, without a run
        run = options.data / "weekly-20261207T140000"
        (run / "logs" / "scripts").mkdir(parents=True)
        view.summary({"outcome": "FAILED: not every script is DONE", "scripts": SCRIPTS, "images": []})
        return 1

    monkeypatch.setattr(bench, "run_weekly", failing_weekly)
    monkeypatch.setattr(bench.tempfile, "mkdtemp", lambda prefix: str(tmp_path / f"{prefix}x"))
    assert await bench.run_weekly_benchmark(bench.WeeklyBenchOptions()) == 1
    out = capsys.readouterr().out
    kept = tmp_path / "obsq-bench-weekly-x"
    assert (kept / "weekly-20261207T140000").is_dir()
    assert "FAILED" in out
    assert "scripts not DONE (2 of 3)" in out
    assert f"kept: {kept / 'weekly-20261207T140000'}\n" in out
    assert f"log {kept / 'weekly-20261207T140000' / 'logs' / 'scripts' / '100002.log'}" in out
